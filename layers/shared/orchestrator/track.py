"""Tracking: pipeline runs, endpoints and transform jobs as they change state -> ledger, notifications."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.adapters.autoscaling import AutoscalingAdapter
from orchestrator.adapters.ledger import Ledger
from orchestrator.adapters.notifier import Notifier
from orchestrator.adapters.sagemaker import SageMakerAdapter
from orchestrator.clients import own_account_id
from orchestrator.domain import CommitRef
from orchestrator.events import (
    EndpointStateEvent,
    PipelineExecutionStatusEvent,
    TrackedEvent,
    TransformJobStateEvent,
)
from orchestrator.idempotency import run_once
from orchestrator.intake import ignore, refusing_permanent_errors
from orchestrator.lineage import LineageRecorder
from orchestrator.naming import slug
from orchestrator.observability import logger, metrics
from orchestrator.settings import TrackSettings

ENDPOINT_PROBLEMS = {"FAILED", "ROLLING_BACK", "UPDATE_ROLLBACK_FAILED"}


@dataclass(frozen=True)
class TrackServices:
    sagemaker: SageMakerAdapter
    ledger: Ledger
    notifier: Notifier
    autoscaling: AutoscalingAdapter
    project: str

    def lineage(self) -> LineageRecorder:
        return LineageRecorder(self.ledger, self.sagemaker, self.project)

    @classmethod
    def from_settings(cls, settings: TrackSettings) -> TrackServices:
        return cls(
            SageMakerAdapter(),
            Ledger(settings.ledger_table_name),
            Notifier(settings.notification_topic_arn),
            AutoscalingAdapter(),
            settings.project_name,
        )


def failed_steps(steps: list[dict[str, Any]], sagemaker: SageMakerAdapter) -> list[dict[str, str]]:
    """Each failed step with its reason; a processing step adds its job's ExitMessage, which is where a
    processing container explains its failure (/opt/ml/output/message; DescribeProcessingJob returns its
    first KB: docs.aws.amazon.com/sagemaker/latest/dg/byoc-metadata.html). The step's own FailureReason
    does not carry it."""
    failed = []
    for step in steps:
        if step.get("StepStatus") != "Failed":
            continue
        entry = {
            "step": str(step.get("StepName")),
            "reason": str(step.get("FailureReason") or "no reason given"),
        }
        job_arn = ((step.get("Metadata") or {}).get("ProcessingJob") or {}).get("Arn")
        if job_arn:
            job = sagemaker.describe_processing_job(str(job_arn).rsplit("/", 1)[-1]) or {}
            if job.get("ExitMessage"):
                entry["exit_message"] = str(job["ExitMessage"])
        failed.append(entry)
    return failed


def _explained(step: dict[str, str]) -> str:
    message = step.get("exit_message")
    return f"{message} ({step['reason']})" if message else step["reason"]


def registered_packages(steps: list[dict[str, Any]]) -> list[str]:
    return [
        str(step["Metadata"]["RegisterModel"]["Arn"])
        for step in steps
        if step.get("StepStatus") == "Succeeded"
        and step.get("Metadata", {}).get("RegisterModel", {}).get("Arn")
    ]


def track_execution(
    event: PipelineExecutionStatusEvent, settings: TrackSettings, services: TrackServices
) -> dict[str, Any]:
    detail = event.detail
    arn, status = detail.pipeline_execution_arn, detail.current_status
    lineage = services.lineage()
    commit = lineage.execution_commit(arn)
    if commit is None:  # started by someone else (console, CLI): the parameters still say which commit
        parameters = services.sagemaker.execution_parameters_if_known(arn)
        if parameters.get("CommitId") and parameters.get("RepositoryName"):
            commit = CommitRef(parameters["RepositoryName"], "", parameters["CommitId"])
    result: dict[str, Any] = {"status": "recorded", "execution_arn": arn, "execution_status": status}
    failure = None
    if status == "Failed":
        steps = failed_steps(services.sagemaker.execution_steps(arn), services.sagemaker)
        execution = services.sagemaker.describe_execution(arn) or {}
        failure = {"failed_steps": steps, "execution_failure_reason": execution.get("FailureReason")}
        first = (
            steps[0]
            if steps
            else {"step": "unknown step", "reason": execution.get("FailureReason") or "unknown"}
        )
        services.notifier.notify(
            f"Pipeline run failed at {first['step']}",
            f"Pipeline execution {arn} failed at step {first['step']}: {_explained(first)}",
            execution_arn=arn,
            commit_id=commit.commit_id if commit else None,
            failed_steps=steps,
        )
        logger.error("pipeline execution failed", execution_arn=arn, failed_steps=steps)
        metrics.add_metric(name="PipelineExecutionsFailed", unit="Count", value=1)
        result["failed_steps"] = steps
    lineage.execution_status(arn, status, commit, failure)
    if status == "Succeeded":
        packages = registered_packages(services.sagemaker.execution_steps(arn))
        for package_arn in packages:
            lineage.package_registered(arn, package_arn, commit)
        result["registered_packages"] = packages
        metrics.add_metric(name="PipelineExecutionsSucceeded", unit="Count", value=1)
    logger.info("pipeline execution status recorded", execution_arn=arn, execution_status=status)
    return result


def ensure_autoscaling(endpoint: str, settings: TrackSettings, autoscaling: AutoscalingAdapter) -> str | None:
    """Target tracking on invocations per instance, once the endpoint is in service."""
    if settings.autoscaling_max_capacity <= settings.endpoint_instance_count:
        return None
    resource = autoscaling.scale_variant_on_invocations(
        endpoint,
        "AllTraffic",
        settings.endpoint_instance_count,
        settings.autoscaling_max_capacity,
        settings.autoscaling_target_invocations,
    )
    logger.info(
        "endpoint autoscaling in place", resource_id=resource, max_capacity=settings.autoscaling_max_capacity
    )
    return resource


def track_endpoint(
    event: EndpointStateEvent, settings: TrackSettings, services: TrackServices
) -> dict[str, Any]:
    detail = event.detail
    name, status = detail.endpoint_name, detail.endpoint_status
    lineage = services.lineage()
    requested = lineage.endpoint_requested_config(name)
    failure_reason = detail.failure_reason
    if status in ENDPOINT_PROBLEMS and not failure_reason:
        # AWS's documented endpoint event carries no FailureReason; DescribeEndpoint does.
        failure_reason = (services.sagemaker.describe_endpoint(name) or {}).get("FailureReason")
    lineage.endpoint_state(name, status, detail.endpoint_config_name, failure_reason)
    result: dict[str, Any] = {"status": "recorded", "endpoint_name": name, "endpoint_status": status}
    rolled_back = (
        status == "IN_SERVICE"
        and requested is not None
        and detail.endpoint_config_name not in (None, requested)
    )
    if status in ENDPOINT_PROBLEMS or rolled_back:
        what = "rolled back" if rolled_back else status.lower().replace("_", " ")
        message = (
            f"Endpoint {name} {what}: serving {detail.endpoint_config_name}, requested {requested}"
            if rolled_back
            else f"Endpoint {name} is {what}: {failure_reason or 'no reason given'}"
        )
        services.notifier.notify(
            f"Endpoint {name} {what}",
            message,
            endpoint_name=name,
            endpoint_status=status,
            endpoint_config=detail.endpoint_config_name,
            requested_config=requested,
            failure_reason=failure_reason,
        )
        logger.error(
            "endpoint deployment problem", endpoint_name=name, endpoint_status=status, rolled_back=rolled_back
        )
        metrics.add_metric(name="EndpointDeploymentProblems", unit="Count", value=1)
        result["notified"] = what
    if status == "IN_SERVICE" and name.lower() == str(settings.endpoint_name).lower():
        result["autoscaling"] = ensure_autoscaling(name, settings, services.autoscaling)
    return result


def track_transform(
    event: TransformJobStateEvent, settings: TrackSettings, services: TrackServices
) -> dict[str, Any]:
    detail = event.detail
    lineage = services.lineage()
    lineage.transform_state(detail.transform_job_name, detail.transform_job_status, detail.failure_reason)
    if detail.transform_job_status == "Failed":
        services.notifier.notify(
            f"Transform job {detail.transform_job_name} failed",
            f"Batch transform {detail.transform_job_name} failed: {detail.failure_reason or 'unknown'}",
            transform_job=detail.transform_job_name,
            failure_reason=detail.failure_reason,
        )
        logger.error(
            "transform job failed", transform_job=detail.transform_job_name, reason=detail.failure_reason
        )
        metrics.add_metric(name="TransformJobsFailed", unit="Count", value=1)
    return {
        "status": "recorded",
        "transform_job": detail.transform_job_name,
        "transform_job_status": detail.transform_job_status,
    }


def foreign_reason(event: TrackedEvent, settings: TrackSettings, account: str) -> dict[str, Any] | None:
    if event.account != account:
        return {"reason": "foreign-account", "account": event.account}
    if isinstance(event, PipelineExecutionStatusEvent):
        if event.detail.pipeline_name.lower() != settings.pipeline_name.lower():
            return {"reason": "foreign-pipeline", "pipeline": event.detail.pipeline_name}
    elif isinstance(event, EndpointStateEvent):
        ours = {name.lower() for name in (settings.endpoint_name, settings.production_endpoint_name) if name}
        if event.detail.endpoint_name.lower() not in ours:
            return {"reason": "foreign-endpoint", "endpoint": event.detail.endpoint_name}
    elif not event.detail.transform_job_name.lower().startswith(
        slug(settings.model_package_group_name).lower() + "-"
    ):
        return {"reason": "foreign-transform-job", "transform_job": event.detail.transform_job_name}
    return None


@refusing_permanent_errors
def handle_tracked_event(
    event: TrackedEvent, settings: TrackSettings, context: Any = None, services: TrackServices | None = None
) -> dict[str, Any]:
    """Entry point of the track handler: each state change is recorded and notified once, however many
    events carry it ("SageMaker AI may send multiple events to EventBridge for each state change": SageMaker
    developer guide, automating-sagemaker-with-eventbridge), so the key is the change, not the event id."""
    refusal = foreign_reason(event, settings, own_account_id())
    if refusal:
        return ignore(**refusal).as_response()
    active = services or TrackServices.from_settings(settings)

    def track(_: dict[str, Any]) -> dict[str, Any]:
        if isinstance(event, PipelineExecutionStatusEvent):
            return track_execution(event, settings, active)
        if isinstance(event, EndpointStateEvent):
            return track_endpoint(event, settings, active)
        return track_transform(event, settings, active)

    return run_once(
        settings.ledger_table_name,
        ("resource", "state", "changed_at"),
        track,
        key=state_change(event),
        context=context,
    )


def state_change(event: TrackedEvent) -> dict[str, str]:
    """What changed, as SageMaker's several events for one change all describe it: the resource, its new
    state, and when it changed (a retried execution or a redeployed config reaches the same state again
    later; a transform job reaches each terminal state once)."""
    if isinstance(event, PipelineExecutionStatusEvent):
        detail = event.detail
        return {
            "resource": detail.pipeline_execution_arn,
            "state": detail.current_status,
            "changed_at": str(detail.execution_end_time or ""),
        }
    if isinstance(event, EndpointStateEvent):
        endpoint = event.detail
        return {
            "resource": endpoint.endpoint_name,
            "state": f"{endpoint.endpoint_status}:{endpoint.endpoint_config_name or ''}",
            "changed_at": str(endpoint.last_modified_time or ""),
        }
    return {
        "resource": event.detail.transform_job_name,
        "state": event.detail.transform_job_status,
        "changed_at": "",
    }
