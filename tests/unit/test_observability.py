"""Tracing is decided the way Powertools decides it, before the X-Ray SDK is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.observability import tracing_enabled

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "0"}, True),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_SAM_LOCAL": "true"}, False),
        ({"LAMBDA_TASK_ROOT": "/var/task", "AWS_CHALICE_CLI_MODE": "true"}, False),
    ],
)
def test_tracing_decision_matches_powertools(environ: dict[str, str], expected: bool) -> None:
    from aws_lambda_powertools import Tracer

    Tracer._reset_config()
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(environ)
        assert tracing_enabled() is expected
        assert (not Tracer._is_tracer_disabled()) is expected
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _xray_loaded_after_import(extra_env: dict[str, str]) -> bool:
    code = (
        "import importlib.util as u, sys, json; "
        f"s=u.spec_from_file_location('h', {str(ROOT / 'functions/track/app.py')!r}); "
        "m=u.module_from_spec(s); s.loader.exec_module(m); "
        "print(json.dumps('aws_xray_sdk.core' in sys.modules))"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}:{ROOT}",
        "AWS_DEFAULT_REGION": "us-east-1",
        **extra_env,
    }
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return bool(json.loads(out.stdout.strip().splitlines()[-1]))


def test_handlers_load_the_xray_sdk_only_where_they_trace() -> None:
    assert _xray_loaded_after_import({}) is False
    assert _xray_loaded_after_import({"LAMBDA_TASK_ROOT": str(ROOT)}) is True
