"""Data-quality monitoring of the endpoints: captured requests against the live package's baseline.

The stack's schedule (EventBridge Scheduler, `MonitorSchedule`) invokes the deploy function with
`{"monitoring": {"scheduledTime": ...}}`; people can invoke it the same way on demand. For each endpoint
(staging, production) whose data capture is on, the monitor reads the requests captured in the hour before
the scheduled time (`<DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl`, developer guide
model-monitor-data-capture-endpoint), compares them with the `DriftCheckBaselines.ModelDataQuality` of the
package the endpoint serves (the pipeline's BaselineData step), writes `statistics.json`, `constraints.json`
and `constraint_violations.json` under `monitoring/<endpoint>/<time>/` in Model Monitor's formats, and puts
the drift distances and violation counts into CloudWatch. The stack's drift alarm watches `DriftedFeatures`;
its state change starts a retraining run (orchestrator.retrain).

Why not a Model Monitor schedule: "Amazon SageMaker Model Monitor is no longer open to new customers"
(developer guide, model-monitor-byoc-cloudwatch); a new account could not deploy this stack with one. The
files and the metric names are Model Monitor's, so the reports read the same.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from orchestrator import data_quality
from orchestrator.adapters import error_code, is_permanent
from orchestrator.adapters.ledger import Ledger, endpoint_pk
from orchestrator.adapters.s3 import S3Adapter, split_s3_uri
from orchestrator.adapters.sagemaker import SageMakerAdapter
from orchestrator.clients import aws_client
from orchestrator.deploy import package_of_config
from orchestrator.idempotency import run_once
from orchestrator.intake import ignore, refusing_permanent_errors
from orchestrator.observability import logger, metrics
from orchestrator.settings import DeploySettings

WINDOW = timedelta(hours=1)
MAX_RECORDS = 20_000  # captured requests read per endpoint and run (the newest are not preferred)
MAX_BYTES = 64 * 1024 * 1024  # bytes of capture files read per endpoint and run
METRIC_BATCH = 20  # PutMetricData's MetricData limit in older regions' documentation: stay under it
DRIFT_POINTER = ("MONITORING", "LATEST-DRIFT")  # the ledger item retraining reads the drifted features from


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class MonitoringDetail(_Strict):
    scheduled_time: datetime = Field(alias="scheduledTime")
    schedule_arn: str | None = Field(default=None, alias="scheduleArn", max_length=2048)


class MonitoringRequest(_Strict):
    """{"monitoring": {"scheduledTime": ..., "scheduleArn": ...}}"""

    monitoring: MonitoringDetail


def capture_rows(line: str) -> list[list[str]] | None:
    """The request rows of one captured record (None when the record is unreadable): endpointInput's data,
    CSV or JSON (`{"instances": [[...]]}` or a list of rows), plain or BASE64-encoded."""
    try:
        record = json.loads(line)
        given = record["captureData"]["endpointInput"]
        data = str(given["data"])
        if str(given.get("encoding", "")).upper() == "BASE64":
            data = base64.b64decode(data, validate=True).decode("utf-8")
        content_type = str(given.get("observedContentType", "")).lower()
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if "csv" in content_type:
        return data_quality.csv_rows(data)
    if "json" in content_type:
        try:
            body = json.loads(data)
        except ValueError:
            return None
        rows = body.get("instances") if isinstance(body, dict) else body
        if isinstance(rows, list) and rows and not isinstance(rows[0], list):
            rows = [rows]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            return None
        return [["" if v is None else str(v) for v in row] for row in rows]
    return None


def _inference_time(line: str) -> datetime | None:
    try:
        text = str(json.loads(line)["eventMetadata"]["inferenceTime"])
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CaptureReader:
    """Captured rows of one endpoint in [start, end), within the MAX_RECORDS and MAX_BYTES budget."""

    def __init__(self, s3: Any, bucket: str, prefix: str, start: datetime, end: datetime) -> None:
        self.s3, self.bucket, self.prefix, self.start, self.end = s3, bucket, prefix, start, end
        self.rows: list[list[str]] = []
        self.records = 0
        self.unreadable = 0
        self.truncated = False
        self._bytes = 0

    def hours(self) -> list[datetime]:
        first = self.start.replace(minute=0, second=0, microsecond=0)
        found = []
        while first < self.end:
            found.append(first)
            first += timedelta(hours=1)
        return found

    def read(self, variants: list[str]) -> CaptureReader:
        for variant in variants:
            for hour in self.hours():
                prefix = f"{self.prefix}/{variant}/{hour:%Y/%m/%d/%H}/"
                for page in self.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix
                ):
                    for item in page.get("Contents", []):
                        if not self._take(str(item["Key"]), int(item.get("Size", 0))):
                            return self
        return self

    def _take(self, key: str, size: int) -> bool:
        if self._bytes + size > MAX_BYTES or self.records >= MAX_RECORDS:
            self.truncated = True
            return False
        self._bytes += size
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8", "replace")
        for line in body.splitlines():
            if not line.strip():
                continue
            moment = _inference_time(line)
            if moment is not None and not (self.start <= moment < self.end):
                continue
            if self.records >= MAX_RECORDS:
                self.truncated = True
                return False
            self.records += 1
            rows = capture_rows(line)
            if rows is None:
                self.unreadable += 1
            else:
                self.rows.extend(rows)
        return True


def baseline_of(package: dict[str, Any]) -> tuple[str, str] | None:
    """(statistics URI, constraints URI) of a package's data-quality drift-check baselines."""
    quality = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    statistics = (quality.get("Statistics") or {}).get("S3Uri")
    constraints = (quality.get("Constraints") or {}).get("S3Uri")
    return (str(statistics), str(constraints)) if statistics and constraints else None


def report_prefix(endpoint: str, when: datetime) -> str:
    return f"monitoring/{endpoint}/{when.astimezone(UTC):%Y/%m/%d/%H%M%S}"


def feature_metric_name(prefix: str, feature: str) -> str:
    """Model Monitor's metric names (feature_baseline_drift_<feature>), within CloudWatch's 255 characters."""
    return f"{prefix}{feature}"[:255]


def put_metrics(
    cloudwatch: Any, namespace: str, endpoint: str, when: datetime, result: dict[str, Any]
) -> None:
    """Per-feature drift distances by endpoint, and the violation counts by endpoint and for the stack
    (the drift alarm's metric has no dimension, so that drift on either endpoint raises it)."""
    by_endpoint = [{"Name": "EndpointName", "Value": endpoint}]
    data: list[dict[str, Any]] = [
        {
            "MetricName": feature_metric_name("feature_baseline_drift_", name),
            "Dimensions": by_endpoint,
            "Timestamp": when,
            "Value": distance,
            "Unit": "None",
        }
        for name, distance in sorted(result["distances"].items())
    ]
    for dimensions in (by_endpoint, []):
        data.append(
            {
                "MetricName": "DriftedFeatures",
                "Dimensions": dimensions,
                "Timestamp": when,
                "Value": float(len(result["drifted"])),
                "Unit": "Count",
            }
        )
        data.append(
            {
                "MetricName": "DataQualityViolations",
                "Dimensions": dimensions,
                "Timestamp": when,
                "Value": float(len(result["violations"])),
                "Unit": "Count",
            }
        )
    for start in range(0, len(data), METRIC_BATCH):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + METRIC_BATCH])


def evaluate(
    baseline: dict[str, Any], limits: dict[str, Any], rows: list[list[str]], unreadable: int
) -> dict[str, Any]:
    """Statistics, violations and drift distances of captured rows against a baseline."""
    names = [f["name"] for f in baseline.get("features", [])]
    profiles, count = data_quality.profile_rows(names, rows)
    found = data_quality.column_violations(len(names), (len(r) for r in rows))
    found += data_quality.violations(baseline, limits, profiles)
    if unreadable:
        found.append(
            {
                "feature_name": "",
                "constraint_check_type": "data_type_check",
                "description": f"{unreadable} captured request(s) could not be read as CSV or JSON rows",
            }
        )
    return {
        "statistics": data_quality.statistics(profiles, count),
        "violations": found,
        "distances": data_quality.drift_distances(baseline, limits, profiles),
        "drifted": sorted(
            v["feature_name"] for v in found if v["constraint_check_type"] == "baseline_drift_check"
        ),
        "rows": count,
    }


def monitor_endpoint(
    endpoint: str, detail: MonitoringDetail, settings: DeploySettings, services: MonitorServices
) -> dict[str, Any]:
    """One endpoint's monitoring run; its outcome (skipped with the reason, or the violations found)."""
    described = services.sagemaker.describe_endpoint(endpoint)
    if not described:
        return {"endpoint": endpoint, "status": "skipped", "reason": "no-endpoint"}
    capture = described.get("DataCaptureConfig") or {}
    if not capture.get("EnableCapture") or not capture.get("DestinationS3Uri"):
        return {"endpoint": endpoint, "status": "skipped", "reason": "capture-off"}
    package_arn = package_of_config(services.sagemaker, str(described["EndpointConfigName"]))
    package = services.sagemaker.describe_model_package(package_arn) if package_arn else None
    uris = baseline_of(package or {})
    if uris is None:
        return {"endpoint": endpoint, "status": "skipped", "reason": "no-baseline", "package": package_arn}
    try:
        baseline, limits = (services.s3.read_json(uri) for uri in uris)
    except (ClientError, ValueError) as exc:  # gone, or not JSON
        if (
            isinstance(exc, ClientError)
            and not is_permanent(exc)
            and error_code(exc) not in {"NoSuchKey", "404"}
        ):
            raise
        logger.error("monitoring: baseline unreadable", endpoint=endpoint, baseline=uris, error=str(exc))
        return {
            "endpoint": endpoint,
            "status": "skipped",
            "reason": "baseline-unreadable",
            "package": package_arn,
        }
    end = detail.scheduled_time.astimezone(UTC)
    bucket, key = split_s3_uri(str(capture["DestinationS3Uri"]).rstrip("/"))
    variants = [str(v["VariantName"]) for v in described.get("ProductionVariants", [])]
    reader = CaptureReader(services.s3.client, bucket, f"{key}/{endpoint}".lstrip("/"), end - WINDOW, end)
    reader.read(variants)
    if not reader.records:
        logger.info("monitoring: no captured request in the window", endpoint=endpoint, end=end.isoformat())
        return {"endpoint": endpoint, "status": "no-data", "package": package_arn}
    result = evaluate(baseline, limits, reader.rows, reader.unreadable)
    prefix = report_prefix(endpoint, end)
    reports = {
        "statistics.json": result["statistics"],
        "constraints.json": limits,
        "constraint_violations.json": {"violations": result["violations"]},
    }
    for name, document in reports.items():
        services.s3.client.put_object(
            Bucket=settings.artifact_bucket,
            Key=f"{prefix}/{name}",
            Body=json.dumps(document, indent=1).encode(),
            ContentType="application/json",
        )
    report_uri = f"s3://{settings.artifact_bucket}/{prefix}/"
    outcome = {
        "endpoint": endpoint,
        "status": "drift" if result["drifted"] else ("violations" if result["violations"] else "ok"),
        "package": package_arn,
        "records": reader.records,
        "rows": result["rows"],
        "unreadable": reader.unreadable,
        "truncated": reader.truncated,
        "violations": len(result["violations"]),
        "drifted_features": result["drifted"],
        "report": report_uri,
    }
    services.ledger.put(endpoint_pk(endpoint), f"MONITORING#{end.isoformat()}", kind="monitoring", **outcome)
    if result["drifted"]:
        services.ledger.put(*DRIFT_POINTER, kind="drift", monitored_at=end.isoformat(), **outcome)
    # the metrics last: the drift alarm they raise starts a retraining that reads the pointer above
    put_metrics(services.cloudwatch, str(settings.data_quality_namespace), endpoint, end, result)
    if result["drifted"]:
        logger.warning("monitoring: drift", **outcome)
    else:
        logger.info("monitoring: done", **outcome)
    return outcome


@dataclass(frozen=True)
class MonitorServices:
    sagemaker: SageMakerAdapter
    s3: S3Adapter
    ledger: Ledger
    cloudwatch: Any

    @classmethod
    def from_settings(cls, settings: DeploySettings) -> MonitorServices:
        return cls(
            SageMakerAdapter(), S3Adapter(), Ledger(settings.ledger_table_name), aws_client("cloudwatch")
        )


def monitor(detail: MonitoringDetail, settings: DeploySettings, services: MonitorServices) -> dict[str, Any]:
    endpoints = [e for e in (settings.endpoint_name, settings.production_endpoint_name) if e]
    results = [monitor_endpoint(endpoint, detail, settings, services) for endpoint in endpoints]
    drifted = [r for r in results if r["status"] == "drift"]
    metrics.add_metric(name="MonitoringRuns", unit="Count", value=1)
    if drifted:
        metrics.add_metric(name="DriftDetected", unit="Count", value=len(drifted))
    return {"status": "monitored", "scheduled_time": detail.scheduled_time.isoformat(), "endpoints": results}


@refusing_permanent_errors
def handle_monitoring(
    request: MonitoringRequest,
    settings: DeploySettings,
    context: Any = None,
    services: MonitorServices | None = None,
) -> dict[str, Any]:
    """Entry point of the deploy function for a monitoring request: one run per scheduled time."""
    if not settings.artifact_bucket or not settings.data_quality_namespace:
        return ignore("monitoring-not-configured").as_response()
    active = services or MonitorServices.from_settings(settings)
    detail = request.monitoring
    return run_once(
        settings.ledger_table_name,
        ("scheduled_time",),
        lambda _: monitor(detail, settings, active),
        {"scheduled_time": detail.scheduled_time.isoformat()},
        context,
    )
