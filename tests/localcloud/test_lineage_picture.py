"""`localcloud lineage --png`: the lineage drawn as the graph it is, not the ledger record's keys in a row."""

from __future__ import annotations

from pathlib import Path

from localcloud.lineage_picture import draw, lineage_graph

EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/run1"
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/models/3"


def inputs() -> dict:
    steps = [
        {"StepName": "PreprocessData", "StepStatus": "Succeeded",
         "Metadata": {"ProcessingJob": {"Arn": "arn:aws:sagemaker:us-east-1:1:processing-job/pre"}}},
        {"StepName": "TuneModel", "StepStatus": "Succeeded",
         "Metadata": {"TuningJob": {"Arn": "arn:aws:sagemaker:us-east-1:1:hyper-parameter-tuning-job/t"}}},
        {"StepName": "EvaluateModel", "StepStatus": "Succeeded",
         "Metadata": {"ProcessingJob": {"Arn": "arn:aws:sagemaker:us-east-1:1:processing-job/eval"}}},
        {"StepName": "RegisterModel-RegisterModel", "StepStatus": "Succeeded",
         "Metadata": {"RegisterModel": {"Arn": PACKAGE}}},
    ]  # fmt: skip
    return {
        "commit": {"repository": "mlops-demo", "branch": "main", "commit_id": "0123456789abcdef"},
        "executions": [
            {
                "execution_arn": EXECUTION,
                "status": "Succeeded",
                "data": ["s3://bucket/data/boston_housing.csv"],
                "steps": steps,
                "trial": {
                    "training_job": "t-002-abc",
                    "hyperparameters": {"learning_rate": "0.003", "epochs": "400"},
                    "training_metrics": {"validation:rmse": 3.2},
                },
                "evaluation": {"regression_metrics": {"rmse": {"value": 3.48}}},
            }
        ],
        "packages": [
            {
                "package_arn": PACKAGE,
                "version": 3,
                "approval_status": "Approved",
                "approver": "alice",
                "execution_arn": EXECUTION,
            },
        ],
        "deployments": [
            {
                "endpoint_name": "mlops-demo-endpoint",
                "endpoint_config_name": "cfg-3",
                "package_arn": PACKAGE,
                "status": "IN_SERVICE",
            },
        ],
        "transforms": [{"transform_job": "batch-1", "package_arn": PACKAGE, "status": "Completed"}],
    }


def test_the_graph_runs_from_data_and_commit_to_endpoint_and_transform() -> None:
    graph = lineage_graph(**inputs())
    kinds = {key: data["kind"] for key, data in graph.nodes(data=True)}
    assert sorted(set(kinds.values())) == sorted(
        ["data", "commit", "execution", "step", "trial", "evaluation", "package", "endpoint config",
         "endpoint", "transform job"]
    )  # fmt: skip
    run = f"execution:{EXECUTION}"
    package = f"package:{PACKAGE}"
    edges = set(graph.edges)
    assert ("data:s3://bucket/data/boston_housing.csv", run) in edges
    assert ("commit:0123456789abcdef", run) in edges
    assert {(run, f"step:{EXECUTION}:{s}") for s in ("PreprocessData", "TuneModel")} <= edges
    # the winning trial hangs off the tuning step, the evaluation off the evaluating job
    assert (f"step:{EXECUTION}:TuneModel", "trial:t-002-abc") in edges
    assert (f"step:{EXECUTION}:EvaluateModel", f"evaluation:{EXECUTION}") in edges
    # the package comes from the registering step, with the trial and evaluation that justify it
    assert {(f"step:{EXECUTION}:RegisterModel-RegisterModel", package), ("trial:t-002-abc", package),
            (f"evaluation:{EXECUTION}", package)} <= edges  # fmt: skip
    assert (package, "config:cfg-3") in edges and ("config:cfg-3", "endpoint:mlops-demo-endpoint") in edges
    assert (package, "transform:batch-1") in edges
    assert graph.nodes[package]["lines"] == ["models/3", "version 3", "Approved", "by alice"]
    assert "learning_rate=0.003" in graph.nodes["trial:t-002-abc"]["lines"]
    assert "regression_metrics.rmse.value=3.48" in graph.nodes[f"evaluation:{EXECUTION}"]["lines"]
    assert nx_is_dag(graph)


def nx_is_dag(graph) -> bool:  # type: ignore[no-untyped-def]
    import networkx as nx

    return bool(nx.is_directed_acyclic_graph(graph))


def test_the_picture_is_a_png(tmp_path: Path) -> None:
    path = draw(lineage_graph(**inputs()), tmp_path / "lineage.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000  # a drawn graph, not an empty canvas
