"""Training steps, and the one training job a tuning trial runs too (`run_training_job`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from localcloud.engine.expressions import ResolutionContext
from localcloud.engine.state import utcnow
from localcloud.engine.steps.base import StepExecutor, StepFailure, register
from localcloud.runtime.algorithms import builtin_training

if TYPE_CHECKING:
    from localcloud.engine.engine import PipelineEngine


def run_training_job(
    engine: PipelineEngine, request: dict[str, Any], tuning_arn: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """Run one training job, recording it; returns the runner's result and the describe-shaped job."""
    name = request["TrainingJobName"]
    specification = request.get("AlgorithmSpecification", {})
    builtin = builtin_training(request)
    if builtin is not None and not specification.get("MetricDefinitions"):
        # a built-in algorithm's job shows the algorithm's own metric definitions, as on SageMaker
        specification = {**specification, "MetricDefinitions": builtin.metric_definitions}
        request = {**request, "AlgorithmSpecification": specification}
    arn = engine.records.training_started(request, tuning_arn)
    started = utcnow()
    result = engine.call_runner(engine.runner.run_training, name, request)
    status = str(getattr(result, "status", "Failed"))
    reason = getattr(result, "failure_reason", None) or (None if status == "Completed" else "job failed")
    ended = utcnow()
    metrics = [
        {"MetricName": k, "Value": float(v), "Timestamp": ended}
        for k, v in (getattr(result, "final_metrics", None) or {}).items()
    ]
    artifacts = getattr(result, "model_artifacts", None) or (
        request.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
        + f"/{name}/output/model.tar.gz"
    )
    engine.records.training_finished(
        name, status, reason, metrics, artifacts if status == "Completed" else None
    )
    described = {
        **request,
        "TrainingJobArn": arn,
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "CreationTime": started,
        "TrainingStartTime": started,
        "TrainingEndTime": ended,
        "FinalMetricDataList": metrics,
        "ModelArtifacts": {"S3ModelArtifacts": artifacts},
    }
    if tuning_arn:
        described["TuningJobArn"] = tuning_arn
    if reason:
        described["FailureReason"] = reason
    return result, described


@register
class TrainingStepExecutor(StepExecutor):
    step_type = "Training"
    cacheable = True

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        engine, run, spec, step = self.engine, self.run, self.spec, self.step
        name = engine.job_name(run, spec, arguments)
        request = {"TrainingJobName": name, **arguments, **engine.experiment(run, name)}
        _, described = run_training_job(engine, request)
        step.metadata = {"TrainingJob": {"Arn": described["TrainingJobArn"]}}
        step.properties = described
        if described["TrainingJobStatus"] != "Completed":
            raise StepFailure(str(described.get("FailureReason", "training job failed")))
