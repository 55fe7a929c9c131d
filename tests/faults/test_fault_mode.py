"""The loop on a faulty local cloud: throttling and 5xx, duplicated and late events, failed jobs, bursts.

Observers here use the local cloud's own clients, which fault mode spares; the handlers and the replay
command use ordinary clients, which it does not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.backends import get_backend

from localcloud.cloud import LocalCloud
from localcloud.faults import JOB_FAILURE_REASON, FaultPlan, Faults
from orchestrator.clients import RETRIES

pytestmark = pytest.mark.slow  # a local cloud, and runs on it

ROOT = Path(__file__).resolve().parents[2]
TRAINING_CODE = ROOT / "training_code"
FINISHED = {"Succeeded", "Failed", "Stopped"}


# --- observing the cloud ----------------------------------------------------------------------------
def settle(cloud: LocalCloud, timeout: float = 180) -> None:
    """Until every event has been delivered (late ones included) and every handler has finished."""
    assert cloud.router is not None
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        assert time.monotonic() < deadline, "the cloud did not settle"
        busy = not cloud.aws.wait_for_events(1) or not cloud.router.wait_until_idle(1)
        quiet = 0 if busy else quiet + 1
        time.sleep(0.2)


def runs_by_commit(cloud: LocalCloud) -> dict[str, list[dict[str, Any]]]:
    sagemaker = cloud.aws.new_client("sagemaker")
    try:
        summaries = sagemaker.list_pipeline_executions(PipelineName=cloud.env["PIPELINE_NAME"])[
            "PipelineExecutionSummaries"
        ]
    except ClientError:
        return {}
    runs: dict[str, list[dict[str, Any]]] = {}
    for summary in summaries:
        parameters = sagemaker.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=summary["PipelineExecutionArn"]
        )["PipelineParameters"]
        commit = next(p["Value"] for p in parameters if p["Name"] == "CommitId")
        runs.setdefault(commit, []).append(summary)
    return runs


def wait_for_runs_to_finish(cloud: LocalCloud, commits: list[str], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_by_commit(cloud)
        if all(
            run["PipelineExecutionStatus"] in FINISHED for commit in commits for run in runs.get(commit, [])
        ):
            return
        time.sleep(0.5)
    raise AssertionError(f"runs of {commits} still going after {timeout}s")


def stop_everything(cloud: LocalCloud) -> None:
    sagemaker = cloud.aws.new_client("sagemaker")
    for runs in runs_by_commit(cloud).values():
        for run in runs:
            if run["PipelineExecutionStatus"] == "Executing":
                sagemaker.stop_pipeline_execution(
                    PipelineExecutionArn=run["PipelineExecutionArn"], ClientRequestToken=uuid.uuid4().hex
                )


def notifications(cloud: LocalCloud) -> list[dict[str, Any]]:
    topic = cloud.env["NOTIFICATION_TOPIC_ARN"]
    sent = get_backend("sns")[cloud.aws.account_id][cloud.aws.region].topics[topic].sent_notifications
    return [{"subject": subject, "message": message} for _, message, subject, _, _ in sent]


def queue_url(cloud: LocalCloud, logical_id: str) -> str:
    sqs = cloud.aws.new_client("sqs")
    return str(sqs.get_queue_url(QueueName=cloud.names[logical_id])["QueueUrl"])


def dead_letters(cloud: LocalCloud, logical_id: str) -> list[dict[str, Any]]:
    """The queue's messages, left in place (received with a zero visibility timeout)."""
    sqs = cloud.aws.new_client("sqs")
    url = queue_url(cloud, logical_id)
    found: dict[str, dict[str, Any]] = {}
    for _ in range(5):
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        ):
            found[message["MessageId"]] = json.loads(message["Body"])
    return list(found.values())


def push(cloud: LocalCloud, tag: str) -> str:
    """Commit a variant of the training code and git push it; returns the commit id."""
    source = Path(cloud.workdir) / f"code-{tag}"
    if not source.exists():
        import shutil

        shutil.copytree(TRAINING_CODE, source, ignore=shutil.ignore_patterns("__pycache__"))
        (source / "VARIANT").write_text(tag)
    return cloud.push(source, f"variant {tag}")


def push_and_await_the_failure(
    cloud: LocalCloud, tag: str, notices_before: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Push a commit, wait for its one run to end Failed; returns the run and its one notification."""
    commit = push(cloud, tag)
    settle(cloud)
    wait_for_runs_to_finish(cloud, [commit])
    settle(cloud)
    [run] = runs_by_commit(cloud)[commit]
    assert run["PipelineExecutionStatus"] == "Failed"
    [notice] = [
        n for n in notifications(cloud)[notices_before:] if run["PipelineExecutionArn"] in n["message"]
    ]
    return run, notice


# --- the fault mode itself --------------------------------------------------------------------------
def test_a_fault_plan_draws_the_same_faults_from_the_same_seed() -> None:
    from localcloud.aws.protocol import RequestInfo

    def draws(seed: int) -> list[str | None]:
        faults = Faults(FaultPlan(seed=seed, throttle=0.3, server_error=0.2))
        info = RequestInfo("sagemaker", "ListPipelines", "json", "POST", "/", {}, {}, b"", "us-east-1", "r")
        return [(error.code if error else None) for error in (faults.api_fault(info) for _ in range(200))]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    codes = draws(7)
    assert 0.4 < sum(code is not None for code in codes) / len(codes) < 0.6
    assert set(codes) == {None, "ThrottlingException", "InternalFailure"}
    assert FaultPlan.parse("seed=3, throttle=0.1,job-failure=0.5") == FaultPlan(
        seed=3, throttle=0.1, job_failure=0.5
    )
    for bad in ("throttle=1.5", "throttle=0.6,server_error=0.6", "latency=1", "throttle"):
        with pytest.raises(ValueError):
            FaultPlan.parse(bad)


def test_faulted_calls_carry_each_services_own_error_and_botocore_retries_them(
    local_cloud: LocalCloud, faults: Callable[..., Faults]
) -> None:
    once = Config(retries={"mode": "standard", "total_max_attempts": 1})
    session = local_cloud.session

    def code_of(service: str, call: Callable[[Any], Any], config: Config = once) -> tuple[str, int]:
        client = session.client(service, config=config)
        with pytest.raises(ClientError) as raised:
            call(client)
        response = raised.value.response
        return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]

    # GIVEN every call throttled: each service answers with its own code (botocore's service models)
    injected = faults(seed=1, throttle=1.0)
    assert code_of("sagemaker", lambda c: c.list_pipelines()) == ("ThrottlingException", 400)
    assert code_of("dynamodb", lambda c: c.list_tables()) == ("ProvisionedThroughputExceededException", 400)
    assert code_of("sns", lambda c: c.list_topics()) == ("Throttled", 429)
    assert code_of("s3", lambda c: c.list_buckets()) == ("SlowDown", 503)
    assert code_of("sqs", lambda c: c.list_queues()) == ("RequestThrottled", 400)
    assert code_of("sts", lambda c: c.get_caller_identity()) == ("Throttling", 400)
    # AND the handlers' retry mode (orchestrator.clients.RETRIES) retried before giving up: 5 attempts
    client = session.client("sagemaker", config=RETRIES)
    with pytest.raises(ClientError) as raised:
        client.list_pipelines()
    assert raised.value.response["ResponseMetadata"]["RetryAttempts"] == 4
    # AND the local cloud's own plumbing is spared
    assert local_cloud.aws.new_client("sagemaker").list_pipelines()["PipelineSummaries"] is not None
    assert injected.summary()["throttled"] >= 7

    # GIVEN every call failing on the server's side
    faults(seed=1, server_error=1.0)
    assert code_of("sagemaker", lambda c: c.list_pipelines()) == ("InternalFailure", 500)
    assert code_of("dynamodb", lambda c: c.list_tables()) == ("InternalServerError", 500)

    # GIVEN a third of the calls throttled: the standard retry mode gets every call through
    faults(seed=2, throttle=0.3)
    client = session.client("sagemaker", config=RETRIES)
    assert all(client.list_pipelines() is not None for _ in range(20))


# --- faults survived --------------------------------------------------------------------------------
def test_a_push_through_throttling_5xx_duplicates_and_late_events_runs_once_and_a_failed_job_is_reported_once(
    local_cloud: LocalCloud, faults: Callable[..., Faults]
) -> None:
    # GIVEN a faulty cloud: throttling, 5xx, every other event duplicated or late, every job failing
    injected = faults(
        seed=11, throttle=0.15, server_error=0.05, duplicate=0.5, delay=0.5, max_delay_s=1.0, job_failure=1.0
    )
    before = len(notifications(local_cloud))

    # WHEN a commit is pushed
    run, notice = push_and_await_the_failure(local_cloud, "faulty", before)

    # THEN exactly one run of that commit started, and it failed at its first job, for the injected reason
    # AND one notification (not one per duplicated event) names the step and the reason
    assert notice["subject"].startswith("Pipeline run failed at ")
    assert JOB_FAILURE_REASON.split(":")[0] in notice["message"]
    # AND the ledger says the same
    ledger = local_cloud.aws.new_client("dynamodb")
    record = ledger.get_item(
        TableName=local_cloud.env["LEDGER_TABLE_NAME"],
        Key={"pk": {"S": f"EXECUTION#{run['PipelineExecutionArn']}"}, "sk": {"S": "EXECUTION"}},
    )["Item"]
    assert record["status"]["S"] == "Failed"
    assert JOB_FAILURE_REASON.split(":")[0] in json.dumps(record)
    # AND the faults really happened
    summary = injected.summary()
    assert summary.get("duplicated", 0) >= 1 and summary.get("job-failed", 0) >= 1
    assert summary.get("throttled", 0) + summary.get("server-error", 0) >= 1


def test_when_retries_run_out_the_push_waits_in_the_dead_letter_queue_and_the_replay_command_runs_it_once(
    local_cloud: LocalCloud, faults: Callable[..., Faults]
) -> None:
    assert local_cloud.router is not None
    # GIVEN AWS throttling every call for a while
    faults(seed=5, throttle=1.0)
    # WHEN a commit is pushed
    commit = push(local_cloud, "throttled")
    settle(local_cloud, timeout=240)

    # THEN the push handler gave up after Lambda's retries, and Lambda's invocation record of the push is
    # in the function's dead-letter queue (its OnFailure destination)
    [record] = [
        r
        for r in dead_letters(local_cloud, "StartPipelineDeadLetterQueue")
        if r["requestPayload"]["detail"]["commitId"] == commit
    ]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestContext"]["functionArn"].endswith(":$LATEST")
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert "Rate exceeded" in record["responsePayload"]["errorMessage"]  # what the throttled call said
    assert commit not in runs_by_commit(local_cloud)

    # WHEN AWS recovers, and the README's replay command runs, twice
    local_cloud.inject_faults(None)
    url = queue_url(local_cloud, "StartPipelineDeadLetterQueue")
    command = [sys.executable, str(ROOT / "tools" / "replay_dead_letters.py"), "--queue-url", url]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    settle(local_cloud)
    second = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    settle(local_cloud)

    # THEN the push was replayed once and started exactly one run; the queue is empty
    assert first.returncode == 0, first.stderr[-2000:]
    assert json.loads(first.stdout)["replayed"] >= 1
    assert json.loads(second.stdout) == {"replayed": 0, "left_in_queue": []}
    assert len(runs_by_commit(local_cloud)[commit]) == 1
    assert dead_letters(local_cloud, "StartPipelineDeadLetterQueue") == []
    stop_everything(local_cloud)
    wait_for_runs_to_finish(local_cloud, [commit])


def test_a_burst_of_pushes_runs_each_commit_at_most_once_and_only_the_head_keeps_running(
    local_cloud: LocalCloud, faults: Callable[..., Faults]
) -> None:
    # GIVEN a faulty cloud that duplicates and reorders events
    injected = faults(seed=23, throttle=0.1, duplicate=0.5, delay=0.6, max_delay_s=1.5)
    # WHEN four commits are pushed within a second or two
    commits = [push(local_cloud, f"burst-{n}") for n in range(4)]
    settle(local_cloud)
    runs = runs_by_commit(local_cloud)

    # THEN no commit has two runs, the head's run started and was never stopped, and every older commit's
    # run (if it had one) is stopped; older commits without a run were recorded as superseded
    head = commits[-1]
    assert all(len(runs.get(commit, [])) <= 1 for commit in commits)
    assert runs[head][0]["PipelineExecutionStatus"] not in {"Stopping", "Stopped"}
    ledger = local_cloud.aws.new_client("dynamodb")
    for commit in commits[:-1]:
        if commit in runs:
            assert runs[commit][0]["PipelineExecutionStatus"] in {"Stopping", "Stopped", "Failed"}, commit
        else:
            item = ledger.get_item(
                TableName=local_cloud.env["LEDGER_TABLE_NAME"],
                Key={"pk": {"S": f"COMMIT#{local_cloud.repository}#{commit}"}, "sk": {"S": "COMMIT"}},
            )["Item"]
            assert item["reason"]["S"] == f"superseded-by-{head}"
    assert injected.summary().get("duplicated", 0) >= 1
    stop_everything(local_cloud)
    wait_for_runs_to_finish(local_cloud, commits)


def test_a_failed_training_job_fails_the_run_at_its_tuning_step_and_the_notice_says_why(
    local_cloud: LocalCloud, faults: Callable[..., Faults]
) -> None:
    # GIVEN every training job failing (preprocessing runs for real), events duplicated
    injected = faults(seed=31, training_failure=1.0, duplicate=0.5, throttle=0.05)
    before = len(notifications(local_cloud))

    # WHEN a commit is pushed and its run ends
    run, notice = push_and_await_the_failure(local_cloud, "training-fails", before)

    # THEN the run failed at TuneModel, and one notice names the step and the training job's reason
    assert notice["subject"] == "Pipeline run failed at TuneModel"
    assert "All training jobs failed" in notice["message"] and "InternalServerError" in notice["message"]
    steps = local_cloud.aws.new_client("sagemaker").list_pipeline_execution_steps(
        PipelineExecutionArn=run["PipelineExecutionArn"]
    )["PipelineExecutionSteps"]
    assert {s["StepName"]: s["StepStatus"] for s in steps}["PreprocessData"] == "Succeeded"
    assert injected.summary()["job-failed"] >= 1


def test_an_endpoint_whose_model_cannot_load_fails_and_the_notice_and_ledger_say_why(
    local_cloud: LocalCloud, faults: Callable[..., Faults]
) -> None:
    import io
    import tarfile

    # GIVEN a registered package whose model archive holds no SavedModel
    env, sagemaker = local_cloud.env, local_cloud.aws.new_client("sagemaker")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        readme = b"not a model\n"
        info = tarfile.TarInfo("README.txt")
        info.size = len(readme)
        tar.addfile(info, io.BytesIO(readme))
    package_arn = register(local_cloud, archive.getvalue(), "broken-job")
    settle(local_cloud)
    injected = faults(seed=37, throttle=0.1, duplicate=0.5, delay=0.3, max_delay_s=0.5)
    before = len(notifications(local_cloud))

    # WHEN a reviewer approves it
    sagemaker.update_model_package(ModelPackageArn=package_arn, ModelApprovalStatus="Approved")

    # THEN the endpoint is Failed, one notice says so with the reason, and the ledger holds it
    wait_for_endpoint(local_cloud, "Failed")
    settle(local_cloud)
    notices = [n for n in notifications(local_cloud)[before:] if n["subject"].endswith(" failed")]
    assert len(notices) == 1 and "SavedModel" in notices[0]["message"]
    state = local_cloud.aws.new_client("dynamodb").get_item(
        TableName=env["LEDGER_TABLE_NAME"],
        Key={"pk": {"S": f"ENDPOINT#{env['ENDPOINT_NAME']}"}, "sk": {"S": "STATE"}},
    )["Item"]
    assert state["status"]["S"] == "FAILED" and "SavedModel" in state["failure_reason"]["S"]
    assert sum(injected.summary().values()) >= 1
    local_cloud.aws.new_client("sagemaker").delete_endpoint(EndpointName=env["ENDPOINT_NAME"])


def register(cloud: LocalCloud, archive: bytes, name: str) -> str:
    """A package in the stack's group whose model is `archive` (what RegisterModel leaves behind)."""
    env = cloud.env
    key = f"pipelines/training/{name}/output/model.tar.gz"
    cloud.aws.new_client("s3").put_object(Bucket=env["ARTIFACT_BUCKET"], Key=key, Body=archive)
    return str(
        cloud.aws.new_client("sagemaker").create_model_package(
            ModelPackageGroupName=env["MODEL_PACKAGE_GROUP_NAME"],
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": env["INFERENCE_IMAGE_URI"],
                        "ModelDataUrl": f"s3://{env['ARTIFACT_BUCKET']}/{key}",
                    }
                ],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
        )["ModelPackageArn"]
    )


def wait_for_endpoint(cloud: LocalCloud, status: str, timeout: float = 120) -> dict[str, Any]:
    sagemaker = cloud.aws.new_client("sagemaker")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            described = sagemaker.describe_endpoint(EndpointName=cloud.env["ENDPOINT_NAME"])
        except ClientError:
            described = {}
        if described.get("EndpointStatus") == status:
            return dict(described)
        time.sleep(0.1)
    raise AssertionError(f"endpoint not {status} within {timeout}s")


def test_an_alarm_during_the_rollout_rolls_the_endpoint_back_and_people_are_told(
    local_cloud: LocalCloud, faults: Callable[..., Faults], tmp_path: Path
) -> None:
    from tests.localcloud.test_hosting import build_model_archive

    sagemaker, cloudwatch = local_cloud.aws.new_client("sagemaker"), local_cloud.aws.new_client("cloudwatch")
    alarm = local_cloud.env["ROLLBACK_ALARM_NAMES"].split(",")[0]
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet")
    # GIVEN v1 approved and serving
    v1 = register(local_cloud, build_model_archive(tmp_path, None, seed=1)[0], "rollback-v1")
    v2 = register(local_cloud, build_model_archive(tmp_path, None, seed=2)[0], "rollback-v2")
    sagemaker.update_model_package(ModelPackageArn=v1, ModelApprovalStatus="Approved")
    live = wait_for_endpoint(local_cloud, "InService")["EndpointConfigName"]
    settle(local_cloud)
    injected = faults(seed=41, throttle=0.1, duplicate=0.5)
    before = len(notifications(local_cloud))

    # WHEN v2 is approved, and the stack's rollback alarm goes off while its rollout bakes
    sagemaker.update_model_package(ModelPackageArn=v2, ModelApprovalStatus="Approved")
    wait_for_endpoint(local_cloud, "Updating")
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5xx errors")
    described = wait_for_endpoint(local_cloud, "InService")
    settle(local_cloud)
    statuses = [
        e["detail"]["EndpointStatus"]
        for e in local_cloud.aws.events.history
        if e["detail-type"] == "SageMaker Endpoint State Change"
    ]
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet again")

    # THEN the endpoint serves v1's config again, and people were told once of each step, with the reason
    assert statuses[-3:] == ["UPDATING", "ROLLING_BACK", "IN_SERVICE"], statuses
    assert described["EndpointConfigName"] == live
    subjects = [n["subject"] for n in notifications(local_cloud)[before:]]
    endpoint = local_cloud.env["ENDPOINT_NAME"]
    assert subjects.count(f"Endpoint {endpoint} rolling back") == 1
    assert subjects.count(f"Endpoint {endpoint} rolled back") == 1
    rolled = next(n for n in notifications(local_cloud)[before:] if n["subject"].endswith("rolled back"))
    assert f"serving {live}" in rolled["message"]
    # AND the ledger's view of the endpoint: in service on v1's config, v2's requested
    state = local_cloud.aws.new_client("dynamodb").get_item(
        TableName=local_cloud.env["LEDGER_TABLE_NAME"],
        Key={"pk": {"S": f"ENDPOINT#{endpoint}"}, "sk": {"S": "STATE"}},
    )["Item"]
    assert state["in_service_config"]["S"] == live and state["requested_config"]["S"] != live
    assert sum(injected.summary().values()) >= 1
    sagemaker.delete_endpoint(EndpointName=endpoint)


def test_lambda_invoke_answers_as_the_lambda_api_reference_says(local_cloud: LocalCloud) -> None:
    # Invoke (Lambda API reference): Event -> 202, DryRun -> 204, RequestResponse -> 200 with the payload;
    # a function that does not exist -> ResourceNotFoundException (404)
    client = local_cloud.aws.new_client("lambda")
    name = local_cloud.names["TrackFunction"]
    malformed = json.dumps({"detail-type": "nothing we track"}).encode()
    assert client.invoke(FunctionName=name, InvocationType="DryRun", Payload=b"{}")["StatusCode"] == 204
    reply = client.invoke(FunctionName=name, InvocationType="RequestResponse", Payload=malformed)
    assert reply["StatusCode"] == 200 and "FunctionError" not in reply
    assert json.loads(reply["Payload"].read())["reason"] == "malformed"
    with pytest.raises(ClientError) as missing:
        client.invoke(FunctionName=f"{name}-old", InvocationType="Event", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
