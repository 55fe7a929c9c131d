"""SageMaker's built-in algorithms, as local programs that keep their containers' contract.

A training job whose image is a built-in algorithm's and that names no script (`sagemaker_program`) runs the
algorithm itself here: `builtin_training(request)` says which program runs it and the metric definitions
SageMaker applies to its log (a built-in algorithm's request carries none). Only XGBoost is built in so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
XGBOOST_IMAGE = re.compile(r"/sagemaker-xgboost:(?P<version>\d+\.\d+-\d+)")
# versions whose xgboost-model is a pickled Booster; `Booster.save_model` from 1.3-1 on (the algorithm's
# documentation, "Use XGBoost with Amazon SageMaker")
XGBOOST_PICKLED_VERSIONS = frozenset({"0.90-1", "0.90-2", "1.0-1", "1.2-1", "1.2-2"})

# The metric definitions SageMaker applies to the XGBoost algorithm's log, as DescribeTrainingJob lists them
# for a sagemaker-xgboost:1.5-1 job (AlgorithmSpecification.MetricDefinitions): these names, each with the
# regex `.*\[[0-9]+\].*#011<channel>-<metric>:(<number>).*`.
_NUMBER = r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
XGBOOST_METRICS = {
    "train": (
        "mae", "gamma-nloglik", "cox-nloglik", "accuracy", "mse", "poisson-nloglik", "error", "ndcg", "rmse",
        "logloss", "gamma-deviance", "f1", "map",
    ),
    "validation": (
        "mae", "logloss", "f1", "cox-nloglik", "poisson-nloglik", "map", "gamma-deviance", "error", "rmse",
        "accuracy", "mse", "ndcg", "r2", "gamma-nloglik",
    ),
}  # fmt: skip


@dataclass(frozen=True)
class BuiltinTraining:
    """How a built-in algorithm's training job runs here."""

    command: list[str]
    metric_definitions: list[dict[str, str]]


def builtin_training(request: dict[str, Any]) -> BuiltinTraining | None:
    """The built-in algorithm a CreateTrainingJob request runs, or None (a script-mode job)."""
    if "sagemaker_program" in (request.get("HyperParameters") or {}):
        return None  # script mode in the algorithm's image (the SDK's XGBoost estimator with an entry point)
    image = str(request.get("AlgorithmSpecification", {}).get("TrainingImage", ""))
    match = XGBOOST_IMAGE.search(image)
    if match is None:
        return None
    definitions = [
        {"Name": f"{channel}:{metric}", "Regex": rf".*\[[0-9]+\].*#011{channel}-{metric}:{_NUMBER}.*"}
        for channel, metrics in XGBOOST_METRICS.items()
        for metric in metrics
    ]
    return BuiltinTraining(
        command=["python3", str(HERE / "xgboost_algorithm.py"), "--version", match.group("version")],
        metric_definitions=definitions,
    )
