"""DeployFunction: an approved package of our group is deployed; a rejected live package is rolled back."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestrator.deploy import handle_package_event
from orchestrator.events import ModelPackageStateEvent
from orchestrator.intake import Ignored, parse_event
from orchestrator.observability import instrumented
from orchestrator.settings import deploy_settings


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = deploy_settings()
    decision = parse_event(event, ModelPackageStateEvent)
    if isinstance(decision, Ignored):
        return decision.as_response()
    return handle_package_event(decision, settings, context)
