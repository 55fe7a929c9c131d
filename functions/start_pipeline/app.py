"""StartPipelineFunction: a push to the configured branch starts a pipeline run for that commit; the stack's
retraining schedule, or the data-drift alarm, starts one for the branch head."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestrator.events import AlarmStateEvent, CodeCommitPushEvent
from orchestrator.intake import Ignored, parse_event
from orchestrator.observability import instrumented
from orchestrator.push import handle_push
from orchestrator.retrain import RetrainingRequest, handle_drift_alarm, handle_retraining
from orchestrator.settings import push_settings


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = push_settings()
    if isinstance(event, dict) and "retraining" in event:
        request = parse_event(event, RetrainingRequest)
        if isinstance(request, Ignored):
            return request.as_response()
        return handle_retraining(request, settings, context)
    if isinstance(event, dict) and event.get("detail-type") == "CloudWatch Alarm State Change":
        alarm = parse_event(event, AlarmStateEvent)
        if isinstance(alarm, Ignored):
            return alarm.as_response()
        return handle_drift_alarm(alarm, settings, context)
    push = parse_event(event, CodeCommitPushEvent)
    if isinstance(push, Ignored):
        return push.as_response()
    return handle_push(push, settings, context)
