"""On push: start a pipeline run for a commit of the configured branch, exactly once per commit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import data_quality
from orchestrator.adapters.codecommit import CodeCommitAdapter, RepositoryFile
from orchestrator.adapters.ledger import Ledger
from orchestrator.adapters.notifier import Notifier
from orchestrator.adapters.s3 import S3Adapter
from orchestrator.adapters.sagemaker import SageMakerAdapter
from orchestrator.clients import own_account_id
from orchestrator.domain import CodeLocations, CommitRef
from orchestrator.errors import TrainingCodeMissingError
from orchestrator.events import CodeCommitPushEvent
from orchestrator.idempotency import run_once
from orchestrator.intake import ignore, refusing_permanent_errors
from orchestrator.lineage import LineageRecorder
from orchestrator.naming import execution_display_name, execution_token, is_display_name_of_branch
from orchestrator.observability import logger, metrics
from orchestrator.packaging import sourcedir_tarball
from orchestrator.pipeline_definition import PipelineDefinition, shipped_definition, upsert_pipeline
from orchestrator.settings import PushSettings

SINGLE_FILE_SCRIPTS = ("preprocess.py", "evaluate.py")


@dataclass(frozen=True)
class PushServices:
    codecommit: CodeCommitAdapter
    s3: S3Adapter
    sagemaker: SageMakerAdapter
    ledger: Ledger
    notifier: Notifier
    project: str

    def lineage(self) -> LineageRecorder:
        return LineageRecorder(self.ledger, self.sagemaker, self.project)

    @classmethod
    def from_settings(cls, settings: PushSettings) -> PushServices:
        return cls(
            CodeCommitAdapter(),
            S3Adapter(),
            SageMakerAdapter(),
            Ledger(settings.ledger_table_name),
            Notifier(settings.notification_topic_arn),
            settings.project_name,
        )


def foreign_reason(event: CodeCommitPushEvent, settings: PushSettings, account: str) -> dict[str, Any] | None:
    """Why this event is not ours to act on, or None."""
    detail = event.detail
    if event.account != account:
        return {"reason": "foreign-account", "account": event.account}
    if detail.repository_name != settings.repository_name:
        return {"reason": "foreign-repository", "repository": detail.repository_name}
    if detail.reference_type != "branch" or detail.reference_name != settings.branch_name:
        return {
            "reason": "other-branch",
            "reference": detail.reference_name,
            "reference_type": detail.reference_type,
        }
    if detail.event not in ("referenceCreated", "referenceUpdated"):
        return {"reason": "not-a-push", "event": detail.event}
    if detail.reference_full_name and detail.reference_full_name != f"refs/heads/{settings.branch_name}":
        return {"reason": "inconsistent-reference", "reference_full_name": detail.reference_full_name}
    return None


def touches(paths: list[str], watched: tuple[str, ...]) -> list[str]:
    """The changed paths that lie at or under one of the watched paths."""
    prefixes = [path.strip("/") for path in watched if path.strip("/")]
    return [p for p in paths if any(p == prefix or p.startswith(prefix + "/") for prefix in prefixes)]


def package_training_code(
    files: list[RepositoryFile], bucket: str, s3: S3Adapter, folder: str
) -> CodeLocations:
    """Upload the scripts and the whole folder as content-addressed objects."""
    by_path = {item.path: item for item in files}
    missing = [name for name in SINGLE_FILE_SCRIPTS if name not in by_path]
    if missing:
        raise TrainingCodeMissingError(f"{', '.join(missing)} missing under {folder}/")
    return CodeLocations(
        preprocess_uri=s3.put_content_addressed(bucket, "preprocess.py", by_path["preprocess.py"].content),
        evaluate_uri=s3.put_content_addressed(bucket, "evaluate.py", by_path["evaluate.py"].content),
        training_uri=s3.put_content_addressed(bucket, "sourcedir.tar.gz", sourcedir_tarball(files)),
        baseline_uri=s3.put_content_addressed(
            bucket, "data_quality.py", Path(data_quality.__file__).read_bytes()
        ),
    )


def pipeline_parameters(
    settings: PushSettings,
    commit: CommitRef,
    code: CodeLocations,
    definition: PipelineDefinition,
    data_version: str = "push",
) -> dict[str, str]:
    """Every parameter of docs/architecture.md that the shipped definition declares. `data_version` is
    "push" for a push (cached preprocessing is reused) and names the retraining otherwise."""
    values = {
        "InputDataUri": settings.input_data_uri,
        "TargetColumn": settings.target_column,
        "CommitId": commit.commit_id,
        "RepositoryName": commit.repository,
        "ArtifactBucket": settings.artifact_bucket,
        "PreprocessCodeUri": code.preprocess_uri,
        "EvaluateCodeUri": code.evaluate_uri,
        "BaselineCodeUri": code.baseline_uri,
        "TrainingCodeUri": code.training_uri,
        "ExecutionRoleArn": settings.sagemaker_role_arn,
        "ProcessingImageUri": settings.processing_image_uri,
        "TrainingImageUri": settings.training_image_uri,
        "InferenceImageUri": settings.inference_image_uri,
        "ModelPackageGroupName": settings.model_package_group_name,
        "PreprocessInstanceType": settings.preprocess_instance_type,
        "PreprocessInstanceCount": str(settings.preprocess_instance_count),
        "TrainingInstanceType": settings.training_instance_type,
        "EvaluateInstanceType": settings.evaluate_instance_type,
        "MaxTuningJobs": str(settings.max_tuning_jobs),
        "MaxParallelTuningJobs": str(settings.max_parallel_tuning_jobs),
        "RmseThreshold": str(settings.rmse_threshold),
        "ModelApprovalStatus": settings.model_approval_status,
        "DataVersion": data_version,
    }
    declared = set(definition.parameter_names)
    unknown = sorted(declared - values.keys())
    if unknown:
        logger.warning("definition declares parameters the orchestrator does not set", parameters=unknown)
    return {name: value for name, value in values.items() if name in declared}


def stop_superseded(
    sagemaker: SageMakerAdapter, pipeline: str, commit: CommitRef, token_seed: str
) -> list[str]:
    """Stop Executing runs of the same branch and repository for an older commit; return their ARNs."""
    stopped = []
    for summary in sagemaker.executing_executions(pipeline):
        arn = summary["PipelineExecutionArn"]
        if not is_display_name_of_branch(str(summary.get("PipelineExecutionDisplayName", "")), commit.branch):
            continue
        parameters = sagemaker.execution_parameters(arn)
        if parameters.get("RepositoryName") != commit.repository or parameters.get("CommitId") in (
            None,
            commit.commit_id,
        ):
            continue
        sagemaker.stop_execution(arn, token=execution_token(arn, "stop", token_seed))
        logger.info(
            "superseded execution stopped",
            execution_arn=arn,
            superseded_by=commit.commit_id,
            superseded_commit=parameters.get("CommitId"),
        )
        stopped.append(arn)
    return stopped


def start_run(commit: CommitRef, settings: PushSettings, services: PushServices) -> dict[str, Any]:
    """The idempotent part: diff, package, upsert, supersede, start, record."""
    lineage = services.lineage()
    changed = services.codecommit.changed_paths(commit.repository, commit.commit_id, commit.old_commit_id)
    relevant = touches(changed, settings.watched_paths)
    if not relevant:
        logger.info(
            "push skipped: no training code or pipeline configuration changed",
            commit_id=commit.commit_id,
            watched_paths=list(settings.watched_paths),
            changed_paths=changed[:20],
        )
        lineage.push_skipped(commit, "no-relevant-changes", changed)
        metrics.add_metric(name="PushesSkipped", unit="Count", value=1)
        return {"status": "skipped", "reason": "no-relevant-changes", "commit_id": commit.commit_id}

    head = None
    if settings.stop_superseded_executions:
        head = services.codecommit.branch_head(commit.repository, commit.branch)
        if head not in (None, commit.commit_id) and lineage.run_started(commit.repository, str(head)):
            # a later push moved the branch on and its run has started: this one is outdated already
            logger.info(
                "push superseded before its run started",
                commit_id=commit.commit_id,
                branch_head=head,
            )
            lineage.push_skipped(commit, f"superseded-by-{head}", changed)
            metrics.add_metric(name="PushesSuperseded", unit="Count", value=1)
            return {"status": "skipped", "reason": "superseded", "commit_id": commit.commit_id, "head": head}

    try:
        files = services.codecommit.read_folder(
            commit.repository, commit.commit_id, settings.training_code_path
        )
        code = package_training_code(
            files, settings.artifact_bucket, services.s3, settings.training_code_path
        )
    except TrainingCodeMissingError as exc:
        logger.error("push rejected: training code incomplete", commit_id=commit.commit_id, error=str(exc))
        lineage.push_skipped(commit, f"training-code-incomplete: {exc}", changed)
        services.notifier.notify(
            f"Push {commit.commit_id[:12]} not run",
            str(exc),
            commit_id=commit.commit_id,
            repository=commit.repository,
        )
        return {"status": "rejected", "reason": "training-code-incomplete", "detail": str(exc)}

    definition = shipped_definition()
    pipeline_change = upsert_pipeline(
        services.sagemaker, settings.pipeline_name, settings.sagemaker_role_arn, definition
    )
    # Only the branch's head stops other runs: an older push delivered late must not stop a newer run.
    stopped = (
        stop_superseded(services.sagemaker, settings.pipeline_name, commit, commit.commit_id)
        if settings.stop_superseded_executions and head in (None, commit.commit_id)
        else []
    )
    parameters = pipeline_parameters(settings, commit, code, definition)
    display_name = execution_display_name(commit.branch, commit.commit_id)
    execution_arn = services.sagemaker.start_execution(
        settings.pipeline_name,
        display_name=display_name,
        description=f"{commit.repository}@{commit.branch} commit {commit.commit_id}",
        parameters=parameters,
        token=execution_token(commit.repository, commit.branch, commit.commit_id),
    )
    lineage.execution_started(commit, execution_arn, display_name, parameters)
    metrics.add_metric(name="PipelineExecutionsStarted", unit="Count", value=1)
    logger.info(
        "pipeline execution started",
        execution_arn=execution_arn,
        commit_id=commit.commit_id,
        pipeline_change=pipeline_change,
        stopped=stopped,
    )
    return {
        "status": "started",
        "execution_arn": execution_arn,
        "commit_id": commit.commit_id,
        "pipeline": pipeline_change,
        "code": {
            "preprocess": code.preprocess_uri,
            "evaluate": code.evaluate_uri,
            "training": code.training_uri,
        },
        "superseded": stopped,
    }


@refusing_permanent_errors
def handle_push(
    event: CodeCommitPushEvent,
    settings: PushSettings,
    context: Any = None,
    services: PushServices | None = None,
) -> dict[str, Any]:
    """Entry point of the start-pipeline handler: refuse foreign pushes, run each commit once."""
    refusal = foreign_reason(event, settings, own_account_id())
    if refusal:
        return ignore(**refusal).as_response()
    detail = event.detail
    commit = CommitRef(
        detail.repository_name, detail.reference_name, str(detail.commit_id), detail.old_commit_id
    )
    active = services or PushServices.from_settings(settings)
    return run_once(
        settings.ledger_table_name,
        ("repository", "commit_id"),
        lambda key: start_run(commit, settings, active),
        key={"repository": commit.repository, "commit_id": commit.commit_id, "branch": commit.branch},
        context=context,
    )
