"""Fail steps: the execution fails with the step's resolved ErrorMessage."""

from __future__ import annotations

from typing import Any

from localcloud.engine.expressions import ResolutionContext, resolve, to_text
from localcloud.engine.steps.base import StepExecutor, StepFailure, register


@register
class FailStepExecutor(StepExecutor):
    step_type = "Fail"
    takes_arguments = False

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        message = to_text(resolve(self.spec.arguments.get("ErrorMessage", ""), ctx))
        self.step.metadata = {"Fail": {"ErrorMessage": message}}
        raise StepFailure(message)
