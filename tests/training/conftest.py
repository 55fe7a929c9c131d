"""Helpers for the container-contract tests: each training script runs as its own process, as on SageMaker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAINING_CODE = ROOT / "training_code"
SAMPLE_DATA = ROOT / "data" / "boston_housing.csv"


def run_script(
    script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The script as a plain process with the container's argument conventions; only loopback, no network."""
    process_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, str(TRAINING_CODE / script), *args],
        capture_output=True,
        text=True,
        env=process_env,
        timeout=300,
        check=False,
    )


@pytest.fixture
def sample_csv_text() -> str:
    return SAMPLE_DATA.read_text()
