"""DeployFunction, precisely: the requests it makes, and what each outcome answers, logs, counts and keeps."""

from __future__ import annotations

import logging
from typing import Any

import boto3
import pytest

from functions.deploy.app import lambda_handler
from orchestrator.adapters.ledger import Ledger, package_pk
from orchestrator.adapters.sagemaker import SageMakerAdapter
from tests.unit.conftest import BUCKET, ENDPOINT, GROUP, TABLE, Cloud, decide, reset_caches
from tests.unit.fakes import moto_sagemaker
from tests.unit.test_deploy import package, serving_package
from tests.unit.test_track_details import body_and_details, log_lines, metrics_emitted


def lines_of(caplog: pytest.LogCaptureFixture, message: str) -> list[tuple[str, dict[str, Any]]]:
    return [(level, fields) for level, text, fields in log_lines(caplog) if text == message]


@pytest.fixture
def batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_TARGET", "batch")
    monkeypatch.setenv(
        "BATCH_OUTPUT_URI", f"s3://{BUCKET}/batch/output/"
    )  # a trailing slash, as people write it
    reset_caches()


def test_a_batch_transform_is_requested_exactly_and_told(
    cloud: Cloud,
    context: Any,
    batch: None,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    arn = package(cloud, 1)
    result = lambda_handler(decide(cloud, arn, "Approved"), context)
    job = result["batch"]["transform_job"]
    output = f"s3://{BUCKET}/batch/output/{job}"
    assert result["batch"] == {"action": "created", "transform_job": job, "output_uri": output}
    described = cloud.sagemaker.describe_transform_job(TransformJobName=job)
    assert described["ModelName"] == f"{GROUP}-v1"
    assert described["TransformOutput"] == {
        "S3OutputPath": output,
        "Accept": "text/csv",
        "AssembleWith": "Line",
    }
    assert described["TransformResources"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    assert lines_of(caplog, "transform job started") == [("INFO", {"transform_job": job, "package_arn": arn})]
    assert metrics_emitted(capsys)["TransformJobsStarted"] == 1
    # AND the same approval again finds the job and says so
    again = lambda_handler(decide(cloud, arn, "Approved"), context)
    assert again["batch"] == {"action": "none", "reason": "transform-job-exists", "transform_job": job}
    assert lines_of(caplog, "transform job exists: nothing to do") == [("INFO", {"transform_job": job})]


def test_a_transform_job_is_named_after_its_input(
    cloud: Cloud, context: Any, batch: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    arn = package(cloud, 1)
    first = lambda_handler(decide(cloud, arn, "Approved"), context)["batch"]["transform_job"]
    monkeypatch.setenv("BATCH_INPUT_URI", f"s3://{BUCKET}/batch/other-input/")
    reset_caches()
    second = lambda_handler(decide(cloud, arn, "Approved", note="again"), context)["batch"]["transform_job"]
    assert first != second


def test_rejecting_the_live_package_with_nothing_to_roll_back_to_is_told_and_answered(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    only = package(cloud, 1)
    lambda_handler(decide(cloud, only, "Approved"), context)
    result = lambda_handler(decide(cloud, only, "Rejected"), context)
    assert result == {
        "status": "stuck",
        "package_arn": only,
        "action": "none",
        "reason": "no-approved-package",
    }
    [*_, notice] = cloud.notifications()
    assert notice["Subject"] == f"Live package {GROUP} v1 rejected; no approved package to roll back to"
    text, details = body_and_details(notice)
    assert text == "The endpoint keeps serving the rejected package until another package is approved."
    assert details == {"package_arn": only, "endpoint_name": ENDPOINT}
    assert serving_package(cloud) == only
    assert lines_of(caplog, "no approved package to roll back to") == [("ERROR", {"package_arn": only})]


def test_a_rollback_is_answered_told_and_counted(
    cloud: Cloud, context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    lambda_handler(decide(cloud, v2, "Approved"), context)
    capsys.readouterr()
    result = lambda_handler(decide(cloud, v2, "Rejected"), context)
    assert set(result) == {"status", "package_arn", "action", "rollback_package_arn", "endpoint"}
    assert (result["status"], result["package_arn"], result["action"]) == ("rolled-back", v2, "rollback")
    assert result["endpoint"]["action"] == "updated"
    [*_, notice] = cloud.notifications()
    assert notice["Subject"] == f"Endpoint rolled back to {GROUP} v1"
    text, details = body_and_details(notice)
    assert text == "Live package v2 was rejected; the endpoint is rolling back to v1."
    assert details == {"rejected_package_arn": v2, "rollback_package_arn": v1, "endpoint_name": ENDPOINT}
    counted = metrics_emitted(capsys)
    assert counted["Rollbacks"] == 1 and counted["EndpointDeployments"] == 1
    # AND the ledger records the rollback deployment under the rejection's decision time
    config = result["endpoint"]["endpoint_config_name"]
    record = Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", f"CONFIG#{config}")
    rejected = Ledger(TABLE).get(package_pk(v2), "PACKAGE")
    assert record is not None and rejected is not None
    assert (record["reason"], record["package_arn"]) == ("rollback-from-v2", v1)
    assert record["decided_at"] == rejected["decided_at"] is not None


def test_a_decision_kept_for_later_is_recorded_logged_and_counted(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "Updating"
    v2 = package(cloud, 2)
    event = decide(cloud, v2, "Approved")
    capsys.readouterr()
    result = lambda_handler(event, context)
    assert result["endpoint"] == {
        "action": "deferred",
        "reason": "endpoint is UPDATING",
        "endpoint_name": ENDPOINT,
    }
    kept = Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", "PENDING")
    assert kept is not None
    assert {k: kept[k] for k in ("kind", "reason", "package_arn", "approval_status", "event_id")} == {
        "kind": "pending-decision",
        "reason": "endpoint is UPDATING",
        "package_arn": v2,
        "approval_status": "Approved",
        "event_id": event["id"],
    }
    assert lines_of(caplog, "decision deferred until the endpoint is in service") == [
        (
            "INFO",
            {
                "endpoint_name": ENDPOINT,
                "package_arn": v2,
                "approval_status": "Approved",
                "reason": "endpoint is UPDATING",
            },
        )
    ]
    assert metrics_emitted(capsys)["DecisionsDeferred"] == 1


def test_an_older_decision_than_the_one_kept_is_dropped_logged_and_counted(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "Updating"
    v2, v3 = package(cloud, 2), package(cloud, 3)
    early, late = decide(cloud, v2, "Approved"), decide(cloud, v3, "Approved")
    lambda_handler(late, context)
    capsys.readouterr()
    result = lambda_handler(early, context)
    assert result["endpoint"] == {
        "action": "none",
        "reason": "superseded-by-a-later-decision",
        "endpoint_name": ENDPOINT,
    }
    assert lines_of(caplog, "decision superseded by a later one") == [
        ("INFO", {"endpoint_name": ENDPOINT, "package_arn": v2, "reason": "endpoint is UPDATING"})
    ]
    assert metrics_emitted(capsys)["DecisionsSuperseded"] == 1
    assert Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", "PENDING")["package_arn"] == v3  # type: ignore[index]


def test_a_decision_older_than_one_carried_out_is_a_warning(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    v2, v3 = package(cloud, 2), package(cloud, 3)
    early, late = decide(cloud, v2, "Approved"), decide(cloud, v3, "Approved")
    lambda_handler(late, context)
    lambda_handler(early, context)
    [(level, fields)] = lines_of(caplog, "decision superseded by a later one already carried out")
    assert level == "WARNING"
    assert (fields["endpoint_name"], fields["package_arn"]) == (ENDPOINT, v2)
    assert fields["decided_at"].startswith("20")


def test_a_deployment_found_live_but_unrecorded_is_recorded_in_full_once(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN v1 deployed, then its record lost (an invocation that died after UpdateEndpoint, before the
    # ledger write: tests/unit/test_half_way_deaths.py runs the death itself)
    caplog.set_level(logging.INFO)
    v1 = package(cloud, 1)
    event = decide(cloud, v1, "Approved")
    config = lambda_handler(event, context)["endpoint"]["endpoint_config_name"]
    config_arn = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config)["EndpointConfigArn"]
    boto3.resource("dynamodb").Table(TABLE).delete_item(
        Key={"pk": f"ENDPOINT#{ENDPOINT}", "sk": f"CONFIG#{config}"}
    )
    caplog.clear()
    # WHEN the package is approved again (a new event: the first one's result is remembered)
    event = decide(cloud, v1, "Approved", note="again")
    result = lambda_handler(event, context)
    # THEN nothing is deployed, and the answer, the log and the ledger say what happened
    assert result["endpoint"] == {
        "action": "none",
        "reason": "already-live",
        "endpoint_name": ENDPOINT,
        "endpoint_config_name": config,
    }
    assert lines_of(caplog, "package already live: nothing to deploy") == [
        ("INFO", {"endpoint_name": ENDPOINT, "endpoint_config": config, "package_arn": v1})
    ]
    assert lines_of(caplog, "deployment recorded late") == [
        ("WARNING", {"endpoint_config": config, "reason": "approved"})
    ]
    record = Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", f"CONFIG#{config}")
    assert record is not None
    assert (
        record["endpoint_name"],
        record["endpoint_config_name"],
        record["package_arn"],
        record["reason"],
    ) == (
        ENDPOINT,
        config,
        v1,
        "approved",
    )
    entities = {cloud.lineage.name_of(arn): e for arn, e in cloud.lineage.entities.items()}
    assert entities[config]["Source"]["SourceUri"] == config_arn  # the config's own ARN, looked up
    # AND a later approval finds the record and writes nothing more
    caplog.clear()
    lambda_handler(decide(cloud, v1, "Approved", note="once more"), context)
    assert lines_of(caplog, "deployment recorded late") == []


def test_an_endpoint_that_turns_busy_under_the_deployment_defers_it_and_says_why(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN v1 live, and the endpoint starting another update between the handler's first look (InService)
    # and the deployment's own (Updating): the second guard, in deploy_to_endpoint
    caplog.set_level(logging.INFO)
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    v2 = package(cloud, 2)
    configs = len(cloud.apis.calls["sagemaker.CreateEndpointConfig"])
    real = SageMakerAdapter.describe_endpoint
    looks: list[str] = []

    def turning_busy(self: SageMakerAdapter, name: str) -> dict[str, Any] | None:
        described = real(self, name)
        looks.append(name)
        if described is not None and len(looks) > 1:
            return {**described, "EndpointStatus": "Updating"}
        return described

    monkeypatch.setattr(SageMakerAdapter, "describe_endpoint", turning_busy)
    # WHEN v2 is approved
    result = lambda_handler(decide(cloud, v2, "Approved"), context)
    # THEN it is deferred with the endpoint's status, logged, and nothing was created or updated
    assert result["endpoint"]["action"] == "deferred"
    assert result["endpoint"]["reason"] == f"endpoint {ENDPOINT} is UPDATING; retry later"
    assert lines_of(caplog, "endpoint busy: deployment deferred") == [
        ("WARNING", {"endpoint_name": ENDPOINT, "endpoint_status": "UPDATING"})
    ]
    assert len(cloud.apis.calls["sagemaker.CreateEndpointConfig"]) == configs
    assert cloud.apis.calls["sagemaker.UpdateEndpoint"] == []


def test_the_endpoint_config_is_requested_exactly_with_data_capture(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN 1 % data capture (the smallest share that captures)
    monkeypatch.setenv("DATA_CAPTURE_PERCENT", "1")
    reset_caches()
    result = lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)["endpoint"]
    config = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=result["endpoint_config_name"])
    # THEN the variant and the capture are exactly these (CreateEndpointConfig, DataCaptureConfig)
    (variant,) = config["ProductionVariants"]
    assert {k: variant[k] for k in ("VariantName", "ModelName", "InstanceType", "InitialInstanceCount")} == {
        "VariantName": "AllTraffic",
        "ModelName": f"{GROUP}-v1",
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": 1,
    }
    assert variant["InitialVariantWeight"] == 1.0
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 1,
        "DestinationS3Uri": f"s3://{BUCKET}/data-capture/{ENDPOINT}",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {
            "CsvContentTypes": ["text/csv"],
            "JsonContentTypes": ["application/json"],
        },
    }
    assert result["model_name"] == f"{GROUP}-v1"


def test_no_capture_at_zero_and_a_capture_change_is_a_new_config_of_the_same_package(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN capture off (0 %): the config has no DataCaptureConfig
    monkeypatch.setenv("DATA_CAPTURE_PERCENT", "0")
    reset_caches()
    v1 = package(cloud, 1)
    first = lambda_handler(decide(cloud, v1, "Approved"), context)["endpoint"]
    config = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=first["endpoint_config_name"])
    assert not config.get("DataCaptureConfig")  # (moto answers an empty one when none was asked for)
    # WHEN capture is turned on and the same package approved again
    monkeypatch.setenv("DATA_CAPTURE_PERCENT", "30")
    reset_caches()
    second = lambda_handler(decide(cloud, v1, "Approved", note="capture on"), context)["endpoint"]
    # THEN the plan differs, so the config does: a new one is rolled out, not "already live"
    assert second["action"] == "updated"
    assert second["endpoint_config_name"] != first["endpoint_config_name"]
    described = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=second["endpoint_config_name"])
    assert described["DataCaptureConfig"]["InitialSamplingPercentage"] == 30


def test_package_of_config_follows_config_model_and_either_container_field(cloud: Cloud) -> None:
    # (CreateModel takes PrimaryContainer or Containers; a model may also serve no package at all)
    from orchestrator.deploy import package_of_config

    sagemaker = cloud.sagemaker
    role = "arn:aws:iam::123456789012:role/sm"
    arn = package(cloud, 1)
    sagemaker.create_model(
        ModelName="primary", ExecutionRoleArn=role, PrimaryContainer={"ModelPackageName": arn}
    )
    sagemaker.create_model(ModelName="listed", ExecutionRoleArn=role, Containers=[{"ModelPackageName": arn}])
    sagemaker.create_model(
        ModelName="no-package",
        ExecutionRoleArn=role,
        PrimaryContainer={"Image": "img", "ModelDataUrl": "s3://b/m"},
    )
    for model in ("primary", "listed", "no-package"):
        sagemaker.create_endpoint_config(
            EndpointConfigName=f"cfg-{model}",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
        )
    adapter = SageMakerAdapter(boto3.client("sagemaker"))
    assert package_of_config(adapter, "cfg-primary") == arn
    assert package_of_config(adapter, "cfg-listed") == arn
    assert package_of_config(adapter, "cfg-no-package") is None
    assert package_of_config(adapter, "no-such-config") is None


def test_deregistering_for_an_instance_type_change_is_logged_and_answered(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from functions.track.app import lambda_handler as track
    from tests.events import load_event

    caplog.set_level(logging.INFO)
    monkeypatch.setenv("AUTOSCALING_MAX_CAPACITY", "4")
    reset_caches()
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    track(load_event("endpoint_in_service"), context)
    monkeypatch.setenv("ENDPOINT_INSTANCE_TYPE", "ml.c5.xlarge")
    reset_caches()
    lambda_handler(decide(cloud, package(cloud, 2), "Approved"), context)
    assert lines_of(caplog, "autoscaling deregistered for an instance type change") == [
        ("INFO", {"endpoint_name": ENDPOINT, "from_type": "ml.m5.large", "to_type": "ml.c5.xlarge"})
    ]


def test_a_kept_rejection_of_a_rollout_that_rolled_back_by_itself_finds_nothing_to_roll_back(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.unit.test_deploy import endpoint_event

    # GIVEN v1 live and v2 rolling out (DescribeEndpoint: v1's config live, v2's pending), and v2 rejected
    # meanwhile: the rejection is kept for when the endpoint is in service
    caplog.set_level(logging.INFO)
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    old_config = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    new_config = lambda_handler(decide(cloud, v2, "Approved"), context)["endpoint"]["endpoint_config_name"]
    endpoint = moto_sagemaker().endpoints[ENDPOINT]
    endpoint.endpoint_config_name, endpoint.endpoint_status = old_config, "Updating"
    rolling = {"on": True}

    def pending(params: dict[str, Any], moto: Any) -> dict[str, Any]:
        extra = {"PendingDeploymentSummary": {"EndpointConfigName": new_config}} if rolling["on"] else {}
        return moto(params) | extra

    cloud.through_moto("DescribeEndpoint", pending)
    assert lambda_handler(decide(cloud, v2, "Rejected"), context)["endpoint"]["action"] == "deferred"
    # WHEN the update rolls itself back (an alarm): v1's config in service, nothing pending
    rolling["on"] = False
    endpoint.endpoint_status = "InService"
    resumed = lambda_handler(endpoint_event(), context)
    # THEN the kept rejection finds v2 not live: nothing to roll back, said and answered
    assert resumed["status"] == "resumed"
    assert resumed["result"] == {
        "status": "recorded",
        "package_arn": v2,
        "action": "none",
        "reason": "not-live",
        "live_package_arn": v1,
    }
    assert lines_of(caplog, "rejected package is not live: nothing to roll back") == [
        ("INFO", {"package_arn": v2, "live": v1})
    ]
    assert serving_package(cloud) == v1


def test_the_batch_output_root_loses_only_its_trailing_slashes(
    cloud: Cloud, context: Any, batch: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a root ending in a letter that a sloppier strip would also eat ("…/outX/" must stay "…/outX")
    monkeypatch.setenv("BATCH_OUTPUT_URI", f"s3://{BUCKET}/outX//")
    reset_caches()
    result = lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)["batch"]
    assert result["output_uri"] == f"s3://{BUCKET}/outX/{result['transform_job']}"


def test_a_failed_endpoint_is_not_updated_and_people_are_told(cloud: Cloud, context: Any) -> None:
    # GIVEN v1 deployed and the endpoint Failed ("A Failed endpoint cannot be updated": UpdateEndpoint)
    lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)
    moto_sagemaker().endpoints[ENDPOINT].endpoint_status = "Failed"
    v2 = package(cloud, 2)
    # WHEN v2 is approved
    result = lambda_handler(decide(cloud, v2, "Approved"), context)
    # THEN nothing is attempted, the answer says why, and people are told what to do
    assert result["endpoint"] == {"action": "none", "reason": "endpoint-failed", "endpoint_name": ENDPOINT}
    assert cloud.apis.calls["sagemaker.UpdateEndpoint"] == []
    [*_, notice] = cloud.notifications()
    assert notice["Subject"] == f"Endpoint {ENDPOINT} is Failed"
    text, details = body_and_details(notice)
    assert text == "A Failed endpoint cannot be updated; delete it and approve again."
    assert details == {"endpoint_name": ENDPOINT, "package_arn": v2}


def test_a_new_deployment_records_its_config_by_the_configs_own_arn(cloud: Cloud, context: Any) -> None:
    result = lambda_handler(decide(cloud, package(cloud, 1), "Approved"), context)["endpoint"]
    config = result["endpoint_config_name"]
    config_arn = cloud.sagemaker.describe_endpoint_config(EndpointConfigName=config)["EndpointConfigArn"]
    entities = {cloud.lineage.name_of(arn): e for arn, e in cloud.lineage.entities.items()}
    assert entities[config]["Source"]["SourceUri"] == config_arn


def test_a_moot_rejection_is_answered_and_logged_exactly(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    v1, v2 = package(cloud, 1), package(cloud, 2)
    lambda_handler(decide(cloud, v1, "Approved"), context)
    result = lambda_handler(decide(cloud, v2, "Rejected"), context)
    assert result == {"status": "recorded", "package_arn": v2, "action": "none", "reason": "not-live"}
    assert lines_of(caplog, "rejected package is not live: nothing to roll back") == [
        ("INFO", {"package_arn": v2})
    ]
