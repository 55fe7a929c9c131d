"""Typed models of the EventBridge events the handlers accept (Powertools parser models).

Field names follow the AWS documentation of each event; unknown extra fields are tolerated (AWS adds
fields over time) but every field we rely on is required and typed, so a malformed event fails
validation with a message naming the field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

COMMIT_ID = r"^[0-9a-f]{40}$"


class EventBridgeModel(BaseModel):
    """The EventBridge envelope, field for field as Powertools' `parser.models.EventBridgeModel`.

    Defined here rather than imported because `aws_lambda_powertools.utilities.parser.models` loads every
    event model Powertools ships (API Gateway, SQS, Kinesis, ...) on import: about 30-80 ms of each cold
    start for one small class. `tests/unit/test_events_envelope.py` checks both accept the same events.
    """

    model_config = ConfigDict(populate_by_name=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: Any
    replay_name: str | None = Field(default=None, alias="replay-name")


class _Detail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class CodeCommitReferenceDetail(_Detail):
    event: Literal["referenceCreated", "referenceUpdated", "referenceDeleted"]
    repository_name: str = Field(alias="repositoryName", min_length=1, max_length=100)
    repository_id: str | None = Field(default=None, alias="repositoryId")
    reference_type: str = Field(alias="referenceType")
    reference_name: str = Field(alias="referenceName", min_length=1)
    reference_full_name: str | None = Field(default=None, alias="referenceFullName")
    commit_id: str | None = Field(default=None, alias="commitId", pattern=COMMIT_ID)
    old_commit_id: str | None = Field(default=None, alias="oldCommitId", pattern=COMMIT_ID)
    caller_user_arn: str | None = Field(default=None, alias="callerUserArn")

    @model_validator(mode="after")
    def _created_or_updated_has_commit(self) -> CodeCommitReferenceDetail:
        if self.event != "referenceDeleted" and not self.commit_id:
            raise ValueError(f"commitId is required for {self.event}")
        return self


class CodeCommitPushEvent(EventBridgeModel):
    source: Literal["aws.codecommit"]
    detail_type: Literal["CodeCommit Repository State Change"] = Field(alias="detail-type")
    detail: CodeCommitReferenceDetail


PipelineExecutionStatus = Literal["Executing", "Stopping", "Stopped", "Failed", "Succeeded"]


class PipelineExecutionStatusDetail(_Detail):
    pipeline_arn: str = Field(
        alias="pipelineArn", pattern=r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:\d{12}:pipeline/.+"
    )
    pipeline_execution_arn: str = Field(
        alias="pipelineExecutionArn", pattern=r"^arn:aws[a-z\-]*:sagemaker:.+/execution/.+"
    )
    current_status: PipelineExecutionStatus = Field(alias="currentPipelineExecutionStatus")
    previous_status: str | None = Field(default=None, alias="previousPipelineExecutionStatus")
    display_name: str | None = Field(default=None, alias="pipelineExecutionDisplayName")
    execution_start_time: str | None = Field(default=None, alias="executionStartTime")
    execution_end_time: str | None = Field(default=None, alias="executionEndTime")

    @model_validator(mode="after")
    def _execution_belongs_to_pipeline(self) -> PipelineExecutionStatusDetail:
        if not self.pipeline_execution_arn.lower().startswith(self.pipeline_arn.lower() + "/execution/"):
            raise ValueError("pipelineExecutionArn does not belong to pipelineArn")
        return self

    @property
    def pipeline_name(self) -> str:
        return self.pipeline_arn.split(":pipeline/", 1)[1]


class PipelineExecutionStatusEvent(EventBridgeModel):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Model Building Pipeline Execution Status Change"] = Field(
        alias="detail-type"
    )
    detail: PipelineExecutionStatusDetail


def canonical_status(value: str) -> str:
    """Endpoint states arrive as IN_SERVICE in events and InService from the API: compare as IN_SERVICE."""
    if "_" in value or value.isupper():
        return value.upper()
    return re.sub(r"(?<!^)(?=[A-Z])", "_", value).upper()


class EndpointStateDetail(_Detail):
    endpoint_name: str = Field(alias="EndpointName", min_length=1, max_length=63)
    endpoint_arn: str | None = Field(default=None, alias="EndpointArn")
    endpoint_config_name: str | None = Field(default=None, alias="EndpointConfigName")
    endpoint_status: str = Field(alias="EndpointStatus", min_length=1)
    failure_reason: str | None = Field(default=None, alias="FailureReason")
    # epoch milliseconds (a float in AWS's documented example)
    last_modified_time: float | str | None = Field(default=None, alias="LastModifiedTime")

    @field_validator("endpoint_status")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_status(value)


class EndpointStateEvent(EventBridgeModel):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Endpoint State Change"] = Field(alias="detail-type")
    detail: EndpointStateDetail


class TransformJobStateDetail(_Detail):
    transform_job_name: str = Field(alias="TransformJobName", min_length=1, max_length=63)
    transform_job_arn: str | None = Field(default=None, alias="TransformJobArn")
    transform_job_status: Literal["InProgress", "Completed", "Failed", "Stopping", "Stopped"] = Field(
        alias="TransformJobStatus"
    )
    failure_reason: str | None = Field(default=None, alias="FailureReason")
    model_name: str | None = Field(default=None, alias="ModelName")


class TransformJobStateEvent(EventBridgeModel):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Transform Job State Change"] = Field(alias="detail-type")
    detail: TransformJobStateDetail


class ModelPackageStateDetail(_Detail):
    model_package_group_name: str = Field(alias="ModelPackageGroupName", min_length=1)
    model_package_version: int | None = Field(default=None, alias="ModelPackageVersion", ge=1)
    model_package_arn: str = Field(
        alias="ModelPackageArn", pattern=r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:\d{12}:model-package/.+"
    )
    model_approval_status: Literal["Approved", "Rejected", "PendingManualApproval"] = Field(
        alias="ModelApprovalStatus"
    )
    model_package_status: str | None = Field(default=None, alias="ModelPackageStatus")
    # what the update that sent this event changed (AWS's documented example; absent on older events)
    updated_fields: list[str] | None = Field(default=None, alias="UpdatedModelPackageFields")

    @model_validator(mode="after")
    def _arn_names_the_group(self) -> ModelPackageStateDetail:
        arn_group = self.model_package_arn.split(":model-package/", 1)[1].rsplit("/", 1)[0]
        if arn_group.lower() != self.model_package_group_name.lower():
            raise ValueError("ModelPackageArn does not belong to ModelPackageGroupName")
        return self

    @property
    def account(self) -> str:
        return self.model_package_arn.split(":")[4]


class ModelPackageStateEvent(EventBridgeModel):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Model Package State Change"] = Field(alias="detail-type")
    detail: ModelPackageStateDetail


TrackedEvent = PipelineExecutionStatusEvent | EndpointStateEvent | TransformJobStateEvent


class AlarmState(_Detail):
    value: Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
    reason: str | None = Field(default=None, max_length=4096)
    # "2019-10-02T17:04:40.989+0000" in AWS's example (CloudWatch user guide, cloudwatch-and-eventbridge)
    timestamp: datetime

    @field_validator("timestamp", mode="before")
    @classmethod
    def _colon_in_offset(cls, value: Any) -> Any:
        if isinstance(value, str) and re.search(r"[+-]\d{4}$", value):
            return f"{value[:-2]}:{value[-2:]}"
        return value


class AlarmStateDetail(_Detail):
    alarm_name: str = Field(alias="alarmName", min_length=1, max_length=255)
    state: AlarmState
    previous_state: AlarmState | None = Field(default=None, alias="previousState")


class AlarmStateEvent(EventBridgeModel):
    """A CloudWatch alarm's change of state, as EventBridge delivers it (CloudWatch user guide,
    cloudwatch-and-eventbridge)."""

    source: Literal["aws.cloudwatch"]
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: AlarmStateDetail
