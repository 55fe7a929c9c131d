"""The IAM guard that every handler test runs under: it sees the calls and knows each function's grants."""

from __future__ import annotations

from typing import Any

from functions.start_pipeline.app import lambda_handler
from tests.iam import is_allowed
from tests.unit.conftest import TRAINING_CODE, Cloud
from tests.unit.test_start_pipeline import push_event


def test_guard_records_the_calls_a_handler_makes(
    cloud: Cloud, context: Any, iam_allows_every_call: list[tuple[str, str]]
) -> None:
    base = cloud.repository.commit({"README.md": b"# demo\n"})
    commit = cloud.repository.commit(TRAINING_CODE, parent=base)
    cloud.sagemaker.list_model_package_groups()  # a call from the test itself is not the handler's

    lambda_handler(push_event(commit, base), context)

    recorded = set(iam_allows_every_call)
    assert ("start_pipeline", "sagemaker:StartPipelineExecution") in recorded
    assert ("start_pipeline", "codecommit:GetDifferences") in recorded
    assert not any(action == "sagemaker:ListModelPackageGroups" for _, action in recorded)


def test_grants_differ_per_function() -> None:
    assert is_allowed("start_pipeline", "sagemaker:StartPipelineExecution")
    assert not is_allowed("track", "sagemaker:StartPipelineExecution")
    assert not is_allowed("deploy", "codecommit:GetFile")
    assert is_allowed("track", "application-autoscaling:RegisterScalableTarget")
    assert is_allowed("deploy", "dynamodb:PutItem")  # through SAM's DynamoDBCrudPolicy template
