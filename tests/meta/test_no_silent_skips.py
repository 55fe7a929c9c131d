"""The suite's own rule: a skipped test fails the run (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_skip_fails_the_run_with_its_reason(tmp_path: Path) -> None:
    # GIVEN a test that skips itself, and its passing neighbour
    (tmp_path / "test_guard.py").write_text(
        "import pytest\n\n"
        "def test_guard():\n    pytest.skip('the SDK venv is missing')\n\n"
        "def test_fine():\n    assert True\n"
    )
    # WHEN pytest runs it with the suite's rules
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    # THEN the run fails, and says why
    assert run.returncode == 1, run.stdout
    assert "1 failed, 1 passed" in run.stdout
    assert "the SDK venv is missing" in run.stdout
