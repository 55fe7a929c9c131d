"""TrackFunction: pipeline run, endpoint and transform job state changes go to the ledger; failures notify."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from orchestrator.intake import Ignored, parse_tracked_event
from orchestrator.observability import instrumented
from orchestrator.settings import track_settings
from orchestrator.track import handle_tracked_event


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = track_settings()
    tracked = parse_tracked_event(event)
    if isinstance(tracked, Ignored):
        return tracked.as_response()
    return handle_tracked_event(tracked, settings, context)
