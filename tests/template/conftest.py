"""Fixtures for the template tests: the parsed template, its resolver, the SAM CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.template.cfn import ROOT, Resolver, load_template

SAM_BINARY = ROOT / ".venv-sam" / "bin" / "sam"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (sam build, end-to-end runs)")


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def resolver(template: dict[str, Any]) -> Resolver:
    return Resolver(template)


@pytest.fixture(scope="session")
def sam() -> Path:
    assert SAM_BINARY.exists(), f"SAM CLI not installed at {SAM_BINARY}: `make test` bootstraps .venv-sam"
    return SAM_BINARY


@pytest.fixture(scope="session")
def sam_env() -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}
