"""DeployFunction: what approving or rejecting a model package does."""

from __future__ import annotations

from typing import Any

import pytest

from functions.deploy.app import lambda_handler
from tests.events import load_event
from tests.unit.conftest import (
    BUCKET,
    ENDPOINT,
    GROUP,
    ROLE,
    Cloud,
    decide,
    logged,
    register_package,
    reset_caches,
)
from tests.unit.fakes import moto_sagemaker

EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-demo-pipeline/execution/"


def package(cloud: Cloud, n: int) -> str:
    return register_package(cloud, f"{n:040x}", f"{EXECUTION}run{n:09d}", f"tune-model-{n:03d}")


def serving_package(cloud: Cloud) -> str:
    endpoint = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    config = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = cloud.sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return str(model["Containers"][0]["ModelPackageName"])


def test_approval_creates_model_config_and_endpoint(cloud: Cloud, context: Any) -> None:
    # GIVEN a registered package
    arn = package(cloud, 1)

    # WHEN a reviewer approves it
    result = lambda_handler(decide(cloud, arn, "Approved"), context)

    # THEN the endpoint exists and serves that package through deterministically named resources
    assert result["endpoint"]["action"] == "created"
    endpoint = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointConfigName"].startswith(f"{ENDPOINT}-v1-")
    assert len(endpoint["EndpointConfigName"]) <= 63
    model = cloud.sagemaker.describe_model(ModelName=f"{GROUP}-v1")
    assert model["Containers"] == [{"ModelPackageName": arn}]
    assert model["ExecutionRoleArn"] == ROLE
    config = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        "AllTraffic",
        "ml.m5.large",
        1,
    )
    assert serving_package(cloud) == arn


def test_data_capture_is_configured_when_asked(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 20 % data capture
    monkeypatch.setenv("DATA_CAPTURE_PERCENT", "20")
    reset_caches()
    arn = package(cloud, 1)
    # WHEN the package is approved
    lambda_handler(decide(cloud, arn, "Approved"), context)
    # THEN the endpoint config captures into the artifact bucket
    endpoint = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    config = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    assert config["DataCaptureConfig"]["InitialSamplingPercentage"] == 20
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{BUCKET}/data-capture/{ENDPOINT}"


def test_second_approval_of_the_live_package_is_a_logged_no_op(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a package that is live on the endpoint
    arn = package(cloud, 1)
    lambda_handler(decide(cloud, arn, "Approved"), context)
    config_before = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]

    # WHEN it is approved again (a new note, so a new state change)
    again = lambda_handler(decide(cloud, arn, "Approved", note="approved again"), context)

    # THEN nothing is redeployed and the log says the package is already live
    assert (again["endpoint"]["action"], again["endpoint"]["reason"]) == ("none", "already-live")
    assert again["endpoint"]["endpoint_config_name"] == config_before
    assert cloud.apis.calls["sagemaker.UpdateEndpoint"] == []
    assert cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == config_before
    assert logged(caplog, "package already live: nothing to deploy")


def test_duplicate_approval_event_deploys_once(cloud: Cloud, context: Any) -> None:
    # GIVEN an approval event that was handled
    arn = package(cloud, 1)
    event = decide(cloud, arn, "Approved")
    first = lambda_handler(event, context)
    # WHEN EventBridge delivers it again
    second = lambda_handler(event, context)
    # THEN the answer is the first deployment's, and one endpoint config exists
    assert second == first
    assert len(cloud.sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 1


@pytest.mark.parametrize(
    ("strategy", "routing"),
    [
        ("all-at-once", {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}),
        (
            "canary",
            {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 300,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
        ),
        (
            "linear",
            {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 300,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 20},
            },
        ),
    ],
)
def test_new_approval_updates_blue_green_with_the_configured_strategy_and_alarms(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, strategy: str, routing: dict[str, Any]
) -> None:
    # GIVEN the endpoint serves v1, and deployments use the configured strategy guarded by two alarms
    monkeypatch.setenv("DEPLOYMENT_STRATEGY", strategy)
    monkeypatch.setenv("ROLLBACK_ALARM_NAMES", "mlops-demo-5xx, mlops-demo-latency")
    reset_caches()
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    v2 = package(cloud, 2)

    # WHEN v2 is approved
    result = lambda_handler(decide(cloud, v2, "Approved"), context)

    # THEN SageMaker was asked for a blue/green update with that traffic shifting and auto-rollback
    assert result["endpoint"]["action"] == "updated"
    [update] = cloud.apis.calls["sagemaker.UpdateEndpoint"]
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing, "TerminationWaitInSeconds": 600},
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": "mlops-demo-5xx"}, {"AlarmName": "mlops-demo-latency"}]
        },
    }
    # AND the endpoint now serves v2
    assert serving_package(cloud) == v2


def endpoint_event(status: str = "IN_SERVICE") -> dict[str, Any]:
    """SageMaker's endpoint state change for our endpoint (events/endpoint_in_service.json)."""
    event = load_event("endpoint_in_service")
    event["detail"]["EndpointStatus"] = status
    return event


def test_decisions_that_arrive_during_a_long_rollout_are_kept_and_the_latest_carried_out(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 is live and a blue/green update keeps the endpoint Updating far longer than Lambda retries
    # an asynchronous event (2 retries, 1 then 2 minutes: Lambda developer guide, invocation-async-retain)
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "Updating"
    v2, v3 = package(cloud, 2), package(cloud, 3)

    # WHEN v2 and then v3 are approved meanwhile, each event delivered twice
    results = []
    for arn in (v2, v3):
        event = decide(cloud, arn, "Approved")
        results += [lambda_handler(event, context), lambda_handler(event, context)]

    # THEN no handler failed (nothing for Lambda to retry and drop), and the endpoint was left alone
    assert [r["endpoint"]["action"] for r in results] == ["deferred"] * 4
    assert cloud.apis.calls["sagemaker.UpdateEndpoint"] == []

    # WHEN the endpoint is back in service (its state change event, delivered twice)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "InService"
    first = lambda_handler(endpoint_event(), context)
    second = lambda_handler(endpoint_event(), context)

    # THEN the later decision, v3, was deployed once; v2 was superseded by it
    assert first["status"] == "resumed" and first["package_arn"] == v3
    assert first["result"]["action"] == "updated"
    assert second == {"status": "nothing-pending", "endpoint_name": ENDPOINT}
    assert len(cloud.apis.calls["sagemaker.UpdateEndpoint"]) == 1
    assert serving_package(cloud) == v3


def test_rejecting_the_package_being_rolled_out_rolls_back_once_it_is_in_service(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 approved and live, then v2 approved and deployed (the update finished in the fake)
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    lambda_handler(decide(cloud, v2, "Approved"), context)
    assert serving_package(cloud) == v2
    # AND a new update is rolling (the endpoint Updating)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "Updating"

    # WHEN v2 is rejected mid-rollout
    result = lambda_handler(decide(cloud, v2, "Rejected"), context)

    # THEN the rejection is kept, not dropped as "not live"
    assert result["endpoint"]["action"] == "deferred"
    # AND once in service, the endpoint rolls back to v1
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "InService"
    resumed = lambda_handler(endpoint_event(), context)
    assert resumed["status"] == "resumed" and resumed["result"]["rollback_package_arn"] == v1
    assert serving_package(cloud) == v1


def test_a_late_event_of_an_earlier_approval_never_undoes_a_later_one(cloud: Cloud, context: Any) -> None:
    # GIVEN v2 and then v3 approved, but v3's event handled first (EventBridge does not keep order)
    v2, v3 = package(cloud, 2), package(cloud, 3)
    early = decide(cloud, v2, "Approved")
    late = decide(cloud, v3, "Approved")
    lambda_handler(late, context)
    assert serving_package(cloud) == v3

    # WHEN v2's approval event arrives afterwards
    result = lambda_handler(early, context)

    # THEN nothing changes: v3, the later decision, keeps serving
    assert result["endpoint"] == {
        "action": "none",
        "reason": "superseded-by-a-later-decision",
        "endpoint_name": ENDPOINT,
    }
    assert serving_package(cloud) == v3


def test_a_decision_waits_while_another_invocation_holds_the_endpoint(cloud: Cloud, context: Any) -> None:
    # GIVEN another invocation holds the endpoint's lease (a conditional write on the ledger)
    from orchestrator.adapters.ledger import Ledger
    from tests.unit.conftest import TABLE

    ledger = Ledger(TABLE)
    assert ledger.acquire_lease(f"ENDPOINT#{ENDPOINT}", "other-invocation", 300)
    v1 = package(cloud, 1)

    # WHEN v1 is approved THEN it is kept, with the reason, and the endpoint not created
    waiting = lambda_handler(decide(cloud, v1, "Approved"), context)["endpoint"]
    assert (waiting["action"], waiting["reason"]) == ("deferred", "another deployment holds the endpoint")
    assert ledger.get(f"ENDPOINT#{ENDPOINT}", "PENDING")["reason"] == "another deployment holds the endpoint"
    assert cloud.sagemaker.list_endpoints()["Endpoints"] == []
    # AND the near miss: the same owner may take its own lease again, another may not
    assert ledger.acquire_lease(f"ENDPOINT#{ENDPOINT}", "other-invocation", 300)
    assert not ledger.acquire_lease(f"ENDPOINT#{ENDPOINT}", "third-invocation", 300)

    # WHEN the holder releases it and its deployment's endpoint event arrives
    ledger.release_lease(f"ENDPOINT#{ENDPOINT}", "other-invocation")
    resumed = lambda_handler(endpoint_event(), context)

    # THEN v1 is deployed
    assert resumed["result"]["action"] == "created"
    assert serving_package(cloud) == v1


def test_an_expired_lease_does_not_block_deployments(cloud: Cloud, context: Any) -> None:
    from orchestrator.adapters.ledger import Ledger
    from tests.unit.conftest import TABLE

    # GIVEN an invocation that died holding the lease, which has expired since
    assert Ledger(TABLE).acquire_lease(f"ENDPOINT#{ENDPOINT}", "dead-invocation", -1)
    # WHEN a package is approved THEN it deploys
    result = lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    assert result["endpoint"]["action"] == "created"


def test_instance_type_change_deregisters_autoscaling_before_the_update(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    from functions.track.app import lambda_handler as track

    # GIVEN v1 live on ml.m5.large and autoscaled (TrackFunction registers it once InService)
    monkeypatch.setenv("AUTOSCALING_MAX_CAPACITY", "4")
    reset_caches()
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    track(load_event("endpoint_in_service"), context)
    autoscaling = boto3.client("application-autoscaling")

    def targets() -> list[dict[str, Any]]:
        return autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]

    assert len(targets()) == 1

    # WHEN v2 is approved with the same instance type THEN scaling stays registered (near miss)
    lambda_handler(decide(cloud, package(cloud, 2), "Approved"), context)
    assert len(targets()) == 1

    # WHEN the stack moves to ml.c5.xlarge and v3 is approved
    monkeypatch.setenv("ENDPOINT_INSTANCE_TYPE", "ml.c5.xlarge")
    reset_caches()
    v3 = package(cloud, 3)
    result = lambda_handler(decide(cloud, v3, "Approved"), context)

    # THEN the variant was deregistered before UpdateEndpoint changed its instance type (SageMaker refuses
    # the update otherwise: developer guide, endpoint-scaling-update), and the update went ahead
    assert result["endpoint"]["action"] == "updated"
    assert targets() == []
    assert serving_package(cloud) == v3
    # AND once InService, TrackFunction registers it again
    back = load_event("endpoint_in_service")
    back["detail"].update(
        EndpointConfigName=result["endpoint"]["endpoint_config_name"],
        LastModifiedTime=back["detail"]["LastModifiedTime"] + 600_000.0,
    )
    track(back, context)
    assert len(targets()) == 1


def test_an_update_that_leaves_the_approval_alone_deploys_nothing(cloud: Cloud, context: Any) -> None:
    # GIVEN v1 approved earlier and v2 approved and live
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    lambda_handler(decide(cloud, v2, "Approved"), context)

    # WHEN someone sets metadata on v1: SageMaker sends the state change with UpdatedModelPackageFields
    # naming what changed (SageMaker developer guide, automating-sagemaker-with-eventbridge)
    cloud.sagemaker.update_model_package(ModelPackageArn=v1, CustomerMetadataProperties={"audited": "yes"})
    event = decide(cloud, v1, "Approved")
    event["detail"]["UpdatedModelPackageFields"] = ["CustomerMetadataProperties"]
    result = lambda_handler(event, context)

    # THEN it is not taken for a new approval: v2 keeps serving
    assert result == {
        "status": "ignored",
        "reason": "approval-unchanged",
        "updated_fields": ["CustomerMetadataProperties"],
    }
    assert serving_package(cloud) == v2
    # AND the near miss: an event that names ModelApprovalStatus is a decision
    event["detail"]["UpdatedModelPackageFields"] = ["ModelApprovalStatus"]
    assert lambda_handler(event, context)["status"] == "deployed"


def test_batch_target_creates_the_transform_job_once(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN batch deployment is configured
    monkeypatch.setenv("DEPLOY_TARGET", "batch")
    reset_caches()
    arn = package(cloud, 1)

    # WHEN the package is approved, and approved again
    first = lambda_handler(decide(cloud, arn, "Approved"), context)
    second = lambda_handler(decide(cloud, arn, "Approved", note="re-approved"), context)

    # THEN one transform job ran over the batch input into its own output prefix; no endpoint exists
    job_name = first["batch"]["transform_job"]
    assert job_name.startswith(f"{GROUP}-v1-")
    job = cloud.sagemaker.describe_transform_job(TransformJobName=job_name)
    assert job["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{BUCKET}/batch/input/"
    assert job["TransformInput"]["ContentType"] == "text/csv"
    assert job["TransformInput"]["SplitType"] == "Line"
    assert job["TransformOutput"]["S3OutputPath"] == f"s3://{BUCKET}/batch/output/{job_name}"
    assert second["batch"] == {"action": "none", "reason": "transform-job-exists", "transform_job": job_name}
    assert len(cloud.sagemaker.list_transform_jobs()["TransformJobSummaries"]) == 1
    assert cloud.sagemaker.list_endpoints()["Endpoints"] == []
    # AND the commit's lineage lists the transform job its model ran
    from orchestrator.adapters.ledger import Ledger
    from orchestrator.lineage import commit_lineage
    from tests.unit.conftest import REPOSITORY, TABLE

    went = commit_lineage(Ledger(TABLE), REPOSITORY, f"{1:040x}")
    assert [job["transform_job"] for job in went["transform_jobs"]] == [job_name]


def test_rejecting_the_live_package_rolls_back_to_the_previous_approved(cloud: Cloud, context: Any) -> None:
    # GIVEN v1 then v2 were approved, and v2 is live
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    lambda_handler(decide(cloud, v2, "Approved"), context)
    assert serving_package(cloud) == v2

    # WHEN v2 is rejected
    result = lambda_handler(decide(cloud, v2, "Rejected", note="drift on segment B"), context)

    # THEN the endpoint is updated back to v1 and people are told
    assert result["status"] == "rolled-back"
    assert result["rollback_package_arn"] == v1
    assert serving_package(cloud) == v1
    subjects = [n["Subject"] for n in cloud.notifications()]
    assert f"Endpoint rolled back to {GROUP} v1" in subjects


def test_rejecting_a_package_that_is_not_live_changes_nothing(cloud: Cloud, context: Any) -> None:
    # GIVEN v1 is live and v2 was never approved
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    # WHEN v2 is rejected
    result = lambda_handler(decide(cloud, v2, "Rejected"), context)
    # THEN v1 keeps serving
    assert result["reason"] == "not-live"
    assert serving_package(cloud) == v1
    assert cloud.apis.calls["sagemaker.UpdateEndpoint"] == []


def test_package_of_a_foreign_group_is_ignored(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an approval event of another team's group
    event = load_event("model_package_approved")
    foreign = "arn:aws:sagemaker:us-east-1:123456789012:model-package/other-team-models/3"
    event["detail"].update(ModelPackageGroupName="other-team-models", ModelPackageArn=foreign)
    # WHEN it arrives THEN it is ignored, logged, and nothing is deployed
    result = lambda_handler(event, context)
    assert (result["status"], result["reason"]) == ("ignored", "foreign-group")
    assert [line["reason"] for line in logged(caplog, "event ignored")] == ["foreign-group"]
    assert cloud.sagemaker.list_models()["Models"] == []


def test_approval_event_from_another_account_is_ignored(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an approved package of ours, and an event about it that claims to come from another account
    arn = package(cloud, 1)
    event = decide(cloud, arn, "Approved")
    event["account"] = "999999999999"
    # WHEN it arrives THEN it is refused, logged, and nothing is deployed
    result = lambda_handler(event, context)
    assert (result["status"], result["reason"]) == ("ignored", "foreign-account")
    assert [line["reason"] for line in logged(caplog, "event ignored")] == ["foreign-account"]
    assert cloud.sagemaker.list_models()["Models"] == []
    assert cloud.sagemaker.list_endpoints()["Endpoints"] == []


def test_both_targets_deploy_the_endpoint_and_run_the_transform(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN deployment to both an endpoint and batch is configured
    monkeypatch.setenv("DEPLOY_TARGET", "both")
    reset_caches()
    arn = package(cloud, 1)
    # WHEN the package is approved
    result = lambda_handler(decide(cloud, arn, "Approved"), context)
    # THEN the endpoint serves it and one transform job ran with it
    assert result["endpoint"]["action"] == "created"
    assert serving_package(cloud) == arn
    [job] = cloud.sagemaker.list_transform_jobs()["TransformJobSummaries"]
    assert job["TransformJobName"] == result["batch"]["transform_job"]


def test_event_saying_approved_for_a_pending_package_is_ignored(cloud: Cloud, context: Any) -> None:
    # GIVEN a package that SageMaker says is still pending
    arn = package(cloud, 1)
    event = load_event("model_package_approved")
    event["detail"].update(ModelPackageArn=arn, ModelPackageVersion=1)
    # WHEN an event claims it was approved
    result = lambda_handler(event, context)
    # THEN nothing is deployed: SageMaker's own record wins
    assert (result["reason"], result["actual_status"]) == ("status-mismatch", "PendingManualApproval")
    assert cloud.sagemaker.list_endpoints()["Endpoints"] == []


def test_pending_and_malformed_package_events_are_ignored(cloud: Cloud, context: Any) -> None:
    # GIVEN a pending-package event, and an approval event whose ARN names another group
    pending = load_event("model_package_pending")
    inconsistent = load_event("model_package_approved")
    inconsistent["detail"]["ModelPackageArn"] = "arn:aws:sagemaker:us-east-1:123456789012:model-package/x/3"
    # WHEN they arrive THEN both are refused without side effects
    assert lambda_handler(pending, context)["reason"] == "not-a-decision"
    refused = lambda_handler(inconsistent, context)
    assert refused["reason"] == "malformed"
    assert "ModelPackageGroupName" in str(refused["errors"])
    assert cloud.sagemaker.list_models()["Models"] == []


def test_a_package_arn_of_another_account_is_refused_even_in_our_accounts_event(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN an event from our account about a package whose ARN names another (the near miss: one digit)
    event = load_event("model_package_approved")
    foreign = f"arn:aws:sagemaker:us-east-1:123456789013:model-package/{GROUP}/1"
    event["resources"] = [foreign]
    event["detail"]["ModelPackageArn"] = foreign
    # WHEN it arrives THEN it is refused before SageMaker is asked anything
    result = deploy_with_calls(cloud, event, context)
    assert (result["status"], result["reason"]) == ("ignored", "foreign-account")
    assert cloud.apis.calls["sagemaker.DescribeModelPackage"] == []


def deploy_with_calls(cloud: Cloud, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Run the handler with DescribeModelPackage recorded (it reaches moto unchanged)."""
    cloud.through_moto("DescribeModelPackage")
    return lambda_handler(event, context)


def test_sagemakers_own_record_of_the_package_decides(cloud: Cloud, context: Any) -> None:
    # GIVEN an approved package of ours, as SageMaker describes it
    arn = package(cloud, 1)
    event = decide(cloud, arn, "Approved")
    changes: dict[str, Any] = {}
    cloud.through_moto("DescribeModelPackage", lambda params, moto: {**moto(params), **changes})
    # WHEN SageMaker's record says the package lives in another account, or is not Completed yet
    changes["ModelPackageArn"] = arn.replace("123456789012", "123456789013")
    assert lambda_handler(event, context)["reason"] == "foreign-account"
    changes.clear()
    changes["ModelPackageStatus"] = "InProgress"
    refused = lambda_handler(event, context)
    # THEN nothing is deployed
    assert (refused["reason"], refused["package_status"]) == ("package-not-completed", "InProgress")
    assert cloud.sagemaker.list_endpoints()["Endpoints"] == []
    # AND the near miss: the same record, Completed and ours, deploys
    changes.clear()
    assert lambda_handler(event, context)["endpoint"]["action"] == "created"


def test_a_rejected_live_package_rolls_back_to_the_newest_other_approved_one(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1, v2 and v3 approved (v3 live), v4 registered and pending, v5 rejected
    v1, v2, v3 = package(cloud, 1), package(cloud, 2), package(cloud, 3)
    for arn in (v1, v2, v3):
        lambda_handler(decide(cloud, arn, "Approved"), context)
    package(cloud, 4)
    v5 = package(cloud, 5)
    cloud.sagemaker.update_model_package(ModelPackageArn=v5, ModelApprovalStatus="Rejected")
    assert serving_package(cloud) == v3
    # WHEN v3 is rejected
    result = lambda_handler(decide(cloud, v3, "Rejected"), context)
    # THEN the endpoint goes back to v2: the newest Approved one (not v1, the oldest; not v4 or v5)
    assert result["rollback_package_arn"] == v2
    assert serving_package(cloud) == v2


def test_two_approvals_at_once_deploy_once_and_the_later_package_wins(cloud: Cloud, context: Any) -> None:
    from orchestrator.adapters.ledger import Ledger
    from tests.unit.conftest import TABLE

    # GIVEN v1 live, then v2 and v3 approved at once: v3's invocation found v2's holding the lease and
    # kept its decision (what a concurrent invocation leaves in the ledger)
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    v2, v3 = package(cloud, 2), package(cloud, 3)
    early, late = decide(cloud, v2, "Approved"), decide(cloud, v3, "Approved")
    ledger = Ledger(TABLE)
    assert ledger.acquire_lease(f"ENDPOINT#{ENDPOINT}", "v2-invocation", 300)
    assert lambda_handler(late, context)["endpoint"]["action"] == "deferred"
    ledger.release_lease(f"ENDPOINT#{ENDPOINT}", "v2-invocation")
    updates_before = len(cloud.apis.calls["sagemaker.UpdateEndpoint"])

    # WHEN v2's invocation carries on
    result = lambda_handler(early, context)

    # THEN v2 is not deployed; the kept v3 is, in the same invocation: one deployment, the later package
    assert result["endpoint"]["reason"] == "superseded-by-a-later-decision"
    assert result["resumed"]["package_arn"] == v3
    assert len(cloud.apis.calls["sagemaker.UpdateEndpoint"]) == updates_before + 1
    assert serving_package(cloud) == v3


def test_a_rejection_of_a_package_never_deployed_does_not_outdate_an_earlier_approval_arriving_late(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 approved, then v2 (never deployed) rejected; the rejection's event is handled first
    v1, v2 = package(cloud, 1), package(cloud, 2)
    approval = decide(cloud, v1, "Approved")
    rejection = decide(cloud, v2, "Rejected")
    assert lambda_handler(rejection, context)["reason"] == "not-live"

    # WHEN v1's approval arrives after it
    result = lambda_handler(approval, context)

    # THEN v1 is deployed: a rejection that asked nothing of the endpoint outdates no approval
    assert result["endpoint"]["action"] == "created"
    assert serving_package(cloud) == v1


def test_a_rejection_of_another_package_does_not_replace_the_decision_kept_for_later(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 live, the endpoint updating, and v2's approval kept for when it is in service
    v1, v2, v3 = package(cloud, 1), package(cloud, 2), package(cloud, 3)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "Updating"
    assert lambda_handler(decide(cloud, v2, "Approved"), context)["endpoint"]["action"] == "deferred"

    # WHEN v3, which never went live, is rejected meanwhile
    assert lambda_handler(decide(cloud, v3, "Rejected"), context)["reason"] == "not-live"

    # THEN v2 is still deployed once the endpoint is in service
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "InService"
    resumed = lambda_handler(endpoint_event(), context)
    assert resumed["package_arn"] == v2 and resumed["result"]["action"] == "updated"
    assert serving_package(cloud) == v2


def test_rejecting_the_package_waiting_to_be_deployed_drops_it(cloud: Cloud, context: Any) -> None:
    # GIVEN v1 live, the endpoint updating, v2's approval kept
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "Updating"
    lambda_handler(decide(cloud, v2, "Approved"), context)

    # WHEN v2 is rejected before the endpoint is back in service (the near miss: v2 is not live)
    result = lambda_handler(decide(cloud, v2, "Rejected"), context)

    # THEN the rejection is kept in place of the approval, and v1 keeps serving
    assert result["endpoint"]["action"] == "deferred"
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "InService"
    lambda_handler(endpoint_event(), context)
    assert serving_package(cloud) == v1


def test_rejecting_the_package_being_rolled_out_is_not_moot_while_it_is_only_pending(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 live and v2's update in progress, as SageMaker describes it: the live config is still v1's,
    # v2's is in PendingDeploymentSummary (DescribeEndpoint, SageMaker API reference)
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    old_config = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    new_config = lambda_handler(decide(cloud, v2, "Approved"), context)["endpoint"]["endpoint_config_name"]
    endpoint = moto_sagemaker().endpoints[ENDPOINT]
    endpoint.endpoint_config_name, endpoint.endpoint_status = old_config, "Updating"

    def pending(params: dict[str, Any], moto: Any) -> dict[str, Any]:
        return moto(params) | {"PendingDeploymentSummary": {"EndpointConfigName": new_config}}

    cloud.through_moto("DescribeEndpoint", pending)

    # WHEN v2 is rejected mid-rollout THEN the rejection is kept for when the endpoint is in service
    assert lambda_handler(decide(cloud, v2, "Rejected"), context)["endpoint"]["action"] == "deferred"


def test_an_approval_and_a_rejection_of_the_same_package_racing_end_with_the_later_decision(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 live; a reviewer approves v2, then rejects it; the events arrive in the other order
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    approval = decide(cloud, v2, "Approved")
    rejection = decide(cloud, v2, "Rejected")

    # WHEN both are handled, the rejection first
    lambda_handler(rejection, context)
    late = lambda_handler(approval, context)

    # THEN SageMaker's own record (Rejected) decides: the late approval deploys nothing, v1 keeps serving
    assert late["status"] == "ignored" and late["reason"] == "status-mismatch"
    assert serving_package(cloud) == v1


def test_rejecting_the_live_package_while_a_newer_one_is_approved_ends_with_the_newer_one(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 live; v2 approved and v1 rejected at about the same time, the rejection handled first
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    approval = decide(cloud, v2, "Approved")
    rejection = decide(cloud, v1, "Rejected")
    rolled = lambda_handler(rejection, context)

    # WHEN v2's approval arrives after it
    late = lambda_handler(approval, context)

    # THEN the rollback went to v2 (the newest other approved package) and the approval changes nothing
    assert rolled["status"] == "rolled-back" and rolled["rollback_package_arn"] == v2
    assert late["endpoint"]["action"] == "none"
    assert serving_package(cloud) == v2
