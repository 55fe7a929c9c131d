"""TrackFunction and the lineage queries: what failed runs, endpoint changes and a full loop leave behind."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from functions.deploy.app import lambda_handler as deploy
from functions.start_pipeline.app import lambda_handler as start_pipeline
from functions.track.app import lambda_handler as track
from orchestrator.adapters.ledger import Ledger
from orchestrator.lineage import commit_lineage, endpoint_lineage
from tests.events import load_event
from tests.unit.conftest import (
    ENDPOINT,
    EVALUATION,
    GROUP,
    REPOSITORY,
    TABLE,
    TRAINING_CODE,
    Cloud,
    decide,
    logged,
    register_package,
    reset_caches,
)
from tests.unit.fakes import Expected

EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-demo-pipeline/execution/p4jn9xou8a8s"


def steps_of(cloud: Cloud, execution_arn: str, steps: list[dict[str, Any]]) -> None:
    """SageMaker's ListPipelineExecutionSteps answer for this run (moto lacks the API)."""
    expected = Expected("ListPipelineExecutionSteps")
    expected.add(
        {"PipelineExecutionSteps": steps}, {"PipelineExecutionArn": execution_arn, "SortOrder": "Ascending"}
    )
    cloud.apis.serve("sagemaker", "ListPipelineExecutionSteps", expected)


def test_failed_run_notifies_naming_the_failed_step_and_reason(cloud: Cloud, context: Any) -> None:
    # GIVEN a run whose TuneModel step failed
    steps_of(
        cloud,
        EXECUTION,
        [
            {"StepName": "PreprocessData", "StepStatus": "Succeeded"},
            {
                "StepName": "TuneModel",
                "StepStatus": "Failed",
                "FailureReason": "ClientError: All training jobs failed: val_rmse not found",
            },
        ],
    )
    cloud.apis.serve("sagemaker", "DescribePipelineExecution", lambda p: {"FailureReason": "Step failure"})

    # WHEN SageMaker reports the run Failed
    result = track(load_event("pipeline_execution_failed"), context)

    # THEN the notification names the step and its reason, and the ledger holds the failure
    assert result["failed_steps"] == [
        {"step": "TuneModel", "reason": "ClientError: All training jobs failed: val_rmse not found"}
    ]
    [notification] = cloud.notifications()
    assert notification["Subject"] == "Pipeline run failed at TuneModel"
    assert "val_rmse not found" in notification["Message"]
    item = Ledger(TABLE).get(f"EXECUTION#{EXECUTION}", "EXECUTION")
    assert item is not None and item["status"] == "Failed"


def test_failed_processing_step_is_explained_by_its_jobs_exit_message(cloud: Cloud, context: Any) -> None:
    # GIVEN a run whose PreprocessData step failed: a processing container explains itself in
    # /opt/ml/output/message, which DescribeProcessingJob returns as ExitMessage (sagemaker/latest/dg/
    # byoc-metadata.html); the step's FailureReason does not carry it. moto's DescribeProcessingJob has no
    # ExitMessage, so SageMaker's answer is stubbed with the request it expects.
    job = "pipelines-p4jn9xou8a8s-PreprocessData-Ab12Cd34Ef"
    job_arn = f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{job.lower()}"
    steps_of(
        cloud,
        EXECUTION,
        [
            {
                "StepName": "PreprocessData",
                "StepStatus": "Failed",
                "FailureReason": "AlgorithmError: See job logs for more information",
                "Metadata": {"ProcessingJob": {"Arn": job_arn}},
            }
        ],
    )
    describe = Expected("DescribeProcessingJob")
    describe.add(
        {
            "ProcessingJobName": job.lower(),
            "ProcessingJobStatus": "Failed",
            "ExitMessage": "column 'RM' in housing.csv is not numeric (line 3: 'six')",
            "FailureReason": "AlgorithmError: See job logs for more information",
        },
        {"ProcessingJobName": job.lower()},
    )
    cloud.apis.serve("sagemaker", "DescribeProcessingJob", describe)
    cloud.apis.serve("sagemaker", "DescribePipelineExecution", lambda p: {})

    # WHEN SageMaker reports the run Failed
    result = track(load_event("pipeline_execution_failed"), context)

    # THEN the notification names the bad column, from the job's exit message
    assert result["failed_steps"][0]["exit_message"].startswith("column 'RM'")
    [notification] = cloud.notifications()
    assert "column 'RM' in housing.csv is not numeric" in notification["Message"]
    assert describe.queue == []


def test_redelivered_failure_event_notifies_once(cloud: Cloud, context: Any) -> None:
    # GIVEN a handled failure event
    steps_of(
        cloud, EXECUTION, [{"StepName": "EvaluateModel", "StepStatus": "Failed", "FailureReason": "OOM"}]
    )
    cloud.apis.serve("sagemaker", "DescribePipelineExecution", lambda p: {})
    event = load_event("pipeline_execution_failed")
    track(event, context)
    # WHEN it is delivered again THEN nobody gets a second message
    track(event, context)
    assert len(cloud.notifications()) == 1


def test_several_events_for_one_state_change_notify_once(cloud: Cloud, context: Any) -> None:
    # "SageMaker AI may send multiple events to EventBridge for each state change" (SageMaker developer
    # guide, automating-sagemaker-with-eventbridge): the same change under other event ids
    steps_of(
        cloud, EXECUTION, [{"StepName": "EvaluateModel", "StepStatus": "Failed", "FailureReason": "OOM"}]
    )
    cloud.apis.serve("sagemaker", "DescribePipelineExecution", lambda p: {})
    first = load_event("pipeline_execution_failed")
    second = first | {"id": "6d0e2c1b-0000-4000-8000-00000000beef"}
    track(first, context)
    track(second, context)
    assert len(cloud.notifications()) == 1


def test_the_same_state_reached_again_later_is_a_new_change(cloud: Cloud, context: Any) -> None:
    # GIVEN the endpoint failed, and later failed again (another deployment), with other LastModifiedTimes
    describe = Expected("DescribeEndpoint")
    for _ in range(2):
        describe.add(
            {"EndpointName": ENDPOINT, "FailureReason": "ping health check"}, {"EndpointName": ENDPOINT}
        )
    cloud.apis.serve("sagemaker", "DescribeEndpoint", describe)
    first = load_event("endpoint_failed")
    later = load_event("endpoint_failed")
    later["id"] = "6d0e2c1b-0000-4000-8000-00000000cafe"
    later["detail"]["LastModifiedTime"] = first["detail"]["LastModifiedTime"] + 3_600_000.0
    # WHEN both are handled THEN each failure is told (the near miss of a duplicate)
    track(first, context)
    track(later, context)
    assert len(cloud.notifications()) == 2


def test_event_of_another_pipeline_is_ignored(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a status change of some other pipeline
    event = load_event("pipeline_execution_failed")
    other = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/other"
    event["detail"].update(pipelineArn=other, pipelineExecutionArn=f"{other}/execution/abc")
    # WHEN it arrives THEN it is ignored, with no notification
    assert track(event, context)["reason"] == "foreign-pipeline"
    assert cloud.notifications() == []
    assert logged(caplog, "event ignored")


def test_event_from_another_account_is_ignored(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a failure event of our pipeline that claims to come from another account
    event = load_event("pipeline_execution_failed")
    event["account"] = "999999999999"
    # WHEN it arrives THEN it is ignored: no notification, nothing in the ledger
    assert track(event, context)["reason"] == "foreign-account"
    assert cloud.notifications() == []
    assert boto3.client("dynamodb").scan(TableName=TABLE)["Items"] == []
    assert logged(caplog, "event ignored")


def test_unknown_or_malformed_tracking_events_are_rejected(cloud: Cloud, context: Any) -> None:
    # GIVEN an event of a kind the track handler does not handle, and one missing its status
    odd = load_event("codecommit_push")
    broken = load_event("endpoint_failed")
    del broken["detail"]["EndpointStatus"]
    # WHEN they arrive THEN both are refused as malformed, naming the problem
    assert track(odd, context)["reason"] == "malformed"
    refused = track(broken, context)
    assert refused["reason"] == "malformed" and "EndpointStatus" in str(refused["errors"])
    assert cloud.notifications() == []


def test_endpoint_failure_notifies(cloud: Cloud, context: Any) -> None:
    # GIVEN the endpoint failed; AWS's documented endpoint event carries no FailureReason, DescribeEndpoint
    # does (moto keeps none, so SageMaker's answer is stubbed with the request it expects)
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    describe = Expected("DescribeEndpoint")
    describe.add(
        {"EndpointName": ENDPOINT, "EndpointStatus": "Failed", "FailureReason": reason},
        {"EndpointName": ENDPOINT},
    )
    cloud.apis.serve("sagemaker", "DescribeEndpoint", describe)
    # WHEN SageMaker says so
    event = load_event("endpoint_failed")
    assert "FailureReason" not in event["detail"]
    result = track(event, context)
    # THEN people are told why, and the endpoint's history holds it
    assert result["notified"] == "failed"
    [notification] = cloud.notifications()
    assert ENDPOINT in notification["Subject"]
    assert "did not pass the ping health check" in notification["Message"]
    lineage = endpoint_lineage(Ledger(TABLE), ENDPOINT)
    assert lineage["status"] == "FAILED"
    assert lineage["history"][-1]["failure_reason"] == reason


def test_in_service_on_another_config_than_requested_is_reported_as_rollback(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 is deployed and v2's update was requested
    v1 = register_package(cloud, "a" * 40, EXECUTION, "tune-model-001")
    v2 = register_package(cloud, "b" * 40, EXECUTION, "tune-model-002")
    first = deploy(decide(cloud, v1, "Approved"), context)["endpoint"]["endpoint_config_name"]
    requested = deploy(decide(cloud, v2, "Approved"), context)["endpoint"]["endpoint_config_name"]

    # WHEN the endpoint returns to service on v1's config (the alarms rolled the update back)
    event = load_event("endpoint_in_service")
    event["detail"]["EndpointConfigName"] = first
    result = track(event, context)

    # THEN the rollback is notified, and the lineage says v1 is what serves
    assert result["notified"] == "rolled back"
    assert any("rolled back" in n["Subject"] for n in cloud.notifications())
    lineage = endpoint_lineage(Ledger(TABLE), ENDPOINT)
    assert (lineage["serving_config"], lineage["requested_config"]) == (first, requested)
    assert lineage["serving"]["package_arn"] == v1


def test_in_service_endpoint_gets_autoscaling_when_configured(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN autoscaling up to 4 instances
    monkeypatch.setenv("AUTOSCALING_MAX_CAPACITY", "4")
    reset_caches()
    # WHEN the endpoint comes into service
    track(load_event("endpoint_in_service"), context)
    # THEN its variant scales between 1 and 4 on invocations per instance
    autoscaling = boto3.client("application-autoscaling")
    [target] = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (
        f"endpoint/{ENDPOINT}/variant/AllTraffic",
        1,
        4,
    )
    [policy] = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    metric = policy["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"]
    assert metric["PredefinedMetricType"] == "SageMakerVariantInvocationsPerInstance"


def test_failed_transform_job_notifies_and_is_recorded(cloud: Cloud, context: Any) -> None:
    # GIVEN a transform job of our group failed WHEN SageMaker says so
    result = track(load_event("transform_job_failed"), context)
    # THEN people are told, with the reason
    assert result["transform_job_status"] == "Failed"
    [notification] = cloud.notifications()
    assert "ClientError" in notification["Message"]
    assert Ledger(TABLE).get("TRANSFORM#mlops-demo-models-v3-1f2e3d4c", "TRANSFORM")["status"] == "Failed"  # type: ignore[index]


def test_lineage_answers_both_questions_after_the_whole_loop(cloud: Cloud, context: Any) -> None:
    # GIVEN a push started a run ...
    commit = cloud.repository.commit(TRAINING_CODE)
    event = load_event("codecommit_push")
    event["detail"].update(commitId=commit, event="referenceCreated")
    event["detail"].pop("oldCommitId")
    run = start_pipeline(event, context)["execution_arn"]
    # ... the run succeeded and registered a package ...
    package_arn = register_package(cloud, commit, run, "tune-model-007")
    steps_of(
        cloud,
        run,
        [
            {"StepName": "TuneModel", "StepStatus": "Succeeded"},
            {
                "StepName": "RegisterModel",
                "StepStatus": "Succeeded",
                "Metadata": {"RegisterModel": {"Arn": package_arn}},
            },
        ],
    )
    succeeded = load_event("pipeline_execution_succeeded")
    succeeded["detail"].update(pipelineExecutionArn=run)
    assert track(succeeded, context)["registered_packages"] == [package_arn]
    # ... and a reviewer approved it, which deployed it
    deployed = deploy(decide(cloud, package_arn, "Approved", note="looks good"), context)

    # WHEN someone asks what serves on the endpoint, and where the commit went
    serving = endpoint_lineage(Ledger(TABLE), ENDPOINT)
    went = commit_lineage(Ledger(TABLE), REPOSITORY, commit)

    # THEN the endpoint's chain leads back to the commit: training job, hyper-parameters, metrics, approver
    chain = serving["serving"]
    assert chain["endpoint_config_name"] == deployed["endpoint"]["endpoint_config_name"]
    assert (chain["package_arn"], chain["execution_arn"], chain["commit_id"]) == (package_arn, run, commit)
    assert chain["training_job"] == "tune-model-007"
    assert chain["hyperparameters"] == {"learning_rate": "0.01", "epochs": "20"}
    assert chain["evaluation"] == EVALUATION
    assert chain["approval_description"] == "looks good"
    assert chain["approver"] and chain["decided_at"]
    # AND the commit's partition lists its run, its package and the endpoint it reached
    assert [e["execution_arn"] for e in went["executions"]] == [run]
    assert [p["package_arn"] for p in went["packages"]] == [package_arn]
    assert [(d["endpoint_name"], d["package_arn"]) for d in went["deployments"]] == [(ENDPOINT, package_arn)]
    # AND SageMaker lineage links commit -> run -> package -> deployment -> endpoint config
    run_id = run.rsplit("/", 1)[-1]
    config = chain["endpoint_config_name"]
    assert {
        (f"mlops-demo-commit-{commit}", f"mlops-demo-pipeline-execution-{run_id}", "ContributedTo"),
        (f"mlops-demo-pipeline-execution-{run_id}", f"{GROUP}-v1", "Produced"),
        (f"{GROUP}-v1", f"mlops-demo-deploy-{config}", "ContributedTo"),
        (f"mlops-demo-deploy-{config}", config, "Produced"),
    } <= cloud.lineage.chain()
