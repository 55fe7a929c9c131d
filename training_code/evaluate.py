"""Evaluation job (TensorFlow container, processing): score the trained model on the test split and write
evaluation.json (SageMaker's model-quality shape) with an HTML report and its pictures.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

LOGGER = logging.getLogger("evaluate")


class EvaluationError(ValueError):
    """Input the evaluation cannot score; the message says which file or column."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", default="/opt/ml/processing/input/model")
    parser.add_argument("--test-dir", default="/opt/ml/processing/input/test")
    parser.add_argument("--output-dir", default="/opt/ml/processing/output/evaluation")
    parser.add_argument("--target-column", default="MEDV")
    # A processing container explains its exit in /opt/ml/output/message: DescribeProcessingJob returns its
    # first KB as ExitMessage (sagemaker/latest/dg/byoc-metadata.html). /opt/ml/output/failure is the
    # training containers' file; SageMaker does not read it for a processing job.
    parser.add_argument("--message-file", default="/opt/ml/output/message")
    return parser.parse_args(argv)


def unpack_model(model_dir: Path, into: Path) -> Path:
    """The model root (holding model/1/, feature_columns.json, history.json) from model.tar.gz or a folder."""
    archive = model_dir / "model.tar.gz"
    if archive.is_file():
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4+, and every SageMaker TF image
                tar.extractall(into, filter="data")
            else:  # an older local Python: refuse what the data filter would
                for member in tar.getmembers():
                    if Path(member.name).is_absolute() or ".." in Path(member.name).parts or member.issym():
                        raise EvaluationError(f"{archive}: unsafe member {member.name!r}")
                tar.extractall(into)  # noqa: S202
        return into
    if (model_dir / "model" / "1").is_dir():
        return model_dir
    raise EvaluationError(f"{model_dir}: neither model.tar.gz nor model/1/ found")


def read_test_rows(
    test_dir: Path, feature_columns: list[str], target_column: str
) -> tuple[np.ndarray, np.ndarray]:
    paths = sorted(p for p in test_dir.rglob("*.csv") if p.is_file())
    if not paths:
        raise EvaluationError(f"{test_dir}: no .csv file with test rows")
    frame = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    missing = [c for c in [*feature_columns, target_column] if c not in frame.columns]
    if missing:
        raise EvaluationError(f"test data lacks column '{missing[0]}' that the model was trained with")
    if frame.empty:
        raise EvaluationError(f"{test_dir}: the test split has no rows")
    return frame[feature_columns].to_numpy(dtype="float32"), frame[target_column].to_numpy(dtype="float64")


def predict(model_root: Path, features: np.ndarray) -> np.ndarray:
    """Through the serving signature, exactly as TensorFlow Serving will call the model."""
    import tensorflow as tf

    serving = tf.saved_model.load(str(model_root / "model" / "1")).signatures["serving_default"]
    return serving(features=tf.constant(features))["predictions"].numpy().reshape(-1).astype("float64")


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    residuals = actual - predicted
    total = float(np.sum((actual - actual.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(residuals**2))),
        "mae": float(np.mean(np.abs(residuals))),
        "r2": 1.0 - float(np.sum(residuals**2)) / total if total > 0 else 0.0,
    }


def draw_pictures(
    actual: np.ndarray, predicted: np.ndarray, history: dict[str, list[float]], output_dir: Path
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pictures: list[str] = []
    figure, axes = plt.subplots(figsize=(5, 5))
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axes.plot([low, high], [low, high], color="grey", linestyle="--", label="perfect")
    axes.scatter(actual, predicted, s=14, alpha=0.7)
    axes.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual (test split)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(output_dir / "predicted_vs_actual.png", dpi=100)
    pictures.append("predicted_vs_actual.png")
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(6, 4))
    axes.axhline(0.0, color="grey", linestyle="--")
    axes.scatter(predicted, actual - predicted, s=14, alpha=0.7)
    axes.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals (test split)")
    figure.tight_layout()
    figure.savefig(output_dir / "residuals.png", dpi=100)
    pictures.append("residuals.png")
    plt.close(figure)

    if history.get("loss"):
        figure, axes = plt.subplots(figsize=(6, 4))
        epochs = range(1, len(history["loss"]) + 1)
        axes.plot(epochs, history["loss"], label="training loss")
        if history.get("val_loss"):
            axes.plot(epochs, history["val_loss"], label="validation loss")
        if history.get("best_epoch"):
            axes.axvline(float(history["best_epoch"]), color="grey", linestyle=":", label="kept model")  # type: ignore[arg-type]
        axes.set(xlabel="epoch", ylabel="MSE", yscale="log", title="Training curve")
        axes.legend()
        figure.tight_layout()
        figure.savefig(output_dir / "training_curve.png", dpi=100)
        pictures.append("training_curve.png")
        plt.close(figure)
    return pictures


def write_report(metrics: dict[str, float], n_rows: int, pictures: list[str], output_dir: Path) -> None:
    rows = "".join(f"<tr><th>{html.escape(k.upper())}</th><td>{v:.4f}</td></tr>" for k, v in metrics.items())
    images = "".join(
        f'<figure><img src="{html.escape(p)}" alt="{html.escape(p)}"></figure>' for p in pictures
    )
    (output_dir / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>Model evaluation</title></head><body>"
        f"<h1>Model evaluation</h1><p>{n_rows} test rows.</p><table>{rows}</table>{images}</body></html>\n"
    )


def run(args: argparse.Namespace) -> dict[str, float]:
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        model_root = unpack_model(Path(args.model_dir), Path(scratch))
        feature_columns = json.loads((model_root / "feature_columns.json").read_text())
        history_file = model_root / "history.json"
        history = json.loads(history_file.read_text()) if history_file.is_file() else {}
        features, actual = read_test_rows(Path(args.test_dir), feature_columns, args.target_column)
        predicted = predict(model_root, features)
    metrics = regression_metrics(actual, predicted)
    evaluation = {"regression_metrics": {name: {"value": value} for name, value in metrics.items()}}
    (output_dir / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    write_report(metrics, len(actual), draw_pictures(actual, predicted, history, output_dir), output_dir)
    LOGGER.info("test rows=%d %s", len(actual), " ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
    return metrics


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        run(args)
    except EvaluationError as error:
        message_file = Path(args.message_file)
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_text(str(error), encoding="utf-8")
        LOGGER.error("evaluation failed: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
