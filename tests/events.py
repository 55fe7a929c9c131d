"""Sample EventBridge events from `events/`, shared by the tests and `sam local invoke -e`."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


@cache
def _read(name: str) -> dict[str, Any]:
    path = EVENTS_DIR / f"{name}.json"
    if not path.is_file():
        available = ", ".join(sorted(p.stem for p in EVENTS_DIR.glob("*.json")))
        raise FileNotFoundError(f"no sample event {name!r} in {EVENTS_DIR} (available: {available})")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_event(name: str) -> dict[str, Any]:
    """Return a fresh copy of events/<name>.json, so a test may mutate it freely."""
    return copy.deepcopy(_read(name))


def event_names() -> list[str]:
    """Names of every sample event (file stems), sorted."""
    return sorted(p.stem for p in EVENTS_DIR.glob("*.json"))
