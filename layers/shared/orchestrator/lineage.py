"""Lineage: every link recorded as it happens, in the ledger and in SageMaker lineage entities.

Ledger partitions (one Query answers each question):
- COMMIT#<repo>#<commit>: sk COMMIT (the push), EXECUTION#<arn>, PACKAGE#<arn>,
  DEPLOYMENT#<endpoint>#<config>, TRANSFORM#<job> -- "where did commit C go".
- ENDPOINT#<name>: sk STATE (requested and in-service config), CONFIG#<config> (the whole chain: package,
  execution, commit, training job, hyper-parameters, metrics, approver), EVENT#<time> -- "what produced what
  serves on endpoint X".
- EXECUTION#<arn> and PACKAGE#<arn>: the state of one run / one package, for the handlers' own look-ups.

SageMaker lineage (visible in Studio): Context(commit) -ContributedTo-> Action(pipeline execution)
-Produced-> Artifact(model package) -ContributedTo-> Action(deployment) -Produced-> Artifact(endpoint config
or transform job). Studio lineage is a view: a failure there is logged and counted, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from orchestrator.adapters import error_code
from orchestrator.adapters.ledger import (
    Ledger,
    commit_pk,
    endpoint_pk,
    execution_pk,
    package_pk,
    transform_pk,
    utc_now,
)
from orchestrator.adapters.sagemaker import SageMakerAdapter
from orchestrator.domain import CommitRef, PackageLineage
from orchestrator.naming import bounded, lineage_name
from orchestrator.observability import logger, metrics

T = TypeVar("T")


class LineageRecorder:
    def __init__(self, ledger: Ledger, sagemaker: SageMakerAdapter, project: str) -> None:
        self.ledger = ledger
        self.sagemaker = sagemaker
        self.project = project

    # --- SageMaker lineage entities ----------------------------------------------------------------
    def _studio(self, what: str, write: Callable[[], T]) -> T | None:
        try:
            return write()
        except ClientError as exc:
            logger.warning(
                "sagemaker lineage not recorded", entity=what, error=error_code(exc), detail=str(exc)
            )
            metrics.add_metric(name="LineageWriteFailures", unit="Count", value=1)
            return None

    def _commit_context(self, commit: CommitRef) -> str | None:
        return self._studio(
            "commit context",
            lambda: self.sagemaker.ensure_context(
                lineage_name(self.project, "commit", commit.commit_id),
                "GitCommit",
                f"codecommit://{commit.repository}/{commit.commit_id}",
                {"repository": commit.repository, "branch": commit.branch, "commit": commit.commit_id},
            ),
        )

    def _execution_action(self, execution_arn: str) -> str | None:
        return self._studio(
            "execution action",
            lambda: self.sagemaker.ensure_action(
                lineage_name(self.project, "pipeline-execution", execution_arn.rsplit("/", 1)[-1]),
                "PipelineExecution",
                execution_arn,
                {"execution_arn": execution_arn},
            ),
        )

    def _package_artifact(self, package: PackageLineage) -> str | None:
        return self._studio(
            "package artifact",
            lambda: self.sagemaker.ensure_artifact(
                bounded(package.group, f"v{package.version}"),  # an artifact ARN has an id, not this name
                "ModelPackage",
                package.package_arn,
                {"group": package.group, "version": str(package.version)},
            ),
        )

    def _associate(self, source: str | None, destination: str | None, kind: str) -> None:
        if source and destination:
            self._studio("association", lambda: self.sagemaker.associate(source, destination, kind))

    # --- links -------------------------------------------------------------------------------------
    def _commit_record(self, commit: CommitRef, outcome: str, **fields: Any) -> None:
        """The commit's own entry: what its push led to (a run, or a skip and why)."""
        self.ledger.put(
            commit_pk(commit.repository, commit.commit_id),
            "COMMIT",
            kind="commit",
            repository=commit.repository,
            branch=commit.branch,
            commit_id=commit.commit_id,
            outcome=outcome,
            **fields,
        )

    def run_started(self, repository: str, commit_id: str) -> bool:
        """Whether a push of this commit has started its run."""
        record = self.ledger.get(commit_pk(repository, commit_id), "COMMIT")
        return record is not None and record.get("outcome") == "started"

    def push_skipped(self, commit: CommitRef, reason: str, changed_paths: list[str]) -> None:
        self._commit_record(commit, "skipped", reason=reason, changed_paths=changed_paths[:50])

    def execution_started(
        self, commit: CommitRef, execution_arn: str, display_name: str, parameters: dict[str, str]
    ) -> None:
        now = utc_now()
        self._commit_record(commit, "started", execution_arn=execution_arn)
        self.ledger.put(
            commit_pk(commit.repository, commit.commit_id),
            f"EXECUTION#{execution_arn}",
            kind="execution",
            execution_arn=execution_arn,
            display_name=display_name,
            status="Executing",
            started_at=now,
        )
        self.ledger.put(
            execution_pk(execution_arn),
            "EXECUTION",
            kind="execution",
            execution_arn=execution_arn,
            repository=commit.repository,
            branch=commit.branch,
            commit_id=commit.commit_id,
            status="Executing",
            started_at=now,
            parameters=parameters,
        )
        self._associate(self._commit_context(commit), self._execution_action(execution_arn), "ContributedTo")

    def execution_status(
        self, execution_arn: str, status: str, commit: CommitRef | None, failure: dict[str, Any] | None = None
    ) -> None:
        self.ledger.update(
            execution_pk(execution_arn), "EXECUTION", kind="execution", status=status, failure=failure
        )
        if commit:
            self.ledger.update(
                commit_pk(commit.repository, commit.commit_id),
                f"EXECUTION#{execution_arn}",
                kind="execution",
                execution_arn=execution_arn,
                status=status,
                failure=failure,
            )

    def execution_commit(self, execution_arn: str) -> CommitRef | None:
        item = self.ledger.get(execution_pk(execution_arn), "EXECUTION")
        if item and item.get("commit_id") and item.get("repository"):
            return CommitRef(item["repository"], item.get("branch", ""), item["commit_id"])
        return None

    def package_registered(self, execution_arn: str, package_arn: str, commit: CommitRef | None) -> None:
        self.ledger.put(
            execution_pk(execution_arn), f"PACKAGE#{package_arn}", kind="package", package_arn=package_arn
        )
        if commit:
            self.ledger.put(
                commit_pk(commit.repository, commit.commit_id),
                f"PACKAGE#{package_arn}",
                kind="package",
                package_arn=package_arn,
                execution_arn=execution_arn,
            )

    def package_decided(self, package: PackageLineage) -> None:
        """Record the package with its approval (who, when) and link it to its run and commit."""
        self.ledger.put(package_pk(package.package_arn), "PACKAGE", kind="package", **package.as_dict())
        if package.execution_arn:
            self.ledger.put(
                execution_pk(package.execution_arn),
                f"PACKAGE#{package.package_arn}",
                kind="package",
                package_arn=package.package_arn,
            )
        if package.repository and package.commit_id:
            self.ledger.put(
                commit_pk(package.repository, package.commit_id),
                f"PACKAGE#{package.package_arn}",
                kind="package",
                package_arn=package.package_arn,
                version=package.version,
                execution_arn=package.execution_arn,
                approval_status=package.approval_status,
                approver=package.approver,
                decided_at=package.decided_at,
            )
        artifact = self._package_artifact(package)
        if package.execution_arn:
            self._associate(self._execution_action(package.execution_arn), artifact, "Produced")

    def deployed_to_endpoint(
        self, package: PackageLineage, endpoint: str, config_name: str, config_arn: str | None, reason: str
    ) -> None:
        now = utc_now()
        chain = {
            "endpoint_name": endpoint,
            "endpoint_config_name": config_name,
            "deployed_at": now,
            "reason": reason,
        }
        self.ledger.put(
            endpoint_pk(endpoint), f"CONFIG#{config_name}", kind="deployment", **chain, **package.as_dict()
        )
        self.ledger.update(
            endpoint_pk(endpoint),
            "STATE",
            kind="endpoint",
            requested_config=config_name,
            requested_package_arn=package.package_arn,
            requested_at=now,
        )
        self.ledger.put(
            endpoint_pk(endpoint), f"EVENT#{now}", kind="event", action=reason, config=config_name
        )
        self._record_on_commit(package, f"DEPLOYMENT#{endpoint}#{config_name}", "deployment", chain)
        action = self._studio(
            "deployment action",
            lambda: self.sagemaker.ensure_action(
                lineage_name(self.project, "deploy", config_name),
                "ModelDeployment",
                f"endpoint/{endpoint}/{config_name}",
                {"endpoint": endpoint, "reason": reason},
            ),
        )
        config_artifact = self._studio(
            "endpoint config artifact",
            lambda: self.sagemaker.ensure_artifact(
                config_name,
                "EndpointConfig",
                config_arn or f"endpoint-config/{config_name}",
                {"endpoint": endpoint},
            ),
        )
        self._associate(self._package_artifact(package), action, "ContributedTo")
        self._associate(action, config_artifact, "Produced")

    def _record_on_commit(
        self, package: PackageLineage, sort_key: str, kind: str, fields: dict[str, Any]
    ) -> None:
        """Where did commit C go: one entry under the commit for each deployment or transform of its model."""
        if package.repository and package.commit_id:
            self.ledger.put(
                commit_pk(package.repository, package.commit_id),
                sort_key,
                kind=kind,
                package_arn=package.package_arn,
                **fields,
            )

    def transform_started(
        self, package: PackageLineage, job_name: str, input_uri: str, output_uri: str
    ) -> None:
        record = {
            "transform_job": job_name,
            "input_uri": input_uri,
            "output_uri": output_uri,
            "status": "InProgress",
        }
        self.ledger.put(transform_pk(job_name), "TRANSFORM", kind="transform", **record, **package.as_dict())
        self._record_on_commit(package, f"TRANSFORM#{job_name}", "transform", record)
        artifact = self._studio(
            "transform artifact",
            lambda: self.sagemaker.ensure_artifact(
                job_name, "TransformJob", output_uri, {"input": input_uri}
            ),
        )
        self._associate(self._package_artifact(package), artifact, "ContributedTo")

    def endpoint_state(
        self, endpoint: str, status: str, config_name: str | None, failure: str | None
    ) -> None:
        now = utc_now()
        state: dict[str, Any] = {"status": status, "status_at": now, "failure_reason": failure}
        if status == "IN_SERVICE" and config_name:
            state["in_service_config"] = config_name
        self.ledger.update(endpoint_pk(endpoint), "STATE", kind="endpoint", **state)
        self.ledger.put(
            endpoint_pk(endpoint),
            f"EVENT#{now}",
            kind="event",
            status=status,
            config=config_name,
            failure_reason=failure,
        )

    def endpoint_requested_config(self, endpoint: str) -> str | None:
        state = self.ledger.get(endpoint_pk(endpoint), "STATE")
        return None if state is None else state.get("requested_config")

    def transform_state(self, job_name: str, status: str, failure: str | None) -> dict[str, Any] | None:
        self.ledger.update(
            transform_pk(job_name), "TRANSFORM", kind="transform", status=status, failure_reason=failure
        )
        record = self.ledger.get(transform_pk(job_name), "TRANSFORM")
        if record and record.get("repository") and record.get("commit_id"):
            self.ledger.update(
                commit_pk(record["repository"], record["commit_id"]),
                f"TRANSFORM#{job_name}",
                status=status,
                failure_reason=failure,
            )
        return record


_CHAIN_FIELDS = (
    "package_arn",
    "version",
    "approval_status",
    "approver",
    "approval_description",
    "decided_at",
    "repository",
    "commit_id",
    "execution_arn",
    "training_job",
    "hyperparameters",
    "training_metrics",
    "evaluation",
    "model_data_url",
    "endpoint_config_name",
    "deployed_at",
    "reason",
)


def endpoint_lineage(ledger: Ledger, endpoint_name: str) -> dict[str, Any]:
    """What produced what serves on `endpoint_name`: config → package → execution → commit, with the
    training job, chosen hyper-parameters, metrics and approver. One ledger Query."""
    items = ledger.partition(endpoint_pk(endpoint_name))
    state = next((item for item in items if item["sk"] == "STATE"), {})
    configs = {item["sk"].removeprefix("CONFIG#"): item for item in items if item["sk"].startswith("CONFIG#")}
    serving_config = state.get("in_service_config") or state.get("requested_config")
    serving = configs.get(serving_config or "")
    return {
        "endpoint_name": endpoint_name,
        "status": state.get("status"),
        "serving_config": serving_config,
        "requested_config": state.get("requested_config"),
        "serving": None if serving is None else {key: serving.get(key) for key in _CHAIN_FIELDS},
        "history": [
            {
                key: item.get(key)
                for key in ("sk", "action", "status", "config", "failure_reason", "recorded_at")
            }
            for item in items
            if item["sk"].startswith("EVENT#")
        ],
    }


def commit_lineage(ledger: Ledger, repository: str, commit_id: str) -> dict[str, Any]:
    """Where commit `commit_id` went: its executions, the packages they registered, and the endpoints
    and transform jobs those packages reached. One ledger Query."""
    items = ledger.partition(commit_pk(repository, commit_id))

    def of(prefix: str) -> list[dict[str, Any]]:
        return [
            {key: value for key, value in item.items() if key not in {"pk", "sk", "kind"}}
            for item in items
            if item["sk"].startswith(prefix)
        ]

    push = next((item for item in items if item["sk"] == "COMMIT"), None)
    return {
        "repository": repository,
        "commit_id": commit_id,
        "push": None if push is None else {k: v for k, v in push.items() if k not in {"pk", "sk", "kind"}},
        "executions": of("EXECUTION#"),
        "packages": of("PACKAGE#"),
        "deployments": of("DEPLOYMENT#"),
        "transform_jobs": of("TRANSFORM#"),
    }
