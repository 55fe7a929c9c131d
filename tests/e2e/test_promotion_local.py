"""Staged promotion on the local cloud, with the stack's own handlers and rules from template.yaml: the
smoke test runs when staging is InService, and production refuses every package that did not earn it.

One pipeline run trains a model (v1); the other packages are registered beside it with CreateModelPackage,
as a person or another pipeline could, from v1's model: v2 never approved, v3 whose run is not found (no
held-out rows: its smoke test fails), v4 from v1's run (passes).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from tests.clouds import module_cloud

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from compare_variants import compare

ROOT = Path(__file__).resolve().parents[2]
STAGING, PRODUCTION = "mlops-demo-endpoint", "mlops-demo-production"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with module_cloud(
        tmp_path_factory.mktemp("staged-cloud"),
        parameters={
            "MaxTuningJobs": "1",
            "MaxParallelTuningJobs": "1",
            "ProductionStrategy": "ab",
            "CandidateTrafficPercent": "30",
        },
    ) as local:
        local.upload_data(ROOT / "data" / "boston_housing.csv")
        yield local


def settle(cloud: LocalCloud) -> None:
    assert cloud.router is not None
    cloud.aws.wait_for_events()
    assert cloud.router.wait_until_idle(120)


def wait_for_stage(cloud: LocalCloud, arn: str, stage: str, timeout: float = 120) -> dict[str, str]:
    sagemaker = cloud.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        life_cycle = sagemaker.describe_model_package(ModelPackageName=arn).get("ModelLifeCycle") or {}
        if life_cycle.get("Stage") == stage:
            return dict(life_cycle)
        time.sleep(0.2)
    raise AssertionError(f"{arn} never reached {stage}")


def serving(cloud: LocalCloud, endpoint: str) -> str | None:
    sagemaker = cloud.client("sagemaker")
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except sagemaker.exceptions.ClientError:
        return None
    config = sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    model = sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return str(model["Containers"][0]["ModelPackageName"])


def deploy_log(cloud: LocalCloud, message: str) -> list[dict[str, Any]]:
    lines = (cloud.workdir / "logs" / "lambda" / "DeployFunction.log").read_text().splitlines()
    found = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message") == message:
            found.append(record)
    return found


def promote(cloud: LocalCloud, arn: str) -> None:
    cloud.client("sagemaker").update_model_package(
        ModelPackageArn=arn, ModelLifeCycle={"Stage": "Production", "StageStatus": "Approved"}
    )
    settle(cloud)


def approve(cloud: LocalCloud, arn: str) -> None:
    cloud.client("sagemaker").update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")


def register_beside(cloud: LocalCloud, v1: dict[str, Any], generated_by: str) -> str:
    return str(
        cloud.client("sagemaker").create_model_package(
            ModelPackageGroupName=v1["ModelPackageGroupName"],
            InferenceSpecification=v1["InferenceSpecification"],
            ModelMetrics=v1["ModelMetrics"],
            MetadataProperties=v1["MetadataProperties"] | {"GeneratedBy": generated_by},
            ModelApprovalStatus="PendingManualApproval",
        )["ModelPackageArn"]
    )


def staged_then_promoted(cloud: LocalCloud, v1: dict[str, Any]) -> str:
    """A new package of v1's run, approved: it passes its smoke test in staging and is promoted."""
    arn = register_beside(cloud, v1, v1["MetadataProperties"]["GeneratedBy"])
    approve(cloud, arn)
    assert wait_for_stage(cloud, arn, "Staging")["StageStatus"] == "Passed"
    settle(cloud)
    promote(cloud, arn)
    cloud.wait_for_endpoint(PRODUCTION)
    settle(cloud)
    return arn


@pytest.mark.slow
def test_staging_smoke_tests_and_production_takes_only_what_earned_it(cloud: LocalCloud) -> None:
    sagemaker = cloud.client("sagemaker")
    commit = cloud.push(ROOT / "training_code", "Train")
    run = cloud.wait_for_execution(commit, timeout=600)
    assert run["PipelineExecutionStatus"] == "Succeeded"
    [summary] = sagemaker.list_model_packages(ModelPackageGroupName="mlops-demo-models")[
        "ModelPackageSummaryList"
    ]
    v1_arn = summary["ModelPackageArn"]
    v1 = sagemaker.describe_model_package(ModelPackageName=v1_arn)

    # v1 approved: staging serves it, and the smoke test passes on 20 held-out rows of its run
    approve(cloud, v1_arn)
    stage = wait_for_stage(cloud, v1_arn, "Staging")
    assert stage["StageStatus"] == "Passed", stage
    assert "20 rows, 0 errors" in stage["StageDescription"]
    settle(cloud)

    # v2, never approved, promoted: refused
    v2_arn = register_beside(cloud, v1, v1["MetadataProperties"]["GeneratedBy"])
    promote(cloud, v2_arn)
    assert serving(cloud, PRODUCTION) is None
    assert [r["reason"] for r in deploy_log(cloud, "promotion refused")] == ["not-approved"]

    # v3, whose run is not found, approved: staging moves to it and its smoke test fails (no rows)
    v3_arn = register_beside(cloud, v1, v1["MetadataProperties"]["GeneratedBy"][:-12] + "000000000000")
    approve(cloud, v3_arn)
    stage = wait_for_stage(cloud, v3_arn, "Staging")
    assert stage["StageStatus"] == "Failed" and "no held-out rows" in stage["StageDescription"]
    settle(cloud)
    assert serving(cloud, STAGING) == v3_arn
    promote(cloud, v3_arn)
    # and v1, which passed but no longer is what staging serves
    promote(cloud, v1_arn)
    assert serving(cloud, PRODUCTION) is None
    assert [r["reason"] for r in deploy_log(cloud, "promotion refused")] == [
        "not-approved",
        "failed-smoke-test",
        "superseded-in-staging",
    ]

    # v4, from v1's run, approved: passes in staging, and its promotion deploys that very package
    v4_arn = staged_then_promoted(cloud, v1)
    assert serving(cloud, PRODUCTION) == v4_arn
    [accepted] = deploy_log(cloud, "promotion to production accepted")
    assert accepted["package_arn"] == v4_arn and accepted["promoted_by"]
    row = "0.02731,0,7.07,0,0.469,6.421,78.9,4.9671,2,242,17.8,396.9,9.14"
    answer = cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=PRODUCTION,
        ContentType="text/csv",
        Accept="text/csv",
        Body="0.02731,0,7.07,0,0.469,6.421,78.9,4.9671,2,242,17.8,396.9,9.14",
    )
    assert 5 < float(answer["Body"].read().decode().split()[0]) < 50

    # A/B (ProductionStrategy ab): v5, from v1's run, passes staging and is promoted beside v4 with 30 %
    v5_arn = staged_then_promoted(cloud, v1)
    config = sagemaker.describe_endpoint_config(
        EndpointConfigName=sagemaker.describe_endpoint(EndpointName=PRODUCTION)["EndpointConfigName"]
    )
    assert {v["VariantName"]: v["InitialVariantWeight"] for v in config["ProductionVariants"]} == {
        "Live": 0.7,
        "Candidate": 0.3,
    }
    runtime = cloud.client("sagemaker-runtime")

    def variants_serving(count: int) -> set[str]:
        return {
            runtime.invoke_endpoint(EndpointName=PRODUCTION, ContentType="text/csv", Body=row)[
                "InvokedProductionVariant"
            ]
            for _ in range(count)
        }

    assert variants_serving(40) == {"Live", "Candidate"}
    # the split changes with UpdateEndpointWeightsAndCapacities (the ProductionPromoterRole may)
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName=PRODUCTION,
        DesiredWeightsAndCapacities=[
            {"VariantName": "Live", "DesiredWeight": 0.0},
            {"VariantName": "Candidate", "DesiredWeight": 1.0},
        ],
    )
    cloud.wait_for_endpoint(PRODUCTION)
    assert variants_serving(10) == {"Candidate"}
    # tools/compare_variants.py reads what each variant did from CloudWatch, as on AWS
    rows = {row["variant"]: row for row in compare(PRODUCTION, 10, sagemaker, cloud.client("cloudwatch"))}
    assert (rows["Live"]["weight"], rows["Candidate"]["weight"]) == (0.0, 1.0)
    assert rows["Candidate"]["invocations"] >= 10 and rows["Live"]["invocations"] >= 1
    assert rows["Candidate"]["error_rate"] == 0.0 and rows["Candidate"]["model_latency_ms"] > 0

    # the candidate is promoted: one command, one event; it serves alone and the decision is recorded with
    # what each variant did meanwhile
    sagemaker.update_model_package(
        ModelPackageArn=v5_arn, ModelLifeCycle={"Stage": "Production", "StageStatus": "Promoted"}
    )
    settle(cloud)
    cloud.wait_for_endpoint(PRODUCTION)
    settle(cloud)
    assert serving(cloud, PRODUCTION) == v5_arn
    [ended] = deploy_log(cloud, "A/B test ended")
    assert ended["action"] == "ab-promoted" and ended["kept_package_arn"] == v5_arn
    measured = ended["variant_metrics"]
    assert measured["Candidate"]["Invocations"] >= 10 and measured["Live"]["Invocations"] >= 1
    assert measured["Candidate"]["Invocation5XXErrors"] == 0
    assert measured["Candidate"]["ModelLatency"] > 0

    # v6 goes beside v5; its 5XX alarm goes off (SetAlarmState: CloudWatch's way to test an alarm's
    # consumers) and the candidate is rolled back, decided by the alarm
    v6_arn = staged_then_promoted(cloud, v1)
    assert variants_serving(20) == {"Live", "Candidate"}
    errors_alarm = cloud.env["CANDIDATE_ALARM_NAMES"].split(",")[0]
    cloud.client("cloudwatch").set_alarm_state(
        AlarmName=errors_alarm, StateValue="ALARM", StateReason="Threshold Crossed: candidate 5XX errors"
    )
    settle(cloud)
    cloud.wait_for_endpoint(PRODUCTION)
    settle(cloud)
    assert serving(cloud, PRODUCTION) == v5_arn
    assert variants_serving(10) == {"AllTraffic"}
    [_, rolled_back] = deploy_log(cloud, "A/B test ended")
    assert (rolled_back["action"], rolled_back["candidate_package_arn"]) == ("ab-rolled-back", v6_arn)
    assert rolled_back["decided_by"].endswith(f":alarm:{errors_alarm}")


@pytest.mark.slow
def test_the_retraining_schedules_input_retrains_the_head_once_at_a_time(cloud: LocalCloud) -> None:
    # the payload EventBridge Scheduler sends StartPipelineFunction (template: Events.Retrain.Input, with
    # the context attributes filled in), through the Lambda API as Scheduler's invocation reaches it
    client = cloud.client("lambda")
    name = cloud.names["StartPipelineFunction"]

    def fire(at: str) -> dict[str, Any]:
        payload = {"retraining": {"trigger": "schedule", "scheduledTime": at}}
        reply = client.invoke(
            FunctionName=name, InvocationType="RequestResponse", Payload=json.dumps(payload)
        )
        return dict(json.loads(reply["Payload"].read()))

    settle(cloud)
    first = fire("2026-12-07T03:00:00Z")
    assert first["status"] == "started", first
    second = fire("2026-12-14T03:00:00Z")  # the first run is still executing
    assert (second["status"], second["reason"]) == ("skipped", "run-in-progress")
    assert second["executing"] == [first["execution_arn"]]
    executions = cloud.client("sagemaker").list_pipeline_executions(PipelineName="mlops-demo-pipeline")
    assert first["execution_arn"] in [
        e["PipelineExecutionArn"] for e in executions["PipelineExecutionSummaries"]
    ]
    # the run of an unchanged head reads the data again: its new DataVersion makes PreprocessData a cache
    # miss (step caching keys on arguments, not on S3 contents: SageMaker developer guide,
    # pipelines-default-keys), where without it every step would be taken from v1's run
    sagemaker = cloud.client("sagemaker")
    deadline = time.monotonic() + 60
    preprocess: dict[str, Any] = {}
    while time.monotonic() < deadline and "ProcessingJob" not in preprocess.get("Metadata", {}):
        steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=first["execution_arn"])
        preprocess = next(
            (s for s in steps["PipelineExecutionSteps"] if s["StepName"] == "PreprocessData"), {}
        )
        time.sleep(0.2)
    assert "ProcessingJob" in preprocess.get("Metadata", {}), preprocess
    assert "CacheHitResult" not in preprocess
