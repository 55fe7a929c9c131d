"""Draw a model's lineage as the graph it is (PNG): data and commit → pipeline execution → its steps and
jobs → the winning trial (hyper-parameters, metrics) and the evaluation → model package (version, approval,
approver) → endpoint config → endpoint, and → batch transform jobs.

`lineage_graph` builds a networkx DiGraph from what the ledger records (`orchestrator.lineage`'s
`endpoint_lineage` / `commit_lineage`) and what SageMaker reports about each execution
(ListPipelineExecutionSteps, ListPipelineParametersForExecution); `draw` lays it out left to right, one
column per kind of node.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import networkx as nx

# left-to-right columns, and each kind's colour
COLUMNS = {
    "data": 0,
    "commit": 0,
    "execution": 1,
    "step": 2,
    "trial": 3,
    "evaluation": 3,
    "package": 4,
    "endpoint config": 5,
    "endpoint": 6,
    "transform job": 6,
}
COLOURS = {
    "data": "#fff4d6",
    "commit": "#fde2e1",
    "execution": "#e8f0fe",
    "step": "#eef6ee",
    "trial": "#e6f4f1",
    "evaluation": "#e6f4f1",
    "package": "#f3e8fd",
    "endpoint config": "#fdf0e6",
    "endpoint": "#fde6ef",
    "transform job": "#fde6ef",
}


def _short(value: Any) -> str:
    text = str(value)
    if ":model-package/" in text:  # a package is its group and version
        return text.split(":model-package/", 1)[1]
    return text.rsplit("/", 1)[-1] if text.startswith("arn:") else text


def _pairs(values: dict[str, Any] | None, limit: int = 5) -> list[str]:
    return [f"{k}={_short(v)}" for k, v in sorted((values or {}).items())[:limit]]


def lineage_graph(
    *,
    commit: dict[str, Any] | None,
    executions: list[dict[str, Any]],
    packages: list[dict[str, Any]],
    deployments: list[dict[str, Any]] | None = None,
    transforms: list[dict[str, Any]] | None = None,
) -> nx.DiGraph:
    """The lineage graph. Each node has `kind` and `lines` (its label). Inputs:

    - commit: {repository, branch, commit_id};
    - executions: {execution_arn, status, data: [S3 URIs], steps: ListPipelineExecutionSteps items,
      trial: {training_job, hyperparameters, training_metrics}, evaluation: {...}};
    - packages: {package_arn, version, approval_status, approver, execution_arn};
    - deployments: {endpoint_name, endpoint_config_name, package_arn, status};
    - transforms: {transform_job, package_arn, output_uri, status}.
    """
    graph = nx.DiGraph()

    def node(key: str, kind: str, lines: list[str]) -> str:
        graph.add_node(key, kind=kind, lines=lines)
        return key

    commit_key = None
    if commit:
        commit_key = node(
            f"commit:{commit.get('commit_id')}",
            "commit",
            [f"{commit.get('repository')}@{commit.get('branch', '')}", str(commit.get("commit_id", ""))[:12]],
        )
    step_of_kind: dict[tuple[str, str], str] = {}
    processing: dict[str, list[tuple[str, str]]] = {}  # execution -> (step name, node) of processing steps
    for execution in executions:
        arn = str(execution["execution_arn"])
        run = node(f"execution:{arn}", "execution", [_short(arn), str(execution.get("status", ""))])
        if commit_key:
            graph.add_edge(commit_key, run)
        for uri in execution.get("data", []):
            graph.add_edge(node(f"data:{uri}", "data", [uri]), run)
        for step in execution.get("steps", []):
            meta = step.get("Metadata", {})
            job = next((_short(v["Arn"]) for v in meta.values() if isinstance(v, dict) and "Arn" in v), "")
            key = node(
                f"step:{arn}:{step['StepName']}",
                "step",
                [step["StepName"], str(step.get("StepStatus", "")), *([job] if job else [])],
            )
            graph.add_edge(run, key)
            for kind in ("TuningJob", "TrainingJob", "RegisterModel"):
                if kind in meta:
                    step_of_kind.setdefault((arn, kind), key)
            if "ProcessingJob" in meta:
                processing.setdefault(arn, []).append((step["StepName"], key))
        trial = execution.get("trial")
        if trial:
            source = step_of_kind.get((arn, "TuningJob")) or step_of_kind.get((arn, "TrainingJob")) or run
            key = node(
                f"trial:{trial.get('training_job')}",
                "trial",
                [
                    f"winning trial {_short(trial.get('training_job', ''))}",
                    *_pairs(trial.get("hyperparameters")),
                    *_pairs(trial.get("training_metrics"), 3),
                ],
            )
            graph.add_edge(source, key)
        evaluation = execution.get("evaluation")
        if evaluation:
            key = node(f"evaluation:{arn}", "evaluation", ["evaluation", *_pairs(_flatten(evaluation), 4)])
            # the evaluating job: a processing step named for it, else the last processing step
            candidates = processing.get(arn, [])
            named = [node_key for name, node_key in candidates if "valuat" in name]
            evaluated_by = named or [node_key for _, node_key in candidates]
            graph.add_edge(evaluated_by[-1] if evaluated_by else run, key)
    for package in packages:
        arn = str(package["package_arn"])
        key = node(
            f"package:{arn}",
            "package",
            [
                f"{_short(arn)}",
                f"version {package.get('version', '?')}",
                str(package.get("approval_status", "")),
                *([f"by {package['approver']}"] if package.get("approver") else []),
            ],
        )
        execution_arn = str(package.get("execution_arn", ""))
        source = step_of_kind.get((execution_arn, "RegisterModel")) or f"execution:{execution_arn}"
        if source in graph:
            graph.add_edge(source, key)
        for upstream in (f"trial:{_trial_of(executions, execution_arn)}", f"evaluation:{execution_arn}"):
            if upstream in graph:
                graph.add_edge(upstream, key)
    for deployment in deployments or []:
        deployed = f"package:{deployment.get('package_arn')}"
        config = node(
            f"config:{deployment.get('endpoint_config_name')}",
            "endpoint config",
            [str(deployment.get("endpoint_config_name", ""))],
        )
        endpoint = node(
            f"endpoint:{deployment.get('endpoint_name')}",
            "endpoint",
            [str(deployment.get("endpoint_name", "")), str(deployment.get("status") or "")],
        )
        if deployed in graph:
            graph.add_edge(deployed, config)
        graph.add_edge(config, endpoint)
    for transform in transforms or []:
        key = node(
            f"transform:{transform.get('transform_job')}",
            "transform job",
            [str(transform.get("transform_job", "")), str(transform.get("status", "")),
             str(transform.get("output_uri", ""))],
        )  # fmt: skip
        transformed = f"package:{transform.get('package_arn')}"
        if transformed in graph:
            graph.add_edge(transformed, key)
    return graph


def _trial_of(executions: list[dict[str, Any]], execution_arn: str) -> str | None:
    for execution in executions:
        if execution["execution_arn"] == execution_arn and execution.get("trial"):
            return str(execution["trial"].get("training_job"))
    return None


def _flatten(document: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(document, dict):
        return {prefix or "value": document}
    flat: dict[str, Any] = {}
    for key, value in document.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def draw(graph: nx.DiGraph, path: Path) -> Path:
    """Lay the graph out in columns by kind and write it as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns: dict[int, list[str]] = {}
    for key, data in graph.nodes(data=True):
        columns.setdefault(COLUMNS.get(data["kind"], 7), []).append(key)
    tallest = max((len(keys) for keys in columns.values()), default=1)
    positions = {
        key: (column * 3.2, -row * 1.5 + (len(keys) - 1) * 0.75)
        for column, keys in columns.items()
        for row, key in enumerate(keys)
    }
    width = 3.2 * (max(columns, default=0) + 1)
    fig, ax = plt.subplots(figsize=(max(6.0, width), max(3.0, 1.5 * tallest + 1)))
    ax.axis("off")
    for source, target in graph.edges:
        ax.annotate(
            "",
            xy=positions[target],
            xytext=positions[source],
            arrowprops={"arrowstyle": "-|>", "color": "#5f6b7a", "shrinkA": 42, "shrinkB": 42, "lw": 0.9},
        )
    for key, data in graph.nodes(data=True):
        lines = [data["kind"].upper(), *("\n".join(textwrap.wrap(line, 30)) for line in data["lines"])]
        ax.text(
            *positions[key],
            "\n".join(lines),
            ha="center",
            va="center",
            fontsize=6.5,
            bbox={"boxstyle": "round,pad=0.45", "facecolor": COLOURS.get(data["kind"], "#eeeeee"),
                  "edgecolor": "#5f6b7a"},
        )  # fmt: skip
    xs = [x for x, _ in positions.values()] or [0.0]
    ys = [y for _, y in positions.values()] or [0.0]
    ax.set_xlim(min(xs) - 1.8, max(xs) + 1.8)
    ax.set_ylim(min(ys) - 1.0, max(ys) + 1.0)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
