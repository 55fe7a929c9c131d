"""`make demo-drift`: the monitoring loop on the local cloud, timed.

A push trains and registers a package (with its train split's data-quality baseline); its approval deploys
it to the staging endpoint with data capture on. Held-out rows are sent as they are, and the monitor (the
deploy function, invoked as the stack's schedule invokes it) finds nothing; the same rows are sent shifted,
and the monitor finds drift: its three reports, the metric, the data-drift alarm going to ALARM and the
retraining run that alarm starts (trigger "drift", with the drifted features) are shown.

The last line printed is one JSON object; the exit code is non-zero when a phase fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from localcloud.cli import use_layer
from localcloud.cloud import ROOT, LocalCloud
from localcloud.demo import DemoFailure, Timer, _print_step, run_reporting

# The shift the demo applies to the held-out rows: rooms +2, lower-status share doubled, older homes
SHIFTS = {"RM": lambda v: v + 2.0, "LSTAT": lambda v: v * 2.0, "AGE": lambda v: min(v * 1.4, 100.0)}


def shifted(rows: list[str], features: list[str]) -> list[str]:
    moved = []
    for row in rows:
        values = [float(v) for v in row.split(",")]
        for i, name in enumerate(features):
            if name in SHIFTS:
                values[i] = SHIFTS[name](values[i])
        moved.append(",".join(f"{v:g}" for v in values))
    return moved


def send(cloud: LocalCloud, endpoint: str, rows: list[str]) -> None:
    """One request per row, as clients send them (each one a captured request)."""
    runtime = cloud.client("sagemaker-runtime")
    for row in rows:
        runtime.invoke_endpoint(EndpointName=endpoint, ContentType="text/csv", Body=row)
    if cloud.hosting is not None:
        cloud.hosting.wait_idle()


def monitor(cloud: LocalCloud) -> dict[str, Any]:
    """What EventBridge Scheduler does on the stack's MonitorSchedule: invoke the deploy function."""
    # a scheduled time after the last request: the window is [time - 1 h, time)
    moment = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0)
    time.sleep(max((moment - datetime.now(UTC)).total_seconds(), 0))
    payload = {"monitoring": {"scheduledTime": moment.isoformat().replace("+00:00", "Z")}}
    reply = cloud.client("lambda").invoke(
        FunctionName=cloud.names["DeployFunction"], Payload=json.dumps(payload).encode()
    )
    answer = json.loads(reply["Payload"].read())
    if reply.get("FunctionError"):
        raise DemoFailure(f"the monitor failed: {answer}")
    return dict(answer)


def drift_retraining(cloud: LocalCloud, timeout: float = 60.0) -> dict[str, Any]:
    """The retraining run the drift alarm started: the execution whose DataVersion names the drift."""
    sagemaker = cloud.client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summaries = sagemaker.list_pipeline_executions(PipelineName=cloud.env["PIPELINE_NAME"])
        for summary in summaries["PipelineExecutionSummaries"]:
            arn = summary["PipelineExecutionArn"]
            parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)
            values = {p["Name"]: p["Value"] for p in parameters["PipelineParameters"]}
            if values.get("DataVersion", "").startswith("drift:"):
                return {"execution_arn": arn, "data_version": values["DataVersion"]}
        time.sleep(0.25)
    raise DemoFailure(
        f"no retraining run started within {timeout:.0f}s of the drift alarm; {alarm_handling(cloud)}"
    )


def alarm_handling(cloud: LocalCloud, log_lines: int = 12) -> str:
    """What became of the alarm's state changes: each invocation they caused (result or error), and the
    end of the start-pipeline function's log, so that a failed run says why."""
    router = cloud.router
    if router is None:
        return "the event router is not running"
    invocations = [
        i.as_dict() for i in list(router.invocations) if i.detail_type == "CloudWatch Alarm State Change"
    ]
    log = cloud.workdir / "logs" / "lambda" / "StartPipelineFunction.log"
    tail = log.read_text(errors="replace").splitlines()[-log_lines:] if log.exists() else []
    return json.dumps({"alarm_invocations": invocations, "start_pipeline_log": tail}, default=str)


def run_drift_demo(cloud: LocalCloud, data: Path, training_code: Path, rows: int = 40) -> dict[str, Any]:
    timer = Timer()
    summary: dict[str, Any] = {}
    sagemaker = cloud.client("sagemaker")
    endpoint = cloud.env["ENDPOINT_NAME"]

    with timer.phase("train, register and deploy to staging"):
        cloud.upload_data(data)
        commit = cloud.push(training_code, "Train the Boston housing regressor")
        described = cloud.wait_for_execution(commit, on_step=_print_step)
        if described["PipelineExecutionStatus"] != "Succeeded":
            raise DemoFailure(
                f"pipeline {described['PipelineExecutionStatus']}: {described.get('FailureReason')}"
            )
        summary["pipeline_execution_arn"] = described["PipelineExecutionArn"]
        group = cloud.env["MODEL_PACKAGE_GROUP_NAME"]
        [latest] = sagemaker.list_model_packages(
            ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending", MaxResults=1
        )["ModelPackageSummaryList"]
        package_arn = latest["ModelPackageArn"]
        package = sagemaker.describe_model_package(ModelPackageName=package_arn)
        summary["model_package_arn"] = package_arn
        summary["baseline"] = package["DriftCheckBaselines"]["ModelDataQuality"]
        sagemaker.update_model_package(
            ModelPackageArn=package_arn, ModelApprovalStatus="Approved", ApprovalDescription="drift demo"
        )
        cloud.wait_for_endpoint(endpoint)
        print(f"    {endpoint} serves {package_arn}, capturing every request", flush=True)

    header, features = held_out_sample(
        cloud, summary["pipeline_execution_arn"], cloud.env["TARGET_COLUMN"], rows
    )

    with timer.phase(f"{len(features)} requests like the training data, then the monitor"):
        send(cloud, endpoint, features)
        calm = monitor(cloud)
        [outcome] = [e for e in calm["endpoints"] if e["endpoint"] == endpoint]
        summary["monitor_before"] = outcome
        drifted = outcome.get("drifted_features")
        print(f"    {outcome['status']}: {outcome.get('records')} requests, drifted {drifted}", flush=True)
        if outcome["status"] == "drift":
            raise DemoFailure(f"drift reported on unshifted rows: {outcome}")

    with timer.phase(f"{len(features)} shifted requests ({', '.join(SHIFTS)}), then the monitor"):
        send(cloud, endpoint, shifted(features, header))
        found = monitor(cloud)
        [outcome] = [e for e in found["endpoints"] if e["endpoint"] == endpoint]
        summary["monitor_after"] = outcome
        print(f"    {outcome['status']}: drifted {outcome.get('drifted_features')}", flush=True)
        print(f"    reports: {outcome.get('report')}", flush=True)
        if outcome["status"] != "drift":
            raise DemoFailure(f"no drift reported on shifted rows: {outcome}")
        s3 = cloud.client("s3")
        bucket, key = outcome["report"].removeprefix("s3://").split("/", 1)
        violations = json.loads(
            s3.get_object(Bucket=bucket, Key=f"{key}constraint_violations.json")["Body"].read()
        )
        for violation in violations["violations"]:
            name, check = violation["feature_name"], violation["constraint_check_type"]
            print(f"      {name:>8} {check}: {violation['description']}", flush=True)
        summary["violations"] = violations["violations"]

    with timer.phase("the data-drift alarm starts a retraining run"):
        cloud.aws.wait_for_events()
        alarm = cloud.client("cloudwatch").describe_alarms(AlarmNames=[cloud.env["DRIFT_ALARM_NAME"]])
        [state] = alarm["MetricAlarms"]
        summary["alarm"] = {
            "name": state["AlarmName"],
            "state": state["StateValue"],
            "reason": state["StateReason"],
        }
        print(f"    {state['AlarmName']}: {state['StateValue']} ({state['StateReason']})", flush=True)
        if state["StateValue"] != "ALARM":
            raise DemoFailure(f"the drift alarm is {state['StateValue']}")
        summary["retraining"] = drift_retraining(cloud)
        summary["retraining"]["ledger"] = retraining_record(cloud, commit)
        retraining = summary["retraining"]
        print(f"    retraining {retraining['execution_arn']} ({retraining['data_version']})", flush=True)

    summary["seconds"] = timer.seconds | {"total": timer.total()}
    return summary


def retraining_record(cloud: LocalCloud, commit: str) -> dict[str, Any]:
    """The ledger's record of the drift retraining of `commit`: its trigger, features and report."""
    use_layer()
    from orchestrator.adapters.ledger import Ledger

    ledger = Ledger(cloud.env["LEDGER_TABLE_NAME"])
    deadline = time.monotonic() + 30
    found: list[dict[str, Any]] = []
    while not found:  # the handler records the run just after starting it
        items = ledger.partition(f"COMMIT#{cloud.env['REPOSITORY_NAME']}#{commit}")
        found = [i for i in items if i.get("kind") == "retraining" and i.get("trigger") == "drift"]
        if not found and time.monotonic() > deadline:
            raise DemoFailure(f"no drift retraining recorded for commit {commit}")
        time.sleep(0.2)
    record = found[-1]
    print(f"    ledger: trigger {record['trigger']}, features {record.get('features')}", flush=True)
    return {k: record.get(k) for k in ("trigger", "features", "report", "scheduled_time", "execution_arn")}


def held_out_sample(
    cloud: LocalCloud, execution_arn: str, target: str, count: int
) -> tuple[list[str], list[str]]:
    """Feature names and `count` feature rows spread evenly over the run's held-out split (the sample file is
    sorted by town: its first rows are one neighbourhood, not a sample of the whole)."""
    s3 = cloud.client("s3")
    prefix = f"pipelines/{execution_arn.rsplit('/', 1)[-1]}/PreprocessData/test/"
    keys = sorted(
        o["Key"] for o in s3.list_objects_v2(Bucket=cloud.bucket, Prefix=prefix).get("Contents", [])
    )
    if not keys:
        raise DemoFailure(f"no test split under s3://{cloud.bucket}/{prefix}")
    lines = s3.get_object(Bucket=cloud.bucket, Key=keys[0])["Body"].read().decode().splitlines()
    columns = lines[0].split(",")
    keep = [i for i, c in enumerate(columns) if c != target]
    body = [line.split(",") for line in lines[1:] if line.strip()]
    step = max(len(body) / count, 1.0)
    chosen = [body[int(i * step)] for i in range(min(count, len(body)))]
    return [columns[i] for i in keep], [",".join(row[i] for i in keep) for row in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="localcloud demo-drift", description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "boston_housing.csv")
    parser.add_argument("--training-code", type=Path, default=ROOT / "training_code")
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument("--max-tuning-jobs", default="2")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)
    parameters = {
        "MaxTuningJobs": args.max_tuning_jobs,
        "MaxParallelTuningJobs": "2",
        "DataCapturePercent": "100",
        # no smoke test: its rows, the first of the held-out split, are one neighbourhood of the sorted file
        "StagedPromotion": "disabled",
    }
    return run_reporting(
        args.workdir,
        parameters,
        lambda cloud: run_drift_demo(cloud, args.data, args.training_code, rows=args.rows),
    )


if __name__ == "__main__":
    sys.exit(main())
