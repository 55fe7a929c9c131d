"""Model steps (the SDK's CreateModelStep and ModelStep with model.create): CreateModel."""

from __future__ import annotations

from typing import Any

from localcloud.engine.expressions import ResolutionContext
from localcloud.engine.steps.base import StepExecutor, register


@register
class ModelStepExecutor(StepExecutor):
    step_type = "Model"

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        engine, run, spec, step = self.engine, self.run, self.spec, self.step
        sagemaker = engine.client("sagemaker")
        name = arguments.get("ModelName") or engine.job_name(run, spec, arguments)
        arn = sagemaker.create_model(**{**arguments, "ModelName": name})["ModelArn"]
        step.metadata = {"Model": {"Arn": arn}}
        described = sagemaker.describe_model(ModelName=name)
        described.pop("ResponseMetadata", None)
        step.properties = described
