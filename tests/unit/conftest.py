"""Fixtures for the layer and handler tests: a mocked AWS (moto) with the missing APIs filled in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from orchestrator import pipeline_definition
from orchestrator.clients import reset_clients
from orchestrator.idempotency import reset_idempotency
from orchestrator.settings import reset_settings
from tests.events import load_event
from tests.iam import STACK_RESOURCES, Call, denied, recording_handler_calls
from tests.unit.fakes import (
    REGION,
    FakeLineageStore,
    FakeRepository,
    MissingApis,
    install_sagemaker_state_changes,
)

ACCOUNT = "123456789012"
REPOSITORY = "mlops-demo"
BRANCH = "main"
GROUP = "mlops-demo-models"
PIPELINE = "mlops-demo-pipeline"
ENDPOINT = "mlops-demo-endpoint"
# The stack's resources under the names the IAM guard resolves the template's policies with.
BUCKET = STACK_RESOURCES["ArtifactBucket"]
TABLE = STACK_RESOURCES["LedgerTable"]
ROLE = f"arn:aws:iam::{ACCOUNT}:role/{STACK_RESOURCES['SageMakerExecutionRole']}"
TOPIC = STACK_RESOURCES["NotificationTopic"]

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    "AWS_LAMBDA_FUNCTION_NAME": "unit-test-function",
    "PROJECT_NAME": "mlops-demo",
    "LEDGER_TABLE_NAME": TABLE,
    "REPOSITORY_NAME": REPOSITORY,
    "BRANCH_NAME": BRANCH,
    "ARTIFACT_BUCKET": BUCKET,
    "PIPELINE_NAME": PIPELINE,
    "SAGEMAKER_ROLE_ARN": ROLE,
    "MODEL_PACKAGE_GROUP_NAME": GROUP,
    "INPUT_DATA_URI": f"s3://{BUCKET}/data/",
    "TARGET_COLUMN": "MEDV",
    "PROCESSING_IMAGE_URI": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
    "TRAINING_IMAGE_URI": "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.16-cpu-py310",
    "INFERENCE_IMAGE_URI": "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.16-cpu",
    "TRAINING_CODE_PATH": "training_code",
    "PIPELINE_CONFIG_PATHS": "pipeline.yaml",
    "STOP_SUPERSEDED_EXECUTIONS": "false",
    "MAX_TUNING_JOBS": "4",
    "MAX_PARALLEL_TUNING_JOBS": "2",
    "RMSE_THRESHOLD": "5.5",
    "DEPLOY_TARGET": "endpoint",
    "ENDPOINT_NAME": ENDPOINT,
    "ENDPOINT_INSTANCE_TYPE": "ml.m5.large",
    "ENDPOINT_INSTANCE_COUNT": "1",
    "DEPLOYMENT_STRATEGY": "all-at-once",
    "ROLLBACK_ALARM_NAMES": "",
    "DATA_CAPTURE_PERCENT": "0",
    "AUTOSCALING_MAX_CAPACITY": "0",
    "BATCH_INPUT_URI": f"s3://{BUCKET}/batch/input/",
    "BATCH_OUTPUT_URI": f"s3://{BUCKET}/batch/output",
    "TRANSFORM_INSTANCE_TYPE": "ml.m5.large",
    "DATA_QUALITY_NAMESPACE": "mlops-demo/DataQuality",
    "DRIFT_ALARM_NAME": "mlops-demo-data-drift",
    "CANDIDATE_ALARM_NAMES": "mlops-demo-candidate-5xx,mlops-demo-candidate-latency",
}

TRAINING_CODE = {
    "training_code/preprocess.py": b"print('preprocess')\n",
    "training_code/evaluate.py": b"print('evaluate')\n",
    "training_code/train.py": b"print('train')\n",
    "training_code/inference.py": b"def input_handler(data, context): ...\n",
    "training_code/lib/features.py": b"FEATURES = 13\n",
    "README.md": b"# demo\n",
}


def reset_caches() -> None:
    reset_settings()
    reset_clients()
    reset_idempotency()
    pipeline_definition.shipped_definition.cache_clear()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("POWERTOOLS_IDEMPOTENCY_DISABLED", raising=False)
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    yield
    reset_caches()


@pytest.fixture(autouse=True)
def iam_allows_every_call() -> Iterator[list[Call]]:
    """Every AWS call a handler makes in any of these tests must be allowed, action and resource, by its
    function's IAM policy."""
    invalid: list[str] = []
    with recording_handler_calls(invalid) as calls:
        yield calls
    refused = denied(calls)
    assert not refused, "template.yaml does not allow these calls:\n" + "\n".join(map(str, refused))
    assert not invalid, "requests AWS would reject (botocore model constraints):\n" + "\n".join(invalid)


@dataclass
class LambdaContext:
    function_name: str = "unit-test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:unit-test-function"
    aws_request_id: str = "00000000-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


@dataclass
class Cloud:
    """The mocked AWS account the handlers run against, with what a user could look at."""

    apis: MissingApis
    repository: FakeRepository
    lineage: FakeLineageStore
    topic_arn: str
    queue_url: str

    @property
    def sagemaker(self) -> Any:
        return boto3.client("sagemaker", region_name=REGION)

    @property
    def s3(self) -> Any:
        return boto3.client("s3", region_name=REGION)

    def through_moto(
        self,
        operation: str,
        around: Callable[[dict[str, Any], Callable[..., dict[str, Any]]], Any] | None = None,
    ) -> None:
        """Serve a SageMaker operation by moto, with `around(params, moto)` in between: to record the
        request, change the answer or fail first. (A client made before the stand-in still reaches moto.)"""
        moto_call = self.sagemaker._make_api_call

        def moto(params: dict[str, Any]) -> dict[str, Any]:
            return dict(moto_call(operation, params))

        self.apis.serve("sagemaker", operation, (lambda params: around(params, moto)) if around else moto)

    def notifications(self) -> list[dict[str, str]]:
        sqs = boto3.client("sqs", region_name=REGION)
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]

    def executions(self) -> list[dict[str, Any]]:
        try:
            return self.sagemaker.list_pipeline_executions(PipelineName=PIPELINE)[
                "PipelineExecutionSummaries"
            ]
        except ClientError:  # the pipeline does not exist yet: no run was ever started
            return []


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    with mock_aws():
        boto3.setup_default_session(region_name=REGION)
        apis = MissingApis()
        repository = FakeRepository(REPOSITORY)
        repository.install(apis)
        lineage = FakeLineageStore()
        lineage.install(apis)
        install_sagemaker_state_changes(apis)

        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        topic_arn = boto3.client("sns").create_topic(Name=TOPIC)["TopicArn"]
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        boto3.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
        monkeypatch.setenv("NOTIFICATION_TOPIC_ARN", topic_arn)
        reset_caches()
        yield Cloud(apis, repository, lineage, topic_arn, queue_url)
        boto3.DEFAULT_SESSION = None


def logged(caplog: pytest.LogCaptureFixture, message: str, level: str | None = None) -> list[dict[str, Any]]:
    """The keyword fields of each log line with `message` (Powertools passes them as record extras)."""
    return [
        dict(record.__dict__)
        for record in caplog.records
        if record.getMessage() == message and (level is None or record.levelname == level)
    ]


EVALUATION = {"regression_metrics": {"rmse": {"value": 3.2}, "mae": {"value": 2.1}, "r2": {"value": 0.87}}}


def register_package(
    cloud: Cloud,
    commit_id: str,
    execution_arn: str,
    training_job: str,
    status: str = "PendingManualApproval",
    **extra: Any,
) -> str:
    """What the pipeline's RegisterModel step leaves behind: a package stamped with its commit and run."""
    sagemaker = cloud.sagemaker
    sagemaker.create_training_job(
        TrainingJobName=training_job,
        AlgorithmSpecification={
            "TrainingImage": ENVIRONMENT["TRAINING_IMAGE_URI"],
            "TrainingInputMode": "File",
        },
        RoleArn=ROLE,
        HyperParameters={"learning_rate": "0.01", "epochs": "20", "sagemaker_program": "train.py"},
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/pipelines/training"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    evaluation_key = f"pipelines/{execution_arn.rsplit('/', 1)[-1]}/EvaluateModel/evaluation/evaluation.json"
    cloud.s3.put_object(Bucket=BUCKET, Key=evaluation_key, Body=json.dumps(EVALUATION).encode())
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": ENVIRONMENT["INFERENCE_IMAGE_URI"],
                        "ModelDataUrl": f"s3://{BUCKET}/pipelines/training/{training_job}/output/model.tar.gz",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelApprovalStatus=status,
            MetadataProperties={
                "CommitId": commit_id,
                "Repository": REPOSITORY,
                "GeneratedBy": execution_arn,
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://{BUCKET}/{evaluation_key}",
                    }
                }
            },
            **extra,
        )["ModelPackageArn"]
    )


def decide(cloud: Cloud, package_arn: str, status: str, note: str = "metrics reviewed") -> dict[str, Any]:
    """A reviewer approves or rejects the package; returns the event SageMaker would emit."""
    cloud.sagemaker.update_model_package(
        ModelPackageArn=package_arn, ModelApprovalStatus=status, ApprovalDescription=note
    )
    event = load_event("model_package_approved" if status == "Approved" else "model_package_rejected")
    version = int(package_arn.rsplit("/", 1)[-1])
    event["id"] = f"{event['id'][:-4]}{version:02d}{len(cloud.apis.calls):02d}"[-36:]
    event["resources"] = [package_arn]
    event["detail"].update(
        ModelPackageArn=package_arn, ModelPackageVersion=version, ModelApprovalStatus=status
    )
    return event


def assert_run_once_until_the_deadline(operation: str, since_ms: int) -> None:
    """The one idempotency record of `operation` expires in progress at the invocation's deadline (the test
    context has 60 s left): Powertools records it from the registered Lambda context ("Lambda timeouts"),
    so a redelivery after a timeout runs the work again."""
    import time

    import boto3

    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    [record] = [item for item in items if operation in item["sk"]["S"]]
    deadline = int(record["in_progress_expiration"]["N"])
    assert since_ms + 60_000 <= deadline <= int(time.time() * 1000) + 60_000
