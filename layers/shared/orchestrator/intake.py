"""Turning a raw Lambda event into a typed model, or into a logged, side-effect-free refusal."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from orchestrator.adapters import error_code, error_message, is_permanent
from orchestrator.observability import logger, metrics

if TYPE_CHECKING:
    from orchestrator.events import AlarmStateEvent

MAX_EVENT_BYTES = 256 * 1024  # EventBridge's own limit for an entry

ModelT = TypeVar("ModelT", bound=BaseModel)
P = ParamSpec("P")


@dataclass(frozen=True)
class Ignored:
    """An event we refuse: logged once, answered with a plain dict, never retried."""

    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_response(self) -> dict[str, Any]:
        return {"status": "ignored", "reason": self.reason, **self.details}


MAX_LOGGED_VALUE = 256  # characters of one refused value that reach the log and the response
MAX_LOGGED_ITEMS = 10


def bounded(value: Any) -> Any:
    """A value from an event, cut to a size a log line can carry: a hostile event can't flood the logs."""
    if isinstance(value, str):
        return (
            value
            if len(value) <= MAX_LOGGED_VALUE
            else f"{value[:MAX_LOGGED_VALUE]}...(+{len(value) - MAX_LOGGED_VALUE} chars)"
        )
    if isinstance(value, list | tuple):
        items = [bounded(item) for item in value[:MAX_LOGGED_ITEMS]]
        return items + (
            [f"...(+{len(value) - MAX_LOGGED_ITEMS} more)"] if len(value) > MAX_LOGGED_ITEMS else []
        )
    if isinstance(value, dict | set) or not isinstance(value, int | float | bool | None):
        return bounded(json.dumps(value, default=str, sort_keys=True))
    return value


def ignore(reason: str, *, error: bool = False, **details: Any) -> Ignored:
    """Log why an event is refused (keyword fields, each bounded in size) and count it."""
    details = {key: bounded(value) for key, value in details.items()}
    log = logger.error if error else logger.warning
    log("event ignored", reason=reason, **details)
    metrics.add_metric(name="EventsIgnored", unit="Count", value=1)
    return Ignored(reason=reason, details=details)


def parse_event(raw: Any, model: type[ModelT]) -> ModelT | Ignored:
    """Validate size and shape; a refusal names the offending fields."""
    if not isinstance(raw, dict):
        return ignore("malformed", error=True, errors=[f"event is {type(raw).__name__}, not an object"])
    size = len(json.dumps(raw, default=str).encode())
    if size > MAX_EVENT_BYTES:
        return ignore("oversized", error=True, size_bytes=size, limit_bytes=MAX_EVENT_BYTES)
    try:
        return parse(event=raw, model=model)
    except ValidationError as exc:
        errors = [
            f"{'.'.join(str(part) for part in error['loc']) or 'event'}: {error['msg']}"
            for error in exc.errors()
        ]
        return ignore("malformed", error=True, model=model.__name__, errors=errors)
    except (TypeError, ValueError) as exc:
        return ignore("malformed", error=True, model=model.__name__, errors=[str(exc)])


def parse_tracked_event(raw: Any) -> Any:
    """The track handler receives three kinds of event: pick the model by detail-type."""
    from orchestrator.events import EndpointStateEvent, PipelineExecutionStatusEvent, TransformJobStateEvent

    models: dict[str, type[BaseModel]] = {
        "SageMaker Model Building Pipeline Execution Status Change": PipelineExecutionStatusEvent,
        "SageMaker Endpoint State Change": EndpointStateEvent,
        "SageMaker Transform Job State Change": TransformJobStateEvent,
    }
    detail_type = raw.get("detail-type") if isinstance(raw, dict) else None
    model = models.get(str(detail_type))
    if model is None:
        shown = bounded(detail_type) if isinstance(detail_type, str) else type(detail_type).__name__
        return ignore("malformed", error=True, errors=[f"detail-type: unsupported value {shown!r}"])
    return parse_event(raw, model)


def alarm_refusal(event: AlarmStateEvent, alarm_names: Collection[str], account: str) -> Ignored | None:
    """None for a change to ALARM of one of ``alarm_names`` in ``account``; otherwise the refusal (logged)
    saying which it is not: another account's, another alarm (a near name too), or a change to OK or
    INSUFFICIENT_DATA."""
    detail = event.detail
    if event.account != account:
        return ignore("foreign-account", account=event.account)
    if detail.alarm_name not in alarm_names:
        return ignore("foreign-alarm", alarm=detail.alarm_name)
    if detail.state.value != "ALARM":
        return ignore("not-in-alarm", alarm=detail.alarm_name, state=detail.state.value)
    return None


def refusing_permanent_errors(entry: Callable[P, dict[str, Any]]) -> Callable[P, dict[str, Any]]:
    """An event that names something AWS says does not exist (or is invalid) is refused: logged, counted,
    answered, never retried. Any other AWS error (throttling, 5xx, busy) propagates, so Lambda retries the
    event and, when retries run out, sends it to the dead-letter queue to be replayed."""

    @functools.wraps(entry)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> dict[str, Any]:
        try:
            return entry(*args, **kwargs)
        except ClientError as exc:
            if not is_permanent(exc):
                raise
            metrics.add_metric(name="PermanentErrors", unit="Count", value=1)
            return ignore(
                "aws-refused",
                error=True,
                operation=exc.operation_name,
                code=error_code(exc),
                aws_message=error_message(exc)[:500],
            ).as_response()

    return guarded
