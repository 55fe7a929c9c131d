"""DeployFunction: an approved package of our group is deployed; a rejected live package is rolled back; a
decision kept while the endpoint was updating is carried out once it is back InService; the monitoring
schedule compares the endpoints' captured requests with the live package's data-quality baseline; an alarm
on production's Candidate variant rolls an A/B test's candidate back."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestrator.deploy import handle_candidate_alarm, handle_endpoint_event, handle_package_event
from orchestrator.events import AlarmStateEvent, EndpointStateEvent, ModelPackageStateEvent
from orchestrator.intake import Ignored, parse_event
from orchestrator.monitor import MonitoringRequest, handle_monitoring
from orchestrator.observability import instrumented
from orchestrator.settings import deploy_settings


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = deploy_settings()
    if isinstance(event, dict) and "monitoring" in event:
        request = parse_event(event, MonitoringRequest)
        if isinstance(request, Ignored):
            return request.as_response()
        return handle_monitoring(request, settings, context)
    if isinstance(event, dict) and event.get("detail-type") == "SageMaker Endpoint State Change":
        endpoint_event = parse_event(event, EndpointStateEvent)
        if isinstance(endpoint_event, Ignored):
            return endpoint_event.as_response()
        return handle_endpoint_event(endpoint_event, settings, context)
    if isinstance(event, dict) and event.get("detail-type") == "CloudWatch Alarm State Change":
        alarm = parse_event(event, AlarmStateEvent)
        if isinstance(alarm, Ignored):
            return alarm.as_response()
        return handle_candidate_alarm(alarm, settings, context)
    decision = parse_event(event, ModelPackageStateEvent)
    if isinstance(decision, Ignored):
        return decision.as_response()
    return handle_package_event(decision, settings, context)
