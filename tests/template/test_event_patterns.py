"""Each handler's EventBridge rule, resolved as a deployed stack would hold it, takes its sample events and
refuses the neighbours: other branch, repository, pipeline, endpoint, model package group, account, status."""

from __future__ import annotations

import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from tests.events import event_names, load_event
from tests.template.cfn import Resolver, eventbridge_rules, load_template

OTHER_ACCOUNT = "210987654321"

# Which (function, rule) each sample event must reach; every other rule must refuse it.
EXPECTED_RULE: dict[str, Any] = {
    "codecommit_push": ("StartPipelineFunction", "OnPush"),
    "codecommit_branch_created": ("StartPipelineFunction", "OnPush"),
    # malformed carries a matching envelope: the handler, not the rule, must refuse it (and does, by test)
    "malformed": ("StartPipelineFunction", "OnPush"),
    "codecommit_other_branch": None,
    "pipeline_execution_succeeded": ("TrackFunction", "OnPipelineExecution"),
    "pipeline_execution_failed": ("TrackFunction", "OnPipelineExecution"),
    # in service: recorded by TrackFunction, and a decision kept while it updated is carried out by Deploy
    "endpoint_in_service": {("TrackFunction", "OnEndpoint"), ("DeployFunction", "OnEndpointInService")},
    "endpoint_failed": ("TrackFunction", "OnEndpoint"),
    "transform_job_completed": ("TrackFunction", "OnTransformJob"),
    "transform_job_failed": ("TrackFunction", "OnTransformJob"),
    "model_package_approved": ("DeployFunction", "OnModelPackage"),
    "model_package_rejected": ("DeployFunction", "OnModelPackage"),
    "model_package_pending": None,
    # a promotion (ModelLifeCycle Production / Approved; orchestrator.promote)
    "model_package_promoted": ("DeployFunction", "OnModelPackage"),
}


def _patterns(overrides: dict[str, str] | None = None) -> dict[tuple[str, str], EventPattern]:
    template = load_template()
    resolver = Resolver(template, overrides or {})
    return {
        key: EventPattern.load(json.dumps(resolver.resolve(rule["Pattern"])))
        for key, rule in eventbridge_rules(template).items()
    }


PATTERNS = _patterns()


def _matching_rules(event: dict[str, Any], patterns: dict[tuple[str, str], EventPattern] = PATTERNS) -> set:
    return {key for key, pattern in patterns.items() if pattern.matches_event(event)}


def test_every_sample_event_has_an_expectation() -> None:
    # GIVEN the events/ folder  THEN each file is covered by the routing table below (no silent additions)
    assert set(event_names()) == set(EXPECTED_RULE)


@pytest.mark.parametrize("name", sorted(EXPECTED_RULE))
def test_sample_event_reaches_exactly_its_handler(name: str) -> None:
    # GIVEN a sample event as AWS sends it
    event = load_event(name)
    # WHEN every rule of the stack (default parameters) is tried on it
    matched = _matching_rules(event)
    # THEN only the expected handler's rule takes it (or none, for events nobody must act on)
    expected = EXPECTED_RULE[name]
    assert matched == (expected if isinstance(expected, set) else {expected} if expected else set())


def _foreign_variants() -> list[tuple[str, str, Any]]:
    def other_repository(e: dict[str, Any]) -> None:
        e["resources"] = ["arn:aws:codecommit:us-east-1:123456789012:someone-elses-repo"]
        e["detail"]["repositoryName"] = "someone-elses-repo"

    def tag_push(e: dict[str, Any]) -> None:
        e["detail"].update(referenceType="tag", referenceName="main", referenceFullName="refs/tags/main")

    def branch_deleted(e: dict[str, Any]) -> None:
        e["detail"]["event"] = "referenceDeleted"

    def other_account(e: dict[str, Any]) -> None:
        e["account"] = OTHER_ACCOUNT

    def other_pipeline(e: dict[str, Any]) -> None:
        arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/another-pipeline"
        e["detail"]["pipelineArn"] = arn
        e["resources"] = [arn, f"{arn}/execution/abc"]

    def still_executing(e: dict[str, Any]) -> None:
        e["detail"]["currentPipelineExecutionStatus"] = "Executing"

    def other_endpoint(e: dict[str, Any]) -> None:
        e["detail"]["EndpointName"] = "mlops-demo-endpoint-2"

    def other_transform_job(e: dict[str, Any]) -> None:
        e["detail"]["TransformJobName"] = "mlops-demo-staging-models-v3-1f2e3d4c"

    def transform_in_progress(e: dict[str, Any]) -> None:
        e["detail"]["TransformJobStatus"] = "InProgress"

    def other_group(e: dict[str, Any]) -> None:
        e["detail"]["ModelPackageGroupName"] = "other-models"

    return [
        ("codecommit_push", "other repository", other_repository),
        ("codecommit_push", "tag, not branch", tag_push),
        ("codecommit_push", "branch deleted", branch_deleted),
        ("codecommit_push", "other account", other_account),
        ("pipeline_execution_failed", "other pipeline", other_pipeline),
        ("pipeline_execution_succeeded", "not finished", still_executing),
        ("pipeline_execution_succeeded", "other account", other_account),
        ("endpoint_failed", "other endpoint", other_endpoint),
        ("endpoint_in_service", "other account", other_account),
        ("transform_job_completed", "other project's job", other_transform_job),
        ("transform_job_completed", "not finished", transform_in_progress),
        ("model_package_approved", "other group", other_group),
        ("model_package_approved", "other account", other_account),
        ("model_package_rejected", "other group", other_group),
    ]


@pytest.mark.parametrize(
    ("name", "variant", "mutate"),
    _foreign_variants(),
    ids=lambda v: getattr(v, "__name__", None) if callable(v) else str(v),
)
def test_foreign_neighbour_of_a_sample_reaches_no_handler(name: str, variant: str, mutate: Any) -> None:
    # GIVEN a sample event changed in one field to something this stack does not own
    event = load_event(name)
    assert _matching_rules(event), "the unchanged sample must match, or this test proves nothing"
    mutate(event)
    # WHEN the stack's rules are tried  THEN none takes it
    assert _matching_rules(event) == set(), variant


def test_adopted_repository_moves_the_push_rule_to_that_repository() -> None:
    # GIVEN a stack that adopts an existing repository and watches branch "release"
    patterns = _patterns({"ExistingRepositoryName": "legacy-models", "BranchName": "release"})
    push = load_event("codecommit_push")
    push["detail"].update(referenceName="release", referenceFullName="refs/heads/release")
    # WHEN a push to mlops-demo and then to legacy-models arrives
    to_default = _matching_rules(push, patterns)
    push["resources"] = ["arn:aws:codecommit:us-east-1:123456789012:legacy-models"]
    push["detail"]["repositoryName"] = "legacy-models"
    to_adopted = _matching_rules(push, patterns)
    # THEN only the adopted repository's push starts a run
    assert to_default == set()
    assert to_adopted == {("StartPipelineFunction", "OnPush")}


def test_project_name_scopes_the_sagemaker_rules() -> None:
    # GIVEN a staging stack (ProjectName mlops-demo-staging) in the same account
    patterns = _patterns({"ProjectName": "mlops-demo-staging"})
    # WHEN the default stack's SageMaker events arrive
    names = [
        "pipeline_execution_succeeded",
        "endpoint_in_service",
        "transform_job_completed",
        "model_package_approved",
    ]
    # THEN the staging stack's handlers take none of them
    assert {name: _matching_rules(load_event(name), patterns) for name in names} == {n: set() for n in names}


@pytest.mark.parametrize(
    ("updated", "reaches_deploy"),
    [(["ModelLifeCycle"], True), (["CustomerMetadataProperties"], False), (None, False)],
)
def test_a_stage_change_of_a_package_pending_approval_reaches_the_deploy_handler(
    updated: list[str] | None, reaches_deploy: bool
) -> None:
    # a promotion of a package nobody approved must be refused in the deploy handler's log, not dropped
    # by the rule unseen; any other change of a pending package concerns no handler
    event = load_event("model_package_pending")
    if updated is not None:
        event["detail"]["UpdatedModelPackageFields"] = updated
    expected = {("DeployFunction", "OnModelPackage")} if reaches_deploy else set()
    assert _matching_rules(event) == expected
