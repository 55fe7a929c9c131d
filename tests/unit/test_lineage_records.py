"""The lineage recorder, record by record: what each link writes to the ledger and to SageMaker lineage.

The ledger answers "where did commit C go" and "what serves on endpoint E" in one Query each; SageMaker
lineage is what Studio shows. Each test checks the exact items and entities one link leaves."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.adapters.ledger import Ledger
from orchestrator.adapters.sagemaker import SageMakerAdapter
from orchestrator.domain import CommitRef, PackageLineage
from orchestrator.lineage import LineageRecorder, commit_lineage, endpoint_lineage
from orchestrator.observability import metrics
from tests.unit.conftest import ENDPOINT, GROUP, REPOSITORY, TABLE, Cloud, logged
from tests.unit.fakes import client_error

PROJECT = "mlops-demo"
SHA = "7f6e1f5a2b3c4d5e6f708192a3b4c5d6e7f80912"
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlops-demo-pipeline/execution/p4jn9xou8a8s"
PACKAGE = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/3"
COMMIT = CommitRef(REPOSITORY, "main", SHA)


def recorder() -> LineageRecorder:
    return LineageRecorder(Ledger(TABLE), SageMakerAdapter(), PROJECT)


def package(**changes: Any) -> PackageLineage:
    values: dict[str, Any] = {
        "package_arn": PACKAGE,
        "group": GROUP,
        "version": 3,
        "approval_status": "Approved",
        "package_status": "Completed",
        "approver": "arn:aws:iam::123456789012:user/reviewer",
        "approval_description": "metrics reviewed",
        "decided_at": "2026-12-01T10:00:00.000+00:00",
        "repository": REPOSITORY,
        "commit_id": SHA,
        "execution_arn": EXECUTION,
        "model_data_url": "s3://bucket/pipelines/training/tune-model-003/output/model.tar.gz",
        "training_job": "tune-model-003",
        "hyperparameters": {"learning_rate": "0.01"},
        "training_metrics": {"val_rmse": 3.1},
        "evaluation": {"regression_metrics": {"rmse": {"value": 3.2}}},
    }
    return PackageLineage(**(values | changes))


def without_times(item: dict[str, Any] | None) -> dict[str, Any]:
    assert item is not None
    return {
        k: v for k, v in item.items() if k not in {"recorded_at", "started_at", "deployed_at", "status_at"}
    }


def test_a_skipped_push_keeps_why_and_at_most_fifty_paths(cloud: Cloud) -> None:
    recorder().push_skipped(COMMIT, "no-relevant-changes", [f"docs/{n}.md" for n in range(60)])
    item = without_times(Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{SHA}", "COMMIT"))
    assert item == {
        "pk": f"COMMIT#{REPOSITORY}#{SHA}",
        "sk": "COMMIT",
        "kind": "commit",
        "repository": REPOSITORY,
        "branch": "main",
        "commit_id": SHA,
        "outcome": "skipped",
        "reason": "no-relevant-changes",
        "changed_paths": [f"docs/{n}.md" for n in range(50)],
    }
    assert not recorder().run_started(REPOSITORY, SHA)


def test_a_started_run_is_recorded_under_its_commit_and_as_itself_and_in_studio(cloud: Cloud) -> None:
    recorder().execution_started(COMMIT, EXECUTION, "main-7f6e1f5a2b3c", {"CommitId": SHA})
    ledger = Ledger(TABLE)
    assert without_times(ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", "COMMIT"))["outcome"] == "started"
    assert ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", "COMMIT")["execution_arn"] == EXECUTION  # type: ignore[index]
    assert recorder().run_started(REPOSITORY, SHA)
    assert without_times(ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", f"EXECUTION#{EXECUTION}")) == {
        "pk": f"COMMIT#{REPOSITORY}#{SHA}",
        "sk": f"EXECUTION#{EXECUTION}",
        "kind": "execution",
        "execution_arn": EXECUTION,
        "display_name": "main-7f6e1f5a2b3c",
        "status": "Executing",
    }
    assert without_times(ledger.get(f"EXECUTION#{EXECUTION}", "EXECUTION")) == {
        "pk": f"EXECUTION#{EXECUTION}",
        "sk": "EXECUTION",
        "kind": "execution",
        "execution_arn": EXECUTION,
        "repository": REPOSITORY,
        "branch": "main",
        "commit_id": SHA,
        "status": "Executing",
        "parameters": {"CommitId": SHA},
    }
    assert recorder().execution_commit(EXECUTION) == COMMIT
    # Studio: the commit's context contributed to the run's action
    entities = {cloud.lineage.name_of(arn): entity for arn, entity in cloud.lineage.entities.items()}
    context = entities[f"{PROJECT}-commit-{SHA}"]
    assert (context["kind"], context["ContextType"], context["Source"]["SourceUri"]) == (
        "context",
        "GitCommit",
        f"codecommit://{REPOSITORY}/{SHA}",
    )
    assert context["Properties"] == {"repository": REPOSITORY, "branch": "main", "commit": SHA}
    action = entities[f"{PROJECT}-pipeline-execution-p4jn9xou8a8s"]
    assert (action["ActionType"], action["Source"]["SourceUri"]) == ("PipelineExecution", EXECUTION)
    assert cloud.lineage.chain() == {
        (f"{PROJECT}-commit-{SHA}", f"{PROJECT}-pipeline-execution-p4jn9xou8a8s", "ContributedTo")
    }


def test_a_runs_status_updates_the_run_and_its_commit_entry(cloud: Cloud) -> None:
    lineage = recorder()
    lineage.execution_started(COMMIT, EXECUTION, "main-7f6e1f5a2b3c", {})
    lineage.execution_status(EXECUTION, "Failed", COMMIT, {"failed_steps": [{"step": "TuneModel"}]})
    ledger = Ledger(TABLE)
    for pk, sk in (
        (f"EXECUTION#{EXECUTION}", "EXECUTION"),
        (f"COMMIT#{REPOSITORY}#{SHA}", f"EXECUTION#{EXECUTION}"),
    ):
        item = ledger.get(pk, sk)
        assert item is not None
        assert (item["status"], item["failure"]) == ("Failed", {"failed_steps": [{"step": "TuneModel"}]})


def test_a_run_without_a_known_commit_updates_only_itself(cloud: Cloud) -> None:
    recorder().execution_status(EXECUTION, "Succeeded", None)
    ledger = Ledger(TABLE)
    assert ledger.get(f"EXECUTION#{EXECUTION}", "EXECUTION")["status"] == "Succeeded"  # type: ignore[index]
    assert recorder().execution_commit(EXECUTION) is None  # the near miss: a record, but without a commit
    assert ledger.partition(f"COMMIT#{REPOSITORY}#{SHA}") == []


def test_a_registered_package_is_listed_under_its_run_and_its_commit(cloud: Cloud) -> None:
    recorder().package_registered(EXECUTION, PACKAGE, COMMIT)
    ledger = Ledger(TABLE)
    assert without_times(ledger.get(f"EXECUTION#{EXECUTION}", f"PACKAGE#{PACKAGE}"))["package_arn"] == PACKAGE
    under_commit = without_times(ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", f"PACKAGE#{PACKAGE}"))
    assert (under_commit["package_arn"], under_commit["execution_arn"]) == (PACKAGE, EXECUTION)
    recorder().package_registered(EXECUTION, PACKAGE.replace("/3", "/4"), None)
    assert ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", f"PACKAGE#{PACKAGE.replace('/3', '/4')}") is None


def test_a_decided_package_is_recorded_whole_and_produced_by_its_run_in_studio(cloud: Cloud) -> None:
    lineage = recorder()
    lineage.execution_started(COMMIT, EXECUTION, "main-7f6e1f5a2b3c", {})
    lineage.package_decided(package())
    ledger = Ledger(TABLE)
    record = without_times(ledger.get(f"PACKAGE#{PACKAGE}", "PACKAGE"))
    assert record == {"pk": f"PACKAGE#{PACKAGE}", "sk": "PACKAGE", "kind": "package", **package().as_dict()}
    under_commit = without_times(ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", f"PACKAGE#{PACKAGE}"))
    assert {k: under_commit[k] for k in ("version", "approval_status", "approver", "decided_at")} == {
        "version": 3,
        "approval_status": "Approved",
        "approver": "arn:aws:iam::123456789012:user/reviewer",
        "decided_at": "2026-12-01T10:00:00.000+00:00",
    }
    assert ledger.get(f"EXECUTION#{EXECUTION}", f"PACKAGE#{PACKAGE}") is not None
    assert (f"{PROJECT}-pipeline-execution-p4jn9xou8a8s", f"{GROUP}-v3", "Produced") in cloud.lineage.chain()
    artifact = next(e for e in cloud.lineage.entities.values() if e.get("ArtifactType") == "ModelPackage")
    assert artifact["Source"]["SourceUri"] == PACKAGE
    assert artifact["Properties"] == {"group": GROUP, "version": "3"}


def test_a_package_without_run_or_commit_is_recorded_alone(cloud: Cloud) -> None:
    recorder().package_decided(package(execution_arn=None, repository=None, commit_id=None))
    ledger = Ledger(TABLE)
    assert ledger.get(f"PACKAGE#{PACKAGE}", "PACKAGE") is not None
    assert ledger.partition(f"COMMIT#{REPOSITORY}#{SHA}") == []
    assert cloud.lineage.associations == set()


def test_a_deployment_is_recorded_on_the_endpoint_the_commit_and_in_studio(cloud: Cloud) -> None:
    lineage = recorder()
    config = f"{ENDPOINT}-v3-abcdef12"
    config_arn = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/{config}"
    lineage.deployed_to_endpoint(package(), ENDPOINT, config, config_arn, "approved")
    ledger = Ledger(TABLE)
    deployment = without_times(ledger.get(f"ENDPOINT#{ENDPOINT}", f"CONFIG#{config}"))
    assert deployment == {
        "pk": f"ENDPOINT#{ENDPOINT}",
        "sk": f"CONFIG#{config}",
        "kind": "deployment",
        "endpoint_name": ENDPOINT,
        "endpoint_config_name": config,
        "reason": "approved",
        **package().as_dict(),
    }
    state = ledger.get(f"ENDPOINT#{ENDPOINT}", "STATE")
    assert state is not None
    assert (state["requested_config"], state["requested_package_arn"]) == (config, PACKAGE)
    [event] = [i for i in ledger.partition(f"ENDPOINT#{ENDPOINT}") if i["sk"].startswith("EVENT#")]
    assert (event["action"], event["config"]) == ("approved", config)
    on_commit = without_times(ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", f"DEPLOYMENT#{ENDPOINT}#{config}"))
    assert (on_commit["kind"], on_commit["package_arn"], on_commit["reason"]) == (
        "deployment",
        PACKAGE,
        "approved",
    )
    chain = cloud.lineage.chain()
    assert (f"{GROUP}-v3", f"{PROJECT}-deploy-{config}", "ContributedTo") in chain
    assert (f"{PROJECT}-deploy-{config}", config, "Produced") in chain
    entities = {cloud.lineage.name_of(arn): e for arn, e in cloud.lineage.entities.items()}
    assert entities[config]["Source"]["SourceUri"] == config_arn
    assert entities[f"{PROJECT}-deploy-{config}"]["Source"]["SourceUri"] == f"endpoint/{ENDPOINT}/{config}"
    assert entities[f"{PROJECT}-deploy-{config}"]["Properties"] == {
        "endpoint": ENDPOINT,
        "reason": "approved",
    }
    # what serves there, in one query
    lineage.endpoint_state(ENDPOINT, "IN_SERVICE", config, None)
    answer = endpoint_lineage(ledger, ENDPOINT)
    assert answer["serving_config"] == config and answer["status"] == "IN_SERVICE"
    assert answer["serving"]["package_arn"] == PACKAGE and answer["serving"]["commit_id"] == SHA
    assert [h["action"] for h in answer["history"]] == ["approved", None]


def test_an_endpoint_config_without_an_arn_gets_a_stand_in_source(cloud: Cloud) -> None:
    recorder().deployed_to_endpoint(package(), ENDPOINT, "cfg", None, "rollback-from-v4")
    artifact = next(e for e in cloud.lineage.entities.values() if e.get("ArtifactType") == "EndpointConfig")
    assert artifact["Source"]["SourceUri"] == "endpoint-config/cfg"


def test_only_in_service_names_the_serving_config(cloud: Cloud) -> None:
    lineage, ledger = recorder(), Ledger(TABLE)
    lineage.endpoint_state(ENDPOINT, "UPDATING", "cfg-2", None)
    assert "in_service_config" not in ledger.get(f"ENDPOINT#{ENDPOINT}", "STATE")  # type: ignore[operator]
    lineage.endpoint_state(ENDPOINT, "IN_SERVICE", "cfg-1", None)
    lineage.endpoint_state(ENDPOINT, "FAILED", "cfg-2", "capacity")
    state = ledger.get(f"ENDPOINT#{ENDPOINT}", "STATE")
    assert state is not None
    assert (state["in_service_config"], state["status"], state["failure_reason"]) == (
        "cfg-1",
        "FAILED",
        "capacity",
    )
    events = [i for i in ledger.partition(f"ENDPOINT#{ENDPOINT}") if i["sk"].startswith("EVENT#")]
    assert [(e["status"], e["config"]) for e in events] == [
        ("UPDATING", "cfg-2"),
        ("IN_SERVICE", "cfg-1"),
        ("FAILED", "cfg-2"),
    ]


def test_a_transform_is_recorded_and_its_state_reaches_its_commit(cloud: Cloud) -> None:
    lineage, ledger = recorder(), Ledger(TABLE)
    lineage.transform_started(package(), "job-1", "s3://b/in/", "s3://b/out/job-1")
    record = without_times(ledger.get("TRANSFORM#job-1", "TRANSFORM"))
    assert {k: record[k] for k in ("transform_job", "input_uri", "output_uri", "status", "package_arn")} == {
        "transform_job": "job-1",
        "input_uri": "s3://b/in/",
        "output_uri": "s3://b/out/job-1",
        "status": "InProgress",
        "package_arn": PACKAGE,
    }
    lineage.transform_state("job-1", "Failed", "ClientError: bad input")
    on_commit = ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", "TRANSFORM#job-1")
    assert on_commit is not None
    assert (on_commit["status"], on_commit["failure_reason"]) == ("Failed", "ClientError: bad input")
    artifact = next(e for e in cloud.lineage.entities.values() if e.get("ArtifactType") == "TransformJob")
    assert (artifact["Source"]["SourceUri"], artifact["Properties"]) == (
        "s3://b/out/job-1",
        {"input": "s3://b/in/"},
    )
    assert (f"{GROUP}-v3", "job-1", "ContributedTo") in cloud.lineage.chain()
    where = commit_lineage(ledger, REPOSITORY, SHA)
    assert [t["transform_job"] for t in where["transform_jobs"]] == ["job-1"]


def test_the_state_of_a_transform_started_elsewhere_is_recorded_alone(cloud: Cloud) -> None:
    assert recorder().transform_state("someone-elses", "Completed", None) is not None
    assert Ledger(TABLE).get("TRANSFORM#someone-elses", "TRANSFORM")["status"] == "Completed"  # type: ignore[index]


def test_studio_refusing_a_write_is_logged_and_counted_and_the_ledger_still_written(
    cloud: Cloud, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    create = cloud.lineage._create

    def refuse_contexts(kind: str, name_key: str, params: dict[str, Any], operation: str) -> str:
        if kind == "context":
            raise client_error("ResourceLimitExceeded", "too many contexts", operation)
        return create(kind, name_key, params, operation)

    monkeypatch.setattr(cloud.lineage, "_create", refuse_contexts)
    metrics.clear_metrics()
    lineage = recorder()
    lineage.execution_started(COMMIT, EXECUTION, "main-7f6e1f5a2b3c", {})
    assert lineage.run_started(REPOSITORY, SHA)
    [line] = logged(caplog, "sagemaker lineage not recorded", "WARNING")
    assert (line["entity"], line["error"]) == ("commit context", "ResourceLimitExceeded")
    assert metrics.metric_set["LineageWriteFailures"]["Value"] == [1.0]
    metrics.clear_metrics()
    assert cloud.lineage.associations == set()  # no association to a context that doesn't exist


def test_an_unexpected_studio_error_other_than_client_errors_is_not_swallowed(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(cloud.lineage, "_create", broken)
    with pytest.raises(RuntimeError):
        recorder().execution_started(COMMIT, EXECUTION, "main-7f6e1f5a2b3c", {})


def test_commit_lineage_answers_where_the_commit_went(cloud: Cloud) -> None:
    lineage = recorder()
    lineage.execution_started(COMMIT, EXECUTION, "main-7f6e1f5a2b3c", {})
    lineage.package_registered(EXECUTION, PACKAGE, COMMIT)
    lineage.deployed_to_endpoint(package(), ENDPOINT, "cfg", None, "approved")
    where = commit_lineage(Ledger(TABLE), REPOSITORY, SHA)
    assert where["push"]["outcome"] == "started" and "pk" not in where["push"]
    assert [e["execution_arn"] for e in where["executions"]] == [EXECUTION]
    assert [p["package_arn"] for p in where["packages"]] == [PACKAGE]
    assert [d["endpoint_config_name"] for d in where["deployments"]] == ["cfg"]
    assert where["transform_jobs"] == []
    assert all("sk" not in entry and "kind" not in entry for entry in where["executions"] + where["packages"])
    empty = commit_lineage(Ledger(TABLE), REPOSITORY, "0" * 40)
    assert empty["push"] is None and empty["executions"] == []


def test_endpoint_lineage_falls_back_to_the_requested_config_until_one_is_in_service(cloud: Cloud) -> None:
    recorder().deployed_to_endpoint(package(), ENDPOINT, "cfg-3", None, "approved")
    answer = endpoint_lineage(Ledger(TABLE), ENDPOINT)
    assert (answer["serving_config"], answer["requested_config"]) == ("cfg-3", "cfg-3")
    assert answer["serving"]["version"] == 3
    nothing = endpoint_lineage(Ledger(TABLE), "other-endpoint")
    assert nothing["serving"] is None and nothing["history"] == [] and nothing["status"] is None


def test_a_lineage_client_error_is_a_client_error(cloud: Cloud) -> None:
    # the guard's premise: the recorder's fallback catches only AWS's answers
    assert issubclass(type(client_error("X", "y", "Z")), ClientError)


def test_every_item_says_what_kind_of_link_it_is(cloud: Cloud) -> None:
    lineage, ledger = recorder(), Ledger(TABLE)
    lineage.package_registered(EXECUTION, PACKAGE, COMMIT)
    lineage.transform_started(package(), "job-2", "s3://b/in/", "s3://b/out/job-2")
    lineage.transform_state("job-2", "Completed", None)
    kinds = {
        (pk, sk): (ledger.get(pk, sk) or {}).get("kind")
        for pk, sk in (
            (f"EXECUTION#{EXECUTION}", f"PACKAGE#{PACKAGE}"),
            (f"COMMIT#{REPOSITORY}#{SHA}", f"PACKAGE#{PACKAGE}"),
            ("TRANSFORM#job-2", "TRANSFORM"),
            (f"COMMIT#{REPOSITORY}#{SHA}", "TRANSFORM#job-2"),
        )
    }
    assert list(kinds.values()) == ["package", "package", "transform", "transform"]


def test_a_transform_of_a_package_without_a_repository_touches_no_commit(cloud: Cloud) -> None:
    # the near miss: a commit id but no repository names no commit partition
    lineage = recorder()
    lineage.transform_started(package(repository=None), "job-3", "s3://b/in/", "s3://b/out/job-3")
    assert lineage.transform_state("job-3", "Failed", "ClientError: x") is not None
    assert Ledger(TABLE).get("TRANSFORM#job-3", "TRANSFORM")["status"] == "Failed"  # type: ignore[index]
    assert Ledger(TABLE).partition(f"COMMIT#{REPOSITORY}#{SHA}") == []


def test_the_lineage_answers_have_exactly_their_documented_keys(cloud: Cloud) -> None:
    lineage, ledger = recorder(), Ledger(TABLE)
    lineage.execution_started(COMMIT, EXECUTION, "main-7f6e1f5a2b3c", {})
    lineage.deployed_to_endpoint(package(), ENDPOINT, "cfg", None, "approved")
    lineage.endpoint_state(ENDPOINT, "IN_SERVICE", "cfg", None)
    answer = endpoint_lineage(ledger, ENDPOINT)
    assert set(answer) == {
        "endpoint_name",
        "status",
        "serving_config",
        "requested_config",
        "serving",
        "history",
    }
    assert answer["endpoint_name"] == ENDPOINT
    assert [set(entry) for entry in answer["history"]] == [
        {"sk", "action", "status", "config", "failure_reason", "recorded_at"}
    ] * 2
    assert [(h["status"], h["config"]) for h in answer["history"]] == [(None, "cfg"), ("IN_SERVICE", "cfg")]
    assert all(h["sk"].startswith("EVENT#") and h["recorded_at"] for h in answer["history"])
    where = commit_lineage(ledger, REPOSITORY, SHA)
    assert set(where) == {
        "repository",
        "commit_id",
        "push",
        "executions",
        "packages",
        "deployments",
        "transform_jobs",
    }
    assert (where["repository"], where["commit_id"]) == (REPOSITORY, SHA)
    assert not {"pk", "sk", "kind"} & set(where["push"])
    assert all(not {"pk", "sk", "kind"} & set(entry) for entry in where["executions"] + where["deployments"])


def kinds_of(partition: str) -> dict[str, Any]:
    return {item["sk"]: item.get("kind") for item in Ledger(TABLE).partition(partition)}


def test_each_writer_marks_its_own_items(cloud: Cloud) -> None:
    # one writer at a time, on an empty table: nothing later overwrites what it wrote
    recorder().execution_status(EXECUTION, "Failed", COMMIT, {"why": "x"})
    assert kinds_of(f"EXECUTION#{EXECUTION}") == {"EXECUTION": "execution"}
    under_commit = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{SHA}", f"EXECUTION#{EXECUTION}")
    assert under_commit is not None
    assert (under_commit["kind"], under_commit["execution_arn"]) == ("execution", EXECUTION)


def test_a_decided_package_marks_its_links(cloud: Cloud) -> None:
    recorder().package_decided(package())
    assert kinds_of(f"EXECUTION#{EXECUTION}") == {f"PACKAGE#{PACKAGE}": "package"}
    assert Ledger(TABLE).get(f"EXECUTION#{EXECUTION}", f"PACKAGE#{PACKAGE}")["package_arn"] == PACKAGE  # type: ignore[index]
    under_commit = Ledger(TABLE).get(f"COMMIT#{REPOSITORY}#{SHA}", f"PACKAGE#{PACKAGE}")
    assert under_commit is not None
    assert (under_commit["kind"], under_commit["execution_arn"]) == ("package", EXECUTION)


def test_a_package_with_a_repository_but_no_commit_is_under_no_commit(cloud: Cloud) -> None:
    recorder().package_decided(package(commit_id=None))
    assert Ledger(TABLE).partition(f"COMMIT#{REPOSITORY}#None") == []
    assert Ledger(TABLE).partition(f"COMMIT#{REPOSITORY}#{SHA}") == []


def test_a_transform_start_and_state_mark_their_items(cloud: Cloud) -> None:
    recorder().transform_started(package(repository=None), "job-4", "s3://b/in/", "s3://b/out/job-4")
    assert kinds_of("TRANSFORM#job-4") == {"TRANSFORM": "transform"}
    recorder().transform_state("job-5", "Failed", "ClientError: y")
    record = Ledger(TABLE).get("TRANSFORM#job-5", "TRANSFORM")
    assert record is not None
    assert (record["kind"], record["status"], record["failure_reason"]) == (
        "transform",
        "Failed",
        "ClientError: y",
    )


def test_an_endpoint_state_marks_its_items_and_when(cloud: Cloud) -> None:
    recorder().endpoint_state(ENDPOINT, "CREATING", None, None)
    kinds = kinds_of(f"ENDPOINT#{ENDPOINT}")
    assert kinds.pop("STATE") == "endpoint"
    assert list(kinds.values()) == ["event"]
    assert Ledger(TABLE).get(f"ENDPOINT#{ENDPOINT}", "STATE")["status_at"]  # type: ignore[index]


def test_a_run_recorded_without_a_branch_has_an_empty_branch(cloud: Cloud) -> None:
    Ledger(TABLE).put(f"EXECUTION#{EXECUTION}", "EXECUTION", repository=REPOSITORY, commit_id=SHA)
    assert recorder().execution_commit(EXECUTION) == CommitRef(REPOSITORY, "", SHA)


def test_every_studio_entity_is_named_in_the_warning_when_studio_refuses(
    cloud: Cloud, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(kind: str, name_key: str, params: dict[str, Any], operation: str) -> str:
        raise client_error("ResourceLimitExceeded", "no more", operation)

    monkeypatch.setattr(cloud.lineage, "_create", refuse)
    lineage = recorder()
    lineage.execution_started(COMMIT, EXECUTION, "n", {})
    lineage.package_decided(package())
    lineage.deployed_to_endpoint(package(), ENDPOINT, "cfg", None, "approved")
    lineage.transform_started(package(), "job-6", "s3://b/in/", "s3://b/out/job-6")
    entities = [line["entity"] for line in logged(caplog, "sagemaker lineage not recorded", "WARNING")]
    assert entities == [
        "commit context",
        "execution action",
        "package artifact",
        "execution action",
        "deployment action",
        "endpoint config artifact",
        "package artifact",
        "transform artifact",
        "package artifact",
    ]
    metrics.clear_metrics()


def test_a_refused_studio_write_says_what_aws_said_and_counts_it(
    cloud: Cloud, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(kind: str, name_key: str, params: dict[str, Any], operation: str) -> str:
        raise client_error("ResourceLimitExceeded", "too many contexts", operation)

    monkeypatch.setattr(cloud.lineage, "_create", refuse)
    metrics.clear_metrics()
    recorder().push_skipped(COMMIT, "x", [])  # no Studio write: nothing to count
    assert "LineageWriteFailures" not in metrics.metric_set
    recorder().execution_started(COMMIT, EXECUTION, "n", {})
    first = logged(caplog, "sagemaker lineage not recorded", "WARNING")[0]
    assert "too many contexts" in first["detail"] and "ResourceLimitExceeded" in first["detail"]
    assert metrics.metric_set["LineageWriteFailures"]["Unit"] == "Count"
    metrics.clear_metrics()


def test_a_refused_association_is_named_as_such(
    cloud: Cloud, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Refusing(set[tuple[str, str, str]]):
        def add(self, _: tuple[str, str, str]) -> None:  # what the stand-in's AddAssociation records
            raise client_error("ResourceLimitExceeded", "no more associations", "AddAssociation")

    monkeypatch.setattr(cloud.lineage, "associations", Refusing())
    recorder().execution_started(COMMIT, EXECUTION, "n", {})
    assert [line["entity"] for line in logged(caplog, "sagemaker lineage not recorded")] == ["association"]
    metrics.clear_metrics()


def test_every_record_of_a_start_and_a_deployment_is_stamped_with_its_time(cloud: Cloud) -> None:
    lineage, ledger = recorder(), Ledger(TABLE)
    lineage.execution_started(COMMIT, EXECUTION, "n", {})
    lineage.deployed_to_endpoint(package(), ENDPOINT, "cfg", None, "approved")
    stamped = [
        ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", f"EXECUTION#{EXECUTION}")["started_at"],  # type: ignore[index]
        ledger.get(f"EXECUTION#{EXECUTION}", "EXECUTION")["started_at"],  # type: ignore[index]
        ledger.get(f"ENDPOINT#{ENDPOINT}", "CONFIG#cfg")["deployed_at"],  # type: ignore[index]
        ledger.get(f"ENDPOINT#{ENDPOINT}", "STATE")["requested_at"],  # type: ignore[index]
        ledger.get(f"COMMIT#{REPOSITORY}#{SHA}", f"DEPLOYMENT#{ENDPOINT}#cfg")["deployed_at"],  # type: ignore[index]
    ]
    assert all(isinstance(moment, str) and moment.startswith("20") for moment in stamped)
    [event] = [i for i in ledger.partition(f"ENDPOINT#{ENDPOINT}") if i["sk"].startswith("EVENT#")]
    assert event["sk"] == f"EVENT#{stamped[3]}" and event["kind"] == "event"
    kinds = kinds_of(f"ENDPOINT#{ENDPOINT}")
    assert (kinds["CONFIG#cfg"], kinds["STATE"]) == ("deployment", "endpoint")
    action = next(e for e in cloud.lineage.entities.values() if e.get("ActionType") == "PipelineExecution")
    assert action["Properties"] == {"execution_arn": EXECUTION}
    config = next(e for e in cloud.lineage.entities.values() if e.get("ArtifactType") == "EndpointConfig")
    assert config["Properties"] == {"endpoint": ENDPOINT}


def test_a_deployment_of_a_package_without_a_commit_is_under_no_commit(cloud: Cloud) -> None:
    recorder().deployed_to_endpoint(package(commit_id=None), ENDPOINT, "cfg", None, "approved")
    recorder().transform_started(package(commit_id=None), "job-7", "s3://b/in/", "s3://b/out/job-7")
    assert Ledger(TABLE).partition(f"COMMIT#{REPOSITORY}#None") == []
