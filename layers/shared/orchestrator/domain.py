"""Domain values with names from the problem; frozen so that nothing downstream edits a decision."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CommitRef:
    repository: str
    branch: str
    commit_id: str
    old_commit_id: str | None = None


@dataclass(frozen=True)
class CodeLocations:
    preprocess_uri: str
    evaluate_uri: str
    training_uri: str
    baseline_uri: str  # the layer's data_quality.py, which the BaselineData step runs


@dataclass(frozen=True)
class PackageLineage:
    """Everything known about how a model package came to be, read from SageMaker (never the event)."""

    package_arn: str
    group: str
    version: int
    approval_status: str
    package_status: str
    approver: str | None = None
    approval_description: str | None = None
    decided_at: str | None = None
    repository: str | None = None
    commit_id: str | None = None
    execution_arn: str | None = None
    model_data_url: str | None = None
    training_job: str | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    training_metrics: dict[str, float] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EndpointDeployment:
    """What deploying a package to the endpoint means: the names and requests we would make."""

    endpoint_name: str
    model_name: str
    config_name: str
    package: PackageLineage
    config_request: dict[str, Any]
    deployment_config: dict[str, Any]


@dataclass(frozen=True)
class Decision:
    """A person's approval or rejection of a package, in the order SageMaker recorded it (`decided_at`,
    the package's LastModifiedTime): carried out at once, or when the endpoint can take it."""

    package_arn: str
    approval_status: str
    decided_at: str
    event_id: str
