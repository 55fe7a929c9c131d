"""The IAM guard that every handler test runs under: it sees the calls and knows each function's grants."""

from __future__ import annotations

from typing import Any

from functions.start_pipeline.app import lambda_handler
from tests.iam import Call, is_allowed
from tests.unit.conftest import TRAINING_CODE, Cloud
from tests.unit.test_start_pipeline import push_event


def test_guard_records_the_calls_a_handler_makes(
    cloud: Cloud, context: Any, iam_allows_every_call: list[Call]
) -> None:
    base = cloud.repository.commit({"README.md": b"# demo\n"})
    commit = cloud.repository.commit(TRAINING_CODE, parent=base)
    cloud.sagemaker.list_model_package_groups()  # a call from the test itself is not the handler's

    lambda_handler(push_event(commit, base), context)

    recorded = {(call.folder, call.action) for call in iam_allows_every_call}
    assert ("start_pipeline", "sagemaker:StartPipelineExecution") in recorded
    assert ("start_pipeline", "codecommit:GetDifferences") in recorded
    assert not any(action == "sagemaker:ListModelPackageGroups" for _, action in recorded)


def test_grants_differ_per_function() -> None:
    assert is_allowed("start_pipeline", "sagemaker:StartPipelineExecution")
    assert not is_allowed("track", "sagemaker:StartPipelineExecution")
    assert not is_allowed("deploy", "codecommit:GetFile")
    assert is_allowed("track", "application-autoscaling:RegisterScalableTarget")
    assert is_allowed("deploy", "dynamodb:PutItem")  # through SAM's DynamoDBCrudPolicy template


def test_guard_checks_the_resource_not_only_the_action() -> None:
    # Lineage Contexts and Actions are allowed by name: context/<ProjectName>-* (template.yaml, Lineage).
    context = "arn:aws:sagemaker:us-east-1:123456789012:context/{}"
    assert is_allowed("start_pipeline", "sagemaker:CreateContext", context.format("mlops-demo-commit-abc"))
    # the near miss: the name the code used before, which AWS would refuse
    assert not is_allowed("start_pipeline", "sagemaker:CreateContext", context.format("commit-abc"))
    # S3: the stack's bucket, under the prefix the function may write, and not a neighbour
    code = "arn:aws:s3:::mlops-demo-artifacts-123456789012/code/sourcedir.tar.gz"
    assert is_allowed("start_pipeline", "s3:PutObject", code)
    assert not is_allowed("start_pipeline", "s3:PutObject", code.replace("/code/", "/pipelines/"))
    assert not is_allowed("start_pipeline", "s3:PutObject", code.replace("123456789012/", "123456789013/"))
    # DynamoDB through SAM's DynamoDBCrudPolicy, expanded for the ledger table only
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/mlops-demo-ledger"
    assert is_allowed("deploy", "dynamodb:PutItem", table)
    assert not is_allowed("deploy", "dynamodb:PutItem", table + "-old")
    # an action IAM authorizes on no resource is allowed only by Resource "*"
    assert is_allowed("deploy", "sagemaker:ListModelPackages", "*")
    assert not is_allowed("deploy", "sagemaker:CreateEndpoint", "*")


def test_guard_refuses_a_call_it_cannot_place() -> None:
    import boto3
    import pytest

    from tests.iam import authorizations

    client = boto3.client("sagemaker", region_name="us-east-1")
    with pytest.raises(AssertionError, match="RESOURCES_OF_OPERATION"):
        authorizations("deploy", client, "DeleteEndpoint", {"EndpointName": "x"})
    # PassRole is checked on the role CreateModel hands to SageMaker
    calls = authorizations(
        "deploy", client, "CreateModel", {"ModelName": "m", "ExecutionRoleArn": "arn:aws:iam::1:role/r"}
    )
    assert ("iam:PassRole", "arn:aws:iam::1:role/r") in {(c.action, c.resource) for c in calls}


def test_requests_are_checked_against_the_service_models_constraints() -> None:
    import boto3

    from tests.constraints import request_violations

    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    # EndpointName: at most 63 characters of ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62} (botocore sagemaker model)
    assert request_violations(sagemaker, "DescribeEndpoint", {"EndpointName": "mlops-demo-endpoint"}) == []
    assert request_violations(sagemaker, "DescribeEndpoint", {"EndpointName": "a" * 64})
    assert request_violations(sagemaker, "DescribeEndpoint", {"EndpointName": "under_score"})
    # ClientRequestToken of StartPipelineExecution: 32 to 128 characters
    start = {"PipelineName": "mlops-demo-pipeline", "ClientRequestToken": "short"}
    assert request_violations(sagemaker, "StartPipelineExecution", start)
