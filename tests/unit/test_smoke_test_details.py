"""The smoke test's details that people and dashboards read (orchestrator.promote): what it measures and
how, where its held-out rows come from, and how its result is recorded, word for word (from the mutation
run's survivors)."""

from __future__ import annotations

import io
import itertools
import json
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody

from orchestrator import promote
from orchestrator.adapters.ledger import endpoint_pk, package_pk
from orchestrator.domain import PackageLineage
from orchestrator.promote import SmokeResult, held_out_rows, held_out_uri, record_smoke_result, smoke_test
from orchestrator.settings import DeploySettings, load_settings
from tests.unit.conftest import BUCKET, ENDPOINT, ENVIRONMENT, Cloud, logged
from tests.unit.fakes import client_error

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/mlops-demo-models/3"
CONFIG = "mlops-demo-endpoint-v3-1a2b3c4d"
RESULT = SmokeResult(
    package_arn=ARN,
    endpoint_name=ENDPOINT,
    endpoint_config_name=CONFIG,
    rows=20,
    errors=1,
    error_rate=0.05,
    p95_latency_ms=11.2134,
    rmse=2.33147,
    passed=True,
    failures=(),
    tested_at="2026-12-07T10:00:00.123+00:00",
)


class Recorder:
    """Ledger, SageMaker adapter and notifier stand-ins that keep what they were asked."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, str, dict[str, Any]]] = []
        self.updates: list[dict[str, Any]] = []
        self.notes: list[tuple[str, str, dict[str, Any]]] = []
        self.client = self

    def put(self, pk: str, sk: str, **attributes: Any) -> None:
        self.puts.append((pk, sk, attributes))

    def update_model_package(self, **request: Any) -> None:
        self.updates.append(request)

    def notify(self, subject: str, message: str, **attributes: Any) -> None:
        self.notes.append((subject, message, attributes))


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, float]]:
    added: list[tuple[str, str, float]] = []
    monkeypatch.setattr(
        promote.metrics, "add_metric", lambda name, unit, value: added.append((name, unit, value))
    )
    return added


def test_a_passed_smoke_test_is_recorded_on_the_package_and_in_the_ledger_word_for_word(
    counted: list[tuple[str, str, float]], caplog: pytest.LogCaptureFixture
) -> None:
    seen = Recorder()
    record_smoke_result(RESULT, seen, seen, seen)
    assert seen.puts == [
        (package_pk(ARN), "STAGE#Staging", {"kind": "stage", "stage": "Staging", **asdict(RESULT)}),
        (
            endpoint_pk(ENDPOINT),
            "EVENT#2026-12-07T10:00:00.123+00:00",
            {"kind": "event", "action": "smoke-test", "config": CONFIG, "passed": True},
        ),
    ]
    [update] = seen.updates
    assert update["ModelLifeCycle"] == {
        "Stage": "Staging",
        "StageStatus": "Passed",
        "StageDescription": RESULT.description(),
    }
    assert update["CustomerMetadataProperties"] == {
        "SmokeTestEndpointConfig": CONFIG,
        "SmokeTestRows": "20",
        "SmokeTestErrorRate": "0.0500",
        "SmokeTestP95LatencyMs": "11.21",
        "SmokeTestRmse": "2.331",
        "SmokeTestResult": "Passed",
    }
    assert counted == [("SmokeTestsPassed", "Count", 1)]
    [line] = logged(caplog, "smoke test passed", "INFO")
    assert {k: line[k] for k in asdict(RESULT)} == asdict(RESULT)
    assert seen.notes == []


def test_a_failed_smoke_test_is_recorded_counted_logged_and_told(
    counted: list[tuple[str, str, float]], caplog: pytest.LogCaptureFixture
) -> None:
    failed = replace(RESULT, passed=False, failures=("RMSE 2.331 > 2.0",))
    seen = Recorder()
    record_smoke_result(failed, seen, seen, seen)
    assert seen.puts[1][2] == {"kind": "event", "action": "smoke-test", "config": CONFIG, "passed": False}
    [update] = seen.updates
    assert update["ModelLifeCycle"]["StageStatus"] == "Failed"
    assert update["CustomerMetadataProperties"]["SmokeTestResult"] == "Failed"
    assert counted == [("SmokeTestsFailed", "Count", 1)]
    [line] = logged(caplog, "smoke test failed", "WARNING")
    assert line["failures"] == ("RMSE 2.331 > 2.0",)
    assert seen.notes == [
        (
            "Smoke test failed on the staging endpoint",
            failed.description(),
            {"package_arn": ARN, "endpoint_name": ENDPOINT},
        )
    ]


# --- measuring ---------------------------------------------------------------------------------------
def settings(**changes: str) -> DeploySettings:
    return load_settings(DeploySettings, ENVIRONMENT | changes)


PACKAGE = PackageLineage(
    package_arn=ARN,
    group=ENVIRONMENT["MODEL_PACKAGE_GROUP_NAME"],
    version=3,
    approval_status="Approved",
    package_status="Completed",
)


class Endpoint:
    """InvokeEndpoint answering each request in turn: a text body, or an error code."""

    def __init__(self, *answers: str | ClientError) -> None:
        self.answers = list(answers)
        self.bodies: list[bytes] = []

    def invoke_endpoint(self, **request: Any) -> dict[str, Any]:
        self.bodies.append(request["Body"])
        answer = self.answers.pop(0)
        if isinstance(answer, ClientError):
            raise answer
        return {"Body": StreamingBody(io.BytesIO(answer.encode()), len(answer.encode()))}


def clock(monkeypatch: pytest.MonkeyPatch, *seconds: float) -> None:
    """time.perf_counter as the smoke test reads it: started, then answered, per row."""
    ticks = itertools.chain(seconds, itertools.repeat(seconds[-1]))
    monkeypatch.setattr(promote.time, "perf_counter", lambda: next(ticks))


def test_latency_is_measured_in_milliseconds_and_rounded_to_microseconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock(monkeypatch, 10.0, 10.0123456)
    result = smoke_test(PACKAGE, ENDPOINT, CONFIG, [("1,2", 3.0)], settings(), Endpoint("3.0"))
    assert result.p95_latency_ms == 12.346
    assert (result.endpoint_name, result.endpoint_config_name, result.package_arn) == (ENDPOINT, CONFIG, ARN)
    tested = datetime.fromisoformat(result.tested_at)
    assert tested.utcoffset() is not None and tested.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert len(result.tested_at.split(".")[1]) == len("123+00:00")  # milliseconds


def test_every_row_is_tried_and_each_error_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    # a model error, an answer that is not a number, then two good answers (1 and 2 off)
    clock(monkeypatch, 0.0)
    endpoint = Endpoint(client_error("ModelError", "boom", "InvokeEndpoint"), "not a number", "4.0", "0.0")
    rows = [("1", 1.0), ("2", 2.0), ("3", 3.0), ("4", 2.0)]
    result = smoke_test(PACKAGE, ENDPOINT, CONFIG, rows, settings(SMOKE_TEST_MAX_ERROR_RATE="1"), endpoint)
    assert len(endpoint.bodies) == 4
    assert (result.rows, result.errors, result.error_rate) == (4, 2, 0.5)
    assert result.rmse == 1.581139  # sqrt((1 + 4) / 2), to 6 places
    three = smoke_test(
        PACKAGE,
        ENDPOINT,
        CONFIG,
        rows[:3],
        settings(SMOKE_TEST_MAX_ERROR_RATE="1"),
        Endpoint(client_error("ModelError", "boom", "InvokeEndpoint"), "x", "3.0"),
    )
    assert three.error_rate == 0.666667
    model_errors = smoke_test(
        PACKAGE,
        ENDPOINT,
        CONFIG,
        rows[:3],
        settings(SMOKE_TEST_MAX_ERROR_RATE="1"),
        Endpoint(*(client_error("ModelError", "boom", "InvokeEndpoint") for _ in range(2)), "3.0"),
    )
    assert model_errors.errors == 2


def test_measures_at_their_thresholds_pass_and_above_them_fail_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at = settings(SMOKE_TEST_MAX_P95_MS="12.5", SMOKE_TEST_MAX_RMSE="2")
    clock(monkeypatch, 0.0, 0.0125)
    result = smoke_test(PACKAGE, ENDPOINT, CONFIG, [("1", 1.0)], at, Endpoint("3.0"))
    assert (result.p95_latency_ms, result.rmse, result.passed) == (12.5, 2.0, True)
    over = settings(SMOKE_TEST_MAX_P95_MS="10", SMOKE_TEST_MAX_RMSE="1.5")
    clock(monkeypatch, 0.0, 0.0125)
    failed = smoke_test(PACKAGE, ENDPOINT, CONFIG, [("1", 1.0)], over, Endpoint("3.0"))
    assert failed.failures == ("p95 latency 12.5 ms > 10.0 ms", "RMSE 2 > 1.5")


def test_without_rows_nothing_is_measured_and_the_test_fails() -> None:
    result = smoke_test(PACKAGE, ENDPOINT, CONFIG, [], settings(), Endpoint())
    assert (result.rows, result.error_rate, result.p95_latency_ms, result.rmse) == (0, 1.0, None, None)
    assert result.failures[0] == "no held-out rows to test with" and not result.passed


# --- where the held-out rows come from ----------------------------------------------------------------
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-demo-pipeline/execution/abc"


class Runs:
    """SageMakerAdapter's execution_steps and describe_processing_job, from given answers."""

    def __init__(self, steps: list[dict[str, Any]] | ClientError, jobs: dict[str, dict[str, Any]]) -> None:
        self.steps, self.jobs = steps, jobs
        self.described: list[str] = []

    def execution_steps(self, arn: str) -> list[dict[str, Any]]:
        if isinstance(self.steps, ClientError):
            raise self.steps
        return self.steps

    def describe_processing_job(self, name: str) -> dict[str, Any] | None:
        self.described.append(name)
        return self.jobs.get(name)


def job(uri: str) -> dict[str, Any]:
    return {
        "ProcessingOutputConfig": {
            "Outputs": [
                {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/train"}},
                {"OutputName": "test", "S3Output": {"S3Uri": uri}},
            ]
        }
    }


def step(name: str, job_name: str | None) -> dict[str, Any]:
    metadata = {
        "ProcessingJob": {"Arn": f"arn:aws:sagemaker:us-east-1:123456789012:processing-job/{job_name}"}
    }
    return {"StepName": name, "Metadata": metadata if job_name else {}}


def test_the_held_out_split_is_the_preprocessing_jobs_test_output_whatever_step_comes_first() -> None:
    runs = Runs(
        [
            step("BaselineData", "pipelines-abc-baselinedata"),
            step("PreprocessData", "pipelines-abc-preprocess"),
        ],
        {
            "pipelines-abc-baselinedata": job("s3://b/wrong/"),
            "pipelines-abc-preprocess": job("s3://b/held/BOX"),
        },
    )
    assert held_out_uri(EXECUTION, runs) == "s3://b/held/BOX/"
    assert runs.described == ["pipelines-abc-preprocess"]
    slashed = Runs([step("PreprocessData", "j")], {"j": job("s3://b/held/BOX/")})
    assert held_out_uri(EXECUTION, slashed) == "s3://b/held/BOX/"


def test_a_preprocessing_step_without_its_job_gives_no_rows_and_describes_nothing() -> None:
    runs = Runs([step("PreprocessData", None)], {"None": job("s3://b/x/"), "": job("s3://b/y/")})
    assert held_out_uri(EXECUTION, runs) is None
    assert runs.described == []


def test_a_run_that_is_gone_gives_no_rows_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    gone = Runs(client_error("ResourceNotFound", "no such execution", "ListPipelineExecutionSteps"), {})
    assert held_out_uri(EXECUTION, gone) is None
    [line] = logged(caplog, "the package's run is not found: no held-out rows", "WARNING")
    assert line["execution_arn"] == EXECUTION
    with pytest.raises(ClientError):
        held_out_uri(
            EXECUTION,
            Runs(client_error("ThrottlingException", "slow down", "ListPipelineExecutionSteps"), {}),
        )


def put(key: str, body: bytes) -> None:
    boto3.client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)


def test_rows_come_from_the_csvs_under_the_prefix_only(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"s3://{BUCKET}/pipelines/run1/PreprocessData/test/"
    assert held_out_rows(prefix, 10, boto3.client("s3")) == []  # nothing there yet
    put("pipelines/run1/PreprocessData/test/test-algo-1.csv", b"a,MEDV\n1.5,10\n")
    put("pipelines/run1/PreprocessData/test/notes.txt", b"a,MEDV\n9,9\n")
    put("pipelines/run2/PreprocessData/test/test-algo-1.csv", b"a,MEDV\n7,7\n")
    # one feature and the target is a row; invalid UTF-8 is replaced, not fatal
    put("pipelines/run1/PreprocessData/test/test-algo-2.csv", b"a,MEDV\n2\xff,20\n3,30\n")
    rows = held_out_rows(prefix, 10, boto3.client("s3"))
    assert rows == [("1.5", 10.0), ("2\ufffd", 20.0), ("3", 30.0)]


def test_objects_are_read_within_the_byte_budget_and_rows_within_their_size_limit(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"s3://{BUCKET}/pipelines/run1/PreprocessData/test/"
    small = b"a,b,MEDV\n1,2,3\n"
    big = b"a,b,MEDV\n4,5,6\n7,8,9\n"
    put("pipelines/run1/PreprocessData/test/a.csv", small)
    put("pipelines/run1/PreprocessData/test/b.csv", big)
    put("pipelines/run1/PreprocessData/test/c.csv", small)
    # a.csv fills the budget exactly; b.csv and c.csv would go over it
    monkeypatch.setattr(promote, "MAX_HELD_OUT_BYTES", len(small))
    assert held_out_rows(prefix, 10, boto3.client("s3")) == [("1,2", 3.0)]
    # b.csv is skipped (it would go over what is left), and c.csv, which fits, is still read
    monkeypatch.setattr(promote, "MAX_HELD_OUT_BYTES", 2 * len(small) + len(big) - 1)
    assert held_out_rows(prefix, 10, boto3.client("s3")) == [("1,2", 3.0), ("4,5", 6.0), ("7,8", 9.0)]
    monkeypatch.setattr(promote, "MAX_HELD_OUT_BYTES", 2 * len(small) + len(big))
    monkeypatch.setattr(promote, "MAX_ROW_BYTES", len("1,2"))
    assert held_out_rows(prefix, 10, boto3.client("s3")) == [
        ("1,2", 3.0),
        ("4,5", 6.0),
        ("7,8", 9.0),
        ("1,2", 3.0),
    ]
    monkeypatch.setattr(promote, "MAX_ROW_BYTES", len("1,2") - 1)
    assert held_out_rows(prefix, 10, boto3.client("s3")) == []


def test_the_rows_are_spread_over_the_whole_split_not_its_first_rows(cloud: Cloud) -> None:
    # preprocess.py keeps the input's order: a split of sorted data, in two files
    for name, values in (("part-1", range(60)), ("part-2", range(60, 100))):
        put(
            f"pipelines/run1/PreprocessData/test/{name}.csv",
            ("a,MEDV\n" + "".join(f"{v},{v}\n" for v in values)).encode(),
        )
    prefix = f"s3://{BUCKET}/pipelines/run1/PreprocessData/test/"
    rows = held_out_rows(prefix, 10, boto3.client("s3"))
    assert [target for _, target in rows] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
    assert [target for _, target in held_out_rows(prefix, 3, boto3.client("s3"))] == [0.0, 33.0, 66.0]
    assert len(held_out_rows(prefix, 100, boto3.client("s3"))) == 100
    assert len(held_out_rows(prefix, 1000, boto3.client("s3"))) == 100


def test_metadata_shows_what_was_not_measured() -> None:
    unmeasured = replace(RESULT, p95_latency_ms=None, rmse=None)
    assert unmeasured.metadata()["SmokeTestP95LatencyMs"] == "n/a"
    assert json.dumps(unmeasured.metadata())  # all strings, as CustomerMetadataProperties takes them
