"""Events that name things AWS does not have are refused once (logged, counted, no retry); transient AWS
errors propagate so that Lambda retries the event and, when retries run out, the dead-letter queue keeps
it."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.deploy.app import lambda_handler as deploy
from functions.start_pipeline.app import lambda_handler as start_pipeline
from functions.track.app import lambda_handler as track
from orchestrator.adapters import is_permanent
from tests.events import load_event
from tests.unit.conftest import GROUP, TRAINING_CODE, Cloud, logged, register_package
from tests.unit.fakes import client_error
from tests.unit.test_start_pipeline import push_event

EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-demo-pipeline/execution/p4jn9xou8a8s"


def test_push_of_a_commit_the_repository_does_not_have_is_refused_without_side_effects(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a real-shaped push naming a commit the repository lacks
    event = push_event("f" * 40, "e" * 40)

    # WHEN it is handled (and delivered again)
    first = start_pipeline(event, context)
    second = start_pipeline(event, context)

    # THEN it is refused, naming CodeCommit's error, with no run and no upload; nothing raised to retry
    assert first["status"] == second["status"] == "ignored"
    assert first["reason"] == "aws-refused" and first["code"] == "CommitDoesNotExistException"
    assert cloud.executions() == []
    assert cloud.s3.list_objects_v2(Bucket="mlops-demo-artifacts-123456789012").get("KeyCount", 0) == 0
    assert logged(caplog, "event ignored", "ERROR")[0]["operation"] == "GetDifferences"


def test_approval_of_a_package_that_does_not_exist_is_refused(cloud: Cloud, context: Any) -> None:
    event = load_event("model_package_approved")
    missing = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/99"
    event["resources"] = [missing]
    event["detail"].update(ModelPackageArn=missing, ModelPackageVersion=99)
    result = deploy(event, context)
    assert result == {"status": "ignored", "reason": "package-not-found", "package_arn": missing}
    assert cloud.sagemaker.list_endpoints()["Endpoints"] == []


def test_status_of_an_execution_sagemaker_does_not_know_is_refused(cloud: Cloud, context: Any) -> None:
    # GIVEN SageMaker answers ResourceNotFound for the execution's steps (botocore: ListPipelineExecutionSteps
    # raises ResourceNotFound)
    def not_found(_: dict[str, Any]) -> dict[str, Any]:
        raise client_error("ResourceNotFound", f"Pipeline execution {EXECUTION} does not exist", "x")

    cloud.apis.serve("sagemaker", "ListPipelineExecutionSteps", not_found)
    # WHEN its success is reported THEN it is refused, not raised
    result = track(load_event("pipeline_execution_succeeded"), context)
    assert (result["status"], result["reason"], result["code"]) == (
        "ignored",
        "aws-refused",
        "ResourceNotFound",
    )
    assert cloud.notifications() == []


def test_throttling_propagates_for_a_retry_and_the_retry_starts_exactly_one_run(
    cloud: Cloud, context: Any
) -> None:
    # GIVEN SageMaker throttles StartPipelineExecution once (after botocore's own retries ran out)
    base = cloud.repository.commit({"README.md": b"# demo\n"})
    commit = cloud.repository.commit(TRAINING_CODE, parent=base)
    throttled = {"left": 1}

    def throttle_once(params: dict[str, Any], moto: Any) -> dict[str, Any]:
        if throttled["left"]:
            throttled["left"] -= 1
            raise client_error("ThrottlingException", "Rate exceeded", "StartPipelineExecution")
        return dict(moto(params))

    cloud.through_moto("StartPipelineExecution", throttle_once)
    event = push_event(commit, base)

    # WHEN the push is handled THEN the error reaches Lambda (which retries, then dead-letters the event)
    with pytest.raises(ClientError, match="ThrottlingException"):
        start_pipeline(event, context)
    assert cloud.executions() == []

    # WHEN Lambda retries the same event THEN exactly one run starts
    assert start_pipeline(event, context)["status"] == "started"
    assert start_pipeline(event, context)["status"] == "started"  # a duplicate returns the first result
    assert len(cloud.executions()) == 1


@pytest.mark.parametrize(
    ("code", "message", "permanent"),
    [
        ("ResourceNotFound", "", True),
        ("ValidationException", "Could not find model package", True),
        ("CommitDoesNotExistException", "", True),
        ("InvalidCommitIdException", "", True),
        ("FolderDoesNotExistException", "", True),
        # near misses: a busy endpoint, throttling, 5xx, quotas and access are not permanent
        ("ValidationException", 'Cannot update in-progress endpoint "arn:..."', False),
        ("ThrottlingException", "", False),
        ("ProvisionedThroughputExceededException", "", False),
        ("InternalFailure", "", False),
        ("ResourceLimitExceeded", "", False),
        ("AccessDeniedException", "", False),
        ("EncryptionKeyUnavailableException", "", False),
    ],
)
def test_which_errors_are_permanent(code: str, message: str, permanent: bool) -> None:
    assert is_permanent(client_error(code, message, "AnyOperation")) is permanent


def test_registered_package_fixture_still_deploys(cloud: Cloud, context: Any) -> None:
    # the refusal path leaves the ordinary one alone
    arn = register_package(cloud, "a" * 40, EXECUTION, "tune-model-001")
    cloud.sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    event = load_event("model_package_approved")
    event["resources"] = [arn]
    event["detail"].update(ModelPackageArn=arn, ModelPackageVersion=1)
    assert deploy(event, context)["endpoint"]["action"] == "created"
