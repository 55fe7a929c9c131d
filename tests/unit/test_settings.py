"""Configuration errors name the environment variable the operator must fix."""

from __future__ import annotations

from typing import Any

import pytest

from functions.deploy.app import lambda_handler as deploy
from orchestrator.errors import SettingsError
from orchestrator.settings import DeploySettings, PushSettings, load_settings
from tests.unit.conftest import ENVIRONMENT, reset_caches


def test_missing_variable_is_named(monkeypatch: pytest.MonkeyPatch, context: Any) -> None:
    # GIVEN the deploy function lacks its role
    monkeypatch.delenv("SAGEMAKER_ROLE_ARN")
    reset_caches()
    # WHEN it is invoked THEN it fails loudly, naming the variable
    with pytest.raises(SettingsError, match="SAGEMAKER_ROLE_ARN"):
        deploy({}, context)


def test_invalid_values_are_named() -> None:
    # GIVEN a bad strategy and a batch target without its URIs
    env = {**ENVIRONMENT, "DEPLOYMENT_STRATEGY": "yolo"}
    with pytest.raises(SettingsError, match="DEPLOYMENT_STRATEGY"):
        load_settings(DeploySettings, env)
    env = {**ENVIRONMENT, "DEPLOY_TARGET": "batch", "BATCH_INPUT_URI": ""}
    with pytest.raises(SettingsError, match="BATCH_INPUT_URI"):
        load_settings(DeploySettings, env)


def test_lists_and_flags_are_parsed() -> None:
    settings = load_settings(PushSettings, {**ENVIRONMENT, "PIPELINE_CONFIG_PATHS": " a.yaml, ,conf/ "})
    assert settings.watched_paths == ("training_code", "a.yaml", "conf/")
    assert settings.stop_superseded_executions is False


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        # botocore sagemaker TrafficRoutingConfig.LinearStepSize: "Value must be 10-50% of the variant's
        # total instance count"; CanarySize: "less than or equal to 50%".
        ("DEPLOYMENT_LINEAR_STEP_PERCENT", "9", False),
        ("DEPLOYMENT_LINEAR_STEP_PERCENT", "10", True),
        ("DEPLOYMENT_LINEAR_STEP_PERCENT", "50", True),
        ("DEPLOYMENT_LINEAR_STEP_PERCENT", "51", False),
        ("DEPLOYMENT_CANARY_PERCENT", "50", True),
        ("DEPLOYMENT_CANARY_PERCENT", "51", False),
    ],
)
def test_traffic_steps_are_bounded_as_sagemaker_bounds_them(
    variable: str, value: str, accepted: bool
) -> None:
    env = {**ENVIRONMENT, "DEPLOYMENT_STRATEGY": "linear", variable: value}
    if accepted:
        load_settings(DeploySettings, env)
    else:
        with pytest.raises(SettingsError, match=variable):
            load_settings(DeploySettings, env)
