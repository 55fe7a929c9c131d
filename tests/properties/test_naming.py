"""The names the handlers derive are valid for SageMaker whatever the inputs (botocore's model constraints:
length and pattern), and the same inputs always give the same name (a retry finds what the first try made)."""

from __future__ import annotations

from typing import Any

import boto3
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator import naming
from tests.constraints import request_violations

SAGEMAKER = boto3.client(
    "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
)
texts = st.text(min_size=1, max_size=300)
versions = st.integers(min_value=1, max_value=10**9)


def problems(operation: str, params: dict[str, Any]) -> list[str]:
    return request_violations(SAGEMAKER, operation, params)


@settings(max_examples=300, deadline=None)
@given(group=texts, version=versions, endpoint=texts, fingerprint=texts, uri=texts)
def test_model_config_and_transform_names_are_valid_and_stable(
    group: str, version: int, endpoint: str, fingerprint: str, uri: str
) -> None:
    model = naming.model_name(group, version)
    config = naming.endpoint_config_name(endpoint, version, fingerprint)
    job = naming.transform_job_name(group, version, uri)
    assert problems("DescribeModel", {"ModelName": model}) == []
    assert problems("DescribeEndpointConfig", {"EndpointConfigName": config}) == []
    assert problems("DescribeTransformJob", {"TransformJobName": job}) == []
    # the version stays in the name, so two versions never share one
    assert model.endswith(f"-v{version}")
    assert naming.model_name(group, version) == model
    assert naming.endpoint_config_name(endpoint, version, fingerprint) == config


@settings(max_examples=300, deadline=None)
@given(branch=texts, commit=st.from_regex(r"[0-9a-f]{40}", fullmatch=True), repository=texts)
def test_execution_names_and_tokens_are_valid_and_stable(branch: str, commit: str, repository: str) -> None:
    display = naming.execution_display_name(branch, commit)
    token = naming.execution_token(repository, branch, commit)
    params = {
        "PipelineName": "mlops-demo-pipeline",
        "PipelineExecutionDisplayName": display,
        "ClientRequestToken": token,
    }
    assert problems("StartPipelineExecution", params) == []
    assert display.startswith(naming.branch_prefix(branch))
    assert naming.execution_token(repository, branch, commit) == token


@settings(max_examples=300, deadline=None)
@given(project=st.from_regex(r"[a-z][a-z0-9-]{0,29}", fullmatch=True), kind=texts, part=texts)
def test_lineage_names_are_valid_and_keep_the_project_prefix(project: str, kind: str, part: str) -> None:
    name = naming.lineage_name(project, kind, part)
    assert problems("DescribeContext", {"ContextName": name}) == []
    assert problems("DescribeAction", {"ActionName": name}) == []
    # the IAM policies allow context/<ProjectName>-* and action/<ProjectName>-* only
    assert name.startswith(f"{project}-")
