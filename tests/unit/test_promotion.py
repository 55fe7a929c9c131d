"""Staged promotion (orchestrator.promote): approval → staging → smoke test → a second, explicit act → the
same package in production; every refusal.

Model Registry's stage construct (SageMaker developer guide, model-registry-staging-construct): a package's
ModelLifeCycle {Stage, StageStatus, StageDescription} is set with UpdateModelPackage and its change arrives
as "SageMaker Model Package State Change" with UpdatedModelPackageFields naming "ModelLifeCycle". moto 5.2.5
drops ModelLifeCycle, so `LifeCycles` keeps it beside moto (as the local cloud does).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.response import StreamingBody

from functions.deploy.app import lambda_handler
from orchestrator.promote import _p95, held_out_rows, smoke_test
from orchestrator.settings import DeploySettings, load_settings
from tests.events import load_event
from tests.unit.conftest import (
    BUCKET,
    ENDPOINT,
    ENVIRONMENT,
    GROUP,
    TABLE,
    Cloud,
    assert_run_once_until_the_deadline,
    decide,
    logged,
    register_package,
    reset_caches,
)
from tests.unit.fakes import client_error

PRODUCTION = "mlops-demo-production"
ROOT = Path(__file__).resolve().parents[2]
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-demo-pipeline/execution/"
FEATURES = ["CRIM", "ZN", "RM", "LSTAT"]


@dataclass
class LifeCycles:
    """ModelLifeCycle kept beside moto: UpdateModelPackage stores it, Describe/List return it."""

    by_arn: dict[str, dict[str, str]] = field(default_factory=dict)
    updates: list[dict[str, Any]] = field(default_factory=list)

    def install(self, cloud: Cloud) -> None:
        def update(params: dict[str, Any], moto: Callable[..., dict[str, Any]]) -> dict[str, Any]:
            self.updates.append(params)
            if "ModelLifeCycle" in params:
                self.by_arn[params["ModelPackageArn"].lower()] = dict(params["ModelLifeCycle"])
            # moto 5.2.5's update sets what the request leaves out to None; UpdateModelPackage keeps it (and
            # merges CustomerMetadataProperties), as the local cloud does (localcloud.aws.sagemaker)
            current = cloud.sagemaker.describe_model_package(ModelPackageName=params["ModelPackageArn"])
            rest = {key: value for key, value in params.items() if key != "ModelLifeCycle"}
            rest.setdefault("ModelApprovalStatus", current["ModelApprovalStatus"])
            if current.get("ApprovalDescription"):
                rest.setdefault("ApprovalDescription", current["ApprovalDescription"])
            metadata = dict(current.get("CustomerMetadataProperties") or {})
            metadata.update(params.get("CustomerMetadataProperties") or {})
            rest["CustomerMetadataProperties"] = metadata
            return moto(rest)

        def describe(params: dict[str, Any], moto: Callable[..., dict[str, Any]]) -> dict[str, Any]:
            answer = moto(params)
            stage = self.by_arn.get(str(answer.get("ModelPackageArn", "")).lower())
            return answer | ({"ModelLifeCycle": stage} if stage else {})

        cloud.through_moto("UpdateModelPackage", update)
        cloud.through_moto("DescribeModelPackage", describe)


@dataclass
class Model:
    """The staging endpoint's model, as InvokeEndpoint reaches it: predicts target + `offset`."""

    offset: float = 0.5
    failing_rows: set[int] = field(default_factory=set)
    calls: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[str, float] = field(default_factory=dict)

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(params)
        if len(self.calls) in self.failing_rows:
            raise client_error("ModelError", "Received server error (500) from primary", "InvokeEndpoint")
        value = self.truth[params["Body"].decode() if isinstance(params["Body"], bytes) else params["Body"]]
        body = f"{value + self.offset}\n".encode()
        return {"Body": StreamingBody(io.BytesIO(body), len(body)), "ContentType": "text/csv"}


@dataclass
class Runs:
    """ListPipelineExecutionSteps (moto lacks it) for each run: its PreprocessData step ran, or reused from
    the cache, a processing job whose "test" output is the held-out split."""

    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def install(self, cloud: Cloud) -> None:
        def answer(params: dict[str, Any]) -> dict[str, Any]:
            if params["PipelineExecutionArn"] not in self.steps:
                raise client_error(
                    "ResourceNotFound", "Pipeline execution not found", "ListPipelineExecutionSteps"
                )
            return {"PipelineExecutionSteps": self.steps[params["PipelineExecutionArn"]]}

        cloud.apis.serve("sagemaker", "ListPipelineExecutionSteps", answer)

    def preprocessed(
        self, cloud: Cloud, execution_arn: str, job: str, test_uri: str, cached_from: str = ""
    ) -> None:
        if not cached_from:
            cloud.sagemaker.create_processing_job(
                ProcessingJobName=job,
                ProcessingResources={
                    "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
                },
                AppSpecification={"ImageUri": ENVIRONMENT["PROCESSING_IMAGE_URI"]},
                RoleArn=ENVIRONMENT["SAGEMAKER_ROLE_ARN"],
                ProcessingOutputConfig={
                    "Outputs": [
                        {
                            "OutputName": name,
                            "S3Output": {
                                "S3Uri": uri,
                                "LocalPath": f"/opt/ml/processing/output/{name}",
                                "S3UploadMode": "EndOfJob",
                            },
                        }
                        for name, uri in (("train", test_uri.replace("/test", "/train")), ("test", test_uri))
                    ]
                },
            )
        arn = f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{job}"
        step: dict[str, Any] = {
            "StepName": "PreprocessData",
            "StepStatus": "Succeeded",
            "Metadata": {"ProcessingJob": {"Arn": arn}},
        }
        if cached_from:
            step["CacheHitResult"] = {"SourcePipelineExecutionArn": cached_from}
        self.steps[execution_arn] = [
            step,
            {"StepName": "TuneModel", "StepStatus": "Succeeded", "Metadata": {}},
        ]


RUNS = Runs()


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch, cloud: Cloud) -> Iterator[tuple[LifeCycles, Model]]:
    monkeypatch.setenv("PRODUCTION_ENDPOINT_NAME", PRODUCTION)
    monkeypatch.setenv("PRODUCTION_INSTANCE_TYPE", "ml.c5.xlarge")
    monkeypatch.setenv("PRODUCTION_INSTANCE_COUNT", "2")
    monkeypatch.setenv("SMOKE_TEST_ROWS", "20")
    monkeypatch.setenv("SMOKE_TEST_MAX_RMSE", "1.0")
    monkeypatch.setenv("SMOKE_TEST_MAX_ERROR_RATE", "0")
    reset_caches()
    stages = LifeCycles()
    stages.install(cloud)
    model = Model()
    cloud.apis.serve("sagemaker-runtime", "InvokeEndpoint", model)
    RUNS.steps.clear()
    RUNS.install(cloud)
    yield stages, model


def package(cloud: Cloud, model: Model, n: int, rows: int = 25, cached_from: int = 0) -> str:
    """A package whose run wrote `rows` held-out rows (header, features, target last) where the pipeline
    writes them: pipelines/<execution id>/PreprocessData/test/ (or reused run `cached_from`'s split)."""
    execution = f"{EXECUTION}run{n:09d}"
    source = cached_from or n
    RUNS.preprocessed(
        cloud,
        execution,
        f"pipelines-run{source:09d}-PreprocessData-a1b2c3",
        f"s3://{BUCKET}/pipelines/run{source:09d}/PreprocessData/test",
        cached_from=f"{EXECUTION}run{cached_from:09d}" if cached_from else "",
    )
    if cached_from:
        return register_package(cloud, f"{n:040x}", execution, f"tune-model-{n:03d}")
    lines = [",".join([*FEATURES, "MEDV"])]
    for row in range(rows):
        features = [f"{n}.{row}", "0", f"{6 + row / 100:.2f}", f"{row % 7}"]
        target = 20.0 + row
        model.truth[",".join(features)] = target
        lines.append(",".join([*features, str(target)]))
    cloud.s3.put_object(
        Bucket=BUCKET,
        Key=f"pipelines/run{n:09d}/PreprocessData/test/test-algo-1.csv",
        Body=("\n".join(lines) + "\n").encode(),
    )
    return register_package(cloud, f"{n:040x}", execution, f"tune-model-{n:03d}")


def in_service(endpoint: str = ENDPOINT) -> dict[str, Any]:
    event = load_event("endpoint_in_service")
    event["detail"]["EndpointName"] = endpoint
    event["detail"]["EndpointArn"] = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{endpoint}"
    return event


def set_stage(
    cloud: Cloud, arn: str, stage: str, status: str, note: str = "", event_id: str = ""
) -> dict[str, Any]:
    """Someone sets the package's ModelLifeCycle; returns the event SageMaker sends for it."""
    life_cycle = {"Stage": stage, "StageStatus": status} | ({"StageDescription": note} if note else {})
    cloud.sagemaker.update_model_package(ModelPackageArn=arn, ModelLifeCycle=life_cycle)
    described = cloud.sagemaker.describe_model_package(ModelPackageName=arn)
    event = load_event("model_package_approved")
    version = int(arn.rsplit("/", 1)[-1])
    event["id"] = event_id or f"{event['id'][:-6]}{version:02d}{len(cloud.apis.calls) % 10000:04d}"
    event["resources"] = [arn]
    event["detail"].update(
        ModelPackageArn=arn,
        ModelPackageVersion=version,
        ModelApprovalStatus=described["ModelApprovalStatus"],
        UpdatedModelPackageFields=["ModelLifeCycle"],
    )
    return event


def promote(cloud: Cloud, arn: str, context: Any) -> dict[str, Any]:
    return lambda_handler(set_stage(cloud, arn, "Production", "Approved", "numbers look right"), context)


def approved_and_tested(cloud: Cloud, model: Model, n: int, context: Any) -> tuple[str, dict[str, Any]]:
    arn = package(cloud, model, n)
    lambda_handler(decide(cloud, arn, "Approved"), context)
    return arn, lambda_handler(in_service(), context)


def production_package(cloud: Cloud) -> str | None:
    try:
        endpoint = cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)
    except cloud.sagemaker.exceptions.ClientError:
        return None
    config = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = cloud.sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return str(model["Containers"][0]["ModelPackageName"])


def ledger(cloud: Cloud, pk: str, sk: str) -> dict[str, Any] | None:
    import boto3
    from boto3.dynamodb.types import TypeDeserializer

    item = (
        boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
    )
    return None if item is None else {k: TypeDeserializer().deserialize(v) for k, v in item.items()}


# --- the smoke test ----------------------------------------------------------------------------------
def test_staging_in_service_runs_the_smoke_test_on_held_out_rows_and_records_it(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    stages, model = staged
    # GIVEN v1 approved and deployed to the staging endpoint
    arn, result = approved_and_tested(cloud, model, 1, context)

    # THEN 20 held-out rows (SMOKE_TEST_ROWS) went to the staging endpoint as CSV features, target dropped
    assert len(model.calls) == 20
    first = model.calls[0]
    assert first["EndpointName"] == ENDPOINT
    assert (first["ContentType"], first["Accept"]) == ("text/csv", "text/csv")
    assert first["Body"] in (b"1.0,0,6.00,0", "1.0,0,6.00,0")
    # AND the result is on the package: stage Staging / Passed, its description and metadata
    smoke = result["smoke_test"]
    assert (smoke["action"], smoke["passed"], smoke["package_arn"]) == ("smoke-tested", True, arn)
    assert stages.by_arn[arn.lower()]["Stage"] == "Staging"
    assert stages.by_arn[arn.lower()]["StageStatus"] == "Passed"
    assert "20 rows, 0 errors" in stages.by_arn[arn.lower()]["StageDescription"]
    assert "RMSE 0.5" in stages.by_arn[arn.lower()]["StageDescription"]
    metadata = cloud.sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert (metadata["SmokeTestResult"], metadata["SmokeTestRmse"], metadata["SmokeTestRows"]) == (
        "Passed",
        "0.5",
        "20",
    )
    # AND in the ledger, on the package, with the config it tested
    record = ledger(cloud, f"PACKAGE#{arn}", "STAGE#Staging")
    assert record is not None and record["passed"] is True and float(record["rmse"]) == 0.5
    assert record["endpoint_config_name"] == smoke["endpoint_config_name"]

    # WHEN the endpoint event comes again (EventBridge delivers at least once)
    again = lambda_handler(in_service(), context)
    # THEN nothing is sent twice
    assert again["smoke_test"]["reason"] == "already-tested"
    assert len(model.calls) == 20


def test_a_model_worse_than_the_threshold_fails_the_smoke_test_and_people_are_told(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    stages, model = staged
    model.offset = 1.01  # RMSE 1.01 against SMOKE_TEST_MAX_RMSE 1.0: the near miss
    arn, result = approved_and_tested(cloud, model, 1, context)
    assert result["smoke_test"]["passed"] is False
    assert result["smoke_test"]["failures"] == ["RMSE 1.01 > 1.0"]
    assert stages.by_arn[arn.lower()]["StageStatus"] == "Failed"
    assert any("Smoke test failed" in n["Subject"] for n in cloud.notifications())


def test_one_error_in_twenty_fails_at_a_zero_error_budget_and_passes_at_five_percent() -> None:
    settings = load_settings(DeploySettings, ENVIRONMENT | {"SMOKE_TEST_MAX_RMSE": "2"})
    model = Model(failing_rows={3})
    rows = []
    for row in range(20):
        model.truth[f"{row}"] = float(row)
        rows.append((f"{row}", float(row)))

    class Runtime:
        def invoke_endpoint(self, **params: Any) -> dict[str, Any]:
            return model(params)

    from orchestrator.domain import PackageLineage

    pkg = PackageLineage("arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1", "g", 1, "Approved", "")
    strict = smoke_test(pkg, ENDPOINT, "config", rows, settings, Runtime())
    assert (strict.errors, strict.error_rate, strict.passed) == (1, 0.05, False)
    assert strict.failures == ("error rate 0.050 > 0.0",)
    model.calls.clear()
    lenient = smoke_test(
        pkg,
        ENDPOINT,
        "config",
        rows,
        settings.model_copy(update={"smoke_test_max_error_rate": 0.05}),
        Runtime(),
    )
    assert (lenient.errors, lenient.passed) == (1, True)
    model.calls.clear()
    near = smoke_test(
        pkg,
        ENDPOINT,
        "config",
        rows,
        settings.model_copy(update={"smoke_test_max_error_rate": 0.04}),
        Runtime(),
    )
    assert (near.error_rate, near.passed) == (0.05, False)


def test_no_held_out_rows_is_a_failed_smoke_test_not_a_pass(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    arn = package(cloud, model, 1, rows=0)
    lambda_handler(decide(cloud, arn, "Approved"), context)
    result = lambda_handler(in_service(), context)
    assert result["smoke_test"]["passed"] is False
    assert "no held-out rows to test with" in result["smoke_test"]["failures"]
    assert model.calls == []


def test_a_run_whose_preprocessing_came_from_the_cache_is_tested_on_the_split_it_reused(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    package(cloud, model, 1)  # run 1 wrote the split
    arn = package(cloud, model, 2, cached_from=1)  # run 2's PreprocessData was a cache hit of run 1's
    lambda_handler(decide(cloud, arn, "Approved"), context)
    result = lambda_handler(in_service(), context)
    assert result["smoke_test"]["passed"] is True
    assert {call["Body"] for call in model.calls} <= {
        f"1.{row},0,{6 + row / 100:.2f},{row % 7}".encode() for row in range(25)
    }
    assert len(model.calls) == 20


def test_held_out_rows_skip_the_header_blank_and_non_numeric_targets(cloud: Cloud) -> None:
    body = "a,b,y\n1,2,3\n\n4,,6\n7,8,nan\n9,10,x\n11,12,13\n"
    cloud.s3.put_object(
        Bucket=BUCKET, Key="pipelines/r/PreprocessData/test/test-algo-1.csv", Body=body.encode()
    )
    cloud.s3.put_object(Bucket=BUCKET, Key="pipelines/r/PreprocessData/test/notes.txt", Body=b"1,2,3\n")
    rows = held_out_rows(f"s3://{BUCKET}/pipelines/r/PreprocessData/test/", 10)
    assert rows == [("1,2", 3.0), ("11,12", 13.0)]
    assert held_out_rows(f"s3://{BUCKET}/pipelines/r/PreprocessData/test/", 1) == [("1,2", 3.0)]


def test_p95_is_the_nearest_rank() -> None:
    assert _p95([]) is None
    assert _p95([float(v) for v in range(1, 21)]) == 19.0
    assert _p95([float(v) for v in range(1, 101)]) == 95.0
    assert _p95([5.0]) == 5.0


# --- promotion ---------------------------------------------------------------------------------------
def test_promotion_deploys_the_same_package_to_production_and_records_who_and_when(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    arn, _ = approved_and_tested(cloud, model, 1, context)

    # WHEN a person promotes it (ModelLifeCycle Production / Approved)
    result = promote(cloud, arn, context)

    # THEN the production endpoint serves that very package, on production's instances
    assert result["status"] == "promoted"
    assert result["endpoint"]["action"] == "created"
    assert production_package(cloud) == arn
    config_name = cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)["EndpointConfigName"]
    assert config_name.startswith(f"{PRODUCTION}-v1-")
    [variant] = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.xlarge", 2)
    # AND who promoted it and when is in the ledger, beside the staging result it relied on
    record = ledger(cloud, f"PACKAGE#{arn}", "STAGE#Production")
    described = cloud.sagemaker.describe_model_package(ModelPackageName=arn)
    assert record is not None and record["promoted_by"] == result["promoted_by"]
    assert record["promoted_by"] == described["LastModifiedBy"].get("UserProfileName")
    assert record["promoted_at"].startswith(described["LastModifiedTime"].strftime("%Y-%m-%dT%H:%M"))
    assert record["stage_description"] == "numbers look right"
    assert record["tested_config"].startswith(f"{ENDPOINT}-v1-")
    deployment = ledger(cloud, f"ENDPOINT#{PRODUCTION}", f"CONFIG#{config_name}")
    assert deployment is not None and deployment["reason"] == "promoted" and deployment["package_arn"] == arn
    # AND staging still serves it too
    assert cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"].startswith(
        f"{ENDPOINT}-v1-"
    )


def test_a_duplicated_promotion_event_deploys_once(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    arn, _ = approved_and_tested(cloud, model, 1, context)
    event = set_stage(cloud, arn, "Production", "Approved")
    first = lambda_handler(event, context)
    second = lambda_handler(json.loads(json.dumps(event)), context)
    assert first == second
    assert first["status"] == "promoted"
    assert len(cloud.sagemaker.list_endpoints(NameContains="production")["Endpoints"]) == 1


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("never-approved", "not-approved"),
        ("never-tested", "not-tested-in-staging"),
        ("failed", "failed-smoke-test"),
        ("rejected-since", "not-approved"),
        ("superseded", "superseded-in-staging"),
    ],
)
def test_production_refuses_a_package_that_did_not_earn_it(
    cloud: Cloud,
    context: Any,
    staged: tuple[LifeCycles, Model],
    caplog: pytest.LogCaptureFixture,
    setup: str,
    reason: str,
) -> None:
    _, model = staged
    if setup == "never-approved":  # registered, never approved (the rule lets its stage change through)
        arn = package(cloud, model, 1)
    elif setup == "never-tested":  # approved and deployed to staging, but its endpoint never came InService
        arn = package(cloud, model, 1)
        lambda_handler(decide(cloud, arn, "Approved"), context)
    elif setup == "failed":
        model.offset = 3.0
        arn, _ = approved_and_tested(cloud, model, 1, context)
    elif setup == "rejected-since":  # passed, then rejected (staging has nothing to roll back to)
        arn, _ = approved_and_tested(cloud, model, 1, context)
        lambda_handler(decide(cloud, arn, "Rejected"), context)
    else:  # passed, then v2 passed too and took its place in staging
        arn, _ = approved_and_tested(cloud, model, 1, context)
        approved_and_tested(cloud, model, 2, context)

    result = promote(cloud, arn, context)

    assert (result["status"], result["reason"]) == ("refused", reason)
    assert production_package(cloud) is None
    assert ledger(cloud, f"PACKAGE#{arn}", "STAGE#Production") is None
    [line] = logged(caplog, "promotion refused")
    assert line["reason"] == reason and line["package_arn"] == arn
    assert any(reason in n["Subject"] for n in cloud.notifications())


@pytest.mark.parametrize("one_instant", [False, True])
def test_the_package_staging_serves_now_may_be_promoted_after_the_one_it_replaced_was_refused(
    cloud: Cloud,
    context: Any,
    staged: tuple[LifeCycles, Model],
    monkeypatch: pytest.MonkeyPatch,
    one_instant: bool,
) -> None:
    from orchestrator import deploy

    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    v2, _ = approved_and_tested(cloud, model, 2, context)
    if one_instant:  # run once per package: another package promoted at the same instant is its own decision
        monkeypatch.setattr(
            deploy, "decided_at", lambda description, fallback: "2030-01-01T00:00:00.000+00:00"
        )
    assert promote(cloud, v1, context)["reason"] == "superseded-in-staging"
    assert promote(cloud, v2, context)["status"] == "promoted"
    assert production_package(cloud) == v2


def test_production_refuses_a_package_whose_staging_is_being_replaced_by_another(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    tested = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]

    # GIVEN staging still serves v1 but is rolling out another config (DescribeEndpoint's
    # PendingDeploymentSummary, as SageMaker shows an update in progress)
    def rolling_out(params: dict[str, Any], moto: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        answer = moto(params)
        if params["EndpointName"] == ENDPOINT:
            answer["PendingDeploymentSummary"] = {"EndpointConfigName": f"{ENDPOINT}-v2-0a1b2c3d"}
        return answer

    cloud.through_moto("DescribeEndpoint", rolling_out)
    assert cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == tested

    result = promote(cloud, v1, context)

    assert (result["status"], result["reason"]) == ("refused", "superseded-in-staging")
    assert result["staging_pending_config"] == f"{ENDPOINT}-v2-0a1b2c3d"
    assert production_package(cloud) is None


@pytest.mark.parametrize(("stage", "status"), [("Production", "PendingApproval"), ("Staging", "Approved")])
def test_a_stage_change_that_is_not_the_promotion_is_ignored(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model], stage: str, status: str
) -> None:
    _, model = staged
    arn, _ = approved_and_tested(cloud, model, 1, context)
    result = lambda_handler(set_stage(cloud, arn, stage, status), context)
    assert (result["status"], result["reason"]) == ("ignored", "not-a-promotion")
    assert production_package(cloud) is None


def test_the_smoke_test_result_the_handler_writes_does_not_loop_back_as_a_decision(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    arn, _ = approved_and_tested(cloud, model, 1, context)
    # the handler's own UpdateModelPackage(ModelLifeCycle Staging/Passed) comes back as an event
    event = load_event("model_package_approved")
    event["detail"].update(
        ModelPackageArn=arn,
        ModelPackageVersion=1,
        UpdatedModelPackageFields=["CustomerMetadataProperties", "ModelLifeCycle"],
    )
    event["resources"] = [arn]
    result = lambda_handler(event, context)
    assert (result["status"], result["reason"]) == ("ignored", "not-a-promotion")


def test_without_a_production_endpoint_a_stage_change_is_not_a_decision(cloud: Cloud, context: Any) -> None:
    stages = LifeCycles()
    stages.install(cloud)
    arn = register_package(cloud, "1" * 40, f"{EXECUTION}run1", "tune-model-001")
    lambda_handler(decide(cloud, arn, "Approved"), context)
    result = lambda_handler(set_stage(cloud, arn, "Production", "Approved"), context)
    assert (result["status"], result["reason"]) == ("ignored", "approval-unchanged")


def test_rejecting_the_package_production_serves_rolls_production_back_to_the_one_it_served_before(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    promote(cloud, v1, context)
    v2, _ = approved_and_tested(cloud, model, 2, context)
    promote(cloud, v2, context)
    v3 = package(cloud, model, 3)  # approved later, never promoted: production must not roll back to it
    lambda_handler(decide(cloud, v3, "Approved"), context)
    assert production_package(cloud) == v2

    result = lambda_handler(decide(cloud, v2, "Rejected"), context)

    assert result["production"]["status"] == "rolled-back"
    assert production_package(cloud) == v1
    deployment = ledger(
        cloud,
        f"ENDPOINT#{PRODUCTION}",
        f"CONFIG#{cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)['EndpointConfigName']}",
    )
    assert deployment is not None and deployment["reason"] == "rollback-from-v2"


def test_settings_refuse_a_production_endpoint_that_is_the_staging_one_or_without_an_endpoint() -> None:
    from orchestrator.errors import SettingsError

    with pytest.raises(SettingsError, match="must differ from ENDPOINT_NAME"):
        load_settings(DeploySettings, ENVIRONMENT | {"PRODUCTION_ENDPOINT_NAME": ENDPOINT})
    with pytest.raises(SettingsError, match="needs DEPLOY_TARGET endpoint or both"):
        load_settings(
            DeploySettings, ENVIRONMENT | {"PRODUCTION_ENDPOINT_NAME": PRODUCTION, "DEPLOY_TARGET": "batch"}
        )
    production = load_settings(DeploySettings, ENVIRONMENT | {"PRODUCTION_ENDPOINT_NAME": PRODUCTION})
    assert production.staged and production.for_production().endpoint_name == PRODUCTION
    assert not production.for_production().staged
    assert production.for_production().model_package_group_name == GROUP


# --- A/B in production ---------------------------------------------------------------------------------
@pytest.fixture
def ab(monkeypatch: pytest.MonkeyPatch, staged: tuple[LifeCycles, Model]) -> tuple[LifeCycles, Model]:
    monkeypatch.setenv("PRODUCTION_STRATEGY", "ab")
    monkeypatch.setenv("CANDIDATE_TRAFFIC_PERCENT", "25")
    reset_caches()
    return staged


def production_variants(cloud: Cloud) -> dict[str, tuple[str, float]]:
    """Production's variants: name -> (package, initial weight)."""
    endpoint = cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)
    config = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    found = {}
    for variant in config["ProductionVariants"]:
        model = cloud.sagemaker.describe_model(ModelName=variant["ModelName"])
        found[variant["VariantName"]] = (
            model["Containers"][0]["ModelPackageName"],
            variant["InitialVariantWeight"],
        )
    return found


def in_ab_test(cloud: Cloud, model: Model, context: Any) -> tuple[str, str]:
    """v1 in production, then v2 promoted beside it."""
    v1, _ = approved_and_tested(cloud, model, 1, context)
    promote(cloud, v1, context)
    v2, _ = approved_and_tested(cloud, model, 2, context)
    assert promote(cloud, v2, context)["status"] == "promoted"
    return v1, v2


def end_test(cloud: Cloud, arn: str, command: str, context: Any) -> dict[str, Any]:
    return lambda_handler(set_stage(cloud, arn, "Production", command, "variants compared"), context)


def test_an_ab_promotion_puts_the_candidate_beside_production_with_its_share(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    _, model = ab
    # the first promotion has nothing to test against: it takes production alone
    v1, _ = approved_and_tested(cloud, model, 1, context)
    promote(cloud, v1, context)
    assert production_variants(cloud) == {"AllTraffic": (v1, 1.0)}

    v2, _ = approved_and_tested(cloud, model, 2, context)
    promote(cloud, v2, context)

    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}
    test = ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB")
    assert test is not None
    assert (test["live_package_arn"], test["candidate_package_arn"]) == (v1, v2)
    assert test["weights"] == {"Live": "0.75", "Candidate": "0.25"}
    assert test["kind"] == "ab-test"
    config = cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)["EndpointConfigName"]
    assert test["endpoint_config_name"] == config


@pytest.mark.parametrize(("command", "kept"), [("Promoted", 2), ("RolledBack", 1)])
def test_ending_an_ab_test_leaves_one_variant_and_records_the_decision_with_the_variants_metrics(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], command: str, kept: int
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    before = cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)["EndpointConfigName"]
    # what SageMaker measured per variant meanwhile (AWS/SageMaker, EndpointName + VariantName)
    watch = cloud.apis.session.client("cloudwatch")
    for variant, calls, errors, latency in (("Live", 30, 0, 900.0), ("Candidate", 10, 1, 700.0)):
        dims = [{"Name": "EndpointName", "Value": PRODUCTION}, {"Name": "VariantName", "Value": variant}]
        watch.put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": dims, "Value": float(calls)},
                {"MetricName": "Invocation5XXErrors", "Dimensions": dims, "Value": float(errors)},
                {"MetricName": "ModelLatency", "Dimensions": dims, "Value": latency, "Unit": "Microseconds"},
            ],
        )

    result = end_test(cloud, v2, command, context)

    assert result["status"] == ("ab-promoted" if command == "Promoted" else "ab-rolled-back")
    winner = v2 if kept == 2 else v1
    assert production_variants(cloud) == {"AllTraffic": (winner, 1.0)}
    after = cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)["EndpointConfigName"]
    assert after != before
    assert ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB") is None
    assert result["variant_metrics"]["Live"]["Invocations"] == 30.0
    assert result["variant_metrics"]["Candidate"]["Invocation5XXErrors"] == 1.0
    assert result["variant_metrics"]["Candidate"]["ModelLatency"] == 700.0
    record = ledger(cloud, f"PACKAGE#{v2}", f"STAGE#Production#{command}")
    assert record is not None and record["kept_package_arn"] == winner
    assert record["decided_by"] == result["decided_by"] and record["decided_by"]
    # a duplicate of the event does nothing more
    assert end_test_again(cloud, v2, context) == result


def end_test_again(cloud: Cloud, arn: str, context: Any) -> dict[str, Any]:
    """The last stage event of `arn` delivered again (EventBridge: at least once)."""
    described = cloud.sagemaker.describe_model_package(ModelPackageName=arn)
    event = load_event("model_package_approved")
    event["id"] = "a-redelivered-event"
    event["resources"] = [arn]
    event["detail"].update(
        ModelPackageArn=arn,
        ModelPackageVersion=int(arn.rsplit("/", 1)[-1]),
        ModelApprovalStatus=described["ModelApprovalStatus"],
        UpdatedModelPackageFields=["ModelLifeCycle"],
    )
    return lambda_handler(event, context)


def test_only_the_candidate_under_test_ends_an_ab_test(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], caplog: pytest.LogCaptureFixture
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    result = end_test(cloud, v1, "Promoted", context)  # the Live package, not the candidate
    assert (result["status"], result["reason"], result["ab_candidate"]) == (
        "refused",
        "not-the-ab-candidate",
        v2,
    )
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}
    [line] = logged(caplog, "promotion refused")
    assert line["reason"] == "not-the-ab-candidate"


def test_rejecting_the_candidate_during_an_ab_test_leaves_the_live_variant_alone(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    result = lambda_handler(decide(cloud, v2, "Rejected"), context)
    assert result["production"]["status"] == "rolled-back"
    assert production_variants(cloud) == {"AllTraffic": (v1, 1.0)}
    assert ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB") is None


# --- the evidence and the refusals, word for word -------------------------------------------------------
def test_variant_metrics_asks_cloudwatch_for_whole_minutes_and_sums_or_averages() -> None:
    import boto3
    from botocore.stub import Stubber

    from orchestrator.promote import variant_metrics

    client = boto3.client("cloudwatch", region_name="us-east-1")
    since = datetime(2026, 12, 1, 10, 3, 27, 500000, tzinfo=UTC)
    now = datetime(2026, 12, 1, 10, 41, 5, 250000, tzinfo=UTC)
    start, end = datetime(2026, 12, 1, 10, 3, tzinfo=UTC), datetime(2026, 12, 1, 10, 42, tzinfo=UTC)
    answers = {
        ("Live", "Invocations"): [5.0, 7.0],
        ("Live", "Invocation4XXErrors"): [1.0],
        ("Live", "Invocation5XXErrors"): [],
        ("Live", "ModelLatency"): [100.0, 250.25],
        ("Candidate", "Invocations"): [3.0],
        ("Candidate", "Invocation4XXErrors"): [],
        ("Candidate", "Invocation5XXErrors"): [2.0],
        ("Candidate", "ModelLatency"): [],
    }
    statistic_of = {
        "Invocations": "Sum",
        "Invocation4XXErrors": "Sum",
        "Invocation5XXErrors": "Sum",
        "ModelLatency": "Average",
    }
    with Stubber(client) as stub:
        for (variant, metric), values in answers.items():
            statistic = statistic_of[metric]
            stub.add_response(
                "get_metric_statistics",
                {"Datapoints": [{statistic: value, "Timestamp": start} for value in values]},
                {
                    "Namespace": "AWS/SageMaker",
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "EndpointName", "Value": PRODUCTION},
                        {"Name": "VariantName", "Value": variant},
                    ],
                    "StartTime": start,
                    "EndTime": end,
                    "Period": 39 * 60,
                    "Statistics": [statistic],
                },
            )
        found = variant_metrics(PRODUCTION, ["Live", "Candidate"], since, client, now=now)
        stub.assert_no_pending_responses()
    assert found == {
        "Live": {
            "Invocations": 12.0,
            "Invocation4XXErrors": 1.0,
            "Invocation5XXErrors": 0.0,
            "ModelLatency": 175.1,
        },
        "Candidate": {
            "Invocations": 3.0,
            "Invocation4XXErrors": 0.0,
            "Invocation5XXErrors": 2.0,
            "ModelLatency": None,
        },
    }


def test_a_refusal_is_answered_logged_counted_and_notified_word_for_word(
    cloud: Cloud,
    context: Any,
    staged: tuple[LifeCycles, Model],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.unit.test_track_details import body_and_details, metrics_emitted

    _, model = staged
    arn = package(cloud, model, 1)  # never approved
    capsys.readouterr()
    result = promote(cloud, arn, context)
    assert result == {
        "status": "refused",
        "reason": "not-approved",
        "package_arn": arn,
        "approval_status": "PendingManualApproval",
    }
    [line] = logged(caplog, "promotion refused", "WARNING")
    assert (line["reason"], line["package_arn"], line["approval_status"]) == (
        "not-approved",
        arn,
        "PendingManualApproval",
    )
    assert metrics_emitted(capsys)["PromotionsRefused"] == 1
    [notification] = cloud.notifications()
    assert notification["Subject"] == "Promotion to production refused: not-approved"
    assert body_and_details(notification) == (
        f"Package {arn} was not deployed to production (not-approved).",
        {"package_arn": arn, "reason": "not-approved"},
    )


@pytest.mark.parametrize(
    ("body", "prediction"),
    [
        (b"23.5\n", 23.5),
        (b"23.5,1.0\n7\n", 23.5),  # the first value of the first line
        (b"  23.5  \n", 23.5),
        (b"", None),  # nothing answered
        (b"nan\n", None),  # not a number a regression can be scored on
        (b"inf\n", None),
        (b"\xff23.5\n", None),  # not UTF-8: unreadable, not a crash
        (b"twenty\n", None),
    ],
)
def test_a_prediction_is_the_first_finite_value_of_the_answer(body: bytes, prediction: float | None) -> None:
    from orchestrator.promote import _prediction

    assert _prediction(body) == prediction


def test_an_answer_that_is_no_number_counts_as_an_error_not_as_a_perfect_prediction() -> None:
    settings = load_settings(
        DeploySettings, ENVIRONMENT | {"SMOKE_TEST_MAX_RMSE": "2", "SMOKE_TEST_MAX_ERROR_RATE": "1"}
    )

    class Runtime:
        def invoke_endpoint(self, **params: Any) -> dict[str, Any]:
            answer = b"nan\n" if params["Body"] == b"1" else b"2.5\n"
            return {"Body": StreamingBody(io.BytesIO(answer), len(answer))}

    from orchestrator.domain import PackageLineage

    pkg = PackageLineage("arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1", "g", 1, "Approved", "")
    result = smoke_test(pkg, ENDPOINT, "config", [("1", 1.0), ("2", 2.0)], settings, Runtime())
    assert (result.errors, result.rmse) == (1, 0.5)


def test_the_stage_description_says_what_was_measured_and_why_it_failed() -> None:
    from orchestrator.promote import SmokeResult

    passed = SmokeResult("arn", "ep", "ep-v1-abc", 20, 0, 0.0, 11.2345, 2.3312, True, (), "t")
    assert (
        passed.description() == "smoke test on ep-v1-abc: 20 rows, 0 errors, p95 11.23 ms, RMSE 2.331; passed"
    )
    failed = SmokeResult("arn", "ep", "ep-v1-abc", 20, 2, 0.1, None, None, False, ("a", "b"), "t")
    assert failed.description() == (
        "smoke test on ep-v1-abc: 20 rows, 2 errors, p95 n/a ms, RMSE n/a; failed: a; b"
    )
    assert (
        len(SmokeResult("arn", "ep", "c", 1, 1, 1.0, None, None, False, ("x" * 2000,), "t").description())
        == 1024
    )


def test_no_datapoints_at_all_is_no_traffic() -> None:
    import boto3
    from botocore.stub import ANY, Stubber

    from orchestrator.promote import variant_metrics

    client = boto3.client("cloudwatch", region_name="us-east-1")
    with Stubber(client) as stub:
        for _ in range(4):
            stub.add_response("get_metric_statistics", {}, {
                "Namespace": ANY, "MetricName": ANY, "Dimensions": ANY, "StartTime": ANY, "EndTime": ANY,
                "Period": ANY, "Statistics": ANY,
            })  # fmt: skip
        found = variant_metrics(PRODUCTION, ["Live"], datetime(2026, 12, 1, 10, 0, tzinfo=UTC), client)
    assert found == {
        "Live": {
            "Invocations": 0.0,
            "Invocation4XXErrors": 0.0,
            "Invocation5XXErrors": 0.0,
            "ModelLatency": None,
        }
    }


def test_refusals_carry_what_the_person_needs_to_know(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    model.offset = 3.0
    v1, _ = approved_and_tested(cloud, model, 1, context)
    tested = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    failed = promote(cloud, v1, context)
    assert (failed["tested_config"], failed["failures"]) == (tested, ["RMSE 3 > 1.0"])
    model.offset = 0.5
    v2, _ = approved_and_tested(cloud, model, 2, context)
    now = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    v1_record = ledger(cloud, f"PACKAGE#{v1}", "STAGE#Staging")
    assert v1_record is not None
    # v1's record is patched to a pass, to reach the check after it: staging has moved on to v2
    import boto3

    boto3.client("dynamodb").update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"PACKAGE#{v1}"}, "sk": {"S": "STAGE#Staging"}},
        UpdateExpression="SET passed = :yes",
        ExpressionAttributeValues={":yes": {"BOOL": True}},
    )
    superseded = promote(cloud, v1, context)
    assert superseded == {
        "status": "refused",
        "reason": "superseded-in-staging",
        "package_arn": v1,
        "tested_config": tested,
        "staging_config": now,
        "staging_pending_config": None,
    }
    assert v2 != v1


# --- ending an A/B test: every refusal, and the records word for word (from deploy's mutation survivors) --
def test_an_ab_end_is_recorded_logged_and_counted_word_for_word(
    cloud: Cloud,
    context: Any,
    ab: tuple[LifeCycles, Model],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from orchestrator.adapters.ledger import Ledger
    from tests.unit.test_track_details import metrics_emitted

    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    capsys.readouterr()
    result = end_test(cloud, v2, "Promoted", context)
    assert set(result) == {"status", "package_arn", "decided_by", "variant_metrics", "endpoint"}
    assert (result["status"], result["package_arn"]) == ("ab-promoted", v2)
    assert result["endpoint"]["endpoint_name"] == PRODUCTION
    expected = {
        "action": "ab-promoted",
        "candidate_package_arn": v2,
        "live_package_arn": v1,
        "kept_package_arn": v2,
        "decided_by": result["decided_by"],
        "variant_metrics": result["variant_metrics"],
    }
    events = [
        item
        for item in Ledger(TABLE).partition(f"ENDPOINT#{PRODUCTION}")
        if item["sk"].startswith("EVENT#") and "kept_package_arn" in item
    ]
    [event] = events
    assert {k: event[k] for k in expected} == expected and event["kind"] == "event"
    assert event["decided_at"]
    stage = ledger(cloud, f"PACKAGE#{v2}", "STAGE#Production#Promoted")
    assert stage is not None and (stage["kind"], stage["stage"]) == ("stage", "Production")
    assert {k: stage[k] for k in expected} == expected and stage["decided_at"] == event["decided_at"]
    [line] = logged(caplog, "A/B test ended", "INFO")
    assert line["endpoint_name"] == PRODUCTION
    assert {
        k: line[k] for k in ("action", "candidate_package_arn", "live_package_arn", "kept_package_arn")
    } == {k: expected[k] for k in ("action", "candidate_package_arn", "live_package_arn", "kept_package_arn")}
    assert metrics_emitted(capsys)["ABTestsEnded"] == 1


def test_rolling_back_to_a_live_package_that_is_no_longer_approved_is_refused(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], caplog: pytest.LogCaptureFixture
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    # the Live package rejected meanwhile (its own event not delivered yet)
    cloud.sagemaker.update_model_package(ModelPackageArn=v1, ModelApprovalStatus="Rejected")
    result = end_test(cloud, v2, "RolledBack", context)
    assert (result["status"], result["reason"], result["package_to_keep"]) == ("refused", "not-approved", v1)
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}
    [line] = logged(caplog, "promotion refused")
    assert (line["reason"], line["package_to_keep"]) == ("not-approved", v1)
    [note] = [n for n in cloud.notifications() if "not-approved" in n.get("Subject", "")]
    assert v2 in note["Message"]


def test_an_ab_end_while_production_is_held_or_updating_is_refused_and_releases_the_lease(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    from orchestrator.adapters.ledger import Ledger
    from tests.unit.fakes import moto_sagemaker

    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    pk = f"ENDPOINT#{PRODUCTION}"
    # another invocation holds production
    assert Ledger(TABLE).acquire_lease(pk, "another-invocation", 300)
    held = end_test(cloud, v2, "Promoted", context)
    assert (held["status"], held["reason"], held["package_arn"]) == (
        "refused",
        "production-busy",
        v2,
    ) and "endpoint_status" not in held
    Ledger(TABLE).release_lease(pk, "another-invocation")
    # production is updating
    moto_sagemaker().endpoints[PRODUCTION].endpoint_status = "Updating"
    updating = end_test(cloud, v2, "RolledBack", context)
    assert (updating["reason"], updating["endpoint_status"], updating["package_arn"]) == (
        "production-busy",
        "UPDATING",
        v2,
    )
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}
    assert Ledger(TABLE).acquire_lease(pk, "someone-else", 60)  # the refused invocation let go
    Ledger(TABLE).release_lease(pk, "someone-else")
    # a refusal is not kept for later: the same command, set again (a new LastModifiedTime), is carried out
    moto_sagemaker().endpoints[PRODUCTION].endpoint_status = "InService"
    assert end_test(cloud, v2, "RolledBack", context)["status"] == "ab-rolled-back"
    assert production_variants(cloud) == {"AllTraffic": (v1, 1.0)}


def test_an_ab_end_older_than_the_last_decision_is_superseded(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], caplog: pytest.LogCaptureFixture
) -> None:
    from orchestrator.adapters.ledger import Ledger

    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    Ledger(TABLE).put(
        f"ENDPOINT#{PRODUCTION}",
        "LAST_DECISION",
        kind="last-decision",
        package_arn=v1,
        approval_status="Approved",
        decided_at="2999-01-01T00:00:00+00:00",
        event_id="a-later-decision",
    )
    result = end_test(cloud, v2, "Promoted", context)
    assert result == {
        "action": "none",
        "reason": "superseded-by-a-later-decision",
        "endpoint_name": PRODUCTION,
    }
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}
    [line] = logged(caplog, "A/B decision superseded by a later one", "WARNING")
    assert line["package_arn"] == v2


def test_production_rolls_back_to_the_newest_package_it_served_before_not_the_oldest(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    served = []
    for n in (1, 2, 3):
        arn, _ = approved_and_tested(cloud, model, n, context)
        promote(cloud, arn, context)
        served.append(arn)
    _v1, v2, v3 = served
    assert production_package(cloud) == v3
    result = lambda_handler(decide(cloud, v3, "Rejected"), context)
    assert result["production"]["status"] == "rolled-back"
    assert production_package(cloud) == v2  # the newest before v3, of two candidates


# --- helpers of the word-for-word tests below ---------------------------------------------------------
def describe_without_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """DescribeModelPackage answers without LastModifiedTime (optional in its output, botocore's model)."""
    from orchestrator.adapters.sagemaker import SageMakerAdapter

    describe = SageMakerAdapter.describe_model_package

    def without_time(self: Any, arn: str) -> Any:
        found = describe(self, arn)
        return None if found is None else {k: v for k, v in found.items() if k != "LastModifiedTime"}

    monkeypatch.setattr(SageMakerAdapter, "describe_model_package", without_time)


def lease_spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    """Every (pk, owner, seconds) a lease is asked for, from now on."""
    from orchestrator.adapters.ledger import Ledger

    acquire = Ledger.acquire_lease
    leases: list[tuple[str, str, int]] = []

    def spy(self: Any, pk: str, owner: str, seconds: int) -> bool:
        leases.append((pk, owner, seconds))
        return bool(acquire(self, pk, owner, seconds))

    monkeypatch.setattr(Ledger, "acquire_lease", spy)
    return leases


def decided_at_of(cloud: Cloud, arn: str) -> str:
    """The package's LastModifiedTime as the handler records a decision's time (UTC, milliseconds)."""
    modified = cloud.sagemaker.describe_model_package(ModelPackageName=arn)["LastModifiedTime"]
    return str(modified.astimezone(UTC).isoformat(timespec="milliseconds"))


def assert_decided(cloud: Cloud, arn: str, at: str, event_id: str, served: str, reason: str) -> None:
    """Production's last decision is `arn`'s, word for word, and its deployment of `served` carries its
    time."""
    last = ledger(cloud, f"ENDPOINT#{PRODUCTION}", "LAST_DECISION")
    assert last is not None
    assert {k: last[k] for k in ("kind", "package_arn", "approval_status", "decided_at", "event_id")} == {
        "kind": "last-decision",
        "package_arn": arn,
        "approval_status": "Approved",
        "decided_at": at,
        "event_id": event_id,
    }
    config = cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)["EndpointConfigName"]
    deployment = ledger(cloud, f"ENDPOINT#{PRODUCTION}", f"CONFIG#{config}")
    assert deployment is not None
    assert (deployment["package_arn"], deployment["reason"], deployment["decided_at"]) == (served, reason, at)


# --- ending an A/B test: the decision it records, and what it is run once for -----------------------------
def test_an_ab_end_records_its_decision_and_the_deployment_decided_at_the_packages_time(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    event = set_stage(cloud, v2, "Production", "RolledBack", "the candidate is slower")
    at = decided_at_of(cloud, v2)
    assert lambda_handler(event, context)["status"] == "ab-rolled-back"
    assert_decided(cloud, v2, at, event["id"], served=v1, reason="ab-rolled-back")


def test_an_ab_end_without_the_packages_time_is_decided_at_the_events_time(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    # LastModifiedTime is optional in DescribeModelPackage's output (botocore's sagemaker service model)
    _, model = ab
    _, v2 = in_ab_test(cloud, model, context)
    describe_without_time(monkeypatch)
    event = set_stage(cloud, v2, "Production", "Promoted")
    event["time"] = "2030-01-01T10:11:12Z"  # later than the decision that started the test
    assert lambda_handler(event, context)["status"] == "ab-promoted"
    last = ledger(cloud, f"ENDPOINT#{PRODUCTION}", "LAST_DECISION")
    assert last is not None and last["decided_at"] == "2030-01-01T10:11:12.000+00:00"


def test_an_ab_end_holds_production_as_this_invocation_for_the_time_it_has_left(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, model = ab
    _, v2 = in_ab_test(cloud, model, context)
    leases = lease_spy(monkeypatch)
    assert end_test(cloud, v2, "Promoted", context)["status"] == "ab-promoted"
    # the context's request id, and its 60 s left (not LEASE_SECONDS, 330)
    assert (f"ENDPOINT#{PRODUCTION}", context.aws_request_id, 60) in leases


def test_an_ab_end_is_run_once_with_this_invocations_deadline(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    # Powertools idempotency: with the Lambda context registered, the record in progress expires at the
    # invocation's deadline, so a redelivery after a timeout runs it again ("Lambda timeouts")
    import time

    _, model = ab
    _, v2 = in_ab_test(cloud, model, context)
    before_ms = int(time.time() * 1000)
    assert end_test(cloud, v2, "Promoted", context)["status"] == "ab-promoted"
    assert_run_once_until_the_deadline("end_ab_test", before_ms)


def test_a_command_with_no_ab_test_running_is_refused_naming_no_candidate(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model], caplog: pytest.LogCaptureFixture
) -> None:
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    promote(cloud, v1, context)  # blue/green: production serves v1 alone, no test
    result = end_test(cloud, v1, "Promoted", context)
    assert result == {
        "status": "refused",
        "reason": "not-the-ab-candidate",
        "package_arn": v1,
        "ab_candidate": None,
    }
    [line] = logged(caplog, "promotion refused")
    assert (line["package_arn"], line["reason"]) == (v1, "not-the-ab-candidate")


def test_an_ab_end_when_production_is_gone_is_refused_with_no_status(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    _, model = ab
    _, v2 = in_ab_test(cloud, model, context)
    cloud.sagemaker.delete_endpoint(EndpointName=PRODUCTION)
    result = end_test(cloud, v2, "Promoted", context)
    assert (result["status"], result["reason"], result["endpoint_status"]) == (
        "refused",
        "production-busy",
        "",
    )


def test_each_package_and_command_at_one_instant_is_its_own_decision(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    # run once per (package, command, time): another package, or another command, at the same instant is
    # not a repeat of the first
    from orchestrator import deploy
    from orchestrator.adapters.ledger import Ledger

    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    monkeypatch.setattr(deploy, "decided_at", lambda description, fallback: "2030-01-01T00:00:00.000+00:00")
    assert end_test(cloud, v1, "Promoted", context)["reason"] == "not-the-ab-candidate"
    pk = f"ENDPOINT#{PRODUCTION}"
    assert Ledger(TABLE).acquire_lease(pk, "another-invocation", 300)
    assert end_test(cloud, v2, "RolledBack", context)["reason"] == "production-busy"
    Ledger(TABLE).release_lease(pk, "another-invocation")
    assert end_test(cloud, v2, "Promoted", context)["status"] == "ab-promoted"
    assert production_variants(cloud) == {"AllTraffic": (v2, 1.0)}


# --- A/B partners and rollbacks: who takes the traffic -------------------------------------------------
def test_promoting_the_package_production_serves_again_does_not_test_it_against_itself(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    _, model = ab
    v1, _ = approved_and_tested(cloud, model, 1, context)
    promote(cloud, v1, context)
    promote(cloud, v1, context)  # set again (a new LastModifiedTime): a new promotion of the same package
    assert production_variants(cloud) == {"AllTraffic": (v1, 1.0)}
    assert ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB") is None


def test_an_ab_promotion_replaces_a_live_package_rejected_meanwhile(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    _, model = ab
    v1, _ = approved_and_tested(cloud, model, 1, context)
    promote(cloud, v1, context)
    v2, _ = approved_and_tested(cloud, model, 2, context)
    # production's package rejected (its event not delivered yet): there is nothing to test v2 against
    cloud.sagemaker.update_model_package(ModelPackageArn=v1, ModelApprovalStatus="Rejected")
    assert promote(cloud, v2, context)["status"] == "promoted"
    assert production_variants(cloud) == {"AllTraffic": (v2, 1.0)}
    assert ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB") is None


def test_rejecting_the_candidate_gives_all_traffic_to_the_live_variant_not_to_the_last_candidate(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    # v3 promoted during v2's test takes v2's place beside v1; production's history then names v2 as the
    # package served before v3, but the variant beside v3 is v1's
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    v3, _ = approved_and_tested(cloud, model, 3, context)
    promote(cloud, v3, context)
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v3, 0.25)}
    result = lambda_handler(decide(cloud, v3, "Rejected"), context)
    assert result["production"]["status"] == "rolled-back"
    assert production_variants(cloud) == {"AllTraffic": (v1, 1.0)}
    assert v2 != v1


def test_rejecting_the_candidate_when_the_live_package_was_rejected_too_leaves_production_stuck(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    cloud.sagemaker.update_model_package(ModelPackageArn=v1, ModelApprovalStatus="Rejected")  # no event yet
    result = lambda_handler(decide(cloud, v2, "Rejected"), context)
    assert (result["production"]["status"], result["production"]["reason"]) == (
        "stuck",
        "no-approved-package",
    )
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}


def test_production_rolls_back_past_a_package_rejected_since_it_served(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    served = []
    for n in (1, 2, 3):
        arn, _ = approved_and_tested(cloud, model, n, context)
        promote(cloud, arn, context)
        served.append(arn)
    v1, v2, v3 = served
    cloud.sagemaker.update_model_package(ModelPackageArn=v2, ModelApprovalStatus="Rejected")  # no event yet
    result = lambda_handler(decide(cloud, v3, "Rejected"), context)
    assert result["production"]["status"] == "rolled-back"
    assert production_package(cloud) == v1


def test_rejecting_a_package_when_its_endpoint_is_gone_rolls_nothing_back(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    cloud.sagemaker.delete_endpoint(EndpointName=ENDPOINT)
    result = lambda_handler(decide(cloud, v1, "Rejected"), context)
    assert (result["status"], result["action"], result["reason"]) == ("recorded", "none", "not-live")
    assert result["production"]["reason"] == "not-live"


def test_an_ab_start_is_logged_word_for_word(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], caplog: pytest.LogCaptureFixture
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    [line] = logged(caplog, "A/B test started", "INFO")
    assert {
        k: line[k] for k in ("endpoint_name", "live_package_arn", "candidate_package_arn", "candidate_weight")
    } == {
        "endpoint_name": PRODUCTION,
        "live_package_arn": v1,
        "candidate_package_arn": v2,
        "candidate_weight": 0.25,
    }


# --- stage events that are not acted on ----------------------------------------------------------------
def test_a_stage_event_for_a_package_that_does_not_exist_is_ignored_naming_it(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    event = set_stage(cloud, v1, "Production", "Approved")
    missing = v1.rsplit("/", 1)[0] + "/99"
    event["resources"] = [missing]
    event["detail"].update(ModelPackageArn=missing, ModelPackageVersion=99)
    result = lambda_handler(event, context)
    assert result == {"status": "ignored", "reason": "package-not-found", "package_arn": missing}
    assert not cloud.sagemaker.list_endpoints(NameContains=PRODUCTION)["Endpoints"]


def test_a_promotion_whose_event_disagrees_with_the_package_is_ignored_not_refused(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    # SageMaker's own view decides: the event says Approved, the package has been rejected since
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    event = set_stage(cloud, v1, "Production", "Approved")
    cloud.sagemaker.update_model_package(ModelPackageArn=v1, ModelApprovalStatus="Rejected")
    assert lambda_handler(event, context) == {
        "status": "ignored",
        "reason": "status-mismatch",
        "package_arn": v1,
        "event_status": "Approved",
        "actual_status": "Rejected",
    }
    assert not cloud.sagemaker.list_endpoints(NameContains=PRODUCTION)["Endpoints"]


# --- a promotion, word for word (from deploy's mutation survivors) ---------------------------------------
def test_a_promotion_is_recorded_logged_and_counted_word_for_word(
    cloud: Cloud,
    context: Any,
    staged: tuple[LifeCycles, Model],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.unit.test_track_details import metrics_emitted

    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    tested = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    event = set_stage(cloud, v1, "Production", "Approved", "numbers look right")
    at = decided_at_of(cloud, v1)
    by = cloud.sagemaker.describe_model_package(ModelPackageName=v1)["LastModifiedBy"]["UserProfileName"]
    capsys.readouterr()

    result = lambda_handler(event, context)

    assert set(result) == {"status", "package_arn", "promoted_by", "endpoint"}
    assert (result["status"], result["package_arn"], result["promoted_by"]) == ("promoted", v1, by)
    record = ledger(cloud, f"PACKAGE#{v1}", "STAGE#Production")
    assert record is not None
    assert record.pop("recorded_at")
    assert {k: v for k, v in record.items() if k not in ("pk", "sk")} == {
        "kind": "stage",
        "stage": "Production",
        "promoted_by": by,
        "promoted_at": at,
        "stage_description": "numbers look right",
        "tested_config": tested,
        "event_id": event["id"],
    }
    assert_decided(cloud, v1, at, event["id"], served=v1, reason="promoted")
    [line] = logged(caplog, "promotion to production accepted", "INFO")
    assert {k: line[k] for k in ("package_arn", "promoted_by", "promoted_at", "endpoint_name")} == {
        "package_arn": v1,
        "promoted_by": by,
        "promoted_at": at,
        "endpoint_name": PRODUCTION,
    }
    assert metrics_emitted(capsys)["Promotions"] == 1


def test_a_promotion_without_the_packages_time_is_decided_at_the_events_time(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    # LastModifiedTime is optional in DescribeModelPackage's output (botocore's sagemaker service model)
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    describe_without_time(monkeypatch)
    event = set_stage(cloud, v1, "Production", "Approved")
    event["time"] = "2030-01-01T10:11:12Z"
    assert lambda_handler(event, context)["status"] == "promoted"
    record = ledger(cloud, f"PACKAGE#{v1}", "STAGE#Production")
    last = ledger(cloud, f"ENDPOINT#{PRODUCTION}", "LAST_DECISION")
    assert record is not None and record["promoted_at"] == "2030-01-01T10:11:12.000+00:00"
    assert last is not None and last["decided_at"] == "2030-01-01T10:11:12.000+00:00"


def test_a_promotion_holds_production_as_this_invocation_and_runs_once_with_its_deadline(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model], monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    leases = lease_spy(monkeypatch)
    before_ms = int(time.time() * 1000)
    assert promote(cloud, v1, context)["status"] == "promoted"
    assert (f"ENDPOINT#{PRODUCTION}", context.aws_request_id, 60) in leases
    assert_run_once_until_the_deadline("handle_promotion", before_ms)


def test_a_stage_change_that_is_not_a_promotion_is_ignored_saying_what_it_was(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    result = lambda_handler(set_stage(cloud, v1, "Production", "InReview"), context)
    assert result == {
        "status": "ignored",
        "reason": "not-a-promotion",
        "stage": "Production",
        "stage_status": "InReview",
    }
    assert not cloud.sagemaker.list_endpoints(NameContains=PRODUCTION)["Endpoints"]


# --- when staging is back InService: the smoke test's answers, word for word ----------------------------
def test_staging_not_in_service_by_the_time_the_event_is_read_is_not_tested_yet(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    from tests.unit.fakes import moto_sagemaker

    _, model = staged
    arn = package(cloud, model, 1)
    lambda_handler(decide(cloud, arn, "Approved"), context)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "Updating"  # the event is older than this
    assert lambda_handler(in_service(), context)["smoke_test"] == {
        "action": "none",
        "reason": "endpoint-not-in-service",
        "endpoint_status": "UPDATING",
    }
    cloud.sagemaker.delete_endpoint(EndpointName=ENDPOINT)
    assert lambda_handler(in_service(), context)["smoke_test"] == {
        "action": "none",
        "reason": "endpoint-not-in-service",
        "endpoint_status": "",
    }
    assert model.calls == []


@pytest.mark.parametrize(("offset", "passed"), [(0.5, True), (3.0, False)])
def test_a_config_already_tested_is_not_tested_again_and_says_how_it_went(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model], offset: float, passed: bool
) -> None:
    _, model = staged
    model.offset = offset
    approved_and_tested(cloud, model, 1, context)
    calls = len(model.calls)
    assert lambda_handler(in_service(), context)["smoke_test"] == {
        "action": "none",
        "reason": "already-tested",
        "passed": passed,
    }
    assert len(model.calls) == calls


def test_staging_serving_a_package_rejected_since_is_not_tested(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model], caplog: pytest.LogCaptureFixture
) -> None:
    _, model = staged
    arn = package(cloud, model, 1)
    lambda_handler(decide(cloud, arn, "Approved"), context)
    cloud.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")  # no event yet
    assert lambda_handler(in_service(), context)["smoke_test"] == {
        "action": "none",
        "reason": "not-approved",
        "package_arn": arn,
    }
    [line] = logged(caplog, "staging serves a package that is not approved: no smoke test", "INFO")
    assert line["package_arn"] == arn
    assert model.calls == []


def test_staging_serving_a_model_of_no_package_is_not_tested(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    # someone pointed the staging endpoint at a model of their own (no ModelPackageName behind it), named
    # as the stack's are (the function may describe only those)
    cloud.sagemaker.create_model(
        ModelName="mlops-demo-models-v99-hand-made",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/mine",
    )
    cloud.sagemaker.create_endpoint_config(
        EndpointConfigName="mlops-demo-endpoint-v99-hand-made",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "mlops-demo-models-v99-hand-made",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    cloud.sagemaker.create_endpoint(
        EndpointName=ENDPOINT, EndpointConfigName="mlops-demo-endpoint-v99-hand-made"
    )
    assert lambda_handler(in_service(), context)["smoke_test"] == {
        "action": "none",
        "reason": "no-package-behind-config",
        "endpoint_config_name": "mlops-demo-endpoint-v99-hand-made",
    }


def test_a_package_whose_run_is_not_found_fails_its_smoke_test_for_want_of_rows(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    arn = register_package(cloud, f"{7:040x}", f"{EXECUTION}gone00000", "tune-model-007")
    lambda_handler(decide(cloud, arn, "Approved"), context)
    result = lambda_handler(in_service(), context)["smoke_test"]
    assert (result["action"], result["passed"]) == ("smoke-tested", False)
    assert "no held-out rows to test with" in result["failures"]
    assert model.calls == []


def test_rejecting_a_package_waiting_for_an_endpoint_that_is_gone_rolls_nothing_back(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    # v1's approval was kept while staging was being created; the endpoint failed and was deleted; then v1
    # is rejected: the kept decision makes the rejection not moot, and there is no endpoint to roll back
    from orchestrator.adapters.ledger import Ledger

    _, model = staged
    v1 = package(cloud, model, 1)
    Ledger(TABLE).put(
        f"ENDPOINT#{ENDPOINT}",
        "PENDING",
        kind="pending-decision",
        reason="endpoint is CREATING",
        package_arn=v1,
        approval_status="Approved",
        decided_at="2026-01-01T00:00:00.000+00:00",
        event_id="an-earlier-approval",
    )
    result = lambda_handler(decide(cloud, v1, "Rejected"), context)
    assert (result["status"], result["action"], result["reason"]) == ("recorded", "none", "not-live")
    assert ledger(cloud, f"ENDPOINT#{ENDPOINT}", "PENDING") is None  # outdated by the rejection
    assert not cloud.sagemaker.list_endpoints()["Endpoints"]


def test_a_promotion_deferred_while_production_updates_waits_and_a_refused_one_carries_it_out(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    # v2's promotion was kept while production updated; production is back InService, its event not yet
    # read; a promotion of v1 (superseded in staging by v2) is refused, and the kept v2 is carried out
    from tests.unit.fakes import moto_sagemaker

    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    promote(cloud, v1, context)
    v2, _ = approved_and_tested(cloud, model, 2, context)
    moto_sagemaker().endpoints[PRODUCTION].endpoint_status = "Updating"
    deferred = promote(cloud, v2, context)
    assert (deferred["status"], deferred["endpoint"]["action"]) == ("promoted", "deferred")
    assert "resumed" not in deferred  # it is the decision waiting: not resumed while production updates
    pending = ledger(cloud, f"ENDPOINT#{PRODUCTION}", "PENDING")
    assert pending is not None and pending["package_arn"] == v2
    assert production_package(cloud) == v1
    moto_sagemaker().endpoints[PRODUCTION].endpoint_status = "InService"

    result = promote(cloud, v1, context)

    assert (result["status"], result["reason"]) == ("refused", "superseded-in-staging")
    resumed = result["resumed"]
    assert (resumed["package_arn"], resumed["approval_status"]) == (v2, "Approved")
    assert resumed["result"]["endpoint_name"] == PRODUCTION
    assert production_package(cloud) == v2
    assert ledger(cloud, f"ENDPOINT#{PRODUCTION}", "PENDING") is None


def test_a_smoke_test_is_run_once_with_this_invocations_deadline(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    # Powertools idempotency with the Lambda context registered: a smoke test that dies with its
    # invocation is run again by the next InService event after that deadline, not a week later
    import time

    _, model = staged
    before_ms = int(time.time() * 1000)
    _, answer = approved_and_tested(cloud, model, 1, context)
    assert answer["smoke_test"]["action"] == "smoke-tested"
    assert_run_once_until_the_deadline("smoke_test_if_due", before_ms)


# --- the candidate's alarms during an A/B test ------------------------------------------------------------
CANDIDATE_ALARMS = ("mlops-demo-candidate-5xx", "mlops-demo-candidate-latency")


def alarm_change(
    name: str = CANDIDATE_ALARMS[0], state: str = "ALARM", account: str = "123456789012", at: str = ""
) -> dict[str, Any]:
    """AWS's documented alarm state change (tests/aws_examples), for one of this stack's alarms."""
    event = json.loads((ROOT / "tests/aws_examples/cloudwatch_alarm_state_change.json").read_text())
    event["id"] = f"alarm-{name}-{state}-{at}"
    event["account"] = account
    event["resources"] = [f"arn:aws:cloudwatch:us-east-1:{account}:alarm:{name}"]
    event["detail"]["alarmName"] = name
    moment = datetime.fromisoformat(at) if at else datetime.now(UTC)
    stamp = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    event["detail"]["state"].update(value=state, timestamp=stamp)
    return dict(event)


def ab_started_at(cloud: Cloud) -> datetime:
    test = ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB")
    assert test is not None
    return datetime.fromisoformat(str(test["started_at"]))


@pytest.mark.parametrize("name", CANDIDATE_ALARMS)
def test_a_candidate_alarm_rolls_the_candidate_back_decided_by_the_alarm(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN v1 live and v2 the candidate beside it
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    at = ab_started_at(cloud) + timedelta(milliseconds=1)  # the first instant after the test began

    # WHEN one of the candidate's alarms goes to ALARM
    event = alarm_change(name, at=at.isoformat())
    result = lambda_handler(event, context)

    # THEN the candidate leaves production, as the RolledBack command does, decided by the alarm
    assert result["status"] == "ab-rolled-back" and result["package_arn"] == v2
    alarm_arn = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"
    assert result["decided_by"] == alarm_arn
    assert production_variants(cloud) == {"AllTraffic": (v1, 1.0)}
    assert ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB") is None
    record = ledger(cloud, f"PACKAGE#{v2}", "STAGE#Production#RolledBack")
    assert record is not None
    assert (record["kept_package_arn"], record["decided_by"]) == (v1, alarm_arn)
    assert record["decided_at"] == at.isoformat(timespec="milliseconds")
    [line] = logged(caplog, "candidate alarm: rolling the A/B candidate back", "WARNING")
    assert (line["alarm"], line["package_arn"]) == (name, v2)
    # the same state change delivered again rolls back nothing more
    config = cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)["EndpointConfigName"]
    assert lambda_handler(event, context) == result
    assert cloud.sagemaker.describe_endpoint(EndpointName=PRODUCTION)["EndpointConfigName"] == config


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (dict(name="mlops-demo-candidate-5xx-old"), "foreign-alarm"),  # a near miss of the name
        (dict(name="mlops-demo-production-5xx"), "foreign-alarm"),  # production's own guard, not the test's
        (dict(state="OK"), "not-in-alarm"),
        (dict(state="INSUFFICIENT_DATA"), "not-in-alarm"),
        (dict(account="210987654321"), "foreign-account"),
        (
            dict(before=0),
            "alarm-before-ab-test",
        ),  # at the very instant the test began: an earlier candidate's
        (dict(before=60_000), "alarm-before-ab-test"),
    ],
)
def test_other_alarm_changes_leave_the_ab_test_running(
    cloud: Cloud,
    context: Any,
    ab: tuple[LifeCycles, Model],
    change: dict[str, Any],
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    before = change.pop("before", None)
    started = ab_started_at(cloud)
    at = started - timedelta(milliseconds=before) if before is not None else started + timedelta(seconds=5)
    result = lambda_handler(alarm_change(**change, at=at.isoformat()), context)
    assert (result["status"], result["reason"]) == ("ignored", reason)
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}
    assert ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB") is not None
    assert logged(caplog, "event ignored")


def test_a_candidate_alarm_while_production_is_busy_is_retried_not_refused(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    # the alarm stays in ALARM and will not say so again: a refusal would leave the candidate serving, so
    # the event fails and Lambda retries it (then its dead-letter queue, for a replay)
    from orchestrator.adapters.ledger import Ledger
    from orchestrator.errors import EndpointBusyError
    from tests.unit.fakes import moto_sagemaker

    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    pk = f"ENDPOINT#{PRODUCTION}"
    event = alarm_change(at=(ab_started_at(cloud) + timedelta(seconds=1)).isoformat())
    # another invocation holds production
    assert Ledger(TABLE).acquire_lease(pk, "another-invocation", 300)
    with pytest.raises(EndpointBusyError, match="held by another deployment"):
        lambda_handler(event, context)
    Ledger(TABLE).release_lease(pk, "another-invocation")
    # production is updating (a new split being applied)
    moto_sagemaker().endpoints[PRODUCTION].endpoint_status = "Updating"
    with pytest.raises(EndpointBusyError, match="is UPDATING"):
        lambda_handler(event, context)
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}
    assert Ledger(TABLE).acquire_lease(pk, "someone-else", 60)  # the failed invocation let go
    Ledger(TABLE).release_lease(pk, "someone-else")
    # the retry, once production is back in service, rolls the candidate back
    moto_sagemaker().endpoints[PRODUCTION].endpoint_status = "InService"
    assert lambda_handler(event, context)["status"] == "ab-rolled-back"
    assert production_variants(cloud) == {"AllTraffic": (v1, 1.0)}


def test_a_candidate_alarm_with_no_ab_test_running_rolls_nothing_back(
    cloud: Cloud, context: Any, staged: tuple[LifeCycles, Model]
) -> None:
    _, model = staged
    v1, _ = approved_and_tested(cloud, model, 1, context)
    promote(cloud, v1, context)  # blue/green: production serves v1 alone
    result = lambda_handler(alarm_change(), context)
    assert (result["status"], result["reason"], result["endpoint_name"]) == (
        "ignored",
        "no-ab-test",
        PRODUCTION,
    )
    assert production_variants(cloud) == {"AllTraffic": (v1, 1.0)}


def test_a_candidate_alarm_without_a_production_endpoint_is_ignored(cloud: Cloud, context: Any) -> None:
    result = lambda_handler(alarm_change(), context)
    assert (result["status"], result["reason"]) == ("ignored", "no-production-endpoint")


def test_a_candidate_alarm_naming_a_package_that_is_gone_rolls_nothing_back(
    cloud: Cloud, context: Any, ab: tuple[LifeCycles, Model]
) -> None:
    _, model = ab
    v1, v2 = in_ab_test(cloud, model, context)
    gone = v2.replace("/2", "/9")
    test = ledger(cloud, f"ENDPOINT#{PRODUCTION}", "AB")
    assert test is not None
    from orchestrator.adapters.ledger import Ledger

    fields = {k: v for k, v in test.items() if k not in ("pk", "sk")}
    Ledger(TABLE).put(f"ENDPOINT#{PRODUCTION}", "AB", **(fields | {"candidate_package_arn": gone}))
    at = ab_started_at(cloud) + timedelta(seconds=1)
    result = lambda_handler(alarm_change(at=at.isoformat()), context)
    assert (result["status"], result["reason"], result["package_arn"]) == (
        "ignored",
        "package-not-found",
        gone,
    )
    assert production_variants(cloud) == {"Live": (v1, 0.75), "Candidate": (v2, 0.25)}
