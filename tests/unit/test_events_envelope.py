"""Our EventBridge envelope reads events exactly as Powertools' EventBridgeModel does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel as PowertoolsEventBridgeModel
from pydantic import ValidationError

from orchestrator.events import EventBridgeModel
from tests.events import load_event

SAMPLES = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "events").glob("*.json"))


def test_fields_match_powertools() -> None:
    ours = {name: (f.alias, f.is_required()) for name, f in EventBridgeModel.model_fields.items()}
    theirs = {name: (f.alias, f.is_required()) for name, f in PowertoolsEventBridgeModel.model_fields.items()}
    assert ours == theirs


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_reads_the_same(name: str) -> None:
    event = load_event(name)
    ours = EventBridgeModel.model_validate(event).model_dump()
    theirs = PowertoolsEventBridgeModel.model_validate(event).model_dump()
    assert ours == theirs


@pytest.mark.parametrize(
    "broken",
    [
        {"time": "yesterday"},
        {"resources": "arn:aws:s3:::bucket"},
        {"account": None},
    ],
)
def test_both_reject_the_same_broken_envelopes(broken: dict[str, Any]) -> None:
    event = load_event(SAMPLES[0]) | broken
    with pytest.raises(ValidationError):
        EventBridgeModel.model_validate(event)
    with pytest.raises(ValidationError):
        PowertoolsEventBridgeModel.model_validate(event)
