"""Staged promotion: an approved package is smoke-tested on the staging endpoint, and only a second, explicit
act (its ModelLifeCycle set to Production / Approved) deploys that same package to production.

AWS's own construct carries the stages: Model Registry's `ModelLifeCycle` (Stage, StageStatus,
StageDescription on UpdateModelPackage; SageMaker developer guide, model-registry-staging-construct). Its
changes arrive as "SageMaker Model Package State Change" with UpdatedModelPackageFields naming
"ModelLifeCycle" (model-registry-staging-construct-event-bridge). Stage names are ours to define; IAM
condition keys (`sagemaker:ModelLifeCycle:stage`, `...:stageStatus`) decide who may set which (template.yaml).
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from orchestrator.adapters import error_code, is_not_found
from orchestrator.adapters.ledger import endpoint_pk, package_pk
from orchestrator.adapters.s3 import split_s3_uri
from orchestrator.clients import aws_client
from orchestrator.domain import PackageLineage
from orchestrator.intake import bounded
from orchestrator.observability import logger, metrics
from orchestrator.settings import DeploySettings

STAGING = "Staging"
PRODUCTION = "Production"
PROMOTION_STATUS = "Approved"  # the second approval: Stage Production, StageStatus Approved
# during an A/B test in production, on the candidate package: it takes all the traffic, or leaves
AB_PROMOTED, AB_ROLLED_BACK = "Promoted", "RolledBack"
PASSED, FAILED = "Passed", "Failed"
STAGING_RECORD = f"STAGE#{STAGING}"
PRODUCTION_RECORD = f"STAGE#{PRODUCTION}"
# A CSV row larger than this is not a smoke-test row (InvokeEndpoint's payload limit is 6 MB; ours is tiny).
MAX_ROW_BYTES = 64 * 1024
# The smoke test's rows are sampled from at most this much of the test split's CSV.
MAX_HELD_OUT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke test measured on one endpoint config, and whether each measure met its threshold."""

    package_arn: str
    endpoint_name: str
    endpoint_config_name: str
    rows: int
    errors: int
    error_rate: float
    p95_latency_ms: float | None
    rmse: float | None
    passed: bool
    failures: tuple[str, ...]
    tested_at: str

    def description(self) -> str:
        """The package's StageDescription (at most 1,024 characters, botocore's ModelLifeCycle)."""
        measured = (
            f"smoke test on {self.endpoint_config_name}: {self.rows} rows, {self.errors} errors, "
            f"p95 {_shown(self.p95_latency_ms)} ms, RMSE {_shown(self.rmse)}"
        )
        verdict = "passed" if self.passed else "failed: " + "; ".join(self.failures)
        return f"{measured}; {verdict}"[:1024]

    def metadata(self) -> dict[str, str]:
        """CustomerMetadataProperties of the package (string values)."""
        return {
            "SmokeTestEndpointConfig": self.endpoint_config_name,
            "SmokeTestRows": str(self.rows),
            "SmokeTestErrorRate": f"{self.error_rate:.4f}",
            "SmokeTestP95LatencyMs": _shown(self.p95_latency_ms),
            "SmokeTestRmse": _shown(self.rmse),
            "SmokeTestResult": PASSED if self.passed else FAILED,
        }


def _shown(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


# --- held-out rows -----------------------------------------------------------------------------------
PREPROCESS_STEP, HELD_OUT_OUTPUT = "PreprocessData", "test"  # the pipeline builder's step and output names


def held_out_uri(execution_arn: str | None, sagemaker: Any) -> str | None:
    """Where the package's run wrote its held-out split: the "test" output of the processing job its
    PreprocessData step ran (ListPipelineExecutionSteps → Metadata.ProcessingJob.Arn → DescribeProcessingJob
    ProcessingOutputConfig). A step served from the cache carries the metadata of the job it reused, so its
    split is found where that job wrote it, not under this run's own prefix."""
    if not execution_arn:
        return None
    try:
        steps = sagemaker.execution_steps(execution_arn)
    except ClientError as exc:  # a package registered outside a run of ours, or a run no longer there
        if not is_not_found(exc):
            raise
        logger.warning("the package's run is not found: no held-out rows", execution_arn=execution_arn)
        return None
    for step in steps:
        if step.get("StepName") != PREPROCESS_STEP:
            continue
        job_arn = str(((step.get("Metadata") or {}).get("ProcessingJob") or {}).get("Arn", ""))
        job = sagemaker.describe_processing_job(job_arn.rsplit("/", 1)[-1]) if job_arn else None
        for output in ((job or {}).get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            if output.get("OutputName") == HELD_OUT_OUTPUT and (output.get("S3Output") or {}).get("S3Uri"):
                return str(output["S3Output"]["S3Uri"]).rstrip("/") + "/"
    return None


def held_out_rows(prefix: str, limit: int, s3: Any = None) -> list[tuple[str, float]]:
    """Up to `limit` (features as a CSV line, target) pairs from the CSVs under `prefix`: a header, then
    rows with the target last (preprocess.py writes its splits so). The pairs are spread evenly over the
    rows read: preprocess.py keeps the input's order within a split, so the first rows of a sorted input
    (Boston's are ordered by town) would all come from one end of it. At most MAX_HELD_OUT_BYTES of CSV are
    read; an object that would go over what is left of that is skipped."""
    client = s3 or aws_client("s3")
    bucket, key_prefix = split_s3_uri(prefix)
    sizes: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key_prefix):
        sizes.update(
            (item["Key"], int(item.get("Size", 0)))
            for item in page.get("Contents", [])
            if item["Key"].endswith(".csv")
        )
    rows: list[tuple[str, float]] = []
    budget = MAX_HELD_OUT_BYTES
    for key in sorted(sizes):
        if sizes[key] > budget:
            continue
        budget -= sizes[key]
        text = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", "replace")
        for record in list(csv.reader(io.StringIO(text)))[1:]:
            if len(record) < 2 or not all(cell.strip() for cell in record):
                continue
            try:
                target = float(record[-1])
            except ValueError:
                continue
            line = ",".join(cell.strip() for cell in record[:-1])
            if len(line) <= MAX_ROW_BYTES and math.isfinite(target):
                rows.append((line, target))
    if len(rows) <= limit:
        return rows
    return [rows[i * len(rows) // limit] for i in range(limit)]


# --- the smoke test ----------------------------------------------------------------------------------
def _prediction(body: bytes) -> float | None:
    """The first value of a text/csv answer (inference.py writes one value per line)."""
    first = body.decode("utf-8", "replace").strip().splitlines()[:1]
    try:
        value = float(first[0].split(",")[0]) if first else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _p95(latencies: list[float]) -> float | None:
    """The nearest-rank 95th percentile."""
    if not latencies:
        return None
    ordered = sorted(latencies)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def smoke_test(
    package: PackageLineage,
    endpoint_name: str,
    config_name: str,
    rows: list[tuple[str, float]],
    settings: DeploySettings,
    runtime: Any = None,
) -> SmokeResult:
    """Send each held-out row to the endpoint (InvokeEndpoint, text/csv) and measure the error rate, the
    p95 latency and the RMSE of the predictions, each against its threshold. A row the model answers with
    an error (ModelError: the container's 4xx/5xx) counts as an error; an AWS error of the call itself
    (throttling after retries, an endpoint not in service) is raised, so the test runs again later."""
    client = runtime or aws_client("sagemaker-runtime")
    errors, latencies, squared = 0, [], []
    for features, target in rows:
        started = time.perf_counter()
        try:
            answer = client.invoke_endpoint(
                EndpointName=endpoint_name, ContentType="text/csv", Accept="text/csv", Body=features.encode()
            )
            body = answer["Body"].read()
        except ClientError as exc:
            if error_code(exc) != "ModelError":
                raise
            errors += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)
        prediction = _prediction(body)
        if prediction is None:
            errors += 1
            continue
        squared.append((prediction - target) ** 2)
    count = len(rows)
    error_rate = errors / count if count else 1.0
    p95 = _p95(latencies)
    rmse = math.sqrt(sum(squared) / len(squared)) if squared else None
    failures = []
    if count == 0:
        failures.append("no held-out rows to test with")
    if error_rate > settings.smoke_test_max_error_rate:
        failures.append(f"error rate {error_rate:.3f} > {settings.smoke_test_max_error_rate}")
    if p95 is not None and p95 > settings.smoke_test_max_p95_ms:
        failures.append(f"p95 latency {p95:.1f} ms > {settings.smoke_test_max_p95_ms} ms")
    if rmse is None or rmse > settings.smoke_test_max_rmse:
        failures.append(f"RMSE {_shown(rmse)} > {settings.smoke_test_max_rmse}")
    return SmokeResult(
        package_arn=package.package_arn,
        endpoint_name=endpoint_name,
        endpoint_config_name=config_name,
        rows=count,
        errors=errors,
        error_rate=round(error_rate, 6),
        p95_latency_ms=None if p95 is None else round(p95, 3),
        rmse=None if rmse is None else round(rmse, 6),
        passed=not failures,
        failures=tuple(failures),
        tested_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
    )


def life_cycle(description: dict[str, Any]) -> tuple[str | None, str | None]:
    """(Stage, StageStatus) of a described package."""
    current = description.get("ModelLifeCycle") or {}
    return current.get("Stage"), current.get("StageStatus")


@dataclass(frozen=True)
class Refusal:
    reason: str
    details: dict[str, Any]


def promotion_refusal(
    description: dict[str, Any], staging: dict[str, Any] | None, staging_record: dict[str, Any] | None
) -> Refusal | None:
    """Why production must not receive this package, or None. `staging` is DescribeEndpoint of the staging
    endpoint, `staging_record` the ledger's smoke-test record of the package."""
    if description.get("ModelApprovalStatus") != "Approved":
        return Refusal("not-approved", {"approval_status": description.get("ModelApprovalStatus")})
    if staging_record is None:
        return Refusal("not-tested-in-staging", {})
    if not staging_record.get("passed"):
        return Refusal(
            "failed-smoke-test",
            {
                "tested_config": staging_record.get("endpoint_config_name"),
                "failures": staging_record.get("failures"),
            },
        )
    tested = staging_record.get("endpoint_config_name")
    live = (staging or {}).get("EndpointConfigName")
    pending = ((staging or {}).get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
    if live != tested or (pending and pending != tested):
        return Refusal(
            "superseded-in-staging",
            {
                "tested_config": tested,
                "staging_config": live,
                "staging_pending_config": pending,
            },
        )
    return None


def refused(refusal: Refusal, package_arn: str, notifier: Any) -> dict[str, Any]:
    """A refused promotion: logged with its reason, counted, and notified (a person asked for it)."""
    details = {key: bounded(value) for key, value in refusal.details.items()}
    logger.warning("promotion refused", reason=refusal.reason, package_arn=package_arn, **details)
    metrics.add_metric(name="PromotionsRefused", unit="Count", value=1)
    notifier.notify(
        f"Promotion to production refused: {refusal.reason}",
        f"Package {package_arn} was not deployed to production ({refusal.reason}).",
        package_arn=package_arn,
        reason=refusal.reason,
    )
    return {"status": "refused", "reason": refusal.reason, "package_arn": package_arn, **details}


def record_smoke_result(result: SmokeResult, ledger: Any, sagemaker: Any, notifier: Any) -> None:
    """The result on the package (ModelLifeCycle Staging / Passed|Failed, its description and metadata)
    and in the ledger (the package's staging record and an event on the endpoint)."""
    ledger.put(package_pk(result.package_arn), STAGING_RECORD, kind="stage", stage=STAGING, **asdict(result))
    ledger.put(
        endpoint_pk(result.endpoint_name),
        f"EVENT#{result.tested_at}",
        kind="event",
        action="smoke-test",
        config=result.endpoint_config_name,
        passed=result.passed,
    )
    sagemaker.client.update_model_package(
        ModelPackageArn=result.package_arn,
        ModelLifeCycle={
            "Stage": STAGING,
            "StageStatus": PASSED if result.passed else FAILED,
            "StageDescription": result.description(),
        },
        CustomerMetadataProperties=result.metadata(),
    )
    metrics.add_metric(
        name="SmokeTestsPassed" if result.passed else "SmokeTestsFailed", unit="Count", value=1
    )
    log = logger.info if result.passed else logger.warning
    log("smoke test " + ("passed" if result.passed else "failed"), **asdict(result))
    if not result.passed:
        notifier.notify(
            "Smoke test failed on the staging endpoint",
            result.description(),
            package_arn=result.package_arn,
            endpoint_name=result.endpoint_name,
        )


VARIANT_METRICS = (
    ("Invocations", "Sum"),
    ("Invocation4XXErrors", "Sum"),
    ("Invocation5XXErrors", "Sum"),
    ("ModelLatency", "Average"),
)


def variant_metrics(
    endpoint: str, variants: list[str], since: datetime, cloudwatch: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """Each variant's invocations, errors and mean model latency (microseconds) since `since`, from the
    metrics SageMaker publishes per variant (AWS/SageMaker, dimensions EndpointName and VariantName;
    developer guide, monitoring-cloudwatch): the evidence an A/B decision is taken on."""
    client = cloudwatch or aws_client("cloudwatch")
    # whole minutes around the test (SageMaker publishes these metrics per minute), one datapoint over all
    # of it: StartTime must be before EndTime and the period a multiple of 60 s (GetMetricStatistics)
    start = since.astimezone(UTC).replace(second=0, microsecond=0)
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    period = int((end - start).total_seconds())
    found: dict[str, Any] = {}
    for variant in variants:
        measures: dict[str, float | None] = {}
        for metric, statistic in VARIANT_METRICS:
            points = client.get_metric_statistics(
                Namespace="AWS/SageMaker",
                MetricName=metric,
                Dimensions=[
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": variant},
                ],
                StartTime=start,
                EndTime=end,
                Period=period,
                Statistics=[statistic],
            ).get("Datapoints", [])
            values = [float(point[statistic]) for point in points]
            if statistic == "Sum":
                measures[metric] = sum(values)
            else:
                measures[metric] = round(sum(values) / len(values), 1) if values else None
        found[variant] = measures
    return found
