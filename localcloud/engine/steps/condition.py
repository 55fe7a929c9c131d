"""Condition steps: every condition of the step holds, or the else branch runs."""

from __future__ import annotations

from typing import Any

from localcloud.engine.definition import evaluate_condition
from localcloud.engine.expressions import ResolutionContext
from localcloud.engine.steps.base import StepExecutor, register


@register
class ConditionStepExecutor(StepExecutor):
    step_type = "Condition"
    takes_arguments = False

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        outcome = all(evaluate_condition(c, ctx) for c in self.spec.arguments.get("Conditions", []))
        self.run.outcomes[self.spec.name] = outcome
        self.step.properties = {"Outcome": str(outcome).lower()}
        self.step.metadata = {"Condition": {"Outcome": "True" if outcome else "False"}}
