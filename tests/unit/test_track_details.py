"""TrackFunction, precisely: what each notification says, which metric each outcome counts, which events
are ours. People read the notifications and alarms watch the metrics, so both are checked word for word."""

from __future__ import annotations

import json
import logging
from collections import Counter
from typing import Any

import pytest

from functions.track.app import lambda_handler as track
from orchestrator.adapters.ledger import Ledger
from tests.events import load_event
from tests.unit.conftest import ENDPOINT, REPOSITORY, TABLE, Cloud, logged, reset_caches
from tests.unit.fakes import Expected
from tests.unit.test_track_and_lineage import EXECUTION, steps_of


def metrics_emitted(capsys: pytest.CaptureFixture[str]) -> Counter[str]:
    """The metrics the handler flushed (Powertools writes CloudWatch EMF documents to stdout); every one of
    ours is a Count."""
    counted: Counter[str] = Counter()
    for line in capsys.readouterr().out.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document:
            for directive in document["_aws"]["CloudWatchMetrics"]:
                for metric in directive["Metrics"]:
                    assert metric.get("Unit") == "Count", metric
                    values = document[metric["Name"]]
                    counted[metric["Name"]] += int(sum(values) if isinstance(values, list) else values)
    return counted


_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def log_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, dict[str, Any]]]:
    """Every line the handler logged: level, message and its keyword fields (Powertools' extras)."""
    return [
        (
            record.levelname,
            record.getMessage(),
            {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")},
        )
        for record in caplog.records
        if record.name.startswith("mlops")
    ]


def body_and_details(notification: dict[str, str]) -> tuple[str, dict[str, Any]]:
    text, _, details = notification["Message"].partition("\n\n")
    return text, json.loads(details) if details else {}


def failed_run(cloud: Cloud, steps: list[dict[str, Any]], reason: str | None = None) -> None:
    steps_of(cloud, EXECUTION, steps)
    cloud.apis.serve(
        "sagemaker", "DescribePipelineExecution", lambda p: {"FailureReason": reason} if reason else {}
    )


# --- pipeline runs ---------------------------------------------------------------------------------
def test_a_failed_run_is_told_word_for_word_and_counted(
    cloud: Cloud, context: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    failed_run(
        cloud,
        [
            {"StepName": "PreprocessData", "StepStatus": "Succeeded"},
            {"StepName": "TuneModel", "StepStatus": "Failed", "FailureReason": "ClientError: no val_rmse"},
            {"StepName": "EvaluateModel", "StepStatus": "Failed"},
        ],
    )
    track(load_event("pipeline_execution_failed"), context)

    [notification] = cloud.notifications()
    text, details = body_and_details(notification)
    assert notification["Subject"] == "Pipeline run failed at TuneModel"
    assert text == f"Pipeline execution {EXECUTION} failed at step TuneModel: ClientError: no val_rmse"
    assert details == {
        "execution_arn": EXECUTION,
        "commit_id": None,
        "failed_steps": [
            {"step": "TuneModel", "reason": "ClientError: no val_rmse"},
            {"step": "EvaluateModel", "reason": "no reason given"},
        ],
    }
    assert metrics_emitted(capsys)["PipelineExecutionsFailed"] == 1
    [line] = logged(caplog, "pipeline execution failed", "ERROR")
    assert line["execution_arn"] == EXECUTION and len(line["failed_steps"]) == 2


def test_a_failed_run_without_failed_steps_is_explained_by_the_execution(cloud: Cloud, context: Any) -> None:
    failed_run(cloud, [{"StepName": "PreprocessData", "StepStatus": "Succeeded"}], reason="Stopped by a rule")
    track(load_event("pipeline_execution_failed"), context)
    [notification] = cloud.notifications()
    assert notification["Subject"] == "Pipeline run failed at unknown step"
    assert body_and_details(notification)[0].endswith("failed at step unknown step: Stopped by a rule")


def test_a_failed_run_without_any_reason_says_unknown(cloud: Cloud, context: Any) -> None:
    failed_run(cloud, [])
    track(load_event("pipeline_execution_failed"), context)
    [notification] = cloud.notifications()
    assert body_and_details(notification)[0].endswith("failed at step unknown step: unknown")


def test_the_exit_message_leads_the_explanation_and_the_reason_follows(cloud: Cloud, context: Any) -> None:
    job_arn = (
        "arn:aws:sagemaker:us-east-1:123456789012:processing-job/pipelines-p4jn9xou8a8s-preprocessdata-x"
    )
    failed_run(
        cloud,
        [
            {
                "StepName": "PreprocessData",
                "StepStatus": "Failed",
                "FailureReason": "AlgorithmError: See job logs",
                "Metadata": {"ProcessingJob": {"Arn": job_arn}},
            }
        ],
    )
    describe = Expected("DescribeProcessingJob")
    describe.add(
        {
            "ProcessingJobName": "pipelines-p4jn9xou8a8s-preprocessdata-x",
            "ExitMessage": "target MEDV missing",
        },
        {"ProcessingJobName": "pipelines-p4jn9xou8a8s-preprocessdata-x"},
    )
    cloud.apis.serve("sagemaker", "DescribeProcessingJob", describe)
    track(load_event("pipeline_execution_failed"), context)
    [notification] = cloud.notifications()
    assert body_and_details(notification)[0].endswith(
        "failed at step PreprocessData: target MEDV missing (AlgorithmError: See job logs)"
    )


def test_a_processing_step_whose_job_gives_no_exit_message_keeps_its_reason(
    cloud: Cloud, context: Any
) -> None:
    job = "pipelines-p4jn9xou8a8s-preprocessdata-y"
    job_arn = f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{job}"
    failed_run(
        cloud,
        [
            {
                "StepName": "PreprocessData",
                "StepStatus": "Failed",
                "FailureReason": "AlgorithmError: exit code 1",
                "Metadata": {"ProcessingJob": {"Arn": job_arn}},
            }
        ],
    )
    describe = Expected("DescribeProcessingJob")
    describe.add({"ProcessingJobName": job}, {"ProcessingJobName": job})
    cloud.apis.serve("sagemaker", "DescribeProcessingJob", describe)
    result = track(load_event("pipeline_execution_failed"), context)
    assert result["failed_steps"] == [{"step": "PreprocessData", "reason": "AlgorithmError: exit code 1"}]
    [notification] = cloud.notifications()
    assert body_and_details(notification)[0].endswith("PreprocessData: AlgorithmError: exit code 1")


def test_a_run_started_elsewhere_is_tied_to_its_commit_by_its_parameters(cloud: Cloud, context: Any) -> None:
    # GIVEN a run the push handler did not start (console, CLI), whose parameters name the commit
    commit = "c" * 40
    failed_run(cloud, [{"StepName": "TuneModel", "StepStatus": "Failed", "FailureReason": "OOM"}])
    parameters = Expected("ListPipelineParametersForExecution")
    parameters.add(
        {
            "PipelineParameters": [
                {"Name": "CommitId", "Value": commit},
                {"Name": "RepositoryName", "Value": REPOSITORY},
            ]
        },
        {"PipelineExecutionArn": EXECUTION},
    )
    cloud.apis.serve("sagemaker", "ListPipelineParametersForExecution", parameters)
    track(load_event("pipeline_execution_failed"), context)
    # THEN the notification and the commit's ledger entry name that commit
    [notification] = cloud.notifications()
    assert body_and_details(notification)[1]["commit_id"] == commit
    record = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{commit}", f"EXECUTION#{EXECUTION}")
    assert record is not None and record["status"] == "Failed"


@pytest.mark.parametrize(
    "parameters",
    [
        [{"Name": "CommitId", "Value": "c" * 40}],  # no repository: no commit to tie it to
        [{"Name": "RepositoryName", "Value": REPOSITORY}],
    ],
)
def test_a_run_started_elsewhere_without_both_names_is_tied_to_no_commit(
    cloud: Cloud, context: Any, parameters: list[dict[str, str]]
) -> None:
    failed_run(cloud, [{"StepName": "TuneModel", "StepStatus": "Failed", "FailureReason": "OOM"}])
    listed = Expected("ListPipelineParametersForExecution")
    listed.add({"PipelineParameters": parameters}, {"PipelineExecutionArn": EXECUTION})
    cloud.apis.serve("sagemaker", "ListPipelineParametersForExecution", listed)
    track(load_event("pipeline_execution_failed"), context)
    [notification] = cloud.notifications()
    assert body_and_details(notification)[1]["commit_id"] is None


def test_a_succeeded_run_records_only_the_packages_its_succeeded_register_steps_made(
    cloud: Cloud, context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    package = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-demo-models/4"
    steps = [
        {
            "StepName": "RegisterModel",
            "StepStatus": "Succeeded",
            "Metadata": {"RegisterModel": {"Arn": package}},
        },
        {
            "StepName": "RegisterOther",
            "StepStatus": "Failed",
            "Metadata": {"RegisterModel": {"Arn": package.replace("/4", "/5")}},
        },
        {"StepName": "EvaluateModel", "StepStatus": "Succeeded", "Metadata": {}},
    ]
    steps_of(cloud, EXECUTION, steps)
    result = track(load_event("pipeline_execution_succeeded"), context)
    assert result["registered_packages"] == [package]
    assert result["execution_status"] == "Succeeded"
    assert cloud.notifications() == []
    counted = metrics_emitted(capsys)
    assert counted["PipelineExecutionsSucceeded"] == 1 and counted["PipelineExecutionsFailed"] == 0
    assert Ledger(TABLE).get(f"EXECUTION#{EXECUTION}", f"PACKAGE#{package}") is not None
    assert Ledger(TABLE).get(f"EXECUTION#{EXECUTION}", f"PACKAGE#{package.replace('/4', '/5')}") is None
    run = Ledger(TABLE).get(f"EXECUTION#{EXECUTION}", "EXECUTION")
    assert run is not None and run["status"] == "Succeeded" and "failure" not in run


# --- endpoints -------------------------------------------------------------------------------------
def endpoint_event(status: str, config: str | None = None) -> dict[str, Any]:
    event = load_event("endpoint_failed")
    event["detail"]["EndpointStatus"] = status
    if config is not None:
        event["detail"]["EndpointConfigName"] = config
    return event


@pytest.mark.parametrize(
    ("status", "said"),
    [
        ("FAILED", "failed"),
        ("ROLLING_BACK", "rolling back"),
        ("UPDATE_ROLLBACK_FAILED", "update rollback failed"),
    ],
)
def test_each_endpoint_problem_is_told_with_sagemakers_reason(
    cloud: Cloud, context: Any, capsys: pytest.CaptureFixture[str], status: str, said: str
) -> None:
    describe = Expected("DescribeEndpoint")
    describe.add({"EndpointName": ENDPOINT, "FailureReason": "health check"}, {"EndpointName": ENDPOINT})
    cloud.apis.serve("sagemaker", "DescribeEndpoint", describe)
    event = endpoint_event(status)
    result = track(event, context)
    assert result == {
        "status": "recorded",
        "endpoint_name": ENDPOINT,
        "endpoint_status": status,
        "notified": said,
    }
    [notification] = cloud.notifications()
    text, details = body_and_details(notification)
    assert notification["Subject"] == f"Endpoint {ENDPOINT} {said}"
    assert text == f"Endpoint {ENDPOINT} is {said}: health check"
    assert details == {
        "endpoint_name": ENDPOINT,
        "endpoint_status": status,
        "endpoint_config": event["detail"].get("EndpointConfigName"),
        "requested_config": None,
        "failure_reason": "health check",
    }
    assert metrics_emitted(capsys)["EndpointDeploymentProblems"] == 1


def test_an_endpoint_problem_event_that_carries_its_reason_needs_no_describe(
    cloud: Cloud, context: Any
) -> None:
    event = endpoint_event("FAILED")
    event["detail"]["FailureReason"] = "capacity"
    track(event, context)  # no DescribeEndpoint stand-in: moto would answer without a reason
    [notification] = cloud.notifications()
    assert body_and_details(notification)[0] == f"Endpoint {ENDPOINT} is failed: capacity"


def test_an_endpoint_problem_without_any_reason_says_so(cloud: Cloud, context: Any) -> None:
    describe = Expected("DescribeEndpoint")
    describe.add({"EndpointName": ENDPOINT}, {"EndpointName": ENDPOINT})
    cloud.apis.serve("sagemaker", "DescribeEndpoint", describe)
    track(endpoint_event("FAILED"), context)
    [notification] = cloud.notifications()
    assert body_and_details(notification)[0] == f"Endpoint {ENDPOINT} is failed: no reason given"


@pytest.mark.parametrize("status", ["CREATING", "UPDATING", "SYSTEM_UPDATING", "DELETING", "IN_SERVICE"])
def test_endpoint_states_that_are_no_problem_tell_nobody(cloud: Cloud, context: Any, status: str) -> None:
    result = track(endpoint_event(status), context)
    assert "notified" not in result and cloud.notifications() == []


def test_in_service_on_the_requested_config_is_no_rollback(cloud: Cloud, context: Any) -> None:
    from orchestrator.lineage import LineageRecorder

    Ledger(TABLE).update(f"ENDPOINT#{ENDPOINT}", "STATE", kind="endpoint", requested_config="cfg-v2")
    assert LineageRecorder(Ledger(TABLE), None, "mlops-demo").endpoint_requested_config(ENDPOINT) == "cfg-v2"  # type: ignore[arg-type]
    assert "notified" not in track(endpoint_event("IN_SERVICE", "cfg-v2"), context)
    # the near miss: in service on another config than the one requested is a rollback
    rolled = track(endpoint_event("IN_SERVICE", "cfg-v1") | {"id": "other-event"}, context)
    assert rolled["notified"] == "rolled back"
    [notification] = cloud.notifications()
    assert body_and_details(notification)[0] == (
        f"Endpoint {ENDPOINT} rolled back: serving cfg-v1, requested cfg-v2"
    )


@pytest.mark.parametrize(("maximum", "scaled"), [("1", False), ("2", True)])
def test_autoscaling_only_when_the_maximum_exceeds_the_instance_count(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, maximum: str, scaled: bool
) -> None:
    monkeypatch.setenv("AUTOSCALING_MAX_CAPACITY", maximum)
    reset_caches()
    result = track(endpoint_event("IN_SERVICE"), context)
    expected = f"endpoint/{ENDPOINT}/variant/AllTraffic" if scaled else None
    assert result["autoscaling"] == expected


# --- transform jobs --------------------------------------------------------------------------------
def test_a_failed_transform_is_told_word_for_word(
    cloud: Cloud, context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("transform_job_failed")
    name = event["detail"]["TransformJobName"]
    result = track(event, context)
    assert result == {"status": "recorded", "transform_job": name, "transform_job_status": "Failed"}
    [notification] = cloud.notifications()
    assert notification["Subject"] == f"Transform job {name} failed"
    text, details = body_and_details(notification)
    assert text == f"Batch transform {name} failed: ClientError: See job logs for more information"
    assert details == {
        "transform_job": name,
        "failure_reason": "ClientError: See job logs for more information",
    }
    assert metrics_emitted(capsys)["TransformJobsFailed"] == 1


def test_a_failed_transform_without_a_reason_says_unknown(cloud: Cloud, context: Any) -> None:
    event = load_event("transform_job_failed")
    del event["detail"]["FailureReason"]
    track(event, context)
    [notification] = cloud.notifications()
    assert body_and_details(notification)[0].endswith("failed: unknown")


def test_a_completed_transform_is_recorded_and_tells_nobody(cloud: Cloud, context: Any) -> None:
    event = load_event("transform_job_completed")
    result = track(event, context)
    assert result["transform_job_status"] == "Completed" and cloud.notifications() == []
    record = Ledger(TABLE).get(f"TRANSFORM#{event['detail']['TransformJobName']}", "TRANSFORM")
    assert record is not None and record["status"] == "Completed"


# --- whose events ----------------------------------------------------------------------------------
def test_our_pipeline_is_recognised_whatever_the_case_of_its_name(cloud: Cloud, context: Any) -> None:
    cloud.apis.serve("sagemaker", "DescribePipelineExecution", lambda p: {})
    event = load_event("pipeline_execution_failed")
    upper = EXECUTION.replace("mlops-demo-pipeline", "MLOPS-DEMO-PIPELINE")
    event["detail"]["pipelineExecutionArn"] = upper
    event["detail"]["pipelineArn"] = upper.split("/execution/")[0]
    steps_of(cloud, upper, [{"StepName": "TuneModel", "StepStatus": "Failed", "FailureReason": "OOM"}])
    assert track(event, context).get("reason") != "foreign-pipeline"


@pytest.mark.parametrize(
    ("job", "ours"),
    [
        ("mlops-demo-models-v3-1f2e3d4c", True),
        ("MLOPS-DEMO-MODELS-v3-1f2e3d4c", True),
        ("mlops-demo-modelsx-v3-1f2e3d4c", False),  # the near miss: the group's name without its dash
        ("mlops-demo-models", False),
        ("other-models-v3-1f2e3d4c", False),
    ],
)
def test_transform_jobs_are_ours_by_the_groups_prefix(
    cloud: Cloud, context: Any, job: str, ours: bool
) -> None:
    event = load_event("transform_job_completed")
    event["detail"]["TransformJobName"] = job
    result = track(event, context)
    assert (result.get("reason") != "foreign-transform-job") is ours


def test_endpoint_events_are_foreign_when_no_endpoint_is_deployed_to(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOY_TARGET", "batch")
    monkeypatch.setenv("ENDPOINT_NAME", "")
    reset_caches()
    result = track(endpoint_event("FAILED"), context)
    assert result["reason"] == "foreign-endpoint" and cloud.notifications() == []


def test_an_endpoint_of_another_name_is_foreign_and_ours_in_any_case(cloud: Cloud, context: Any) -> None:
    describe = Expected("DescribeEndpoint")
    describe.add({"EndpointName": ENDPOINT.upper()}, {"EndpointName": ENDPOINT.upper()})
    cloud.apis.serve("sagemaker", "DescribeEndpoint", describe)
    other = endpoint_event("FAILED")
    other["detail"]["EndpointName"] = f"{ENDPOINT}-old"
    assert track(other, context)["reason"] == "foreign-endpoint"
    upper = endpoint_event("FAILED") | {"id": "upper-case"}
    upper["detail"] = upper["detail"] | {"EndpointName": ENDPOINT.upper()}
    assert track(upper, context).get("reason") != "foreign-endpoint"


@pytest.mark.parametrize(
    ("name", "ours"), [("mlops-demo-production", True), ("mlops-demo-production-old", False)]
)
def test_the_production_endpoints_state_is_recorded_without_autoscaling_it(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, name: str, ours: bool
) -> None:
    # staged promotion: the production endpoint's events reach the track handler too (template rule)
    monkeypatch.setenv("PRODUCTION_ENDPOINT_NAME", "mlops-demo-production")
    monkeypatch.setenv("AUTOSCALING_MAX_CAPACITY", "2")
    reset_caches()
    event = endpoint_event("IN_SERVICE", config="mlops-demo-production-v1-0a1b2c3d")
    event["detail"]["EndpointName"] = name
    result = track(event, context)
    if not ours:
        assert result["reason"] == "foreign-endpoint"
        return
    assert (result["status"], result["endpoint_name"]) == ("recorded", name)
    assert "autoscaling" not in result  # AutoscalingMaxCapacity is staging's; production has none yet
    state = Ledger(TABLE).get(f"ENDPOINT#{name}", "STATE")
    assert state is not None and state["in_service_config"] == "mlops-demo-production-v1-0a1b2c3d"


# --- the whole record of one change: answer, log, ledger --------------------------------------------
def test_a_failed_runs_answer_log_and_ledger_record_in_full(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    steps = [{"StepName": "TuneModel", "StepStatus": "Failed", "FailureReason": "OOM"}]
    failed_run(cloud, steps, reason="Step failure: One or multiple steps failed.")
    caplog.set_level(logging.INFO)
    result = track(load_event("pipeline_execution_failed"), context)
    assert result == {
        "status": "recorded",
        "execution_arn": EXECUTION,
        "execution_status": "Failed",
        "failed_steps": [{"step": "TuneModel", "reason": "OOM"}],
    }
    lines = [(level, message) for level, message, _ in log_lines(caplog)]
    assert ("INFO", "pipeline execution status recorded") in lines
    [(_, _, fields)] = [line for line in log_lines(caplog) if line[1] == "pipeline execution status recorded"]
    assert fields == {"execution_arn": EXECUTION, "execution_status": "Failed"}
    record = Ledger(TABLE).get(f"EXECUTION#{EXECUTION}", "EXECUTION")
    assert record is not None and record["failure"] == {
        "failed_steps": [{"step": "TuneModel", "reason": "OOM"}],
        "execution_failure_reason": "Step failure: One or multiple steps failed.",
    }


def test_the_ledger_knows_the_commit_of_a_run_the_push_started_without_asking_sagemaker(
    cloud: Cloud, context: Any
) -> None:
    from orchestrator.adapters.sagemaker import SageMakerAdapter
    from orchestrator.domain import CommitRef
    from orchestrator.lineage import LineageRecorder

    commit = CommitRef(REPOSITORY, "main", "d" * 40)
    LineageRecorder(Ledger(TABLE), SageMakerAdapter(), "mlops-demo").execution_started(
        commit, EXECUTION, "n", {}
    )
    package = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-demo-models/9"
    steps_of(
        cloud,
        EXECUTION,
        [
            {
                "StepName": "RegisterModel",
                "StepStatus": "Succeeded",
                "Metadata": {"RegisterModel": {"Arn": package}},
            }
        ],
    )
    track(load_event("pipeline_execution_succeeded"), context)
    assert cloud.apis.calls["sagemaker.ListPipelineParametersForExecution"] == []
    under_commit = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{'d' * 40}", f"PACKAGE#{package}")
    assert under_commit is not None and under_commit["execution_arn"] == EXECUTION
    run = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{'d' * 40}", f"EXECUTION#{EXECUTION}")
    assert run is not None and run["status"] == "Succeeded"


def test_a_run_that_fails_again_after_a_retry_is_told_again(cloud: Cloud, context: Any) -> None:
    # RetryPipelineExecution: the same execution reaches Failed a second time, later
    steps = [{"StepName": "TuneModel", "StepStatus": "Failed", "FailureReason": "OOM"}]
    cloud.apis.serve("sagemaker", "ListPipelineExecutionSteps", lambda p: {"PipelineExecutionSteps": steps})
    cloud.apis.serve("sagemaker", "DescribePipelineExecution", lambda p: {})
    first = load_event("pipeline_execution_failed")
    again = load_event("pipeline_execution_failed") | {"id": "retried-0000-4000-8000-000000000000"}
    again["detail"] = again["detail"] | {"executionEndTime": "2024-05-14T11:02:13Z"}
    track(first, context)
    track(again, context)
    assert len(cloud.notifications()) == 2


def test_two_runs_failing_at_the_same_moment_are_two_changes(cloud: Cloud, context: Any) -> None:
    other = EXECUTION.replace("p4jn9xou8a8s", "zz9xou8a8sp4")
    steps = [{"StepName": "TuneModel", "StepStatus": "Failed", "FailureReason": "OOM"}]
    cloud.apis.serve("sagemaker", "ListPipelineExecutionSteps", lambda p: {"PipelineExecutionSteps": steps})
    cloud.apis.serve("sagemaker", "DescribePipelineExecution", lambda p: {})
    first = load_event("pipeline_execution_failed")
    second = load_event("pipeline_execution_failed") | {"id": "second-0000-4000-8000-000000000000"}
    second["detail"] = second["detail"] | {"pipelineExecutionArn": other}
    track(first, context)
    track(second, context)
    assert len(cloud.notifications()) == 2


def test_each_tracked_change_is_keyed_by_resource_state_and_time() -> None:
    from orchestrator.events import EndpointStateEvent, PipelineExecutionStatusEvent, TransformJobStateEvent
    from orchestrator.track import state_change

    execution = PipelineExecutionStatusEvent.model_validate(load_event("pipeline_execution_failed"))
    assert state_change(execution) == {
        "resource": EXECUTION,
        "state": "Failed",
        "changed_at": str(execution.detail.execution_end_time),
    }
    endpoint = EndpointStateEvent.model_validate(load_event("endpoint_in_service"))
    assert state_change(endpoint) == {
        "resource": ENDPOINT,
        "state": f"IN_SERVICE:{endpoint.detail.endpoint_config_name}",
        "changed_at": str(endpoint.detail.last_modified_time),
    }
    transform = TransformJobStateEvent.model_validate(load_event("transform_job_failed"))
    assert state_change(transform) == {
        "resource": "mlops-demo-models-v3-1f2e3d4c",
        "state": "Failed",
        "changed_at": "",
    }


def test_problem_and_transform_lines_carry_their_fields(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    describe = Expected("DescribeEndpoint")
    describe.add({"EndpointName": ENDPOINT, "FailureReason": "x"}, {"EndpointName": ENDPOINT})
    cloud.apis.serve("sagemaker", "DescribeEndpoint", describe)
    track(endpoint_event("FAILED"), context)
    track(load_event("transform_job_failed"), context)
    monkeypatch.setenv("AUTOSCALING_MAX_CAPACITY", "3")
    reset_caches()
    track(endpoint_event("IN_SERVICE", "cfg-1"), context)
    lines = {message: (level, fields) for level, message, fields in log_lines(caplog)}
    assert lines["endpoint deployment problem"] == (
        "ERROR",
        {"endpoint_name": ENDPOINT, "endpoint_status": "FAILED", "rolled_back": False},
    )
    assert lines["transform job failed"] == (
        "ERROR",
        {
            "transform_job": "mlops-demo-models-v3-1f2e3d4c",
            "reason": "ClientError: See job logs for more information",
        },
    )
    assert lines["endpoint autoscaling in place"] == (
        "INFO",
        {"resource_id": f"endpoint/{ENDPOINT}/variant/AllTraffic", "max_capacity": 3},
    )
    transform = Ledger(TABLE).get("TRANSFORM#mlops-demo-models-v3-1f2e3d4c", "TRANSFORM")
    assert (
        transform is not None
        and transform["failure_reason"] == "ClientError: See job logs for more information"
    )


def test_a_rollback_notice_names_the_requested_config(cloud: Cloud, context: Any) -> None:
    Ledger(TABLE).update(f"ENDPOINT#{ENDPOINT}", "STATE", kind="endpoint", requested_config="cfg-v2")
    track(endpoint_event("IN_SERVICE", "cfg-v1"), context)
    [notification] = cloud.notifications()
    assert body_and_details(notification)[1]["requested_config"] == "cfg-v2"


def test_each_refusal_names_what_was_foreign(cloud: Cloud, context: Any) -> None:
    foreign_account = load_event("pipeline_execution_failed") | {"account": "999999999999"}
    assert track(foreign_account, context)["account"] == "999999999999"
    other_pipeline = load_event("pipeline_execution_failed")
    other_arn = EXECUTION.replace("mlops-demo-pipeline", "other-pipeline")
    other_pipeline["detail"] = other_pipeline["detail"] | {
        "pipelineExecutionArn": other_arn,
        "pipelineArn": other_arn.split("/execution/")[0],
    }
    other_pipeline["resources"] = [other_arn.split("/execution/")[0], other_arn]
    assert track(other_pipeline, context)["pipeline"] == "other-pipeline"
    other_endpoint = endpoint_event("FAILED")
    other_endpoint["detail"]["EndpointName"] = "other-endpoint"
    assert track(other_endpoint, context)["endpoint"] == "other-endpoint"
    other_job = load_event("transform_job_failed")
    other_job["detail"]["TransformJobName"] = "other-job"
    assert track(other_job, context)["transform_job"] == "other-job"
    assert cloud.notifications() == []
