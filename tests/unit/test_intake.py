"""Intake: a raw event becomes a typed model or a refusal that is logged (with its level and a bounded
size), counted (EventsIgnored) and answered with the same fields, never raised."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.events import (
    CodeCommitPushEvent,
    EndpointStateEvent,
    PipelineExecutionStatusEvent,
    TransformJobStateEvent,
)
from orchestrator.intake import MAX_EVENT_BYTES, Ignored, bounded, ignore, parse_event, parse_tracked_event
from orchestrator.observability import metrics
from tests.events import load_event
from tests.unit.conftest import logged


@pytest.fixture(autouse=True)
def fresh_metrics() -> Any:
    metrics.clear_metrics()
    yield
    metrics.clear_metrics()


def counted() -> dict[str, Any]:
    return {name: (entry["Unit"], entry["Value"]) for name, entry in metrics.metric_set.items()}


def test_a_refusal_is_logged_at_its_level_counted_once_and_answered(caplog: pytest.LogCaptureFixture) -> None:
    refused = ignore("foreign-account", account="210987654321")
    assert refused == Ignored("foreign-account", {"account": "210987654321"})
    assert refused.as_response() == {
        "status": "ignored",
        "reason": "foreign-account",
        "account": "210987654321",
    }
    [line] = logged(caplog, "event ignored", "WARNING")
    assert (line["reason"], line["account"]) == ("foreign-account", "210987654321")
    assert counted() == {"EventsIgnored": ("Count", [1.0])}
    ignore("malformed", error=True, errors=["x"])
    assert len(logged(caplog, "event ignored", "ERROR")) == 1


def test_not_an_object_is_malformed(caplog: pytest.LogCaptureFixture) -> None:
    refused = parse_event(["not", "an", "object"], CodeCommitPushEvent)
    assert refused == Ignored("malformed", {"errors": ["event is list, not an object"]})
    assert logged(caplog, "event ignored", "ERROR")[0]["reason"] == "malformed"


def test_the_size_limit_is_eventbridges_256_kb(caplog: pytest.LogCaptureFixture) -> None:
    event = load_event("codecommit_push")
    base = len(json.dumps(event).encode())
    event["padding"] = "p" * (MAX_EVENT_BYTES - base - len(', "padding": ""'))
    assert len(json.dumps(event).encode()) == MAX_EVENT_BYTES
    assert not isinstance(parse_event(event, CodeCommitPushEvent), Ignored)  # exactly at the limit: accepted
    event["padding"] += "p"
    refused = parse_event(event, CodeCommitPushEvent)
    assert refused == Ignored("oversized", {"size_bytes": MAX_EVENT_BYTES + 1, "limit_bytes": 262144})
    assert logged(caplog, "event ignored", "ERROR")[0]["reason"] == "oversized"


def test_a_validation_failure_names_the_model_and_each_field() -> None:
    event = load_event("codecommit_push")
    event["detail"]["commitId"] = "not-a-commit"
    del event["account"]
    refused = parse_event(event, CodeCommitPushEvent)
    assert isinstance(refused, Ignored) and refused.reason == "malformed"
    assert refused.details["model"] == "CodeCommitPushEvent"
    fields = [error.split(":")[0] for error in refused.details["errors"]]
    assert fields == ["account", "detail.commitId"]
    assert "String should match pattern" in refused.details["errors"][1]


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("pipeline_execution_failed", PipelineExecutionStatusEvent),
        ("endpoint_failed", EndpointStateEvent),
        ("transform_job_failed", TransformJobStateEvent),
    ],
)
def test_tracked_events_are_told_apart_by_their_exact_detail_type(name: str, model: type) -> None:
    event = load_event(name)
    assert isinstance(parse_tracked_event(event), model)
    event["detail-type"] = event["detail-type"].lower()  # the near miss
    assert parse_tracked_event(event) == Ignored(
        "malformed", {"errors": [f"detail-type: unsupported value {event['detail-type']!r}"]}
    )


def test_a_detail_type_that_is_not_text_is_named_by_its_type() -> None:
    assert parse_tracked_event({"detail-type": ["x"]}) == Ignored(
        "malformed", {"errors": ["detail-type: unsupported value 'list'"]}
    )


def test_bounded_cuts_long_values_to_what_a_log_line_can_carry() -> None:
    assert bounded("a" * 256) == "a" * 256
    assert bounded("a" * 257) == "a" * 256 + "...(+1 chars)"
    assert bounded(list(range(10))) == list(range(10))
    assert bounded(list(range(12))) == [*range(10), "...(+2 more)"]
    assert bounded(["b" * 300]) == ["b" * 256 + "...(+44 chars)"]
    assert bounded({"b": 1, "a": {2}}) == '{"a": "{2}", "b": 1}'
    for plain in (None, 3, 2.5, True):
        assert bounded(plain) == plain


def test_malformed_events_are_logged_as_errors(caplog: pytest.LogCaptureFixture) -> None:
    event = load_event("codecommit_push")
    event["detail"]["commitId"] = "not-a-commit"
    parse_event(event, CodeCommitPushEvent)
    parse_tracked_event({"detail-type": "Something Else"})
    assert [line["reason"] for line in logged(caplog, "event ignored", "ERROR")] == ["malformed", "malformed"]


def test_a_model_that_fails_other_than_by_validation_is_still_a_logged_refusal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from pydantic import BaseModel, field_validator

    class Fussy(BaseModel):
        value: int

        @field_validator("value")
        @classmethod
        def _explode(cls, value: int) -> int:
            raise TypeError("cannot compare a value with a shape")  # pydantic lets TypeError through

    refused = parse_event({"value": 1}, Fussy)
    assert refused == Ignored(
        "malformed", {"model": "Fussy", "errors": ["cannot compare a value with a shape"]}
    )
    assert logged(caplog, "event ignored", "ERROR")[0]["reason"] == "malformed"


def test_bounded_writes_any_other_value_as_json_text() -> None:
    from decimal import Decimal

    assert bounded(Decimal("1.5")) == '"1.5"'
