"""Retraining without a push: a run of the branch head's code through the push path, started by the stack's
schedule (EventBridge Scheduler), with its trigger recorded, and never while another run is executing.

The schedule invokes the start-pipeline function with the Input the template gives it, in which Scheduler
replaces `<aws.scheduler.scheduled-time>` and `<aws.scheduler.schedule-arn>` by their values (EventBridge
Scheduler user guide, managing-schedule-context-attributes). One scheduled time starts at most one run,
however often Scheduler retries it.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.adapters import is_not_found
from orchestrator.clients import own_account_id
from orchestrator.domain import CommitRef
from orchestrator.errors import TrainingCodeMissingError
from orchestrator.events import AlarmStateEvent
from orchestrator.idempotency import run_once
from orchestrator.intake import alarm_refusal, ignore, refusing_permanent_errors
from orchestrator.monitor import DRIFT_POINTER
from orchestrator.naming import execution_display_name
from orchestrator.observability import logger, metrics
from orchestrator.pipeline_definition import shipped_definition, upsert_pipeline
from orchestrator.push import PushServices, package_training_code, pipeline_parameters
from orchestrator.settings import PushSettings

LEASE = "RETRAINING"  # pk PIPELINE#<name>: one retraining start at a time
LEASE_SECONDS = 120


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class RetrainingDetail(_Strict):
    trigger: Literal["schedule", "drift"]
    scheduled_time: datetime = Field(alias="scheduledTime")
    schedule_arn: str | None = Field(default=None, alias="scheduleArn", max_length=2048)
    # drift: the features the monitoring report found drifted, and where the report is
    features: tuple[str, ...] = Field(default=(), max_length=1000)
    report: str | None = Field(default=None, max_length=2048)


class ScheduledRetraining(RetrainingDetail):
    """What the schedule's Input may ask: a scheduled retraining, nothing a drift alarm reports."""

    trigger: Literal["schedule"]
    features: tuple[()] = ()
    report: None = None


class RetrainingRequest(_Strict):
    """{"retraining": {"trigger": "schedule", "scheduledTime": ..., "scheduleArn": ...}}"""

    retraining: ScheduledRetraining


def _executing(services: PushServices, pipeline: str) -> list[str]:
    try:
        return [s["PipelineExecutionArn"] for s in services.sagemaker.executing_executions(pipeline)]
    except ClientError as exc:
        if is_not_found(exc):  # no pipeline yet: nothing runs
            return []
        raise


def retrain(
    detail: RetrainingDetail, head: str, settings: PushSettings, services: PushServices
) -> dict[str, Any]:
    """Start a run of `head`, unless a run is executing (checked under a lease, so that two triggers at
    once start one run)."""
    owner = f"{detail.trigger}:{detail.scheduled_time.isoformat()}"
    pk = f"PIPELINE#{settings.pipeline_name}"
    if not services.ledger.acquire_lease(pk, owner, LEASE_SECONDS):
        logger.info("retraining skipped: another retraining is starting", trigger=detail.trigger)
        metrics.add_metric(name="RetrainingsSkipped", unit="Count", value=1)
        return {"status": "skipped", "reason": "retraining-starting", "trigger": detail.trigger}
    try:
        running = _executing(services, settings.pipeline_name)
        if running:
            logger.info("retraining skipped: a run is executing", trigger=detail.trigger, executing=running)
            metrics.add_metric(name="RetrainingsSkipped", unit="Count", value=1)
            return {"status": "skipped", "reason": "run-in-progress", "executing": running}
        commit = CommitRef(settings.repository_name, settings.branch_name, head)
        try:
            files = services.codecommit.read_folder(commit.repository, head, settings.training_code_path)
            code = package_training_code(
                files, settings.artifact_bucket, services.s3, settings.training_code_path
            )
        except TrainingCodeMissingError as exc:
            logger.error("retraining refused: training code incomplete", commit_id=head, error=str(exc))
            return {"status": "rejected", "reason": "training-code-incomplete", "detail": str(exc)}
        definition = shipped_definition()
        upsert_pipeline(services.sagemaker, settings.pipeline_name, settings.sagemaker_role_arn, definition)
        # a new DataVersion makes PreprocessData a cache miss: the run reads the data as it is now
        parameters = pipeline_parameters(settings, commit, code, definition, data_version(detail))
        display_name = execution_display_name(commit.branch, head)
        execution_arn = services.sagemaker.start_execution(
            settings.pipeline_name,
            display_name=display_name,
            description=f"retraining ({detail.trigger} {detail.scheduled_time.isoformat()}) of "
            f"{commit.repository}@{commit.branch} commit {head}",
            parameters=parameters,
            token=retraining_token(settings, head, detail),
        )
    finally:
        services.ledger.release_lease(pk, owner)
    lineage = services.lineage()
    lineage.execution_started(commit, execution_arn, display_name, parameters)
    services.ledger.put(
        f"COMMIT#{commit.repository}#{head}",
        f"RETRAINING#{detail.scheduled_time.isoformat()}",
        kind="retraining",
        trigger=detail.trigger,
        scheduled_time=detail.scheduled_time.isoformat(),
        schedule_arn=detail.schedule_arn,
        execution_arn=execution_arn,
        **({"features": list(detail.features), "report": detail.report} if detail.trigger == "drift" else {}),
    )
    metrics.add_metric(name="RetrainingsStarted", unit="Count", value=1)
    logger.info(
        "retraining started",
        trigger=detail.trigger,
        scheduled_time=detail.scheduled_time.isoformat(),
        commit_id=head,
        execution_arn=execution_arn,
        features=list(detail.features),
    )
    return {"status": "started", "trigger": detail.trigger, "commit_id": head, "execution_arn": execution_arn}


def data_version(detail: RetrainingDetail) -> str:
    """The DataVersion pipeline parameter of a retraining: its trigger and scheduled time."""
    return f"{detail.trigger}:{detail.scheduled_time.isoformat()}"


def retraining_token(settings: PushSettings, head: str, detail: RetrainingDetail) -> str:
    """ClientRequestToken: one run per trigger and scheduled time, unlike a push's (one per commit)."""
    when = detail.scheduled_time.isoformat()
    seed = f"{settings.repository_name}:{settings.branch_name}:{head}:{detail.trigger}:{when}"
    return hashlib.sha256(seed.encode()).hexdigest()


@refusing_permanent_errors
def handle_retraining(
    request: RetrainingRequest,
    settings: PushSettings,
    context: Any = None,
    services: PushServices | None = None,
) -> dict[str, Any]:
    """Entry point of the start-pipeline handler for a retraining request."""
    return start_retraining(request.retraining, settings, context, services)


def start_retraining(
    detail: RetrainingDetail,
    settings: PushSettings,
    context: Any = None,
    services: PushServices | None = None,
) -> dict[str, Any]:
    """One retraining run per trigger and time, of the branch head."""
    active = services or PushServices.from_settings(settings)
    head = active.codecommit.branch_head(settings.repository_name, settings.branch_name)
    if head is None:
        return ignore("no-branch", branch=settings.branch_name, trigger=detail.trigger).as_response()
    return run_once(
        settings.ledger_table_name,
        ("trigger", "scheduled_time"),
        lambda _: retrain(detail, head, settings, active),
        key={"trigger": detail.trigger, "scheduled_time": detail.scheduled_time.isoformat()},
        context=context,
    )


def drift_detail(event: AlarmStateEvent, services: PushServices) -> RetrainingDetail:
    """The retraining a drift alarm asks for: at the alarm's state-change time, with the features of the
    latest monitoring report that found drift (orchestrator.monitor writes it to the ledger)."""
    report = services.ledger.get(*DRIFT_POINTER) or {}
    features = tuple(str(f) for f in report.get("drifted_features", []))[:1000]
    return RetrainingDetail.model_validate(
        {
            "trigger": "drift",
            "scheduledTime": event.detail.state.timestamp,
            "features": features,
            "report": report.get("report"),
        }
    )


@refusing_permanent_errors
def handle_drift_alarm(
    event: AlarmStateEvent,
    settings: PushSettings,
    context: Any = None,
    services: PushServices | None = None,
) -> dict[str, Any]:
    """Entry point of the start-pipeline handler for the drift alarm's state change: a change to ALARM of
    this stack's alarm, in this account, starts one retraining run (the same path as a schedule's)."""
    names = (settings.drift_alarm_name,) if settings.drift_alarm_name else ()
    refusal = alarm_refusal(event, names, own_account_id())
    if refusal is not None:
        return refusal.as_response()
    active = services or PushServices.from_settings(settings)
    return start_retraining(drift_detail(event, active), settings, context, active)
