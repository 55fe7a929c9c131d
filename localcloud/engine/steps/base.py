"""What every step executor is: one class per step type, registered by `@register`.

The engine (`localcloud.engine.engine`) schedules steps, resolves their arguments, looks up and stores the
step cache and publishes status; an executor does what its step type does on SageMaker and fills the step's
properties and metadata (the shapes DescribeX and ListPipelineExecutionSteps report), or raises
`StepFailure` with the FailureReason. A new step type is one new module here, as the SDK's own local runner
keeps one executor class per step type behind a factory (sagemaker/local/pipeline.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from localcloud.engine.definition import StepSpec
    from localcloud.engine.engine import PipelineEngine
    from localcloud.engine.expressions import ResolutionContext
    from localcloud.engine.state import ExecutionRun, StepRun


class StepFailure(Exception):
    """A step that ended Failed; ``reason`` becomes its FailureReason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class StepExecutor:
    """Runs one step of one execution. ``takes_arguments``: the engine resolves the step's Arguments and
    passes them (Condition and Fail evaluate their own parts); ``cacheable``: CacheConfig applies."""

    step_type: ClassVar[str]
    cacheable: ClassVar[bool] = False
    takes_arguments: ClassVar[bool] = True

    def __init__(self, engine: PipelineEngine, run: ExecutionRun, spec: StepSpec, step: StepRun) -> None:
        self.engine = engine
        self.run = run
        self.spec = spec
        self.step = step

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        raise NotImplementedError


EXECUTORS: dict[str, type[StepExecutor]] = {}


def register(executor: type[StepExecutor]) -> type[StepExecutor]:
    """Make ``executor`` the one that runs steps of its ``step_type``."""
    if executor.step_type in EXECUTORS:
        raise ValueError(f"two executors for step type {executor.step_type!r}")
    EXECUTORS[executor.step_type] = executor
    return executor


def digest(*parts: Any, length: int = 10) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:length]


@dataclass(frozen=True)
class FailedJob:
    """The result of a job that never ran."""

    failure_reason: str
    status: str = "Failed"
