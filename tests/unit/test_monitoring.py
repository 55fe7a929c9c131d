"""DeployFunction's data-quality monitoring (orchestrator.monitor): captured requests of the endpoint against
the live package's DriftCheckBaselines.ModelDataQuality, Model Monitor's three reports, CloudWatch metrics
and the ledger; one run per scheduled time.

Capture files follow the developer guide (model-monitor-data-capture-endpoint): JSON lines under
<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/, each {"captureData": {"endpointInput": {...},
"endpointOutput": {...}}, "eventMetadata": {"eventId", "inferenceTime"}, "eventVersion": "0"}.
"""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from functions.deploy.app import lambda_handler
from orchestrator import data_quality as dq
from orchestrator.adapters.ledger import Ledger
from tests.iam import resolver
from tests.template.cfn import load_template
from tests.unit.conftest import BUCKET, ENDPOINT, TABLE, Cloud, decide, logged, register_package, reset_caches

EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-demo-pipeline/execution/"
SCHEDULE_ARN = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/mlops-demo-monitor"
AT = "2026-12-07T10:00:00Z"
NAMES = ["CRIM", "RM"]


def monitoring(at: str = AT) -> dict[str, Any]:
    """What Scheduler sends: the template's Input with the context attributes replaced."""
    events = load_template()["Resources"]["DeployFunction"]["Properties"]["Events"]
    text = events["Monitor"]["Properties"]["Input"]
    text = text.replace("<aws.scheduler.scheduled-time>", at).replace(
        "<aws.scheduler.schedule-arn>", SCHEDULE_ARN
    )
    return dict(json.loads(text))


def training_rows(n: int, seed: int = 1, shift: float = 0.0) -> list[list[str]]:
    rng = random.Random(seed)
    return [[f"{rng.uniform(0, 10) + shift:.3f}", f"{rng.uniform(4, 8):.3f}"] for _ in range(n)]


def put_baseline(cloud: Cloud, run: str) -> dict[str, Any]:
    """What the BaselineData step leaves behind, and the package field that points at it."""
    profiles, count = dq.profile_rows(NAMES, training_rows(1000))
    stats = dq.statistics(profiles, count)
    prefix = f"pipelines/{run}/BaselineData/baseline"
    cloud.s3.put_object(Bucket=BUCKET, Key=f"{prefix}/statistics.json", Body=json.dumps(stats).encode())
    limits = json.dumps(dq.constraints(stats)).encode()
    cloud.s3.put_object(Bucket=BUCKET, Key=f"{prefix}/constraints.json", Body=limits)
    return {
        "ModelDataQuality": {
            "Statistics": {
                "ContentType": "application/json",
                "S3Uri": f"s3://{BUCKET}/{prefix}/statistics.json",
            },
            "Constraints": {
                "ContentType": "application/json",
                "S3Uri": f"s3://{BUCKET}/{prefix}/constraints.json",
            },
        }
    }


@pytest.fixture
def capturing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_CAPTURE_PERCENT", "100")
    reset_caches()


def deploy(cloud: Cloud, context: Any, n: int = 1, baseline: bool = True) -> str:
    run = f"run{n:09d}"
    extra = {"DriftCheckBaselines": put_baseline(cloud, run)} if baseline else {}
    arn = register_package(cloud, f"{n:040x}", f"{EXECUTION}{run}", f"tune-model-{n:03d}", **extra)
    lambda_handler(decide(cloud, arn, "Approved"), context)
    return arn


def record(row: list[str], at: datetime, encoding: str = "CSV") -> dict[str, Any]:
    data = ",".join(row)
    if encoding == "BASE64":
        data = base64.b64encode(data.encode()).decode()
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": data,
                "encoding": encoding,
            },
            "endpointOutput": {
                "observedContentType": "text/csv; charset=utf-8",
                "mode": "OUTPUT",
                "data": "21.5",
                "encoding": "CSV",
            },
        },
        "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": at.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "eventVersion": "0",
    }


def capture(cloud: Cloud, records: list[dict[str, Any]], hour: datetime, variant: str = "AllTraffic") -> str:
    """One capture file of the hour, as SageMaker writes it (several records per file)."""
    key = f"data-capture/{ENDPOINT}/{ENDPOINT}/{variant}/{hour:%Y/%m/%d/%H}/{uuid.uuid4()}.jsonl"
    body = "\n".join(json.dumps(r) for r in records) + "\n"
    cloud.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())
    return key


def requests(
    rows: list[list[str]], start: datetime = datetime(2026, 12, 7, 9, 5, tzinfo=UTC)
) -> list[dict[str, Any]]:
    return [record(row, start + timedelta(seconds=10 * i)) for i, row in enumerate(rows)]


NINE = datetime(2026, 12, 7, 9, tzinfo=UTC)


def reports(cloud: Cloud) -> dict[str, Any]:
    listed = cloud.s3.list_objects_v2(Bucket=BUCKET, Prefix="monitoring/").get("Contents", [])
    return {
        item["Key"]: json.loads(cloud.s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read())
        for item in listed
    }


def published() -> list[dict[str, Any]]:
    """Metrics put by anyone but AWS (moto lists its own AWS/S3 storage metrics too)."""
    listed = boto3.client("cloudwatch").list_metrics()["Metrics"]
    return [m for m in listed if not m["Namespace"].startswith("AWS/")]


def datapoints(metric: str, dimensions: list[dict[str, str]] | None = None) -> list[dict[str, Any]]:
    answer = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="mlops-demo/DataQuality",
        MetricName=metric,
        Dimensions=dimensions or [],
        StartTime=datetime(2026, 12, 7, 8, tzinfo=UTC),
        EndTime=datetime(2026, 12, 7, 12, tzinfo=UTC),
        Period=3600,
        Statistics=["Maximum", "SampleCount"],
    )
    return list(answer["Datapoints"])


def test_drifted_requests_give_the_three_reports_the_metrics_and_the_ledger_record(
    cloud: Cloud, context: Any, capturing: None, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the endpoint serving a package with a baseline, and an hour of requests whose CRIM moved up
    package = deploy(cloud, context)
    capture(cloud, requests(training_rows(120, seed=2, shift=6.0)[:60]), NINE)
    capture(cloud, requests(training_rows(120, seed=2, shift=6.0)[60:], NINE.replace(minute=30)), NINE)

    # WHEN the schedule fires at 10:00
    result = lambda_handler(monitoring(), context)

    # THEN the hour's 120 requests were compared with the baseline and CRIM (only) drifted
    [outcome] = result["endpoints"]
    assert (outcome["status"], outcome["records"], outcome["rows"]) == ("drift", 120, 120)
    assert outcome["drifted_features"] == ["CRIM"] and outcome["package"] == package
    # AND Model Monitor's three reports are in the bucket
    prefix = f"monitoring/{ENDPOINT}/2026/12/07/100000"
    found = reports(cloud)
    assert set(found) == {
        f"{prefix}/{n}" for n in ("statistics.json", "constraints.json", "constraint_violations.json")
    }
    assert outcome["report"] == f"s3://{BUCKET}/{prefix}/"
    assert found[f"{prefix}/statistics.json"]["dataset"] == {"item_count": 120}
    assert [f["name"] for f in found[f"{prefix}/statistics.json"]["features"]] == NAMES
    [violation] = found[f"{prefix}/constraint_violations.json"]["violations"]
    assert (violation["feature_name"], violation["constraint_check_type"]) == ("CRIM", "baseline_drift_check")
    assert found[f"{prefix}/constraints.json"]["features"][0]["name"] == "CRIM"
    # AND the metrics: the stack-wide count the drift alarm watches, per endpoint, and per feature
    # (moto 5's GetMetricStatistics without dimensions also counts the dimensioned datapoints; CloudWatch
    # keeps them apart: "each unique combination of dimensions is a separate metric", cloudwatch_concepts)
    drifted = boto3.client("cloudwatch").list_metrics(MetricName="DriftedFeatures")["Metrics"]
    assert sorted(len(m.get("Dimensions", [])) for m in drifted) == [0, 1]
    assert datapoints("DriftedFeatures")[0]["Maximum"] == 1.0
    by_endpoint = [{"Name": "EndpointName", "Value": ENDPOINT}]
    [per_endpoint] = datapoints("DriftedFeatures", by_endpoint)
    assert (per_endpoint["Maximum"], per_endpoint["SampleCount"]) == (1.0, 1.0)
    assert datapoints("DataQualityViolations", by_endpoint)[0]["Maximum"] == 1.0
    assert datapoints("feature_baseline_drift_CRIM", by_endpoint)[0]["Maximum"] > 0.5
    assert datapoints("feature_baseline_drift_RM", by_endpoint)[0]["Maximum"] < 0.2
    # AND the ledger keeps the run, and the latest drift for the retraining it will start
    ledger = Ledger(TABLE)
    kept = ledger.get(f"ENDPOINT#{ENDPOINT}", "MONITORING#2026-12-07T10:00:00+00:00")
    assert kept is not None and kept["drifted_features"] == ["CRIM"] and kept["report"] == outcome["report"]
    pointer = ledger.get("MONITORING", "LATEST-DRIFT")
    assert pointer is not None
    assert (pointer["drifted_features"], pointer["monitored_at"]) == (["CRIM"], "2026-12-07T10:00:00+00:00")
    [line] = logged(caplog, "monitoring: drift")
    assert line["drifted_features"] == ["CRIM"] and line["endpoint"] == ENDPOINT


def test_the_metrics_go_to_the_only_namespace_the_policy_allows(
    cloud: Cloud, context: Any, capturing: None
) -> None:
    # The IAM guard checks action and resource; PutMetricData has no resource, so its namespace condition
    # (cloudwatch:namespace, Service Authorization Reference) is checked here.
    policies = load_template()["Resources"]["DeployFunction"]["Properties"]["Policies"]
    [statement] = [s for s in policies[0]["Statement"] if s["Sid"] == "PutDataQualityMetrics"]
    allowed = resolver().resolve(statement["Condition"]["StringEquals"]["cloudwatch:namespace"])
    deploy(cloud, context)
    capture(cloud, requests(training_rows(50, seed=2)), NINE)
    lambda_handler(monitoring(), context)
    listed = published()
    assert listed and {m["Namespace"] for m in listed} == {allowed}


def test_requests_like_the_training_data_raise_nothing(cloud: Cloud, context: Any, capturing: None) -> None:
    deploy(cloud, context)
    capture(cloud, requests(training_rows(150, seed=3)), NINE)
    [outcome] = lambda_handler(monitoring(), context)["endpoints"]
    assert (outcome["status"], outcome["violations"], outcome["drifted_features"]) == ("ok", 0, [])
    assert datapoints("DriftedFeatures")[0]["Maximum"] == 0.0
    assert Ledger(TABLE).get("MONITORING", "LATEST-DRIFT") is None


def test_only_the_hour_before_the_scheduled_time_is_read(cloud: Cloud, context: Any, capturing: None) -> None:
    deploy(cloud, context)
    shifted = training_rows(60, seed=2, shift=6.0)
    # drifted requests at 08:xx, and (buffered into the 09 file) one at 08:59:59: before the window
    capture(cloud, requests(shifted, datetime(2026, 12, 7, 8, 5, tzinfo=UTC)), NINE.replace(hour=8))
    late = record(shifted[0], datetime(2026, 12, 7, 8, 59, 59, tzinfo=UTC))
    capture(cloud, [late, *requests(training_rows(80, seed=3))], NINE)
    # and requests of 10:xx: after it
    capture(cloud, requests(shifted, datetime(2026, 12, 7, 10, 0, tzinfo=UTC)), NINE.replace(hour=10))
    [outcome] = lambda_handler(monitoring(), context)["endpoints"]
    assert (outcome["status"], outcome["records"]) == ("ok", 80)


def test_every_variant_of_the_endpoint_is_read(cloud: Cloud, context: Any, capturing: None) -> None:
    deploy(cloud, context)
    capture(cloud, requests(training_rows(40, seed=3)), NINE)
    capture(cloud, requests(training_rows(40, seed=4)), NINE, variant="Candidate")  # not a variant here
    [outcome] = lambda_handler(monitoring(), context)["endpoints"]
    assert outcome["records"] == 40  # DescribeEndpoint's variants: AllTraffic only


def test_unreadable_and_base64_records(cloud: Cloud, context: Any, capturing: None) -> None:
    deploy(cloud, context)
    rows = training_rows(40, seed=3)
    encoded = [record(row, NINE.replace(minute=20), encoding="BASE64") for row in rows[:20]]
    broken = record(rows[0], NINE.replace(minute=21))
    broken["captureData"]["endpointInput"]["observedContentType"] = "application/x-npy"
    capture(cloud, [*requests(rows[20:]), *encoded, broken], NINE)
    [outcome] = lambda_handler(monitoring(), context)["endpoints"]
    assert (outcome["records"], outcome["rows"], outcome["unreadable"]) == (41, 40, 1)
    [violation] = reports(cloud)[f"monitoring/{ENDPOINT}/2026/12/07/100000/constraint_violations.json"][
        "violations"
    ]
    assert violation["description"] == "1 captured request(s) could not be read as CSV or JSON rows"


def test_json_requests_are_read_as_rows() -> None:
    from orchestrator.monitor import capture_rows

    def line(data: str, content_type: str = "application/json") -> str:
        return json.dumps(
            {"captureData": {"endpointInput": {"observedContentType": content_type, "data": data}}}
        )

    assert capture_rows(line('{"instances": [[1, 2], [3, null]]}')) == [["1", "2"], ["3", ""]]
    assert capture_rows(line("[1.5, 2]")) == [["1.5", "2"]]
    assert capture_rows(line("[[1], [2]]")) == [["1"], ["2"]]
    assert capture_rows(line('{"instances": "x"}')) is None
    assert capture_rows(line("not json")) is None
    assert capture_rows(line("1,2\n3,4\n", "text/csv")) == [["1", "2"], ["3", "4"]]
    assert capture_rows("{}") is None
    assert capture_rows('{"captureData": {"endpointInput": {"data": "@@", "encoding": "BASE64"}}}') is None


def test_a_repeated_schedule_delivery_monitors_once(cloud: Cloud, context: Any, capturing: None) -> None:
    deploy(cloud, context)
    capture(cloud, requests(training_rows(50, seed=2, shift=6.0)), NINE)
    first = lambda_handler(monitoring(), context)
    again = lambda_handler(monitoring(), context)
    assert first == again
    by_endpoint = [{"Name": "EndpointName", "Value": ENDPOINT}]
    assert datapoints("DriftedFeatures", by_endpoint)[0]["SampleCount"] == 1.0


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("no-endpoint", "no-endpoint"),
        ("capture-off", "capture-off"),
        ("no-baseline", "no-baseline"),
        ("baseline-deleted", "baseline-unreadable"),
        ("baseline-not-json", "baseline-unreadable"),
    ],
)
def test_what_cannot_be_monitored_is_skipped_with_its_reason_and_no_side_effect(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, setup: str, reason: str
) -> None:
    monkeypatch.setenv("DATA_CAPTURE_PERCENT", "0" if setup == "capture-off" else "100")
    reset_caches()
    if setup != "no-endpoint":
        deploy(cloud, context, baseline=setup != "no-baseline")
    statistics_key = "pipelines/run000000001/BaselineData/baseline/statistics.json"
    if setup == "baseline-deleted":
        cloud.s3.delete_object(Bucket=BUCKET, Key=statistics_key)
    if setup == "baseline-not-json":
        cloud.s3.put_object(Bucket=BUCKET, Key=statistics_key, Body=b"<html>")
    capture(cloud, requests(training_rows(50, seed=2, shift=6.0)), NINE)
    [outcome] = lambda_handler(monitoring(), context)["endpoints"]
    assert (outcome["status"], outcome["reason"]) == ("skipped", reason)
    assert reports(cloud) == {}
    assert published() == []


def test_no_request_in_the_window_is_no_data_and_no_metric(
    cloud: Cloud, context: Any, capturing: None
) -> None:
    deploy(cloud, context)
    [outcome] = lambda_handler(monitoring(), context)["endpoints"]
    assert outcome["status"] == "no-data"
    assert published() == []


@pytest.mark.parametrize(
    "request_",
    [
        {"monitoring": {"scheduledTime": "soon"}},
        {"monitoring": {"scheduledTime": AT, "extra": 1}},
        {"monitoring": {}},
        {"monitoring": "now"},
    ],
)
def test_a_malformed_monitoring_request_is_refused_without_a_side_effect(
    cloud: Cloud, context: Any, capturing: None, request_: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    deploy(cloud, context)
    capture(cloud, requests(training_rows(50, seed=2, shift=6.0)), NINE)
    result = lambda_handler(request_, context)
    assert result["status"] == "ignored" and result["reason"] == "malformed"
    assert reports(cloud) == {}
    assert logged(caplog, "event ignored")


def test_monitoring_without_its_namespace_is_refused(
    cloud: Cloud, context: Any, capturing: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(cloud, context)
    monkeypatch.setenv("DATA_QUALITY_NAMESPACE", "")
    reset_caches()
    capture(cloud, requests(training_rows(50, seed=2, shift=6.0)), NINE)
    result = lambda_handler(monitoring(), context)
    assert (result["status"], result["reason"]) == ("ignored", "monitoring-not-configured")
    assert reports(cloud) == {}


def test_the_drift_is_in_the_ledger_before_the_metric_that_raises_the_alarm(
    cloud: Cloud, context: Any, capturing: None
) -> None:
    # The alarm's state change starts a retraining that reads the latest drift from the ledger at once
    # (on the local cloud, within milliseconds): the pointer must be written before the metric is put.
    from orchestrator.monitor import MonitoringDetail, MonitorServices, monitor_endpoint
    from orchestrator.settings import deploy_settings

    deploy(cloud, context)
    capture(cloud, requests(training_rows(60, seed=2, shift=6.0)), NINE)
    real = boto3.client("cloudwatch")
    seen: list[Any] = []

    class Watching:
        def put_metric_data(self, **request: Any) -> Any:
            seen.append(Ledger(TABLE).get("MONITORING", "LATEST-DRIFT"))
            return real.put_metric_data(**request)

    settings = deploy_settings()
    services = MonitorServices.from_settings(settings)
    services = MonitorServices(services.sagemaker, services.s3, services.ledger, Watching())
    detail = MonitoringDetail.model_validate({"scheduledTime": AT})
    assert monitor_endpoint(ENDPOINT, detail, settings, services)["status"] == "drift"
    assert seen and all(pointer is not None and pointer["drifted_features"] == ["CRIM"] for pointer in seen)


def test_a_transient_error_reading_the_baseline_is_raised_for_lambda_to_retry(
    cloud: Cloud, context: Any, capturing: None
) -> None:
    from orchestrator.monitor import MonitoringDetail, MonitorServices, monitor_endpoint
    from orchestrator.settings import deploy_settings
    from tests.unit.fakes import client_error

    deploy(cloud, context)
    capture(cloud, requests(training_rows(60, seed=2, shift=6.0)), NINE)
    settings = deploy_settings()
    real = MonitorServices.from_settings(settings)

    class Throttled:
        client = real.s3.client

        def read_json(self, uri: str) -> Any:
            raise client_error("SlowDown", "Please reduce your request rate.", "GetObject")

    services = MonitorServices(real.sagemaker, Throttled(), real.ledger, real.cloudwatch)  # type: ignore[arg-type]
    detail = MonitoringDetail.model_validate({"scheduledTime": AT})
    with pytest.raises(ClientError):
        monitor_endpoint(ENDPOINT, detail, settings, services)
    assert reports(cloud) == {} and published() == []
