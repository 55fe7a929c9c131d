"""`make demo`: push → pipeline run → approval → endpoint → predictions, on the local cloud, timed.

The last line printed is one JSON object (commit, execution, package, test RMSE, endpoint, predictions
beside the true values, the lineage chain, seconds per phase). The exit code is non-zero when a phase fails.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from localcloud.cli import use_layer
from localcloud.cloud import ROOT, LocalCloud
from localcloud.runtime.s3io import read_json


class DemoFailure(RuntimeError):
    """A phase of the demo did not reach the state it waits for."""


class Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        print(f"==> {name}", flush=True)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 2)
            print(f"    {name}: {self.seconds[name]:.1f} s", flush=True)

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 2)


def _print_step(step: dict[str, Any]) -> None:
    cached = " (cache hit)" if step.get("CacheHitResult") else ""
    reason = f" — {step['FailureReason']}" if step.get("FailureReason") else ""
    print(f"    {step['StepName']:<28} {step['StepStatus']}{cached}{reason}", flush=True)


def held_out_rows(
    cloud: LocalCloud, execution_arn: str, target: str, count: int
) -> tuple[list[str], list[float]]:
    """Rows of the run's test split (never seen in training): feature CSV lines and their true targets."""
    s3 = cloud.client("s3")
    execution_id = execution_arn.rsplit("/", 1)[-1]
    steps = cloud.client("sagemaker").list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)
    prefix = f"pipelines/{execution_id}/PreprocessData/test/"
    for step in steps["PipelineExecutionSteps"]:
        source = step.get("CacheHitResult", {}).get("SourcePipelineExecutionArn")
        if step["StepName"] == "PreprocessData" and source:
            prefix = f"pipelines/{source.rsplit('/', 1)[-1]}/PreprocessData/test/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=cloud.bucket, Prefix=prefix).get("Contents", [])]
    if not keys:
        raise DemoFailure(f"no test split under s3://{cloud.bucket}/{prefix}")
    body = s3.get_object(Bucket=cloud.bucket, Key=sorted(keys)[0])["Body"].read().decode()
    reader = csv.DictReader(io.StringIO(body))
    features = [c for c in reader.fieldnames or [] if c != target]
    rows, truths = [], []
    for record in list(reader)[:count]:
        rows.append(",".join(record[c] for c in features))
        truths.append(float(record[target]))
    return rows, truths


def run_demo(cloud: LocalCloud, data: Path, training_code: Path, rows: int = 5) -> dict[str, Any]:
    timer = Timer()
    summary: dict[str, Any] = {}
    sagemaker = cloud.client("sagemaker")

    with timer.phase("upload data"):
        summary["input_data"] = cloud.upload_data(data)

    with timer.phase("push training code"):
        commit = cloud.push(training_code, "Train the Boston housing regressor")
        summary["commit"] = commit
        print(f"    pushed {commit[:12]} to {cloud.repository}@{cloud.branch}", flush=True)

    with timer.phase("pipeline run"):
        described = cloud.wait_for_execution(commit, on_step=_print_step)
        summary["pipeline_execution_arn"] = described["PipelineExecutionArn"]
        summary["execution_status"] = described["PipelineExecutionStatus"]
        if described["PipelineExecutionStatus"] != "Succeeded":
            raise DemoFailure(
                f"pipeline {described['PipelineExecutionStatus']}: {described.get('FailureReason')}"
            )

    group = cloud.env["MODEL_PACKAGE_GROUP_NAME"]
    packages = sagemaker.list_model_packages(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    )
    if not packages["ModelPackageSummaryList"]:
        raise DemoFailure(f"no model package registered in {group}")
    package_arn = packages["ModelPackageSummaryList"][0]["ModelPackageArn"]
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    summary["model_package_arn"] = package_arn
    summary["test_rmse"] = _test_rmse(cloud, package)

    endpoint = cloud.env["ENDPOINT_NAME"]
    with timer.phase("approve and deploy"):
        sagemaker.update_model_package(
            ModelPackageArn=package_arn,
            ModelApprovalStatus="Approved",
            ApprovalDescription="Approved by the local demo",
        )
        cloud.wait_for_endpoint(endpoint)
        summary["endpoint_name"] = endpoint

    with timer.phase("smoke test on staging"):
        stage = wait_for_stage(cloud, package_arn, "Staging")
        summary["smoke_test"] = stage
        print(f"    {stage['StageStatus']}: {stage.get('StageDescription', '')}", flush=True)
        if stage["StageStatus"] != "Passed":
            raise DemoFailure(f"the smoke test failed on {endpoint}: {stage.get('StageDescription')}")

    production = cloud.env.get("PRODUCTION_ENDPOINT_NAME") or ""
    if production:
        with timer.phase("promote to production"):
            # the second, explicit act: the same package's ModelLifeCycle set to Production / Approved
            # (the ProductionPromoterRole's one permission on AWS)
            sagemaker.update_model_package(
                ModelPackageArn=package_arn,
                ModelLifeCycle={
                    "Stage": "Production",
                    "StageStatus": "Approved",
                    "StageDescription": "Promoted by the local demo after its smoke test",
                },
            )
            cloud.wait_for_endpoint(production)
            summary["production_endpoint_name"] = production
            print(f"    {production} serves {package_arn}", flush=True)

    with timer.phase("predict"):
        features, truths = held_out_rows(
            cloud, summary["pipeline_execution_arn"], cloud.env["TARGET_COLUMN"], rows
        )
        response = cloud.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=production or endpoint,
            ContentType="text/csv",
            Accept="application/json",
            Body="\n".join(features),
        )
        predictions = _predictions(json.loads(response["Body"].read()))
        summary["predictions_from"] = production or endpoint
        summary["predictions"] = [
            {"predicted": round(p, 2), "actual": t} for p, t in zip(predictions, truths, strict=True)
        ]
        for pair in summary["predictions"]:
            print(f"    predicted {pair['predicted']:6.2f}   actual {pair['actual']:6.2f}", flush=True)

    with timer.phase("lineage"):
        use_layer()
        from orchestrator.adapters.ledger import Ledger
        from orchestrator.lineage import endpoint_lineage

        if cloud.router is not None:
            cloud.aws.wait_for_events()
            cloud.router.wait_until_idle()
        ledger = Ledger(cloud.env["LEDGER_TABLE_NAME"])
        summary["lineage"] = endpoint_lineage(ledger, endpoint)
        if production:
            summary["production_lineage"] = endpoint_lineage(ledger, production)
        from localcloud.cli import lineage_inputs
        from localcloud.lineage_picture import draw, lineage_graph

        graph = lineage_graph(
            **lineage_inputs(
                ledger, cloud.client("sagemaker"), summary["lineage"], cloud.env["REPOSITORY_NAME"]
            )
        )
        picture = draw(graph, cloud.workdir / "lineage.png")
        summary["lineage_picture"] = {
            "path": str(picture),
            "kinds": sorted({kind for _, kind in graph.nodes(data="kind")}),
            "nodes": graph.number_of_nodes(),
        }
        print(f"  lineage picture: {picture} ({graph.number_of_nodes()} nodes)", flush=True)

    summary["seconds"] = timer.seconds | {"total": timer.total()}
    return summary


def wait_for_stage(cloud: LocalCloud, package_arn: str, stage: str, timeout: float = 120.0) -> dict[str, Any]:
    """The package's ModelLifeCycle once it reaches `stage` (the deploy handler records the smoke test so)."""
    sagemaker = cloud.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sagemaker.describe_model_package(ModelPackageName=package_arn)
        life_cycle = described.get("ModelLifeCycle") or {}
        if life_cycle.get("Stage") == stage:
            return dict(life_cycle)
        time.sleep(0.2)
    raise DemoFailure(f"package {package_arn} did not reach stage {stage} within {timeout:.0f}s")


def _predictions(payload: Any) -> list[float]:
    values = payload["predictions"] if isinstance(payload, dict) else payload
    return [float(v[0] if isinstance(v, list) else v) for v in values]


def _test_rmse(cloud: LocalCloud, package: dict[str, Any]) -> float:
    uri = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    report = read_json(cloud.client("s3"), uri)
    return round(float(report["regression_metrics"]["rmse"]["value"]), 3)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="localcloud demo", description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "boston_housing.csv")
    parser.add_argument("--training-code", type=Path, default=ROOT / "training_code")
    parser.add_argument("--max-tuning-jobs", default="8")
    parser.add_argument("--max-parallel-tuning-jobs", default="2")
    parser.add_argument("--rows", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    parameters = {
        "MaxTuningJobs": args.max_tuning_jobs,
        "MaxParallelTuningJobs": args.max_parallel_tuning_jobs,
    }
    return run_reporting(
        args.workdir, parameters, lambda cloud: run_demo(cloud, args.data, args.training_code, rows=args.rows)
    )


def run_reporting(
    workdir: Path | None, parameters: dict[str, str], demo: Callable[[LocalCloud], dict[str, Any]]
) -> int:
    """Run a demo on a fresh local cloud; print its summary as one JSON line; exit 1 if a phase failed."""
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    code = 0
    try:
        with LocalCloud(workdir=workdir, parameters=parameters) as cloud:
            summary["seconds_start_local_cloud"] = round(time.perf_counter() - started, 2)
            summary |= demo(cloud)
    except Exception as error:  # the demo reports any failed phase in its JSON line and exit code
        summary["error"] = f"{type(error).__name__}: {error}"
        code = 1
    summary["seconds_wall"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary, default=str), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
