"""Hostile input, generated: any JSON value in any field of any event the handlers accept gives a typed
event or a logged refusal: never an exception, never an AWS call on refusal, never a log line longer than a
few KB or carrying a raw control character from the event."""

from __future__ import annotations

import copy
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import botocore.client
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.events import CodeCommitPushEvent, ModelPackageStateEvent
from orchestrator.intake import Ignored, parse_event, parse_tracked_event
from orchestrator.observability import logger
from tests.events import event_names, load_event
from tests.unit.conftest import ENVIRONMENT, LambdaContext, reset_caches

MAX_LOG_LINE = 4096
HUGE = ["x" * 200_000, "\x1b[2J\x00\r\n" * 5_000, "é" * 70_000, "\u202e" * 1000]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(HUGE),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
SAMPLES = {name: load_event(name) for name in event_names()}


def field_paths(event: dict[str, Any]) -> list[tuple[str, ...]]:
    paths = [(key,) for key in event]
    detail = event.get("detail")
    if isinstance(detail, dict):
        paths += [("detail", key) for key in detail]
    return paths


@st.composite
def hostile_events(draw: st.DrawFn) -> dict[str, Any]:
    name = draw(st.sampled_from(sorted(SAMPLES)))
    event = copy.deepcopy(SAMPLES[name])
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(field_paths(event) or [("detail",)]))
        target = event
        for key in path[:-1]:
            target = target[key] if isinstance(target.get(key), dict) else target.setdefault(key, {})
        if draw(st.booleans()):
            target[path[-1]] = draw(json_values)
        else:
            target.pop(path[-1], None)
    return event


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def assert_clean(lines: str) -> None:
    for line in lines.splitlines():
        assert len(line.encode()) <= MAX_LOG_LINE, f"log line of {len(line)} characters"
        assert not any(ord(char) < 0x20 for char in line), f"raw control character in {line[:200]!r}"


def parse_any(event: Any) -> Any:
    if isinstance(event, dict) and event.get("source") == "aws.codecommit":
        return parse_event(event, CodeCommitPushEvent)
    if isinstance(event, dict) and event.get("detail-type") == "SageMaker Model Package State Change":
        return parse_event(event, ModelPackageStateEvent)
    return parse_tracked_event(event)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=hostile_events())
def test_any_value_in_any_field_parses_or_is_refused_cleanly(
    event: dict[str, Any], log_lines: io.StringIO
) -> None:
    log_lines.seek(0)
    log_lines.truncate()
    parsed = parse_any(event)
    if isinstance(parsed, Ignored):
        assert parsed.as_response()["status"] == "ignored"
        assert_clean(log_lines.getvalue())
    else:
        assert parsed.detail is not None


@settings(max_examples=100, deadline=None)
@given(raw=json_values)
def test_any_json_value_as_a_whole_event_is_refused(raw: Any) -> None:
    assert isinstance(parse_any(raw), Ignored)


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Handlers' environment, and a record of any AWS call (there must be none for a refused event)."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    calls: list[str] = []

    def refuse(self: Any, operation: str, params: dict[str, Any]) -> Any:
        calls.append(operation)
        raise AssertionError(f"AWS call {operation} for a refused event")

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)
    yield calls
    reset_caches()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=hostile_events())
def test_handlers_refuse_what_does_not_parse_without_touching_aws(
    event: dict[str, Any], no_aws: list[str]
) -> None:
    from functions.deploy.app import lambda_handler as deploy
    from functions.start_pipeline.app import lambda_handler as start_pipeline
    from functions.track.app import lambda_handler as track

    if not isinstance(parse_any(event), Ignored):
        return  # a well-formed event: the unit tests cover what the handlers do with it
    # every handler meets every kind of event: a rule may be misconfigured, or an event forged
    for handler in (start_pipeline, track, deploy):
        result = handler(event, LambdaContext())
        assert result["status"] == "ignored", result
    assert no_aws == []


def test_the_generator_reaches_every_sample_and_both_outcomes() -> None:
    # a property that only ever saw refusals (or only parses) would prove little
    outcomes = {type(parse_any(load_event(name))) is Ignored for name in SAMPLES}
    assert outcomes == {True, False}
    assert json.dumps(SAMPLES)  # the samples themselves are JSON
