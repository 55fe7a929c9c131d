"""SageMaker's built-in XGBoost algorithm (algorithm mode), under its container's contract.

What it keeps of aws/sagemaker-xgboost-container (algorithm_mode):
- channels `train` (required) and `validation`, from /opt/ml/input/data/<channel>, every file of the channel;
  their ContentType from inputdataconfig.json: `text/csv` or `csv` (the label in the first column, no
  header) or `text/libsvm`/`libsvm`, the default;
- hyper-parameters from hyperparameters.json: `num_round` is required, `early_stopping_rounds` and
  `csv_weights` are the container's own, every other one is an XGBoost parameter (`objective` defaults to
  `reg:squarederror`);
- one evaluation line per round, as CloudWatch shows the container's log: `[3]#011train-rmse:…#011
  validation-rmse:…`, which the algorithm's metric definitions read;
- the model at /opt/ml/model/xgboost-model: pickled for versions 1.0-1 and 1.2-1, `Booster.save_model` from
  1.3-1 on (the algorithm's documentation, "Use XGBoost with Amazon SageMaker");
- a failure explained in /opt/ml/output/failure, which becomes the job's FailureReason.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost

from localcloud.runtime.algorithms import XGBOOST_PICKLED_VERSIONS

ROOT = Path("/opt/ml")
OWN_PARAMETERS = {"num_round", "early_stopping_rounds", "csv_weights"}


class UserError(Exception):
    """The job's input or hyper-parameters are wrong: a ClientError."""


def load_channel(name: str, content_type: str, csv_weights: bool) -> xgboost.DMatrix:
    directory = ROOT / "input" / "data" / name
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        raise UserError(f"channel {name!r} has no data files")
    kind = content_type.split(";")[0].strip().lower() or "text/libsvm"
    if kind in ("text/csv", "csv"):
        frames = [pd.read_csv(path, header=None) for path in files]
        data = pd.concat(frames).to_numpy(dtype="float32")
        if data.shape[1] < 2:
            raise UserError(f"channel {name!r}: a CSV row needs the label and at least one feature")
        if csv_weights:
            return xgboost.DMatrix(data[:, 2:], label=data[:, 0], weight=data[:, 1])
        return xgboost.DMatrix(data[:, 1:], label=data[:, 0])
    if kind in ("text/libsvm", "libsvm", "text/x-libsvm"):
        if len(files) != 1:
            raise UserError(f"channel {name!r}: libsvm input is read from one file here, found {len(files)}")
        return xgboost.DMatrix(f"{files[0]}?format=libsvm")
    raise UserError(f"Content type {content_type} is not supported by this algorithm here (csv, libsvm)")


def train(version: str) -> None:
    config = ROOT / "input" / "config"
    hyper_parameters = json.loads((config / "hyperparameters.json").read_text())
    channels = json.loads((config / "inputdataconfig.json").read_text())
    if "train" not in channels:
        raise UserError("Channel 'train' is required")
    if "num_round" not in hyper_parameters:
        raise UserError("Missing required hyperparameter: num_round")
    try:
        num_round = int(hyper_parameters["num_round"])
        early_stopping = hyper_parameters.get("early_stopping_rounds")
        early_stopping = int(early_stopping) if early_stopping is not None else None
    except ValueError as error:
        raise UserError(f"Hyperparameter num_round/early_stopping_rounds: {error}") from None
    csv_weights = str(hyper_parameters.get("csv_weights", "0")) == "1"
    params = {
        k: v
        for k, v in hyper_parameters.items()
        if k not in OWN_PARAMETERS and not k.startswith(("sagemaker_", "_"))
    }
    params.setdefault("objective", "reg:squarederror")
    evals = [(load_channel("train", channels["train"].get("ContentType", ""), csv_weights), "train")]
    if "validation" in channels:
        evals.append(
            (
                load_channel("validation", channels["validation"].get("ContentType", ""), csv_weights),
                "validation",
            )
        )

    class CloudWatchLines(xgboost.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            parts = [
                f"{data}-{metric}:{values[-1]:.5f}"
                for data, log in evals_log.items()
                for metric, values in log.items()
            ]
            print(f"[{epoch}]#011" + "#011".join(parts), flush=True)
            return False

    booster = xgboost.train(
        params,
        evals[0][0],
        num_boost_round=num_round,
        evals=evals,
        early_stopping_rounds=early_stopping if len(evals) > 1 else None,
        callbacks=[CloudWatchLines()],
        verbose_eval=False,
    )
    model_dir = ROOT / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    if version in XGBOOST_PICKLED_VERSIONS:
        with (model_dir / "xgboost-model").open("wb") as handle:
            pickle.dump(booster, handle)
    else:
        booster.save_model(str(model_dir / "xgboost-model"))
    print(f"Saved the model to {model_dir / 'xgboost-model'} (XGBoost {xgboost.__version__})", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True, help="the algorithm's version, from the image tag")
    args = parser.parse_args(argv)
    np.seterr(all="ignore")
    try:
        train(args.version)
    except (UserError, xgboost.core.XGBoostError) as error:
        (ROOT / "output").mkdir(parents=True, exist_ok=True)
        (ROOT / "output" / "failure").write_text(f"ClientError: {error}")
        print(f"ClientError: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
