"""StartPipelineFunction, precisely: what each outcome answers, logs, counts and tells people."""

from __future__ import annotations

from typing import Any

import pytest

from functions.start_pipeline.app import lambda_handler
from orchestrator import pipeline_definition
from orchestrator.adapters.ledger import Ledger
from orchestrator.naming import execution_token
from orchestrator.push import touches
from tests.unit.conftest import (
    BRANCH,
    PIPELINE,
    REPOSITORY,
    TABLE,
    TRAINING_CODE,
    Cloud,
    logged,
)
from tests.unit.test_start_pipeline import _executing, _superseding, push_event
from tests.unit.test_track_details import body_and_details, metrics_emitted


def test_a_started_run_is_answered_logged_counted_and_described(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    commit = cloud.repository.commit(TRAINING_CODE)
    result = lambda_handler(push_event(commit), context)
    assert set(result) == {"status", "execution_arn", "commit_id", "pipeline", "code", "superseded"}
    assert (result["status"], result["commit_id"], result["pipeline"], result["superseded"]) == (
        "started",
        commit,
        "created",
        [],
    )
    assert set(result["code"]) == {"preprocess", "evaluate", "training"}
    assert result["code"]["training"].endswith("/sourcedir.tar.gz")
    assert result["code"]["evaluate"].endswith("/evaluate.py")
    assert result["code"]["preprocess"].endswith("/preprocess.py")
    listed = cloud.sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=result["execution_arn"]
    )
    parameters = {p["Name"]: p["Value"] for p in listed["PipelineParameters"]}
    assert (parameters["PreprocessInstanceCount"], parameters["MaxParallelTuningJobs"]) == ("1", "2")
    assert parameters["EvaluateCodeUri"] == result["code"]["evaluate"]
    [line] = logged(caplog, "pipeline execution started", "INFO")
    assert (line["execution_arn"], line["commit_id"], line["pipeline_change"], line["stopped"]) == (
        result["execution_arn"],
        commit,
        "created",
        [],
    )
    assert metrics_emitted(capsys)["PipelineExecutionsStarted"] == 1
    described = cloud.sagemaker.describe_pipeline_execution(PipelineExecutionArn=result["execution_arn"])
    assert described["PipelineExecutionDescription"] == f"{REPOSITORY}@{BRANCH} commit {commit}"
    assert described["PipelineExecutionDisplayName"] == f"{BRANCH}-{commit[:12]}"


def test_a_skipped_push_is_logged_with_what_is_watched_and_counted(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    base = cloud.repository.commit(TRAINING_CODE)
    docs = cloud.repository.commit({f"docs/{n:02d}.md": b"# docs\n" for n in range(25)}, parent=base)
    lambda_handler(push_event(docs, base), context)
    [line] = logged(caplog, "push skipped: no training code or pipeline configuration changed", "INFO")
    assert (line["commit_id"], line["watched_paths"]) == (docs, ["training_code", "pipeline.yaml"])
    assert line["changed_paths"] == [f"docs/{n:02d}.md" for n in range(20)]  # a log line stays short
    counted = metrics_emitted(capsys)
    assert counted["PushesSkipped"] == 1 and counted["PipelineExecutionsStarted"] == 0
    record = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{docs}", "COMMIT")
    assert record is not None and record["reason"] == "no-relevant-changes"
    assert record["changed_paths"] == [f"docs/{n:02d}.md" for n in range(25)]


def test_incomplete_training_code_is_told_by_name_logged_and_recorded(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    commit = cloud.repository.commit({"training_code/train.py": b"print('train')\n"})
    result = lambda_handler(push_event(commit), context)
    missing = "preprocess.py, evaluate.py missing under training_code/"
    assert result == {"status": "rejected", "reason": "training-code-incomplete", "detail": missing}
    [notification] = cloud.notifications()
    assert notification["Subject"] == f"Push {commit[:12]} not run"
    text, details = body_and_details(notification)
    assert text == missing
    assert details == {"commit_id": commit, "repository": REPOSITORY}
    [line] = logged(caplog, "push rejected: training code incomplete", "ERROR")
    assert (line["commit_id"], line["error"]) == (commit, missing)
    record = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{commit}", "COMMIT")
    assert record is not None and record["reason"] == f"training-code-incomplete: {missing}"


def test_one_missing_script_is_named_alone(cloud: Cloud, context: Any) -> None:
    files = {k: v for k, v in TRAINING_CODE.items() if not k.endswith("evaluate.py")}
    result = lambda_handler(push_event(cloud.repository.commit(files)), context)
    assert result["detail"] == "evaluate.py missing under training_code/"


def test_a_superseded_run_is_stopped_with_its_own_token_and_the_stop_is_logged(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _superseding(monkeypatch)
    older = cloud.repository.commit(TRAINING_CODE)
    older_run = lambda_handler(push_event(older), context)["execution_arn"]
    _executing(older_run)
    newer = cloud.repository.commit({"training_code/train.py": b"print('newer')\n"}, parent=older)
    lambda_handler(push_event(newer, older), context)
    [stop] = cloud.apis.calls["sagemaker.StopPipelineExecution"]
    assert stop == {
        "PipelineExecutionArn": older_run,
        "ClientRequestToken": execution_token(older_run, "stop", newer),
    }
    [line] = logged(caplog, "superseded execution stopped", "INFO")
    assert (line["execution_arn"], line["superseded_by"], line["superseded_commit"]) == (
        older_run,
        newer,
        older,
    )


@pytest.fixture
def pipeline_exists(cloud: Cloud, context: Any) -> str:
    """A first push, so that the pipeline exists; returns its run."""
    first = cloud.repository.commit({"training_code/x.py": b"x = 1\n", **TRAINING_CODE})
    return str(lambda_handler(push_event(first), context)["execution_arn"])


def test_runs_of_the_same_commit_or_without_a_commit_are_not_stopped(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, pipeline_exists: str
) -> None:
    _superseding(monkeypatch)
    commit = cloud.repository.commit({**TRAINING_CODE, "training_code/train.py": b"print('c')\n"})
    runs = [
        cloud.sagemaker.start_pipeline_execution(
            PipelineName=PIPELINE,
            PipelineExecutionDisplayName=f"{BRANCH}-{commit[:12]}",
            PipelineParameters=parameters,
        )["PipelineExecutionArn"]
        for parameters in (
            [{"Name": "RepositoryName", "Value": REPOSITORY}, {"Name": "CommitId", "Value": commit}],
            [{"Name": "RepositoryName", "Value": REPOSITORY}],
        )
    ]
    for arn in runs:
        _executing(arn)
    result = lambda_handler(push_event(commit), context)
    assert result["status"] == "started"
    assert not set(runs) & set(result["superseded"])
    assert pipeline_exists not in result["superseded"]  # not executing


def test_a_push_superseded_before_its_run_started_is_counted_and_logged(
    cloud: Cloud,
    context: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _superseding(monkeypatch)
    a = cloud.repository.commit(TRAINING_CODE)
    b = cloud.repository.commit({"training_code/train.py": b"print('b')\n"}, parent=a)
    lambda_handler(push_event(b, a), context)
    capsys.readouterr()
    lambda_handler(push_event(a), context)
    [line] = logged(caplog, "push superseded before its run started", "INFO")
    assert (line["commit_id"], line["branch_head"]) == (a, b)
    assert metrics_emitted(capsys)["PushesSuperseded"] == 1


def test_without_superseding_the_branch_head_is_never_asked(
    cloud: Cloud, context: Any, pipeline_exists: str
) -> None:
    assert cloud.apis.calls["codecommit.GetBranch"] == []


def test_a_deleted_branch_supersedes_nothing(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _superseding(monkeypatch)
    commit = cloud.repository.commit(TRAINING_CODE, branch=None)  # no branch points at it any more
    assert lambda_handler(push_event(commit), context)["status"] == "started"


@pytest.mark.parametrize(
    ("change", "details"),
    [
        ({"account": "999999999999"}, {"account": "999999999999"}),
        ({"repositoryName": "other"}, {"repository": "other"}),
        (
            {"referenceName": "dev", "referenceFullName": "refs/heads/dev"},
            {"reference": "dev", "reference_type": "branch"},
        ),
        ({"event": "referenceDeleted"}, {"event": "referenceDeleted"}),
        ({"referenceFullName": "refs/heads/x"}, {"reference_full_name": "refs/heads/x"}),
    ],
)
def test_each_refusal_names_what_was_foreign(
    cloud: Cloud, context: Any, change: dict[str, str], details: dict[str, str]
) -> None:
    event = push_event(cloud.repository.commit(TRAINING_CODE))
    if "account" in change:
        event["account"] = change["account"]
    else:
        event["detail"].update(change)
    result = lambda_handler(event, context)
    assert {key: result[key] for key in details} == details


def test_a_parameter_the_definition_declares_but_nobody_sets_is_warned_about(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    document = json.loads(pipeline_definition.shipped_definition().body)
    document["Parameters"].append({"Name": "Extra", "Type": "String", "DefaultValue": "x"})
    extended = pipeline_definition.PipelineDefinition.from_text(json.dumps(document))
    monkeypatch.setattr("orchestrator.push.shipped_definition", lambda: extended)
    result = lambda_handler(push_event(cloud.repository.commit(TRAINING_CODE)), context)
    [line] = logged(caplog, "definition declares parameters the orchestrator does not set", "WARNING")
    assert line["parameters"] == ["Extra"]
    listed = cloud.sagemaker.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=result["execution_arn"]
    )
    assert "Extra" not in {p["Name"] for p in listed["PipelineParameters"]}


@pytest.mark.parametrize(
    ("paths", "watched", "expected"),
    [
        (["training_code/train.py"], ("training_code",), ["training_code/train.py"]),
        (["training_code/train.py"], ("training_code/",), ["training_code/train.py"]),
        (["training_code"], ("training_code",), ["training_code"]),
        (["training_code_old/train.py", "training_codex"], ("training_code",), []),
        (["pipeline.yaml", "pipeline.yaml.bak"], ("training_code", "pipeline.yaml"), ["pipeline.yaml"]),
        (["README.md"], ("", "/"), []),
        (
            ["XGB/train.py", "X/a.py"],
            ("XGB", "X"),
            ["XGB/train.py", "X/a.py"],
        ),  # no stray characters stripped
    ],
)
def test_touches_counts_paths_at_or_under_a_watched_path(
    paths: list[str], watched: tuple[str, ...], expected: list[str]
) -> None:
    assert touches(paths, watched) == expected


def test_runs_of_other_branches_listed_around_ours_do_not_hide_ours(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, pipeline_exists: str
) -> None:
    _superseding(monkeypatch)

    def foreign(display: str, repository: str) -> str:
        return str(
            cloud.sagemaker.start_pipeline_execution(
                PipelineName=PIPELINE,
                PipelineExecutionDisplayName=display,
                PipelineParameters=[
                    {"Name": "RepositoryName", "Value": repository},
                    {"Name": "CommitId", "Value": "e" * 40},
                ],
            )["PipelineExecutionArn"]
        )

    # GIVEN executing runs in this order: another branch's, ours (an older commit), another repository's
    before = foreign(f"main-old-{'e' * 12}", REPOSITORY)
    older = cloud.repository.commit({**TRAINING_CODE, "training_code/train.py": b"print('older')\n"})
    ours = lambda_handler(push_event(older), context)["execution_arn"]
    after = foreign(f"{BRANCH}-{'f' * 12}", "someone-elses")
    for arn in (before, ours, after):
        _executing(arn)
    # WHEN a newer commit is pushed THEN ours is stopped, whichever way the runs are listed
    newer = cloud.repository.commit(
        {**TRAINING_CODE, "training_code/train.py": b"print('newer')\n"}, parent=older
    )
    assert lambda_handler(push_event(newer, older), context)["superseded"] == [ours]


def test_a_run_of_the_pushed_commit_listed_between_older_ones_hides_neither(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch, pipeline_exists: str
) -> None:
    _superseding(monkeypatch)
    o1 = cloud.repository.commit({**TRAINING_CODE, "training_code/train.py": b"print('o1')\\n"})
    o2 = cloud.repository.commit({**TRAINING_CODE, "training_code/train.py": b"print('o2')\\n"}, parent=o1)
    head = cloud.repository.commit({**TRAINING_CODE, "training_code/train.py": b"print('c')\\n"}, parent=o2)
    # GIVEN executing runs in this order: o1's, one started by hand for the head commit, o2's
    first = lambda_handler(push_event(o1), context)["execution_arn"]
    by_hand = cloud.sagemaker.start_pipeline_execution(
        PipelineName=PIPELINE,
        PipelineExecutionDisplayName=f"{BRANCH}-{head[:12]}",
        PipelineParameters=[
            {"Name": "RepositoryName", "Value": REPOSITORY},
            {"Name": "CommitId", "Value": head},
        ],
    )["PipelineExecutionArn"]
    second = lambda_handler(push_event(o2, o1), context)["execution_arn"]
    for arn in (first, by_hand, second):
        _executing(arn)
    # WHEN the head is pushed THEN both older runs are stopped and the head's own run is not
    result = lambda_handler(push_event(head, o2), context)
    assert sorted(result["superseded"]) == sorted([first, second])
