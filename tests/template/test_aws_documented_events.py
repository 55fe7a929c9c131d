"""AWS's own documented example events (tests/aws_examples) parse with the handlers' models and, with this
stack's names put in, reach exactly the rule that handles them. The samples in events/ are checked against
the same field sets, so a field AWS does not document can't slip into them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.events import (
    AlarmStateEvent,
    CodeCommitPushEvent,
    EndpointStateEvent,
    ModelPackageStateEvent,
    PipelineExecutionStatusEvent,
    TransformJobStateEvent,
)
from orchestrator.intake import Ignored, parse_event
from tests.events import event_names, load_event
from tests.template.test_event_patterns import _matching_rules

EXAMPLES = Path(__file__).resolve().parents[1] / "aws_examples"
ACCOUNT, REGION = "123456789012", "us-east-1"

# example file -> (model, the rule that must take it, this stack's names for the example's)
CASES: dict[str, tuple[Any, tuple[str, str], dict[str, str]]] = {
    "sagemaker_model_package_state_change": (
        ModelPackageStateEvent,
        ("DeployFunction", "OnModelPackage"),
        {"versionedmp-p-idy6c3e1fiqj": "mlops-demo-models", "us-east-2": REGION},
    ),
    "sagemaker_pipeline_execution_status_change": (
        PipelineExecutionStatusEvent,
        ("TrackFunction", "OnPipelineExecution"),
        {"myPipeline-123": "mlops-demo-pipeline"},
    ),
    "sagemaker_endpoint_state_change": (
        EndpointStateEvent,
        ("TrackFunction", "OnEndpoint"),
        {"MyEndpoint": "mlops-demo-endpoint", "myendpoint": "mlops-demo-endpoint", "us-west-2": REGION},
    ),
    "sagemaker_transform_job_state_change": (
        TransformJobStateEvent,
        ("TrackFunction", "OnTransformJob"),
        {
            "4b52bd8f-e034-4345-818d-884bdd7c9724": "mlops-demo-models-v3-1f2e3d4c",
            "another status... GO": "Completed",
        },
    ),
    "cloudwatch_alarm_state_change": (
        AlarmStateEvent,
        ("StartPipelineFunction", "OnDriftAlarm"),
        {"ServerCpuTooHigh": "mlops-demo-data-drift"},
    ),
    "codecommit_reference_created": (
        CodeCommitPushEvent,
        ("StartPipelineFunction", "OnPush"),
        {"MyDemoRepo": "mlops-demo", "myBranch": "main", "us-east-2": REGION, "3e5983DESTINATION": "3e" * 20},
    ),
    "codecommit_reference_updated": (
        CodeCommitPushEvent,
        ("StartPipelineFunction", "OnPush"),
        {
            "MyDemoRepo": "mlops-demo",
            "myBranch": "main",
            "us-east-2": REGION,
            "7f0103fMERGE": "7f" * 20,
            "3e5983DESTINATION": "3e" * 20,
        },
    ),
}
# Placeholders in AWS's examples that a real event never holds, and the field our model refuses them in.
PLACEHOLDER_FIELDS = {
    "sagemaker_transform_job_state_change": {"detail.TransformJobStatus"},
    "codecommit_reference_created": {"detail.commitId"},
    "codecommit_reference_updated": {"detail.commitId", "detail.oldCommitId"},
}


def example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data


def adapted(name: str) -> dict[str, Any]:
    text = (EXAMPLES / f"{name}.json").read_text().replace("111122223333", ACCOUNT)
    for theirs, ours in CASES[name][2].items():
        text = text.replace(theirs, ours)
    data: dict[str, Any] = json.loads(text)
    return data


@pytest.mark.parametrize("name", sorted(CASES))
def test_aws_example_parses_or_is_refused_only_for_its_placeholder(name: str) -> None:
    model = CASES[name][0]
    parsed = parse_event(example(name), model)
    if name in PLACEHOLDER_FIELDS:
        assert isinstance(parsed, Ignored)
        assert {error.split(":")[0] for error in parsed.details["errors"]} == PLACEHOLDER_FIELDS[name]
    else:
        assert not isinstance(parsed, Ignored), parsed


@pytest.mark.parametrize("name", sorted(CASES))
def test_aws_example_with_this_stacks_names_parses_and_reaches_its_rule(name: str) -> None:
    model, rule, _ = CASES[name]
    event = adapted(name)
    assert not isinstance(parse_event(event, model), Ignored)
    expected = {rule}
    if name == "sagemaker_endpoint_state_change":  # IN_SERVICE: DeployFunction carries out kept decisions
        expected.add(("DeployFunction", "OnEndpointInService"))
    assert _matching_rules(event) == expected


def _fields(value: Any, prefix: str = "") -> set[str]:
    """Dotted field paths of a JSON value (list items share their list's path; Tags' keys are user data)."""
    if isinstance(value, dict):
        paths = set()
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            if key not in ("Tags", "Environment"):
                paths |= _fields(item, path)
        return paths
    if isinstance(value, list):
        return set().union(*(_fields(item, prefix) for item in value)) if value else set()
    return set()


# Fields of a sample that AWS's example of that detail-type does not show, with where AWS documents them.
DOCUMENTED_ELSEWHERE = {
    # the MetadataProperties shape (botocore sagemaker): CommitId, Repository, GeneratedBy, ProjectId; the
    # pipeline's RegisterModel step sets the first three, and the event carries the package's properties
    "detail.MetadataProperties.CommitId",
    "detail.MetadataProperties.Repository",
    # the model package example lists "ApprovalDescription" among UpdatedModelPackageFields' values
    # (it is AWS's own list; the sample's approval sets it)
}
DETAIL_TYPE_EXAMPLE = {
    "SageMaker Model Package State Change": "sagemaker_model_package_state_change",
    "SageMaker Model Building Pipeline Execution Status Change": "sagemaker_pipeline_execution_status_change",
    "SageMaker Endpoint State Change": "sagemaker_endpoint_state_change",
    "SageMaker Transform Job State Change": "sagemaker_transform_job_state_change",
}


@pytest.mark.parametrize("name", sorted(event_names()))
def test_sample_events_hold_only_fields_aws_documents(name: str) -> None:
    sample = load_event(name)
    if sample.get("detail-type") == "CodeCommit Repository State Change":
        documented = _fields(example("codecommit_reference_created")) | _fields(
            example("codecommit_reference_updated")
        )
    elif sample.get("detail-type") in DETAIL_TYPE_EXAMPLE:
        documented = _fields(example(DETAIL_TYPE_EXAMPLE[sample["detail-type"]]))
    else:
        pytest.fail(f"{name}: no documented example for {sample.get('detail-type')!r}")
    assert _fields(sample) - documented - DOCUMENTED_ELSEWHERE == set()


@pytest.mark.parametrize(
    ("name", "state", "rules"),
    [
        ("mlops-demo-candidate-5xx", "ALARM", {("DeployFunction", "OnCandidateAlarm")}),
        ("mlops-demo-candidate-latency", "ALARM", {("DeployFunction", "OnCandidateAlarm")}),
        ("mlops-demo-candidate-5xx", "OK", set()),  # the candidate recovered: nothing to do
        ("mlops-demo-candidate-5xx-old", "ALARM", set()),  # a near miss of the name
        ("mlops-demo-production-5xx", "ALARM", set()),  # production's guard acts through UpdateEndpoint
    ],
)
def test_the_candidates_alarms_reach_the_deploy_function_only_in_alarm(
    name: str, state: str, rules: set[tuple[str, str]]
) -> None:
    text = (EXAMPLES / "cloudwatch_alarm_state_change.json").read_text().replace("111122223333", ACCOUNT)
    event = json.loads(text.replace("ServerCpuTooHigh", name))
    event["detail"]["state"]["value"] = state
    assert not isinstance(parse_event(event, AlarmStateEvent), Ignored)
    assert _matching_rules(event) == rules
