"""Function configuration: environment variables read and validated once per cold start.

One settings class per handler kind. Each field's alias is the environment variable's name (see
docs/architecture.md), so a validation error names the variable the operator must fix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from orchestrator.errors import SettingsError


def _split_list(value: Any) -> Any:
    """Comma-separated environment values become tuples; blanks are dropped."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


def _blank_as_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


CommaList = Annotated[tuple[str, ...], BeforeValidator(_split_list)]
OptionalText = Annotated[str | None, BeforeValidator(_blank_as_none)]
S3Uri = Annotated[str, Field(pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")]
OptionalS3Uri = Annotated[S3Uri | None, BeforeValidator(_blank_as_none)]


class DeployTarget(StrEnum):
    ENDPOINT = "endpoint"
    BATCH = "batch"
    BOTH = "both"


class ProductionStrategy(StrEnum):
    BLUE_GREEN = "blue-green"  # a promoted package replaces production's (UpdateEndpoint, blue/green)
    AB = "ab"  # it serves beside production's as a second variant, with part of the traffic


class DeploymentStrategy(StrEnum):
    ALL_AT_ONCE = "all-at-once"
    CANARY = "canary"
    LINEAR = "linear"


class _EnvSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)

    ledger_table_name: str = Field(alias="LEDGER_TABLE_NAME", min_length=3)
    # The stack's ProjectName: every lineage Context and Action is named <project>-... (IAM scopes on it).
    project_name: str = Field(alias="PROJECT_NAME", pattern=r"^[a-z][a-z0-9-]{0,29}$")
    notification_topic_arn: OptionalText = Field(default=None, alias="NOTIFICATION_TOPIC_ARN")


class PushSettings(_EnvSettings):
    """Configuration of the start-pipeline handler."""

    repository_name: str = Field(alias="REPOSITORY_NAME", min_length=1)
    branch_name: str = Field(alias="BRANCH_NAME", min_length=1)
    artifact_bucket: str = Field(alias="ARTIFACT_BUCKET", min_length=3)
    pipeline_name: str = Field(alias="PIPELINE_NAME", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
    sagemaker_role_arn: str = Field(
        alias="SAGEMAKER_ROLE_ARN", pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+"
    )
    model_package_group_name: str = Field(alias="MODEL_PACKAGE_GROUP_NAME", min_length=1)
    input_data_uri: S3Uri = Field(alias="INPUT_DATA_URI")
    target_column: str = Field(default="MEDV", alias="TARGET_COLUMN", min_length=1)
    processing_image_uri: str = Field(alias="PROCESSING_IMAGE_URI", min_length=1)
    training_image_uri: str = Field(alias="TRAINING_IMAGE_URI", min_length=1)
    inference_image_uri: str = Field(alias="INFERENCE_IMAGE_URI", min_length=1)
    training_code_path: str = Field(default="training_code", alias="TRAINING_CODE_PATH", min_length=1)
    pipeline_config_paths: CommaList = Field(default=(), alias="PIPELINE_CONFIG_PATHS")
    stop_superseded_executions: bool = Field(default=False, alias="STOP_SUPERSEDED_EXECUTIONS")
    preprocess_instance_type: str = Field(default="ml.m5.large", alias="PREPROCESS_INSTANCE_TYPE")
    preprocess_instance_count: int = Field(default=1, alias="PREPROCESS_INSTANCE_COUNT", ge=1)
    training_instance_type: str = Field(default="ml.m5.large", alias="TRAINING_INSTANCE_TYPE")
    evaluate_instance_type: str = Field(default="ml.m5.large", alias="EVALUATE_INSTANCE_TYPE")
    max_tuning_jobs: int = Field(default=8, alias="MAX_TUNING_JOBS", ge=1)
    max_parallel_tuning_jobs: int = Field(default=2, alias="MAX_PARALLEL_TUNING_JOBS", ge=1)
    rmse_threshold: float = Field(default=6.0, alias="RMSE_THRESHOLD", gt=0)
    # the stack's data-drift alarm: its change to ALARM starts a retraining run (orchestrator.retrain)
    drift_alarm_name: OptionalText = Field(default=None, alias="DRIFT_ALARM_NAME")
    model_approval_status: str = Field(
        default="PendingManualApproval",
        alias="MODEL_APPROVAL_STATUS",
        pattern=r"^(PendingManualApproval|Approved)$",
    )

    @property
    def watched_paths(self) -> tuple[str, ...]:
        """Repository paths whose change triggers a run: the training code and pipeline configuration."""
        return (self.training_code_path, *self.pipeline_config_paths)


class TrackSettings(_EnvSettings):
    """Configuration of the track handler (status changes of runs, endpoints and transform jobs)."""

    pipeline_name: str = Field(alias="PIPELINE_NAME", min_length=1)
    model_package_group_name: str = Field(alias="MODEL_PACKAGE_GROUP_NAME", min_length=1)
    endpoint_name: OptionalText = Field(default=None, alias="ENDPOINT_NAME")
    # staged promotion's production endpoint: its state is recorded too (autoscaling stays staging's)
    production_endpoint_name: OptionalText = Field(default=None, alias="PRODUCTION_ENDPOINT_NAME")
    endpoint_instance_count: int = Field(default=1, alias="ENDPOINT_INSTANCE_COUNT", ge=1)
    autoscaling_max_capacity: int = Field(default=0, alias="AUTOSCALING_MAX_CAPACITY", ge=0)
    autoscaling_target_invocations: float = Field(default=70.0, alias="AUTOSCALING_TARGET_INVOCATIONS", gt=0)


class DeploySettings(_EnvSettings):
    """Configuration of the deploy handler."""

    model_package_group_name: str = Field(alias="MODEL_PACKAGE_GROUP_NAME", min_length=1)
    sagemaker_role_arn: str = Field(
        alias="SAGEMAKER_ROLE_ARN", pattern=r"^arn:aws[a-z\-]*:iam::\d{12}:role/.+"
    )
    deploy_target: DeployTarget = Field(default=DeployTarget.ENDPOINT, alias="DEPLOY_TARGET")
    artifact_bucket: OptionalText = Field(default=None, alias="ARTIFACT_BUCKET")
    endpoint_name: OptionalText = Field(default=None, alias="ENDPOINT_NAME")
    endpoint_instance_type: str = Field(default="ml.m5.large", alias="ENDPOINT_INSTANCE_TYPE")
    endpoint_instance_count: int = Field(default=1, alias="ENDPOINT_INSTANCE_COUNT", ge=1)
    deployment_strategy: DeploymentStrategy = Field(
        default=DeploymentStrategy.ALL_AT_ONCE, alias="DEPLOYMENT_STRATEGY"
    )
    canary_percent: int = Field(default=10, alias="DEPLOYMENT_CANARY_PERCENT", ge=1, le=50)
    # botocore TrafficRoutingConfig: CanarySize "<= 50%", LinearStepSize "must be 10-50%" of the variant.
    linear_step_percent: int = Field(default=20, alias="DEPLOYMENT_LINEAR_STEP_PERCENT", ge=10, le=50)
    traffic_wait_seconds: int = Field(default=300, alias="DEPLOYMENT_WAIT_SECONDS", ge=0, le=3600)
    termination_wait_seconds: int = Field(default=600, alias="DEPLOYMENT_TERMINATION_WAIT_SECONDS", ge=0)
    rollback_alarm_names: CommaList = Field(default=(), alias="ROLLBACK_ALARM_NAMES")
    data_capture_percent: int = Field(default=0, alias="DATA_CAPTURE_PERCENT", ge=0, le=100)
    autoscaling_max_capacity: int = Field(default=0, alias="AUTOSCALING_MAX_CAPACITY", ge=0)
    batch_input_uri: OptionalS3Uri = Field(default=None, alias="BATCH_INPUT_URI")
    batch_output_uri: OptionalS3Uri = Field(default=None, alias="BATCH_OUTPUT_URI")
    transform_instance_type: str = Field(default="ml.m5.large", alias="TRANSFORM_INSTANCE_TYPE")
    # Staged promotion (orchestrator.promote): approvals deploy to ENDPOINT_NAME (staging), where a smoke
    # test runs; a package whose ModelLifeCycle is set to Production / Approved goes to this endpoint.
    production_endpoint_name: OptionalText = Field(default=None, alias="PRODUCTION_ENDPOINT_NAME")
    production_instance_type: str = Field(default="ml.m5.large", alias="PRODUCTION_INSTANCE_TYPE")
    production_instance_count: int = Field(default=1, alias="PRODUCTION_INSTANCE_COUNT", ge=1)
    production_rollback_alarm_names: CommaList = Field(default=(), alias="PRODUCTION_ROLLBACK_ALARM_NAMES")
    # alarms on production's Candidate variant: one going to ALARM rolls the A/B candidate back
    candidate_alarm_names: CommaList = Field(default=(), alias="CANDIDATE_ALARM_NAMES")
    production_strategy: ProductionStrategy = Field(
        default=ProductionStrategy.BLUE_GREEN, alias="PRODUCTION_STRATEGY"
    )
    candidate_traffic_percent: int = Field(default=10, alias="CANDIDATE_TRAFFIC_PERCENT", ge=1, le=99)
    smoke_test_rows: int = Field(default=20, alias="SMOKE_TEST_ROWS", ge=1, le=1000)
    smoke_test_max_error_rate: float = Field(default=0.0, alias="SMOKE_TEST_MAX_ERROR_RATE", ge=0, le=1)
    smoke_test_max_p95_ms: float = Field(default=1000.0, alias="SMOKE_TEST_MAX_P95_MS", gt=0)
    smoke_test_max_rmse: float = Field(default=6.0, alias="SMOKE_TEST_MAX_RMSE", gt=0)
    # Data-quality monitoring (orchestrator.monitor): the CloudWatch namespace of its metrics
    data_quality_namespace: OptionalText = Field(default=None, alias="DATA_QUALITY_NAMESPACE")
    # which endpoint these settings aim at: "staging" (or the only endpoint) unless for_production() made them
    serving_stage: ClassVar[str] = "staging"

    @model_validator(mode="after")
    def _target_needs_its_settings(self) -> DeploySettings:
        if self.deploy_target in (DeployTarget.ENDPOINT, DeployTarget.BOTH) and not self.endpoint_name:
            raise ValueError("ENDPOINT_NAME is required when DEPLOY_TARGET is endpoint or both")
        if self.deploy_target in (DeployTarget.BATCH, DeployTarget.BOTH) and not (
            self.batch_input_uri and self.batch_output_uri
        ):
            raise ValueError(
                "BATCH_INPUT_URI and BATCH_OUTPUT_URI are required when DEPLOY_TARGET is batch or both"
            )
        if self.data_capture_percent > 0 and not self.artifact_bucket:
            raise ValueError(
                "ARTIFACT_BUCKET is required when DATA_CAPTURE_PERCENT > 0 (capture destination)"
            )
        if self.production_endpoint_name and not self.deploys_endpoint:
            raise ValueError("PRODUCTION_ENDPOINT_NAME needs DEPLOY_TARGET endpoint or both (staging first)")
        if self.production_endpoint_name and self.production_endpoint_name == self.endpoint_name:
            raise ValueError("PRODUCTION_ENDPOINT_NAME must differ from ENDPOINT_NAME (the staging endpoint)")
        return self

    @property
    def staged(self) -> bool:
        """Approvals go to staging, and promotions to production."""
        return bool(self.production_endpoint_name) and self.deploys_endpoint

    def for_production(self) -> DeploySettings:
        """The same settings aimed at the production endpoint, its instances and its rollback alarms."""
        fields = dict(self.__dict__)
        fields.update(
            {
                "endpoint_name": self.production_endpoint_name,
                "endpoint_instance_type": self.production_instance_type,
                "endpoint_instance_count": self.production_instance_count,
                "rollback_alarm_names": self.production_rollback_alarm_names,
                "deploy_target": DeployTarget.ENDPOINT,
                "production_endpoint_name": None,
            }
        )
        return _ProductionSettings.model_construct(**fields)

    @property
    def deploys_endpoint(self) -> bool:
        return self.deploy_target in (DeployTarget.ENDPOINT, DeployTarget.BOTH)

    @property
    def deploys_batch(self) -> bool:
        return self.deploy_target in (DeployTarget.BATCH, DeployTarget.BOTH)


class _ProductionSettings(DeploySettings):
    """DeploySettings aimed at the production endpoint (DeploySettings.for_production)."""

    serving_stage: ClassVar[str] = "production"


SettingsT = TypeVar("SettingsT", bound=_EnvSettings)


def load_settings(kind: type[SettingsT], environ: Mapping[str, str] | None = None) -> SettingsT:
    """Validate `environ` (default: os.environ) into `kind`; SettingsError names each bad variable."""
    env = dict(os.environ if environ is None else environ)
    try:
        return kind.model_validate(env)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = ".".join(str(part) for part in error["loc"]) or "configuration"
            problems.append(f"{variable}: {error['msg']}")
        raise SettingsError(f"invalid {kind.__name__} environment: " + "; ".join(problems)) from exc


@cache
def push_settings() -> PushSettings:
    return load_settings(PushSettings)


@cache
def track_settings() -> TrackSettings:
    return load_settings(TrackSettings)


@cache
def deploy_settings() -> DeploySettings:
    return load_settings(DeploySettings)


def reset_settings() -> None:
    """Forget the cold-start settings (tests change the environment between cases)."""
    for accessor in (push_settings, track_settings, deploy_settings):
        accessor.cache_clear()
