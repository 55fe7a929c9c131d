"""Model-quality benchmark: repeated K-fold cross-validation of the pipeline's full training procedure against
scikit-learn's GradientBoostingRegressor and LinearRegression on the same folds; writes model_quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import RepeatedKFold

from training_code import preprocess, train

ROOT = Path(__file__).resolve().parent.parent


def rmse(actual: np.ndarray, predicted: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.ravel(actual) - np.ravel(predicted)) ** 2)))


def network_fold_rmse(
    fit_rows: pd.DataFrame, test_rows: pd.DataFrame, hyper: train.HyperParameters, validation_fraction: float
) -> float:
    """What a pipeline run does with this fold: preprocessing carves validation rows out of the training
    rows (content-hashed, as in PreprocessData), training early-stops on them, the test fold scores it."""
    splits = preprocess.assign_splits(fit_rows, validation_fraction, 0.0)
    trained = train.fit(
        fit_rows[splits == "train"], fit_rows[splits == "validation"], hyper, verbose_metrics=False
    )
    test_x, test_y, _ = train.split_features(test_rows, hyper.target_column)
    return rmse(test_y, trained.model.predict(test_x, verbose=0))


def summarise(scores: list[float]) -> dict[str, Any]:
    return {
        "rmse_mean": float(np.mean(scores)),
        "rmse_sd": float(np.std(scores, ddof=1)),
        "fold_rmse": scores,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("BENCH_SEED", "42")))
    parser.add_argument("--data", default=str(ROOT / "data" / "boston_housing.csv"))
    parser.add_argument("--target-column", default="MEDV")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "model_quality.json"))
    args = parser.parse_args(argv)

    data = pd.read_csv(args.data)
    hyper = replace(train.HyperParameters(), target_column=args.target_column)
    x = data.drop(columns=[args.target_column]).to_numpy()
    y = data[args.target_column].to_numpy()

    scores: dict[str, list[float]] = {"network": [], "gbr": [], "linear": []}
    started = time.perf_counter()
    folds = RepeatedKFold(n_splits=args.folds, n_repeats=args.repeats, random_state=args.seed)
    for index, (fit_index, test_index) in enumerate(folds.split(x)):
        fold_hyper = replace(hyper, seed=args.seed + index)
        scores["network"].append(
            network_fold_rmse(
                data.iloc[fit_index], data.iloc[test_index], fold_hyper, args.validation_fraction
            )
        )
        gbr = GradientBoostingRegressor(random_state=args.seed).fit(x[fit_index], y[fit_index])
        scores["gbr"].append(rmse(y[test_index], gbr.predict(x[test_index])))
        linear = LinearRegression().fit(x[fit_index], y[fit_index])
        scores["linear"].append(rmse(y[test_index], linear.predict(x[test_index])))
        print(
            f"fold {index + 1}: " + " ".join(f"{name}={values[-1]:.3f}" for name, values in scores.items()),
            flush=True,
        )

    result = {
        "seed": args.seed,
        "folds": args.folds,
        "repeats": args.repeats,
        "data": Path(args.data).name,
        "rows": len(data),
        "network_hyperparameters": asdict(hyper),
        "seconds": round(time.perf_counter() - started, 1),
        "models": {name: summarise(values) for name, values in scores.items()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    summary = {name: round(value["rmse_mean"], 3) for name, value in result["models"].items()}
    print(json.dumps({"seed": args.seed, "rmse_mean": summary, "seconds": result["seconds"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
