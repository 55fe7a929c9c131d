"""The event router: rules from a template invoke the handlers they target, with Lambda's retry policy."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from localcloud.router import EventRouter
from localcloud.template import StackTemplate, TemplateError

TEMPLATE = textwrap.dedent(
    """
    AWSTemplateFormatVersion: "2010-09-09"
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      BranchName: {Type: String, Default: main}
      RepositoryName: {Type: String, Default: demo}
      ExistingRepositoryName: {Type: String, Default: ""}
    Conditions:
      CreateRepository: !Equals [!Ref ExistingRepositoryName, ""]
    Globals:
      Function:
        Runtime: python3.12
        Timeout: 30
        Environment:
          Variables:
            TABLE: !Ref Ledger
    Resources:
      Ledger: {Type: AWS::DynamoDB::Table}
      Repository: {Type: AWS::CodeCommit::Repository, Condition: CreateRepository}
      OnPushFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/on_push
          Handler: app.lambda_handler
          Environment:
            Variables:
              REPOSITORY: !If [CreateRepository, !GetAtt Repository.Name, !Ref ExistingRepositoryName]
          Events:
            Push:
              Type: EventBridgeRule
              Properties:
                Pattern:
                  source: [aws.codecommit]
                  detail-type: [CodeCommit Repository State Change]
                  resources:
                    - !Sub "arn:aws:codecommit:${AWS::Region}:${AWS::AccountId}:${RepositoryName}"
                  detail:
                    referenceName: [!Ref BranchName]
      FlakyFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/flaky
          Handler: app.lambda_handler
          Events:
            Any:
              Type: EventBridgeRule
              Properties:
                Pattern: {source: [test.flaky]}
    """
)

ON_PUSH = textwrap.dedent(
    """
    import os
    def lambda_handler(event, context):
        return {"branch": event["detail"]["referenceName"], "table": os.environ["TABLE"],
                "repository": os.environ["REPOSITORY"], "function": context.function_name,
                "remaining_ms_positive": context.get_remaining_time_in_millis() > 0}
    """
)

FLAKY = textwrap.dedent(
    """
    CALLS = []
    def lambda_handler(event, context):
        CALLS.append(1)
        raise RuntimeError(f"attempt {len(CALLS)} failed")
    """
)


def push_event(branch: str, repository: str = "demo") -> dict:
    return {
        "version": "0",
        "id": f"event-{branch}",
        "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit",
        "account": "123456789012",
        "time": "2026-11-24T10:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:codecommit:us-east-1:123456789012:{repository}"],
        "detail": {"referenceName": branch, "event": "referenceUpdated"},
    }


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    for name, code in (("on_push", ON_PUSH), ("flaky", FLAKY)):
        (tmp_path / "functions" / name).mkdir(parents=True)
        (tmp_path / "functions" / name / "app.py").write_text(code)
    return tmp_path


@pytest.fixture()
def router(project: Path):
    template = StackTemplate.load(
        project / "template.yaml",
        physical_names={"Ledger": "local-ledger"},
        attributes={("Repository", "Name"): "demo"},
    )
    router = EventRouter(template, project, retry_delay=0.01)
    yield router
    router.close()


def test_matching_event_invokes_the_handler_with_its_environment_and_context(router: EventRouter) -> None:
    # GIVEN a push to the configured branch
    event = push_event("main")
    # WHEN the router delivers it
    (invocation,) = router.route(event, wait=True)
    # THEN the push function ran once, with the template's resolved environment and a Lambda context
    assert invocation.function == "OnPushFunction"
    assert invocation.error is None
    assert invocation.result == {
        "branch": "main",
        "table": "local-ledger",
        "repository": "demo",
        "function": "OnPushFunction",
        "remaining_ms_positive": True,
    }


def test_events_no_rule_matches_invoke_nothing(router: EventRouter) -> None:
    assert router.route(push_event("feature/x"), wait=True) == []
    assert router.route(push_event("main", repository="someone-elses"), wait=True) == []
    assert router.matching_rules(push_event("main")) == ["OnPushFunction/Push"]


def test_a_failing_handler_is_retried_twice_then_dead_lettered(router: EventRouter) -> None:
    # GIVEN a handler that always raises
    event = {**push_event("main"), "id": "flaky-1", "source": "test.flaky"}
    # WHEN an event reaches it
    attempts = router.route(event, wait=True)
    # THEN Lambda's asynchronous retry policy applies: 3 attempts, then the dead-letter queue
    assert [a.attempt for a in attempts] == [1, 2, 3]
    assert attempts[-1].error == "RuntimeError: attempt 3 failed"
    assert [(e["id"], i.function) for e, i in router.dead_letters] == [("flaky-1", "FlakyFunction")]


def test_unknown_parameter_override_is_refused(project: Path) -> None:
    with pytest.raises(TemplateError, match="NoSuchParameter"):
        StackTemplate.load(project / "template.yaml", overrides={"NoSuchParameter": "x"})


def test_conditions_pick_the_adopted_repository(project: Path) -> None:
    template = StackTemplate.load(
        project / "template.yaml",
        overrides={"ExistingRepositoryName": "adopted"},
        physical_names={"Ledger": "t"},
    )
    (on_push,) = [f for f in template.functions() if f.logical_id == "OnPushFunction"]
    assert on_push.environment["REPOSITORY"] == "adopted"
    assert json.dumps(on_push.rules[0].pattern["detail"]) == '{"referenceName": ["main"]}'
