"""StartPipelineFunction: what a push to the repository does."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from functions.start_pipeline.app import lambda_handler
from orchestrator import pipeline_definition
from orchestrator.adapters.ledger import Ledger
from orchestrator.lineage import commit_lineage
from tests.events import load_event
from tests.unit.conftest import BRANCH, BUCKET, PIPELINE, REPOSITORY, TABLE, TRAINING_CODE, Cloud, logged
from tests.unit.fakes import moto_sagemaker

ROOT = Path(__file__).resolve().parents[2]


def push_event(commit_id: str, old_commit_id: str | None = None, **detail: Any) -> dict[str, Any]:
    event = load_event("codecommit_push")
    event["detail"].update(commitId=commit_id, **detail)
    if old_commit_id is None:
        event["detail"].pop("oldCommitId", None)
        event["detail"]["event"] = "referenceCreated"
    else:
        event["detail"]["oldCommitId"] = old_commit_id
    return event


def s3_bytes(cloud: Cloud, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bytes(cloud.s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def parameters_of(cloud: Cloud, execution_arn: str) -> dict[str, str]:
    listed = cloud.sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution_arn)
    return {item["Name"]: item["Value"] for item in listed["PipelineParameters"]}


def test_push_starts_a_run_with_the_commits_code_and_every_parameter(cloud: Cloud, context: Any) -> None:
    # GIVEN a commit of the training code on the configured branch
    base = cloud.repository.commit({"README.md": b"# demo\n"})
    commit = cloud.repository.commit(TRAINING_CODE, parent=base)

    # WHEN CodeCommit reports the push
    result = lambda_handler(push_event(commit, base), context)

    # THEN one pipeline execution runs that commit, with every parameter the definition declares
    assert result["status"] == "started"
    [execution] = cloud.executions()
    assert execution["PipelineExecutionArn"] == result["execution_arn"]
    assert execution["PipelineExecutionDisplayName"] == f"{BRANCH}-{commit[:12]}"
    parameters = parameters_of(cloud, result["execution_arn"])
    declared = set(pipeline_definition.shipped_definition().parameter_names)
    assert set(parameters) == declared
    assert parameters["CommitId"] == commit
    assert parameters["RepositoryName"] == REPOSITORY
    assert parameters["InputDataUri"] == f"s3://{BUCKET}/data/"
    assert parameters["MaxTuningJobs"] == "4"
    assert parameters["RmseThreshold"] == "5.5"
    # AND the code of that commit is in S3 under content-addressed keys
    preprocess = s3_bytes(cloud, parameters["PreprocessCodeUri"])
    assert preprocess == TRAINING_CODE["training_code/preprocess.py"]
    assert parameters["PreprocessCodeUri"] == (
        f"s3://{BUCKET}/code/{hashlib.sha256(preprocess).hexdigest()}/preprocess.py"
    )
    assert s3_bytes(cloud, parameters["EvaluateCodeUri"]) == TRAINING_CODE["training_code/evaluate.py"]
    # AND the baseline script is the layer's own data_quality.py (the monitor reads what it writes)
    layer_script = (ROOT / "layers/shared/orchestrator/data_quality.py").read_bytes()
    assert parameters["BaselineCodeUri"] == (
        f"s3://{BUCKET}/code/{hashlib.sha256(layer_script).hexdigest()}/data_quality.py"
    )
    assert s3_bytes(cloud, parameters["BaselineCodeUri"]) == layer_script
    tarball = s3_bytes(cloud, parameters["TrainingCodeUri"])
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        assert sorted(archive.getnames()) == [
            "evaluate.py",
            "inference.py",
            "lib/features.py",
            "preprocess.py",
            "train.py",
        ]
        assert archive.extractfile("lib/features.py").read() == b"FEATURES = 13\n"  # type: ignore[union-attr]
    # AND the pipeline was created from the shipped definition
    deployed = cloud.sagemaker.describe_pipeline(PipelineName=PIPELINE)
    assert json.loads(deployed["PipelineDefinition"]) == json.loads(
        pipeline_definition.DEFINITION_FILE.read_text()
    )


def test_same_tree_gives_the_same_sourcedir_bytes(cloud: Cloud, context: Any) -> None:
    # GIVEN two commits whose training folders are identical (only the README differs)
    first = cloud.repository.commit(TRAINING_CODE)
    second = cloud.repository.commit({"training_code/train.py": b"print('train v2')\n"}, parent=first)
    third = cloud.repository.commit({"training_code/train.py": b"print('train')\n"}, parent=second)

    # WHEN both are pushed
    one = lambda_handler(push_event(first), context)
    three = lambda_handler(push_event(third, second), context)

    # THEN their sourcedir archives are byte-identical (same key), with a gzip header free of time and name
    assert one["code"]["training"] == three["code"]["training"]
    header = s3_bytes(cloud, one["code"]["training"])[:10]
    assert header[4:8] == b"\0\0\0\0"
    assert gzip.decompress(s3_bytes(cloud, one["code"]["training"]))


def test_duplicate_push_event_starts_nothing_new(cloud: Cloud, context: Any) -> None:
    # GIVEN a push that already started a run
    commit = cloud.repository.commit(TRAINING_CODE)
    first = lambda_handler(push_event(commit), context)

    # WHEN EventBridge delivers the same push again
    again = lambda_handler(push_event(commit), context)

    # THEN still exactly one execution exists, and the repeat answers with the first run
    assert len(cloud.executions()) == 1
    assert again["execution_arn"] == first["execution_arn"]


def test_push_touching_neither_code_nor_pipeline_config_is_skipped(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a commit that only edits the README
    base = cloud.repository.commit(TRAINING_CODE)
    docs_only = cloud.repository.commit({"README.md": b"# better docs\n"}, parent=base)

    # WHEN it is pushed
    result = lambda_handler(push_event(docs_only, base), context)

    # THEN no run starts, the log says why, and the ledger records the skip
    assert result == {"status": "skipped", "reason": "no-relevant-changes", "commit_id": docs_only}
    assert cloud.executions() == []
    [line] = logged(caplog, "push skipped: no training code or pipeline configuration changed")
    assert line["changed_paths"] == ["README.md"]
    assert commit_lineage(Ledger(TABLE), REPOSITORY, docs_only)["push"]["outcome"] == "skipped"


def test_change_to_a_pipeline_config_path_starts_a_run(cloud: Cloud, context: Any) -> None:
    # GIVEN a commit that only edits a configured pipeline configuration path
    base = cloud.repository.commit(TRAINING_CODE)
    config_only = cloud.repository.commit({"pipeline.yaml": b"threshold: 5\n"}, parent=base)

    # WHEN it is pushed
    result = lambda_handler(push_event(config_only, base), context)

    # THEN a run starts
    assert result["status"] == "started"
    assert len(cloud.executions()) == 1


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"referenceName": "feature-x", "referenceFullName": "refs/heads/feature-x"}, "other-branch"),
        # near misses: a branch that only starts like ours, a full name that disagrees with the short one,
        # a repository and an account one character away
        ({"referenceName": "main-old", "referenceFullName": "refs/heads/main-old"}, "other-branch"),
        ({"referenceName": "mai", "referenceFullName": "refs/heads/mai"}, "other-branch"),
        ({"referenceFullName": "refs/heads/main-old"}, "inconsistent-reference"),
        ({"referenceFullName": "refs/tags/main"}, "inconsistent-reference"),
        ({"repositoryName": "someone-elses-repo"}, "foreign-repository"),
        ({"repositoryName": "mlops-demo-old"}, "foreign-repository"),
        ({"account": "999999999999"}, "foreign-account"),
        ({"account": "123456789013"}, "foreign-account"),
        ({"event": "referenceDeleted"}, "not-a-push"),
        ({"referenceType": "tag"}, "other-branch"),
    ],
)
def test_foreign_or_non_push_events_are_ignored_without_side_effects(
    cloud: Cloud, context: Any, change: dict[str, str], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a push event for something that is not our repository's branch
    commit = cloud.repository.commit(TRAINING_CODE)
    event = push_event(commit)
    if "account" in change:
        event["account"] = change["account"]
    else:
        event["detail"].update(change)

    # WHEN the handler receives it
    result = lambda_handler(event, context)

    # THEN it is ignored with the reason logged, and nothing was created anywhere
    assert result["status"] == "ignored"
    assert result["reason"] == reason
    assert [line["reason"] for line in logged(caplog, "event ignored", "WARNING")] == [reason]
    assert cloud.executions() == []
    assert cloud.s3.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert cloud.apis.calls["codecommit.GetDifferences"] == []


def test_other_branch_sample_event_is_ignored(cloud: Cloud, context: Any) -> None:
    # GIVEN the sample event of a push to another branch WHEN it arrives
    result = lambda_handler(load_event("codecommit_other_branch"), context)
    # THEN it is ignored and no run exists
    assert result["status"] == "ignored"
    assert cloud.executions() == []


def test_malformed_event_is_rejected_naming_the_field(
    cloud: Cloud, context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the sample event that lacks commitId WHEN it arrives
    result = lambda_handler(load_event("malformed"), context)
    # THEN it is refused as malformed, the error names the missing field, and nothing happened
    assert result["status"] == "ignored"
    assert result["reason"] == "malformed"
    assert any("commitId" in error for error in result["errors"])
    [line] = logged(caplog, "event ignored", "ERROR")
    assert line["reason"] == "malformed" and "commitId" in str(line["errors"])
    assert cloud.executions() == []


def test_oversized_event_is_rejected(cloud: Cloud, context: Any) -> None:
    # GIVEN an event padded beyond EventBridge's 256 KB
    commit = cloud.repository.commit(TRAINING_CODE)
    event = push_event(commit)
    event["detail"]["padding"] = "x" * (300 * 1024)
    # WHEN it arrives THEN it is refused before anything is done
    result = lambda_handler(event, context)
    assert result["reason"] == "oversized"
    assert cloud.executions() == []


def test_commit_without_preprocess_script_is_not_run_and_people_are_told(cloud: Cloud, context: Any) -> None:
    # GIVEN a commit whose training folder lacks preprocess.py
    commit = cloud.repository.commit({"training_code/train.py": b"print('train')\n"})
    # WHEN it is pushed
    result = lambda_handler(push_event(commit), context)
    # THEN no run starts and the notification names the missing file
    assert result["reason"] == "training-code-incomplete"
    assert cloud.executions() == []
    [notification] = cloud.notifications()
    assert "preprocess.py" in notification["Message"]


def test_newer_push_stops_the_superseded_run_of_the_same_branch(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN superseded runs are to be stopped, and a run for an older commit is still executing
    monkeypatch.setenv("STOP_SUPERSEDED_EXECUTIONS", "true")
    from tests.unit.conftest import reset_caches

    reset_caches()
    older = cloud.repository.commit(TRAINING_CODE)
    older_run = lambda_handler(push_event(older), context)["execution_arn"]
    moto_sagemaker().pipelines[PIPELINE].pipeline_executions[
        older_run
    ].pipeline_execution_status = "Executing"

    # WHEN a newer commit of the same branch is pushed
    newer = cloud.repository.commit({"training_code/train.py": b"print('better')\n"}, parent=older)
    result = lambda_handler(push_event(newer, older), context)

    # THEN the older run is stopping and the newer one runs
    statuses = {e["PipelineExecutionArn"]: e["PipelineExecutionStatus"] for e in cloud.executions()}
    assert statuses[older_run] == "Stopping"
    assert result["superseded"] == [older_run]
    assert result["execution_arn"] in statuses


def test_pipeline_is_updated_only_when_the_shipped_definition_changes(
    cloud: Cloud, context: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a small shipped definition, deployed by a first push
    definition = json.loads(pipeline_definition.DEFINITION_FILE.read_text())
    path = tmp_path / "pipeline_definition.json"
    path.write_text(json.dumps(definition))
    monkeypatch.setattr(pipeline_definition, "DEFINITION_FILE", path)
    pipeline_definition.shipped_definition.cache_clear()
    first = cloud.repository.commit(TRAINING_CODE)
    assert lambda_handler(push_event(first), context)["pipeline"] == "created"

    # WHEN a second push ships the same definition, reformatted
    path.write_text(json.dumps(definition, indent=4))
    pipeline_definition.shipped_definition.cache_clear()
    second = cloud.repository.commit({"training_code/train.py": b"print('2')\n"}, parent=first)
    unchanged = lambda_handler(push_event(second, first), context)

    # AND a third push ships a changed definition
    definition["Parameters"][1]["DefaultValue"] = "PRICE"
    path.write_text(json.dumps(definition))
    pipeline_definition.shipped_definition.cache_clear()
    third = cloud.repository.commit({"training_code/train.py": b"print('3')\n"}, parent=second)
    updated = lambda_handler(push_event(third, second), context)

    # THEN only the third updated the pipeline, which now holds the new definition and its hash tag
    assert unchanged["pipeline"] == "unchanged"
    assert updated["pipeline"] == "updated"
    deployed = cloud.sagemaker.describe_pipeline(PipelineName=PIPELINE)
    assert json.loads(deployed["PipelineDefinition"])["Parameters"][1]["DefaultValue"] == "PRICE"
    tags = cloud.sagemaker.list_tags(ResourceArn=deployed["PipelineArn"])["Tags"]
    assert {"Key": "definition-sha256", "Value": pipeline_definition.canonical_sha256(definition)} in tags


def test_push_is_recorded_in_the_commit_lineage(cloud: Cloud, context: Any) -> None:
    # GIVEN a pushed commit
    commit = cloud.repository.commit(TRAINING_CODE)
    run = lambda_handler(push_event(commit), context)["execution_arn"]
    # WHEN someone asks where the commit went
    lineage = commit_lineage(Ledger(TABLE), REPOSITORY, commit)
    # THEN the run it started is there, and SageMaker lineage links the commit to the run
    assert [item["execution_arn"] for item in lineage["executions"]] == [run]
    assert (
        f"mlops-demo-commit-{commit}",
        f"mlops-demo-pipeline-execution-{run.rsplit('/', 1)[-1]}",
        "ContributedTo",
    ) in cloud.lineage.chain()


def test_only_paths_under_a_watched_folder_count_as_changed(cloud: Cloud, context: Any) -> None:
    # GIVEN commits touching a sibling folder whose name only starts like training_code/, and a file named
    # like a watched config path with a suffix (the near misses of the path boundary)
    base = cloud.repository.commit(TRAINING_CODE)
    sibling = cloud.repository.commit({"training_code_old/train.py": b"print('old')\n"}, parent=base)
    suffixed = cloud.repository.commit({"pipeline.yaml.bak": b"x\n"}, parent=sibling)
    # WHEN they are pushed THEN neither starts a run
    assert lambda_handler(push_event(sibling, base), context)["status"] == "skipped"
    assert lambda_handler(push_event(suffixed, sibling), context)["status"] == "skipped"
    # AND a file directly in the folder does
    inside = cloud.repository.commit({"training_code/features.py": b"X = 1\n"}, parent=suffixed)
    assert lambda_handler(push_event(inside, suffixed), context)["status"] == "started"


def test_the_code_archive_does_not_depend_on_when_it_is_built(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as time_module

    from orchestrator.adapters.codecommit import CodeCommitAdapter
    from orchestrator.packaging import sourcedir_tarball

    # GIVEN a commit's training folder
    commit = cloud.repository.commit(TRAINING_CODE)
    files = CodeCommitAdapter().read_folder(REPOSITORY, commit, "training_code")
    # WHEN it is packaged now, and again an hour later (the clock both tar and gzip would read)
    now = sourcedir_tarball(files)
    later = time_module.time() + 3600
    monkeypatch.setattr(time_module, "time", lambda: later)
    # THEN the bytes are the same: content-addressed code keeps its key across pushes of the same tree
    assert sourcedir_tarball(files) == now


def test_the_run_is_started_with_a_token_derived_from_the_commit(cloud: Cloud, context: Any) -> None:
    # moto ignores ClientRequestToken, so the request is recorded on its way to moto: the token must be
    # the same for every retry of this commit (SageMaker returns the first execution for a repeated token)
    import hashlib

    seen: list[dict[str, Any]] = []
    cloud.through_moto("StartPipelineExecution", lambda params, moto: seen.append(params) or moto(params))
    commit = cloud.repository.commit(TRAINING_CODE)
    lambda_handler(push_event(commit), context)
    [request] = seen
    expected = hashlib.sha256(f"{REPOSITORY}:main:{commit}".encode()).hexdigest()
    assert request["ClientRequestToken"] == expected


def test_a_new_execution_role_updates_the_pipeline_even_with_the_same_definition(
    cloud: Cloud, context: Any
) -> None:
    from orchestrator.pipeline_definition import shipped_definition
    from tests.unit.conftest import ACCOUNT, ROLE

    # GIVEN the pipeline holds today's definition but runs as the role of an earlier stack
    cloud.sagemaker.create_pipeline(
        PipelineName=PIPELINE,
        PipelineDefinition=shipped_definition().body,
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/mlops-demo-sagemaker-before",
    )
    # WHEN a push arrives
    commit = cloud.repository.commit(TRAINING_CODE)
    result = lambda_handler(push_event(commit), context)
    # THEN the pipeline is updated to run as the stack's role
    assert result["pipeline"] == "updated"
    assert cloud.sagemaker.describe_pipeline(PipelineName=PIPELINE)["RoleArn"] == ROLE


def test_only_runs_of_this_branch_and_repository_are_superseded(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.conftest import reset_caches

    monkeypatch.setenv("STOP_SUPERSEDED_EXECUTIONS", "true")
    reset_caches()
    # GIVEN executing runs: one of a branch whose name only starts like ours, one of another repository
    # on our branch, and one of ours for an older commit
    older = cloud.repository.commit(TRAINING_CODE)
    ours = lambda_handler(push_event(older), context)["execution_arn"]
    executions = moto_sagemaker().pipelines[PIPELINE].pipeline_executions
    executions[ours].pipeline_execution_status = "Executing"
    parameters = [
        {"Name": "RepositoryName", "Value": REPOSITORY},
        {"Name": "CommitId", "Value": "c" * 40},
    ]
    other_branch = cloud.sagemaker.start_pipeline_execution(
        PipelineName=PIPELINE,
        PipelineExecutionDisplayName=f"main-old-{'c' * 12}",
        PipelineParameters=parameters,
    )["PipelineExecutionArn"]
    other_repository = cloud.sagemaker.start_pipeline_execution(
        PipelineName=PIPELINE,
        PipelineExecutionDisplayName=f"main-{'d' * 12}",
        PipelineParameters=[
            {"Name": "RepositoryName", "Value": "someone-elses"},
            {"Name": "CommitId", "Value": "d" * 40},
        ],
    )["PipelineExecutionArn"]
    for arn in (other_branch, other_repository):
        executions[arn].pipeline_execution_status = "Executing"
    # WHEN a newer commit of our branch is pushed
    newer = cloud.repository.commit({"training_code/train.py": b"print('newer')\n"}, parent=older)
    result = lambda_handler(push_event(newer, older), context)
    # THEN only our older run is stopped
    assert result["superseded"] == [ours]
    statuses = {e["PipelineExecutionArn"]: e["PipelineExecutionStatus"] for e in cloud.executions()}
    assert statuses[other_branch] == statuses[other_repository] == "Executing"


def _superseding(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.conftest import reset_caches

    monkeypatch.setenv("STOP_SUPERSEDED_EXECUTIONS", "true")
    reset_caches()


def _executing(arn: str) -> None:
    moto_sagemaker().pipelines[PIPELINE].pipeline_executions[arn].pipeline_execution_status = "Executing"


def test_a_late_push_of_an_older_commit_neither_starts_a_run_nor_stops_the_newer_one(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two pushes in a row, A then B, whose events arrive in the other order (EventBridge keeps none)
    _superseding(monkeypatch)
    a = cloud.repository.commit(TRAINING_CODE)
    b = cloud.repository.commit({"training_code/train.py": b"print('b')\n"}, parent=a)
    newer = lambda_handler(push_event(b, a), context)
    _executing(newer["execution_arn"])

    # WHEN A's event arrives after B's run started
    result = lambda_handler(push_event(a), context)

    # THEN A starts nothing and B keeps running: the branch's head decides, not the arrival order
    assert result == {"status": "skipped", "reason": "superseded", "commit_id": a, "head": b}
    [execution] = cloud.executions()
    assert execution["PipelineExecutionStatus"] == "Executing"
    assert Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{a}", "COMMIT")["reason"] == f"superseded-by-{b}"


def test_an_older_push_still_runs_when_the_newer_push_changed_no_training_code(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN A changes the training code, B after it only the README; B's event is handled first
    _superseding(monkeypatch)
    a = cloud.repository.commit(TRAINING_CODE)
    b = cloud.repository.commit({"README.md": b"# typo fixed\n"}, parent=a)
    assert lambda_handler(push_event(b, a), context)["reason"] == "no-relevant-changes"

    # WHEN A's event arrives
    result = lambda_handler(push_event(a), context)

    # THEN A's training code runs: B started no run that would supersede it
    assert result["status"] == "started"
    assert [e["PipelineExecutionArn"] for e in cloud.executions()] == [result["execution_arn"]]


def test_only_the_branch_head_stops_older_runs(
    cloud: Cloud, context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a run of Z executing, then A and B pushed; A's event handled while B's run has not started
    _superseding(monkeypatch)
    z = cloud.repository.commit(TRAINING_CODE)
    z_run = lambda_handler(push_event(z), context)["execution_arn"]
    _executing(z_run)
    a = cloud.repository.commit({"training_code/train.py": b"print('a')\n"}, parent=z)
    b = cloud.repository.commit({"training_code/train.py": b"print('b')\n"}, parent=a)

    # WHEN A's event is handled: A runs (its code may never run otherwise) but, not being the head, stops
    # nothing
    a_result = lambda_handler(push_event(a, z), context)
    assert a_result["status"] == "started" and a_result["superseded"] == []
    _executing(a_result["execution_arn"])

    # WHEN B's event is handled: the head stops both older runs
    b_result = lambda_handler(push_event(b, a), context)
    assert sorted(b_result["superseded"]) == sorted([z_run, a_result["execution_arn"]])
