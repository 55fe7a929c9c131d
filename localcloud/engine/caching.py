"""Step caching as SageMaker Pipelines does it: a step whose cache key attributes match a recent successful
run of the same step of the same pipeline reuses that run instead of running again.

The key is made of the resolved arguments' attributes that AWS lists per step type (SageMaker developer
guide, "Default cache key attributes by pipeline step type", pipelines-default-keys). Like AWS, it never
looks at what an S3 URI holds: new data under the same URI is a cache hit, which is why the SDK uploads
code under content-addressed keys and why a retraining passes a new DataVersion.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

CACHEABLE_STEP_TYPES = frozenset({"Processing", "Training", "Tuning", "Transform"})

# pipelines-default-keys: the attributes that, if changed, initiate a rerun of the step
KEY_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
    "Tuning": ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "TrainingJobDefinitions"),
    "Transform": ("DataProcessing", "Environment", "ModelName", "TransformInput"),
}
# of a tuning step's TrainingJobDefinition, only these children incur a rerun
TUNING_DEFINITION_ATTRIBUTES = (
    "AlgorithmSpecification",
    "HyperParameterRanges",
    "InputDataConfig",
    "StaticHyperParameters",
    "TuningObjective",
)


def key_attributes(step_type: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The attributes of a step's resolved arguments that decide a cache hit."""
    chosen = {name: arguments[name] for name in KEY_ATTRIBUTES[step_type] if name in arguments}
    if step_type == "Tuning" and isinstance(chosen.get("TrainingJobDefinition"), dict):
        definition = chosen["TrainingJobDefinition"]
        chosen["TrainingJobDefinition"] = {
            name: definition[name] for name in TUNING_DEFINITION_ATTRIBUTES if name in definition
        }
    return chosen


def cache_key(step_type: str, arguments: dict[str, Any]) -> str:
    """SHA-256 over the step type and its key attributes."""
    document = {"type": step_type, "attributes": key_attributes(step_type, arguments)}
    return hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A successful step run others may reuse."""

    key: str
    execution_arn: str
    finished: dt.datetime
    properties: dict[str, Any]
    property_files: dict[str, Any]
    metadata: dict[str, Any]


class StepCache:
    """Successful cacheable step runs, per (pipeline, step), newest last."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[CacheEntry]] = {}
        self._lock = threading.Lock()

    def store(self, pipeline: str, step: str, entry: CacheEntry) -> None:
        with self._lock:
            self._entries.setdefault((pipeline, step), []).append(entry)

    def lookup(
        self,
        pipeline: str,
        step: str,
        key: str,
        expire_after: dt.timedelta | None,
        now: dt.datetime | None = None,
    ) -> CacheEntry | None:
        """The newest matching entry still within ``expire_after`` (no expiry when None)."""
        moment = now or dt.datetime.now(dt.UTC)
        with self._lock:
            for entry in reversed(self._entries.get((pipeline, step), [])):
                if entry.key != key:
                    continue
                if expire_after is not None and entry.finished + expire_after < moment:
                    return None
                return entry
        return None
