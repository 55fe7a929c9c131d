"""The monitoring loop on the local cloud, with the stack's handlers, rules and alarm from template.yaml
(what `make demo-drift` runs): requests like the training data raise nothing; shifted ones are reported as
drift in Model Monitor's files, raise the data-drift alarm, and its state change starts one retraining run
recorded with its trigger and the drifted features."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcloud.cloud import LocalCloud
from localcloud.drift_demo import alarm_handling, run_drift_demo
from tests.clouds import module_cloud

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with module_cloud(
        tmp_path_factory.mktemp("drift-cloud"),
        parameters={
            "MaxTuningJobs": "1",
            "MaxParallelTuningJobs": "1",
            "DataCapturePercent": "100",
            "StagedPromotion": "disabled",
        },
    ) as local:
        yield local


@pytest.mark.slow
def test_shifted_requests_are_reported_raise_the_alarm_and_retrain_once(cloud: LocalCloud) -> None:
    summary = run_drift_demo(cloud, ROOT / "data" / "boston_housing.csv", ROOT / "training_code", rows=40)

    # requests like the training data: compared, nothing found
    before = summary["monitor_before"]
    assert (before["status"], before["records"], before["drifted_features"]) == ("ok", 40, [])
    # shifted requests (RM + 2 among them): drift, in Model Monitor's three files
    after = summary["monitor_after"]
    assert after["status"] == "drift" and "RM" in after["drifted_features"]
    assert after["records"] == 80  # the hour before: both batches
    s3 = cloud.client("s3")
    bucket, prefix = after["report"].removeprefix("s3://").split("/", 1)
    names = {o["Key"].rsplit("/", 1)[1] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]}
    assert names == {"statistics.json", "constraints.json", "constraint_violations.json"}
    statistics = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}statistics.json")["Body"].read())
    assert statistics["dataset"]["item_count"] == 80
    assert {v["feature_name"] for v in summary["violations"]} >= {"RM"}
    # the metric raised the stack's drift alarm, whose state change started one retraining run
    assert summary["alarm"]["state"] == "ALARM"
    retraining = summary["retraining"]
    assert retraining["data_version"].startswith("drift:")
    record = retraining["ledger"]
    assert (record["trigger"], record["report"], record["execution_arn"]) == (
        "drift",
        after["report"],
        retraining["execution_arn"],
    )
    assert "RM" in record["features"]
    cloud.aws.wait_for_events()
    executions = cloud.client("sagemaker").list_pipeline_executions(PipelineName=cloud.env["PIPELINE_NAME"])
    assert len(executions["PipelineExecutionSummaries"]) == 2  # the push's run and the retraining
    # what a failed wait would report: each state change's invocation, and the function's log
    handling = json.loads(alarm_handling(cloud))
    outcomes = [(i["error"], i["result"]["status"]) for i in handling["alarm_invocations"]]
    assert outcomes.count((None, "started")) == 1 and all(error is None for error, _ in outcomes), outcomes
    [started] = [i for i in handling["alarm_invocations"] if i["result"]["status"] == "started"]
    assert started["result"]["execution_arn"] == retraining["execution_arn"]
    assert any("retraining started" in line for line in handling["start_pipeline_log"])
