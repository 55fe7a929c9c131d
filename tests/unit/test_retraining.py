"""StartPipelineFunction on the stack's retraining schedule (orchestrator.retrain): a run of the branch
head's code, recorded with its trigger, one per scheduled time, never while another run executes.

The event is the Input the template gives the ScheduleV2 source, with Scheduler's context attributes
filled in (EventBridge Scheduler user guide, managing-schedule-context-attributes).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from functions.start_pipeline.app import lambda_handler
from orchestrator.adapters.ledger import Ledger
from tests.template.cfn import load_template
from tests.unit.conftest import (
    BRANCH,
    PIPELINE,
    REPOSITORY,
    TABLE,
    TRAINING_CODE,
    Cloud,
    assert_run_once_until_the_deadline,
    logged,
)
from tests.unit.fakes import moto_sagemaker
from tests.unit.test_start_pipeline import parameters_of, push_event
from tests.unit.test_track_details import metrics_emitted

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE_ARN = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/mlops-demo-retrain"


def scheduled(at: str = "2026-12-07T03:00:00Z") -> dict[str, Any]:
    """What Scheduler sends: the template's Input with the context attributes replaced."""
    events = load_template()["Resources"]["StartPipelineFunction"]["Properties"]["Events"]
    text = events["Retrain"]["Properties"]["Input"]
    text = text.replace("<aws.scheduler.scheduled-time>", at).replace(
        "<aws.scheduler.schedule-arn>", SCHEDULE_ARN
    )
    return dict(json.loads(text))


def set_status(status: str) -> None:
    for pipeline in moto_sagemaker().pipelines.values():
        for execution in pipeline.pipeline_executions.values():
            execution.pipeline_execution_status = status


def test_the_schedule_retrains_the_branch_head_and_records_why(cloud: Cloud, context: Any) -> None:
    # GIVEN the branch at a commit of training code
    head = cloud.repository.commit(TRAINING_CODE)

    # WHEN the schedule fires
    result = lambda_handler(scheduled(), context)

    # THEN one run of the head's code started, and the ledger says it was the schedule
    assert (result["status"], result["trigger"], result["commit_id"]) == ("started", "schedule", head)
    [execution] = cloud.executions()
    assert execution["PipelineExecutionArn"] == result["execution_arn"]
    assert execution["PipelineExecutionDisplayName"] == f"{BRANCH}-{head[:12]}"
    assert parameters_of(cloud, result["execution_arn"])["CommitId"] == head
    record = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{head}", "RETRAINING#2026-12-07T03:00:00+00:00")
    assert record is not None
    assert (record["trigger"], record["schedule_arn"], record["execution_arn"]) == (
        "schedule",
        SCHEDULE_ARN,
        result["execution_arn"],
    )


def test_one_scheduled_time_starts_one_run_however_often_it_is_delivered(cloud: Cloud, context: Any) -> None:
    cloud.repository.commit(TRAINING_CODE)
    first = lambda_handler(scheduled(), context)
    again = lambda_handler(scheduled(), context)
    assert first == again
    assert len(cloud.executions()) == 1


def test_no_retraining_while_a_run_executes_and_the_next_time_retrains(cloud: Cloud, context: Any) -> None:
    # GIVEN a push whose run is still executing
    head = cloud.repository.commit(TRAINING_CODE)
    assert lambda_handler(push_event(head), context)["status"] == "started"
    set_status("Executing")  # as on AWS (moto 5.2.5 says Succeeded at once)

    # WHEN the schedule fires meanwhile
    skipped = lambda_handler(scheduled("2026-12-07T03:00:00Z"), context)

    # THEN nothing starts, and the answer names the run in the way
    [running] = cloud.executions()
    assert (skipped["status"], skipped["reason"]) == ("skipped", "run-in-progress")
    assert skipped["executing"] == [running["PipelineExecutionArn"]]

    # WHEN that run has ended and the schedule fires again
    set_status("Succeeded")
    later = lambda_handler(scheduled("2026-12-14T03:00:00Z"), context)
    # THEN the same commit is trained again: a retraining is a new run of the head, not a duplicate push
    assert later["status"] == "started" and later["commit_id"] == head
    assert len(cloud.executions()) == 2


def test_a_retraining_reads_the_data_again_where_a_push_reuses_its_cached_split(
    cloud: Cloud, context: Any
) -> None:
    # Step caching keys on a step's arguments, never on what an S3 URI holds (SageMaker developer guide,
    # pipelines-default-keys): only a new DataVersion (PreprocessData's Environment) makes a rerun.
    head = cloud.repository.commit(TRAINING_CODE)
    pushed = lambda_handler(push_event(head), context)
    assert parameters_of(cloud, pushed["execution_arn"])["DataVersion"] == "push"
    first = lambda_handler(scheduled("2026-12-07T03:00:00Z"), context)
    second = lambda_handler(scheduled("2026-12-14T03:00:00Z"), context)
    assert parameters_of(cloud, first["execution_arn"])["DataVersion"] == "schedule:2026-12-07T03:00:00+00:00"
    assert (
        parameters_of(cloud, second["execution_arn"])["DataVersion"] == "schedule:2026-12-14T03:00:00+00:00"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"trigger": "drift"},  # no drift trigger from the schedule's Input
        {"scheduledTime": "next monday"},
        {"scheduledTime": None},
        {"extra": "field"},
    ],
)
def test_a_malformed_retraining_request_is_refused_without_a_side_effect(
    cloud: Cloud, context: Any, change: dict[str, Any]
) -> None:
    cloud.repository.commit(TRAINING_CODE)
    event = scheduled()
    event["retraining"].update(change)
    result = lambda_handler(event, context)
    assert result["status"] == "ignored"
    assert cloud.executions() == []


def test_without_the_branch_there_is_nothing_to_retrain(cloud: Cloud, context: Any) -> None:
    result = lambda_handler(scheduled(), context)
    assert result == {"status": "ignored", "reason": "no-branch", "branch": BRANCH, "trigger": "schedule"}
    assert cloud.executions() == []


def test_a_retraining_is_run_once_with_this_invocations_deadline(cloud: Cloud, context: Any) -> None:
    # Powertools idempotency with the Lambda context registered: a start cut off by a timeout is not
    # answered "in progress" for an hour, but runs again once the invocation's time is up
    import time

    cloud.repository.commit(TRAINING_CODE)
    before_ms = int(time.time() * 1000)
    assert lambda_handler(scheduled(), context)["status"] == "started"
    assert_run_once_until_the_deadline("start_retraining", before_ms)


def test_a_drift_and_a_schedule_at_the_same_instant_are_two_triggers(cloud: Cloud, context: Any) -> None:
    # one run per trigger and time: the drift is not answered with the schedule's result
    cloud.repository.commit(TRAINING_CODE)
    scheduled_at = "2026-12-07T10:01:13.214000+00:00"
    first = lambda_handler(scheduled(at=scheduled_at), context)
    assert first["status"] == "started"
    second = lambda_handler(alarm_event(at="2026-12-07T10:01:13.214+0000"), context)  # the first has ended
    assert (second["status"], second["trigger"]) == ("started", "drift")
    assert second["execution_arn"] != first["execution_arn"] and len(cloud.executions()) == 2


def test_the_schedule_is_off_unless_a_schedule_expression_is_given() -> None:
    from tests.template.cfn import Resolver

    template = load_template()
    retrain = template["Resources"]["StartPipelineFunction"]["Properties"]["Events"]["Retrain"]["Properties"]
    assert Resolver(template).resolve(retrain["State"]) == "DISABLED"
    assert Resolver(template, {"RetrainSchedule": "rate(7 days)"}).resolve(retrain["State"]) == "ENABLED"
    assert Resolver(template, {"RetrainSchedule": "rate(7 days)"}).resolve(retrain["ScheduleExpression"]) == (
        "rate(7 days)"
    )


# --- what people and dashboards read: answers, log lines, metrics, ledger items, the token -----------
def started_requests(cloud: Cloud) -> list[dict[str, Any]]:
    """StartPipelineExecution requests, recorded on their way to moto (moto ignores the token)."""
    seen: list[dict[str, Any]] = []

    def record(params: dict[str, Any], moto: Any) -> dict[str, Any]:
        seen.append(params)
        return dict(moto(params))

    cloud.through_moto("StartPipelineExecution", record)
    return seen


def test_a_started_retraining_is_answered_logged_counted_and_recorded_in_full(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    head = cloud.repository.commit(TRAINING_CODE)
    requests = started_requests(cloud)
    result = lambda_handler(scheduled("2026-12-07T03:00:00Z"), context)

    arn = result["execution_arn"]
    assert result == {"status": "started", "trigger": "schedule", "commit_id": head, "execution_arn": arn}
    [line] = logged(caplog, "retraining started")
    assert (line["trigger"], line["scheduled_time"], line["commit_id"], line["execution_arn"]) == (
        "schedule",
        "2026-12-07T03:00:00+00:00",
        head,
        arn,
    )
    assert metrics_emitted(capsys)["RetrainingsStarted"] == 1
    # the token: one run per trigger and scheduled time (a push's token is per commit)
    seed = f"{REPOSITORY}:{BRANCH}:{head}:schedule:2026-12-07T03:00:00+00:00"
    [request] = requests
    assert request["ClientRequestToken"] == hashlib.sha256(seed.encode()).hexdigest()
    assert request["PipelineExecutionDescription"] == (
        f"retraining (schedule 2026-12-07T03:00:00+00:00) of {REPOSITORY}@{BRANCH} commit {head}"
    )
    ledger = Ledger(TABLE)
    record = ledger.get(f"COMMIT#{REPOSITORY}#{head}", "RETRAINING#2026-12-07T03:00:00+00:00")
    assert record is not None
    assert {k: record[k] for k in ("kind", "trigger", "scheduled_time", "schedule_arn", "execution_arn")} == {
        "kind": "retraining",
        "trigger": "schedule",
        "scheduled_time": "2026-12-07T03:00:00+00:00",
        "schedule_arn": SCHEDULE_ARN,
        "execution_arn": arn,
    }
    assert "features" not in record and "report" not in record  # only a drift names what drifted
    # the run is recorded as a push's is: under the commit with its display name, and with its parameters
    run = ledger.get(f"COMMIT#{REPOSITORY}#{head}", f"EXECUTION#{arn}")
    assert run is not None and run["display_name"] == f"{BRANCH}-{head[:12]}"
    execution = ledger.get(f"EXECUTION#{arn}", "EXECUTION")
    assert execution is not None and execution["parameters"]["CommitId"] == head


def test_a_run_in_progress_is_named_logged_and_counted(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    head = cloud.repository.commit(TRAINING_CODE)
    running = lambda_handler(push_event(head), context)["execution_arn"]
    set_status("Executing")
    capsys.readouterr()
    result = lambda_handler(scheduled(), context)
    assert result == {"status": "skipped", "reason": "run-in-progress", "executing": [running]}
    [line] = logged(caplog, "retraining skipped: a run is executing")
    assert (line["trigger"], line["executing"]) == ("schedule", [running])
    assert metrics_emitted(capsys)["RetrainingsSkipped"] == 1


def test_a_retraining_already_starting_is_skipped_logged_and_counted(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    cloud.repository.commit(TRAINING_CODE)
    # GIVEN another trigger holds the retraining lease (it is checking and starting right now)
    assert Ledger(TABLE).acquire_lease(f"PIPELINE#{PIPELINE}", "schedule:another", 120)
    result = lambda_handler(scheduled(), context)
    assert result == {"status": "skipped", "reason": "retraining-starting", "trigger": "schedule"}
    [line] = logged(caplog, "retraining skipped: another retraining is starting")
    assert line["trigger"] == "schedule"
    assert metrics_emitted(capsys)["RetrainingsSkipped"] == 1
    assert cloud.executions() == []


def test_the_lease_is_released_after_a_start_so_the_next_trigger_may_check(
    cloud: Cloud, context: Any
) -> None:
    cloud.repository.commit(TRAINING_CODE)
    lambda_handler(scheduled("2026-12-07T03:00:00Z"), context)
    assert Ledger(TABLE).acquire_lease(f"PIPELINE#{PIPELINE}", "someone-else", 60)


def test_a_head_without_its_training_code_is_refused_and_logged(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    head = cloud.repository.commit({"training_code/train.py": b"print('no preprocess.py')\n"})
    result = lambda_handler(scheduled(), context)
    assert result == {
        "status": "rejected",
        "reason": "training-code-incomplete",
        "detail": "preprocess.py, evaluate.py missing under training_code/",
    }
    [line] = logged(caplog, "retraining refused: training code incomplete", "ERROR")
    assert (line["commit_id"], line["error"]) == (head, result["detail"])
    assert cloud.executions() == []


# --- retraining on data drift: the stack's drift alarm going to ALARM (orchestrator.monitor raised it) ---

DRIFT_ALARM = "mlops-demo-data-drift"
REPORT = "s3://mlops-demo-artifacts-123456789012/monitoring/mlops-demo-endpoint/2026/12/07/100000/"


def alarm_event(
    name: str = DRIFT_ALARM,
    state: str = "ALARM",
    account: str = "123456789012",
    at: str = "2026-12-07T10:01:13.214+0000",
) -> dict[str, Any]:
    """AWS's documented alarm state change (tests/aws_examples), for this stack's drift alarm."""
    event = json.loads((ROOT / "tests/aws_examples/cloudwatch_alarm_state_change.json").read_text())
    event["account"] = account
    event["resources"] = [f"arn:aws:cloudwatch:us-east-1:{account}:alarm:{name}"]
    event["detail"]["alarmName"] = name
    event["detail"]["state"].update(value=state, timestamp=at)
    return dict(event)


def drift_found(features: list[str]) -> None:
    """What a monitoring run that found drift leaves in the ledger (orchestrator.monitor)."""
    Ledger(TABLE).put(
        "MONITORING",
        "LATEST-DRIFT",
        kind="drift",
        endpoint="mlops-demo-endpoint",
        drifted_features=features,
        report=REPORT,
        monitored_at="2026-12-07T10:00:00+00:00",
    )


def test_the_drift_alarm_retrains_the_head_and_records_the_drifted_features(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a monitoring run found CRIM and RM drifted, and the drift alarm went to ALARM
    head = cloud.repository.commit(TRAINING_CODE)
    drift_found(["CRIM", "RM"])

    # WHEN its state change arrives
    result = lambda_handler(alarm_event(), context)

    # THEN a run of the head started, reading the data again, and the ledger says why
    assert (result["status"], result["trigger"], result["commit_id"]) == ("started", "drift", head)
    [execution] = cloud.executions()
    assert execution["PipelineExecutionArn"] == result["execution_arn"]
    parameters = parameters_of(cloud, result["execution_arn"])
    assert parameters["DataVersion"] == "drift:2026-12-07T10:01:13.214000+00:00"
    record = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{head}", "RETRAINING#2026-12-07T10:01:13.214000+00:00")
    assert record is not None
    assert (record["trigger"], record["features"], record["report"]) == ("drift", ["CRIM", "RM"], REPORT)
    [line] = logged(caplog, "retraining started")
    assert (line["trigger"], line["features"]) == ("drift", ["CRIM", "RM"])


def test_one_alarm_state_change_starts_one_run_however_often_it_is_delivered(
    cloud: Cloud, context: Any
) -> None:
    cloud.repository.commit(TRAINING_CODE)
    drift_found(["CRIM"])
    first = lambda_handler(alarm_event(), context)
    again = lambda_handler(alarm_event(), context)
    assert first == again and len(cloud.executions()) == 1


def test_drift_while_a_run_executes_starts_nothing(cloud: Cloud, context: Any) -> None:
    head = cloud.repository.commit(TRAINING_CODE)
    assert lambda_handler(push_event(head), context)["status"] == "started"
    set_status("Executing")
    drift_found(["CRIM"])
    result = lambda_handler(alarm_event(), context)
    assert (result["status"], result["reason"]) == ("skipped", "run-in-progress")
    assert len(cloud.executions()) == 1


@pytest.mark.parametrize(
    ("event", "refusal"),
    [
        # a near miss of the name, and another alarm of the stack
        (
            alarm_event(name="mlops-demo-data-drift-old"),
            {"reason": "foreign-alarm", "alarm": DRIFT_ALARM + "-old"},
        ),
        (
            alarm_event(name="mlops-demo-endpoint-5xx"),
            {"reason": "foreign-alarm", "alarm": "mlops-demo-endpoint-5xx"},
        ),
        # drift has cleared
        (alarm_event(state="OK"), {"reason": "not-in-alarm", "alarm": DRIFT_ALARM, "state": "OK"}),
        (
            alarm_event(state="INSUFFICIENT_DATA"),
            {"reason": "not-in-alarm", "alarm": DRIFT_ALARM, "state": "INSUFFICIENT_DATA"},
        ),
        (alarm_event(account="210987654321"), {"reason": "foreign-account", "account": "210987654321"}),
    ],
)
def test_other_alarm_changes_are_refused_word_for_word_and_start_nothing(
    cloud: Cloud,
    context: Any,
    event: dict[str, Any],
    refusal: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cloud.repository.commit(TRAINING_CODE)
    drift_found(["CRIM"])
    result = lambda_handler(event, context)
    assert result == {"status": "ignored"} | refusal
    assert cloud.executions() == []
    [line] = logged(caplog, "event ignored", "WARNING")
    assert {key: line.get(key) for key in refusal} == refusal


def test_without_a_drift_report_the_alarm_still_retrains_with_no_features_named(
    cloud: Cloud, context: Any
) -> None:
    head = cloud.repository.commit(TRAINING_CODE)
    result = lambda_handler(alarm_event(), context)
    assert result["status"] == "started"
    record = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{head}", "RETRAINING#2026-12-07T10:01:13.214000+00:00")
    assert record is not None and (record["features"], record.get("report")) == ([], None)


def test_a_malformed_alarm_event_is_refused(cloud: Cloud, context: Any) -> None:
    cloud.repository.commit(TRAINING_CODE)
    event = alarm_event()
    event["detail"]["state"]["value"] = "ON_FIRE"
    assert lambda_handler(event, context)["reason"] == "malformed"
    assert cloud.executions() == []


def test_at_most_a_thousand_drifted_features_are_recorded(cloud: Cloud, context: Any) -> None:
    # a report naming more features than any table has columns is cut, not carried whole into the ledger
    head = cloud.repository.commit(TRAINING_CODE)
    drift_found([f"f{i}" for i in range(1001)])
    assert lambda_handler(alarm_event(), context)["status"] == "started"
    record = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{head}", "RETRAINING#2026-12-07T10:01:13.214000+00:00")
    assert record is not None and record["features"] == [f"f{i}" for i in range(1000)]
