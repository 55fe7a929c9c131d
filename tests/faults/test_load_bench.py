"""`make bench-load`, small: a burst on the faulty local cloud keeps every effect exactly once.

The full burst (1,000 events) is a benchmark (benchmarks/results/load.json); this runs the same code on 120
events so that the exactly-once tally is checked on every `make test`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_a_small_burst_keeps_every_effect_exactly_once(tmp_path: Path) -> None:
    results = tmp_path / "load.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "load.py"),
        *("--events", "120", "--commits", "5", "--approvals", "4", "--seed", "3"),
        *("--workdir", str(tmp_path / "cloud"), "--results", str(results)),
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(results.read_text())
    tally = figures["exactly_once"]
    assert tally["runs_started"] == tally["distinct_commits_pushed"] == 5
    assert tally["failure_notifications"] == tally["failed_runs"] == 5
    assert tally["approvals_lost"] == 0 and tally["configs_deployed_more_than_once"] == 0
    assert tally["last_approved_is_live"]
    assert figures["events"]["injected"] == 120 and figures["events"]["duplicates_injected"] == 12
    assert sum(figures["faults_injected"].values()) > 0
