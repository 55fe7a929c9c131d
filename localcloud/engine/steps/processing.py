"""Processing steps: CreateProcessingJob's request, run by the job runner; property files read after."""

from __future__ import annotations

from typing import Any

from localcloud.engine.expressions import ExpressionError, ResolutionContext
from localcloud.engine.state import utcnow
from localcloud.engine.steps.base import StepExecutor, StepFailure, register


@register
class ProcessingStepExecutor(StepExecutor):
    step_type = "Processing"
    cacheable = True

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        engine, run, spec, step = self.engine, self.run, self.spec, self.step
        name = engine.job_name(run, spec, arguments)
        request = {"ProcessingJobName": name, **arguments, **engine.experiment(run, name)}
        arn = engine.records.processing_started(request)
        step.metadata = {"ProcessingJob": {"Arn": arn}}
        step.properties = {**request, "ProcessingJobArn": arn, "ProcessingJobStatus": "InProgress"}
        engine.publish_step(run, step, step.status, f"processing job {name}")
        result = engine.call_runner(engine.runner.run_processing, name, request)
        status = str(getattr(result, "status", "Failed"))
        reason = getattr(result, "failure_reason", None) or (None if status == "Completed" else "job failed")
        exit_message = getattr(result, "exit_message", None)
        engine.records.processing_finished(name, status, reason, exit_message)
        step.properties.update({"ProcessingJobStatus": status, "ProcessingEndTime": utcnow()})
        if reason:
            step.properties["FailureReason"] = reason
        if exit_message is not None:
            step.properties["ExitMessage"] = exit_message
        if status != "Completed":
            raise StepFailure(
                f"ClientError: {reason}"
                if not str(reason).startswith(("ClientError", "Algorithm"))
                else str(reason)
            )
        for property_file in spec.property_files:
            outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
            output = next((o for o in outputs if o.get("OutputName") == property_file["OutputName"]), None)
            if output is None:
                raise StepFailure(
                    f"ClientError: property file {property_file['PropertyFileName']} names "
                    f"unknown output {property_file['OutputName']}"
                )
            uri = output["S3Output"]["S3Uri"].rstrip("/") + "/" + property_file["FilePath"].lstrip("/")
            try:
                step.property_files[property_file["PropertyFileName"]] = engine.read_s3_json(uri)
            except (ExpressionError, ValueError) as error:
                raise StepFailure(f"ClientError: cannot read property file {uri}: {error}") from None
