"""The corpus's local cloud: one for the module, and a way to run a pipeline program as a user would.

A program runs with the SageMaker SDK's own interpreter (`.venv-synth`, where the SDK is installed) and only
what `localcloud env` exports: nothing in it knows about the local cloud.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from tests.clouds import module_cloud

ROOT = Path(__file__).resolve().parents[2]
SDK_PYTHON = ROOT / ".venv-synth" / "bin" / "python"
PIPELINES = Path(__file__).resolve().parent / "pipelines"


@pytest.fixture(scope="module")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with module_cloud(tmp_path_factory.mktemp("corpus-cloud")) as cloud:
        yield cloud


@pytest.fixture
def run_program(local_cloud: LocalCloud, tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Run `pipelines/<name>.py` with the SDK's interpreter in a clean shell; returns its JSON line."""
    assert SDK_PYTHON.exists(), "make test bootstraps .venv-synth, where the SageMaker SDK is installed"

    def run(name: str, *args: str, timeout: float = 900) -> dict[str, Any]:
        shell = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp_path)}
        result = subprocess.run(
            [str(SDK_PYTHON), str(PIPELINES / f"{name}.py"), *args],
            cwd=tmp_path,
            env=shell | local_cloud.aws.client_env() | {"SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-6000:] + result.stdout[-2000:]
        return dict(json.loads(result.stdout.strip().splitlines()[-1]))

    return run
