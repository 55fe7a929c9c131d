"""A handler that dies half-way (timeout, out of memory, a lost host) is completed exactly once by the
redelivered event.

A Lambda process that dies runs no `except` and no `finally`: nothing it would still have sent reaches
AWS. `dies_at` stands for that: from the point of death on, every AWS call of the invocation fails, and
the handler ends with a BaseException that no handler code catches. Its idempotency record stays
INPROGRESS until the invocation's deadline (Powertools idempotency, "Lambda timeouts"), so a redelivery
before the deadline is refused with an error (Lambda retries it: 1 then 2 minutes later) and one after the
deadline runs the work again, which must then finish what the dead invocation started, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import botocore.client
import pytest
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

from functions.deploy.app import lambda_handler as deploy_handler
from functions.start_pipeline.app import lambda_handler as push_handler
from orchestrator.adapters.ledger import Ledger, commit_pk
from orchestrator.deploy import LEASE_SECONDS, holder
from tests.unit.conftest import (
    ENDPOINT,
    REPOSITORY,
    TABLE,
    TRAINING_CODE,
    Cloud,
    LambdaContext,
    decide,
    reset_caches,
)
from tests.unit.test_deploy import package, serving_package
from tests.unit.test_start_pipeline import push_event


class ProcessDied(BaseException):
    """The Lambda process is gone."""


@dataclass
class DyingContext(LambdaContext):
    """An invocation with one second left: its deadline, and so its idempotency record's and its lease's
    expiry, passes while the test waits for the redelivery."""

    aws_request_id: str = "dying-0000-4000-8000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 1000


@contextmanager
def dies_at(before: str | None = None, after: str | None = None) -> Iterator[list[str]]:
    """The invocation dies just before calling `before`, or just after `after` returned; yields the
    operations that reached AWS. Calls that a stand-in makes inside a call are the stand-in's own."""
    original = botocore.client.BaseClient._make_api_call
    state = threading.local()
    reached: list[str] = []
    dead = False

    def call(self: Any, operation: str, params: dict[str, Any]) -> Any:
        nonlocal dead
        depth = getattr(state, "depth", 0)
        if depth:
            return original(self, operation, params)
        if dead or operation == before:
            dead = True
            raise ProcessDied(f"died before {operation}")
        state.depth = 1
        try:
            result = original(self, operation, params)
        finally:
            state.depth = 0
        reached.append(operation)
        if operation == after:
            dead = True
            raise ProcessDied(f"died after {operation}")
        return result

    botocore.client.BaseClient._make_api_call = call  # type: ignore[method-assign]
    try:
        yield reached
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]
        reset_caches()  # a new process: cold start, fresh clients


def redeliver_after_the_deadline(handler: Callable[..., Any], event: dict[str, Any], context: Any) -> Any:
    """Lambda's retry that comes after the dead invocation's deadline (and lease) has passed."""
    time.sleep(2.05)  # one second left, and the lease's whole-second expiry
    return handler(event, context)


def recorded_run(commit: str, execution_arn: str) -> dict[str, Any] | None:
    """The ledger's record that the commit's run started."""
    return Ledger(TABLE).get(commit_pk(REPOSITORY, commit), f"EXECUTION#{execution_arn}")


def idempotent_on_token(cloud: Cloud) -> list[str]:
    """StartPipelineExecution as SageMaker documents it: "ClientRequestToken: A unique, case-sensitive
    identifier that you provide to ensure the idempotency of the operation. An idempotent operation
    completes no more than once." (SageMaker API reference). moto ignores the token."""
    started: dict[str, str] = {}
    calls: list[str] = []

    def around(params: dict[str, Any], moto: Callable[..., dict[str, Any]]) -> dict[str, Any]:
        calls.append(params["ClientRequestToken"])
        if params["ClientRequestToken"] not in started:
            started[params["ClientRequestToken"]] = moto(params)["PipelineExecutionArn"]
        return {"PipelineExecutionArn": started[params["ClientRequestToken"]]}

    cloud.through_moto("StartPipelineExecution", around)
    return calls


def test_a_push_handler_that_dies_after_packaging_starts_the_run_once_on_redelivery(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN a push of the training code
    base = cloud.repository.commit({"README.md": b"# demo\n"})
    commit = cloud.repository.commit(TRAINING_CODE, parent=base)
    event = push_event(commit, base)
    idempotent_on_token(cloud)

    # WHEN the handler dies after packaging the code, before StartPipelineExecution
    with dies_at(before="StartPipelineExecution") as reached, pytest.raises(ProcessDied):
        push_handler(event, DyingContext())

    # THEN the code was packaged and no run started
    assert "PutObject" in reached and "StartPipelineExecution" not in reached
    assert cloud.executions() == []
    # AND a retry while the dead invocation's deadline has not passed is an error, for Lambda to retry
    with pytest.raises(IdempotencyAlreadyInProgressError):
        push_handler(event, context)
    assert cloud.executions() == []

    # WHEN the event is redelivered after the deadline, and once more
    result = redeliver_after_the_deadline(push_handler, event, context)
    again = push_handler(event, context)

    # THEN exactly one run of that commit started, and both answers name it
    [execution] = cloud.executions()
    assert result["status"] == "started" and result["execution_arn"] == execution["PipelineExecutionArn"]
    assert again == result
    assert recorded_run(commit, execution["PipelineExecutionArn"]) is not None


def test_a_push_handler_that_dies_after_starting_the_run_records_it_without_a_second_run(
    cloud: Cloud, context: Any
) -> None:
    base = cloud.repository.commit({"README.md": b"# demo\n"})
    commit = cloud.repository.commit(TRAINING_CODE, parent=base)
    event = push_event(commit, base)
    tokens = idempotent_on_token(cloud)

    # WHEN the handler dies right after StartPipelineExecution returned, before the ledger write
    with dies_at(after="StartPipelineExecution"), pytest.raises(ProcessDied):
        push_handler(event, DyingContext())
    [started] = cloud.executions()
    assert recorded_run(commit, started["PipelineExecutionArn"]) is None

    # AND the event is redelivered after the deadline
    result = redeliver_after_the_deadline(push_handler, event, context)

    # THEN the same token named the same run: still one execution, now recorded
    [execution] = cloud.executions()
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert result["execution_arn"] == execution["PipelineExecutionArn"]
    assert recorded_run(commit, execution["PipelineExecutionArn"]) is not None


def test_a_deploy_handler_that_dies_between_the_endpoint_config_and_the_update_deploys_once(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN v1 live and v2 approved
    v1, v2 = package(cloud, 1), package(cloud, 2)
    deploy_handler(decide(cloud, v1, "Approved"), context)
    event = decide(cloud, v2, "Approved")
    updates = len(cloud.apis.calls["sagemaker.UpdateEndpoint"])

    # WHEN the handler dies after creating v2's endpoint config, before UpdateEndpoint
    with dies_at(before="UpdateEndpoint") as reached, pytest.raises(ProcessDied):
        deploy_handler(event, DyingContext())
    assert "CreateEndpointConfig" in reached
    assert serving_package(cloud) == v1

    # AND the event is redelivered after the deadline (the dead invocation's lease has expired with it)
    result = redeliver_after_the_deadline(deploy_handler, event, context)

    # THEN v2 was deployed by exactly one UpdateEndpoint, and recorded
    assert result["endpoint"]["action"] == "updated"
    assert len(cloud.apis.calls["sagemaker.UpdateEndpoint"]) == updates + 1
    assert serving_package(cloud) == v2
    config = result["endpoint"]["endpoint_config_name"]
    assert Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", f"CONFIG#{config}")["package_arn"] == v2


def test_a_deploy_handler_that_dies_after_the_update_records_the_deployment_without_redeploying(
    cloud: Cloud, context: Any
) -> None:
    v1, v2 = package(cloud, 1), package(cloud, 2)
    deploy_handler(decide(cloud, v1, "Approved"), context)
    event = decide(cloud, v2, "Approved")

    # WHEN the handler dies right after UpdateEndpoint returned, before the ledger write
    with dies_at(after="UpdateEndpoint"), pytest.raises(ProcessDied):
        deploy_handler(event, DyingContext())
    updates = len(cloud.apis.calls["sagemaker.UpdateEndpoint"])
    config = cloud.sagemaker.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    assert serving_package(cloud) == v2
    assert Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", f"CONFIG#{config}") is None

    # AND the event is redelivered after the deadline
    result = redeliver_after_the_deadline(deploy_handler, event, context)

    # THEN nothing is deployed again, and the ledger now records the deployment, once
    assert result["endpoint"]["reason"] == "already-live"
    assert len(cloud.apis.calls["sagemaker.UpdateEndpoint"]) == updates
    record = Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", f"CONFIG#{config}")
    assert record is not None and record["package_arn"] == v2 and record["reason"] == "approved"
    # AND a further redelivery changes nothing
    deployed_at = record["deployed_at"]
    deploy_handler(event, context)
    assert Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", f"CONFIG#{config}")["deployed_at"] == deployed_at


@pytest.mark.parametrize(
    ("remaining_ms", "seconds"),
    [(1000, 1), (1001, 2), (299_000, 299), (900_000, LEASE_SECONDS), (0, 1)],
)
def test_the_lease_never_outlives_the_invocation(remaining_ms: int, seconds: int) -> None:
    @dataclass
    class Context:
        aws_request_id: str = "r"

        def get_remaining_time_in_millis(self) -> int:
            return remaining_ms

    assert holder(Context()).lease_seconds == seconds
    assert holder(None).lease_seconds == LEASE_SECONDS
