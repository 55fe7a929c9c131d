"""Step caching as SageMaker Pipelines does it: a step whose resolved arguments and input contents match a
recent successful run of the same step of the same pipeline reuses that run instead of running again.

The key is a hash of the resolved arguments with output destinations removed, plus the ETags of every
object under every S3 URI the arguments read (data, code, model), so new code or new data means a miss.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

CACHEABLE_STEP_TYPES = frozenset({"Processing", "Training", "Tuning", "Transform"})


def _drop_outputs(step_type: str, arguments: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(arguments)
    if step_type == "Processing":
        for output in stripped.get("ProcessingOutputConfig", {}).get("Outputs", []):
            output.get("S3Output", {}).pop("S3Uri", None)
    elif step_type == "Training":
        stripped.get("OutputDataConfig", {}).pop("S3OutputPath", None)
    elif step_type == "Tuning":
        definitions = [
            stripped.get("TrainingJobDefinition") or {},
            *stripped.get("TrainingJobDefinitions", []),
        ]
        for definition in definitions:
            definition.get("OutputDataConfig", {}).pop("S3OutputPath", None)
    elif step_type == "Transform":
        stripped.get("TransformOutput", {}).pop("S3OutputPath", None)
    return stripped


def _s3_uris(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.startswith("s3://"):
            yield value
    elif isinstance(value, list):
        for item in value:
            yield from _s3_uris(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _s3_uris(item)


def cache_key(step_type: str, arguments: dict[str, Any], etags: Callable[[str], list[list[str]]]) -> str:
    """SHA-256 over the arguments without output destinations and the ETags under each input URI.

    ``etags(uri)`` lists ``[relative key, ETag]`` for every object under the URI's prefix.
    """
    stripped = _drop_outputs(step_type, arguments)
    inputs = {uri: etags(uri) for uri in sorted(set(_s3_uris(stripped)))}
    document = {"type": step_type, "arguments": stripped, "inputs": inputs}
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
