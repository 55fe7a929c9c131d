"""Run-time half of the pipeline: load the synthesized definition shipped in the layer, upsert it if changed.

The definition is compared by a canonical hash (sorted keys, no whitespace) against the definition the
deployed pipeline actually holds, so reformatting on either side never causes a spurious update and a
manual edit in the console is overwritten by what the layer ships.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from orchestrator.adapters.sagemaker import SageMakerAdapter
from orchestrator.observability import logger

DEFINITION_FILE = Path(__file__).with_name("pipeline_definition.json")
HASH_TAG = "definition-sha256"

Upsert = Literal["created", "updated", "unchanged"]


def canonical_sha256(definition: str | dict[str, Any]) -> str:
    document = json.loads(definition) if isinstance(definition, str) else definition
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class PipelineDefinition:
    body: str
    sha256: str
    parameter_names: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> PipelineDefinition:
        document = json.loads(text)
        if not isinstance(document, dict) or "Steps" not in document:
            raise ValueError("pipeline definition must be a JSON object with Steps")
        names = tuple(str(parameter["Name"]) for parameter in document.get("Parameters", []))
        return cls(body=text, sha256=canonical_sha256(document), parameter_names=names)


@cache
def shipped_definition() -> PipelineDefinition:
    """The definition `make synth` wrote into the layer (read once per cold start)."""
    return PipelineDefinition.from_text(DEFINITION_FILE.read_text(encoding="utf-8"))


def upsert_pipeline(
    sagemaker: SageMakerAdapter, name: str, role_arn: str, definition: PipelineDefinition
) -> Upsert:
    """Create the pipeline, or update it only when its definition (or role) differs from ours."""
    tags = {HASH_TAG: definition.sha256}
    deployed = sagemaker.describe_pipeline(name)
    if deployed is None:
        if sagemaker.create_pipeline(name, definition.body, role_arn, token=definition.sha256, tags=tags):
            logger.info("pipeline created", pipeline=name, definition_sha256=definition.sha256)
            return "created"
        deployed = sagemaker.describe_pipeline(name)  # created concurrently by another invocation
        if deployed is None:
            raise RuntimeError(f"pipeline {name} reported as existing but cannot be described")
    deployed_sha = canonical_sha256(deployed["PipelineDefinition"])
    if deployed_sha == definition.sha256 and deployed.get("RoleArn") == role_arn:
        logger.info("pipeline unchanged", pipeline=name, definition_sha256=definition.sha256)
        return "unchanged"
    arn = sagemaker.update_pipeline(name, definition.body, role_arn)
    sagemaker.tag(arn, tags)
    logger.info(
        "pipeline updated", pipeline=name, previous_sha256=deployed_sha, definition_sha256=definition.sha256
    )
    return "updated"
