"""What IAM lets each function do, read from template.yaml, and a guard that checks every AWS call a handler
makes in a test against it: the action, and the resource ARN that AWS authorizes that action on.

Each call's resources come from `RESOURCES_OF_OPERATION`, written from the Service Authorization Reference
(docs.aws.amazon.com/service-authorization/latest/reference/list_amazonsagemaker.html, ..._awscodecommit,
..._amazons3, ..._amazondynamodb, ..._amazonsns, ..._amazoncloudwatch, ..._applicationautoscaling): the
resource types of the action and their ARN formats, filled from the request's parameters. The function's
Allow statements are resolved with the names the tests gave the stack's resources (`STACK_RESOURCES`), so
a name the code derives and a policy the template grants can't drift apart unnoticed. SageMaker lower-cases
names in its ARNs; its resources are compared lower-cased.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import botocore.client
import samtranslator

from tests.constraints import request_violations
from tests.template.cfn import ACCOUNT, REGION, Resolver, functions, load_template

# API operations authorised by an action of another name (the S3 ones IAM documents), or by none at all.
ACTION_OF_OPERATION = {
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "sts:GetCallerIdentity": None,  # needs no permission
}
_HANDLER_FILE = re.compile(r"[/\\]functions[/\\](?P<code>[^/\\]+)[/\\]app\.py$")

# The physical names the unit tests give the stack's resources (tests/unit/conftest.py); the template's
# policies are resolved with them.
STACK_RESOURCES = {
    "ArtifactBucket": "mlops-demo-artifacts-123456789012",
    "LedgerTable": "mlops-demo-ledger",
    "NotificationTopic": "mlops-demo-notifications",
    "SageMakerExecutionRole": "mlops-demo-sagemaker",
    "NotificationKey": "0a1b2c3d-0000-4000-8000-000000000001",
}

_SM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:"
Params = Mapping[str, Any]


def _sm(resource: str) -> str:
    return _SM + resource


def _sm_arn_or(kind: str, value: str) -> str:
    """A SageMaker parameter that takes a name or an ARN (ModelPackageName, ...)."""
    return value if value.startswith("arn:") else _sm(f"{kind}/{value}")


def _execution(params: Params) -> list[str]:
    return [params["PipelineExecutionArn"]]


def _pipeline(params: Params) -> list[str]:
    return [_sm(f"pipeline/{params['PipelineName']}")]


def _repository(params: Params) -> list[str]:
    return [f"arn:aws:codecommit:{REGION}:{ACCOUNT}:{params['repositoryName']}"]


def _table(params: Params) -> list[str]:
    return [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{params['TableName']}"]


def _object(params: Params) -> list[str]:
    return [f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"]


def _named(kind: str, parameter: str) -> Callable[[Params], list[str]]:
    return lambda params: [_sm(f"{kind}/{params[parameter]}")]


ANY = ["*"]  # actions that support no resource-level permissions: only Resource "*" allows them

# "service:Operation" -> the ARNs of the resource types the action is authorized on.
RESOURCES_OF_OPERATION: dict[str, Callable[[Params], list[str]]] = {
    # SageMaker: pipelines and executions
    "sagemaker:CreatePipeline": _pipeline,
    "sagemaker:UpdatePipeline": _pipeline,
    "sagemaker:DescribePipeline": _pipeline,
    "sagemaker:StartPipelineExecution": _pipeline,
    "sagemaker:ListPipelineExecutions": _pipeline,
    "sagemaker:DescribePipelineDefinitionForExecution": _execution,
    "sagemaker:StopPipelineExecution": _execution,
    "sagemaker:DescribePipelineExecution": _execution,
    "sagemaker:ListPipelineParametersForExecution": _execution,
    "sagemaker:ListPipelineExecutionSteps": _execution,
    "sagemaker:AddTags": lambda p: [p["ResourceArn"]],
    "sagemaker:ListTags": lambda p: [p["ResourceArn"]],
    # jobs
    "sagemaker:DescribeProcessingJob": _named("processing-job", "ProcessingJobName"),
    "sagemaker:DescribeTrainingJob": _named("training-job", "TrainingJobName"),
    "sagemaker:DescribeHyperParameterTuningJob": _named(
        "hyper-parameter-tuning-job", "HyperParameterTuningJobName"
    ),
    "sagemaker:ListTrainingJobsForHyperParameterTuningJob": _named(
        "hyper-parameter-tuning-job", "HyperParameterTuningJobName"
    ),
    # registry and models
    "sagemaker:DescribeModelPackage": lambda p: [_sm_arn_or("model-package", p["ModelPackageName"])],
    "sagemaker:UpdateModelPackage": lambda p: [p["ModelPackageArn"]],
    "sagemaker:DescribeModelPackageGroup": lambda p: [
        _sm_arn_or("model-package-group", p["ModelPackageGroupName"])
    ],
    "sagemaker:ListModelPackages": lambda p: ANY,
    "cloudwatch:GetMetricStatistics": lambda p: ANY,
    "sagemaker:CreateModel": _named("model", "ModelName"),
    "sagemaker:DescribeModel": _named("model", "ModelName"),
    # endpoints: CreateEndpoint and UpdateEndpoint are authorized on the endpoint and its config
    "sagemaker:CreateEndpointConfig": _named("endpoint-config", "EndpointConfigName"),
    "sagemaker:DescribeEndpointConfig": _named("endpoint-config", "EndpointConfigName"),
    "sagemaker:CreateEndpoint": lambda p: [
        _sm(f"endpoint/{p['EndpointName']}"),
        _sm(f"endpoint-config/{p['EndpointConfigName']}"),
    ],
    "sagemaker:UpdateEndpoint": lambda p: [
        _sm(f"endpoint/{p['EndpointName']}"),
        _sm(f"endpoint-config/{p['EndpointConfigName']}"),
    ],
    "sagemaker:DescribeEndpoint": _named("endpoint", "EndpointName"),
    # InvokeEndpoint (SageMaker Runtime) is authorized on the endpoint (Service Authorization Reference).
    "sagemaker:InvokeEndpoint": _named("endpoint", "EndpointName"),
    "sagemaker:UpdateEndpointWeightsAndCapacities": _named("endpoint", "EndpointName"),
    "sagemaker:CreateTransformJob": _named("transform-job", "TransformJobName"),
    "sagemaker:DescribeTransformJob": _named("transform-job", "TransformJobName"),
    # lineage: Contexts and Actions by name; Artifacts have generated ids (artifact/<id>)
    "sagemaker:CreateContext": _named("context", "ContextName"),
    "sagemaker:DescribeContext": _named("context", "ContextName"),
    "sagemaker:CreateAction": _named("action", "ActionName"),
    "sagemaker:DescribeAction": _named("action", "ActionName"),
    "sagemaker:CreateArtifact": lambda p: [_sm("artifact/0123456789abcdef0123456789abcdef")],
    "sagemaker:DescribeArtifact": lambda p: [p["ArtifactArn"]],
    "sagemaker:AddAssociation": lambda p: [p["SourceArn"], p["DestinationArn"]],
    "sagemaker:ListArtifacts": lambda p: ANY,
    "sagemaker:ListContexts": lambda p: ANY,
    "sagemaker:ListActions": lambda p: ANY,
    "sagemaker:ListAssociations": lambda p: ANY,
    # CodeCommit: the repository
    **{
        f"codecommit:{operation}": _repository
        for operation in ("GetDifferences", "GetFolder", "GetFile", "GetBlob", "GetCommit", "GetBranch")
    },
    # S3: objects and buckets
    "s3:PutObject": _object,
    "s3:GetObject": _object,
    "s3:ListBucket": lambda p: [f"arn:aws:s3:::{p['Bucket']}"],
    # DynamoDB: the table
    **{
        f"dynamodb:{operation}": _table
        for operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query")
    },
    "sns:Publish": lambda p: [p["TopicArn"]],
    "cloudwatch:DescribeAlarms": lambda p: [
        f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}" for name in p.get("AlarmNames") or ["*"]
    ],
    # PutMetricData supports no resource-level permission (Service Authorization Reference); the policy
    # scopes it by the cloudwatch:namespace condition, which tests/unit/test_monitoring.py checks
    "cloudwatch:PutMetricData": lambda p: ANY,
    "cloudwatch:PutMetricAlarm": lambda p: [f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{p['AlarmName']}"],
    # Application Auto Scaling supports no resource-level permissions for these.
    **{
        f"application-autoscaling:{operation}": lambda p: ANY
        for operation in (
            "RegisterScalableTarget",
            "DeregisterScalableTarget",
            "DescribeScalableTargets",
            "PutScalingPolicy",
            "DescribeScalingPolicies",
            "DeleteScalingPolicy",
        )
    },
}

# Calls that AWS also authorizes as iam:PassRole on a role they name (IAM user guide, "Granting a user
# permissions to pass a role to an AWS service"): the parameter that carries the role.
PASSED_ROLE = {
    "sagemaker:CreateModel": "ExecutionRoleArn",
    "sagemaker:CreatePipeline": "RoleArn",
    "sagemaker:UpdatePipeline": "RoleArn",
}


@dataclass(frozen=True)
class Call:
    """One authorization AWS makes for a handler's call: an action on one resource ARN."""

    folder: str
    action: str
    resource: str


@cache
def _policy_templates() -> dict[str, Any]:
    data = Path(samtranslator.__file__).parent / "policy_templates_data" / "policy_templates.json"
    templates: dict[str, Any] = json.loads(data.read_text())["Templates"]
    return templates


def policy_template_actions(name: str) -> frozenset[str]:
    """The actions one of SAM's policy templates expands to, from the translator's own template data."""
    statements = _policy_templates()[name]["Definition"]["Statement"]
    return frozenset(action for statement in statements for action in _as_list(statement["Action"]))


def _expand_policy_template(name: str, arguments: Mapping[str, Any]) -> list[dict[str, Any]]:
    """SAM's own definition of a policy template with its parameters put in (what SAM's translator does)."""

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            if set(node) == {"Ref"} and node["Ref"] in arguments:
                return arguments[node["Ref"]]
            return {key: fill(value) for key, value in node.items()}
        if isinstance(node, list):
            return [fill(value) for value in node]
        return node

    statements: list[dict[str, Any]] = fill(_policy_templates()[name]["Definition"]["Statement"])
    return statements


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resolver(physical: Mapping[str, str] = STACK_RESOURCES) -> Resolver:
    return Resolver(load_template(), physical=dict(physical))


@cache
def allow_statements() -> dict[str, tuple[dict[str, Any], ...]]:
    """Function code folder (functions/<folder>) -> its Allow statements, resolved for the test account."""
    template = load_template()
    resolve = resolver().resolve
    allowed: dict[str, tuple[dict[str, Any], ...]] = {}
    for resource in functions(template).values():
        props = resource["Properties"]
        statements: list[dict[str, Any]] = []
        for policy in props.get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                statements.extend(resolve(policy)["Statement"])
            elif isinstance(policy, dict):
                for name, arguments in policy.items():
                    statements.extend(resolve(_expand_policy_template(name, resolve(arguments))))
        folder = str(props["CodeUri"]).rstrip("/").rsplit("/", 1)[-1]
        allowed[folder] = tuple(s for s in statements if s["Effect"] == "Allow")
    return allowed


def _matches(pattern: str, value: str) -> bool:
    if value == "*":  # a call that IAM authorizes on no resource: only Resource "*" allows it
        return pattern == "*"
    if ":sagemaker:" in value:
        pattern, value = pattern.lower(), value.lower()
    return fnmatch.fnmatchcase(value, pattern)


def is_allowed(folder: str, action: str, resource: str | None = None) -> bool:
    """Whether one of the function's Allow statements grants `action` (on `resource`, when given)."""
    for statement in allow_statements()[folder]:
        if not any(fnmatch.fnmatchcase(action, pattern) for pattern in _as_list(statement["Action"])):
            continue
        if resource is None or any(
            _matches(pattern, resource) for pattern in _as_list(statement["Resource"])
        ):
            return True
    return False


# botocore signing names that differ from the service's IAM prefix (CloudWatch signs as "monitoring")
IAM_PREFIX_OF_SIGNING_NAME = {"monitoring": "cloudwatch"}


def iam_action(client: Any, operation: str) -> str | None:
    signing = client.meta.service_model.signing_name
    prefix = IAM_PREFIX_OF_SIGNING_NAME.get(signing, signing)
    action = f"{prefix}:{operation}"
    return ACTION_OF_OPERATION.get(action, action)


def authorizations(folder: str, client: Any, operation: str, params: Params) -> list[Call]:
    """The (action, resource) pairs AWS checks for one call; an operation the table lacks fails loudly."""
    action = iam_action(client, operation)
    if action is None:
        return []
    resources_of = RESOURCES_OF_OPERATION.get(action)
    if resources_of is None:
        raise AssertionError(
            f"tests/iam.py does not know which resource AWS authorizes {action} on: add it to "
            "RESOURCES_OF_OPERATION from the Service Authorization Reference"
        )
    calls = [Call(folder, action, resource) for resource in resources_of(params)]
    role_parameter = PASSED_ROLE.get(action)
    if role_parameter and params.get(role_parameter):
        calls.append(Call(folder, "iam:PassRole", params[role_parameter]))
    return calls


def _calling_handler() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        match = _HANDLER_FILE.search(frame.f_code.co_filename)
        if match:
            return match["code"]
        frame = frame.f_back  # type: ignore[assignment]
    return None


@contextmanager
def recording_handler_calls(invalid: list[str] | None = None) -> Iterator[list[Call]]:
    """Yields an authorization record for every AWS call made from inside a handler; `invalid` collects
    each request that breaks a constraint of botocore's service model (tests/constraints.py)."""
    calls: list[Call] = []
    original = botocore.client.BaseClient._make_api_call

    def recorded(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        folder = _calling_handler()
        if folder is not None:
            calls.extend(authorizations(folder, self, operation_name, api_params))
            if invalid is not None:
                invalid.extend(request_violations(self, operation_name, api_params))
        return original(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = recorded  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


def denied(calls: list[Call]) -> list[Call]:
    return sorted(
        {call for call in calls if not is_allowed(call.folder, call.action, call.resource)},
        key=lambda call: (call.folder, call.action, call.resource),
    )
