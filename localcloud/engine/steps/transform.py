"""Transform steps: CreateTransformJob, served by the local hosting, polled until it ends."""

from __future__ import annotations

import time
from typing import Any

from localcloud.engine.expressions import ResolutionContext
from localcloud.engine.steps.base import StepExecutor, StepFailure, register


@register
class TransformStepExecutor(StepExecutor):
    step_type = "Transform"
    cacheable = True

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        engine, run, spec, step = self.engine, self.run, self.spec, self.step
        sagemaker = engine.client("sagemaker")
        name = engine.job_name(run, spec, arguments)
        arn = sagemaker.create_transform_job(TransformJobName=name, **arguments)["TransformJobArn"]
        step.metadata = {"TransformJob": {"Arn": arn}}
        engine.publish_step(run, step, step.status, f"transform job {name}")
        while True:
            described = sagemaker.describe_transform_job(TransformJobName=name)
            if described["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
            if run.stop_requested.is_set():
                sagemaker.stop_transform_job(TransformJobName=name)
            time.sleep(engine.poll_interval)
        described.pop("ResponseMetadata", None)
        step.properties = described
        if described["TransformJobStatus"] != "Completed":
            raise StepFailure(
                described.get("FailureReason") or f"transform job {described['TransformJobStatus']}"
            )
