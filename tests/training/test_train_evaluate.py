"""train.py and evaluate.py as the TensorFlow containers run them: SM_* variables, hyper-parameters as
arguments, the tuner's metric lines, the TensorFlow Serving layout, and the evaluation report."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from tests.training.conftest import SAMPLE_DATA, run_script

pytestmark = pytest.mark.slow

# The pipeline's metric definitions (docs/architecture.md): the tuner reads the LAST match of each.
METRIC_REGEXES = {
    "loss": r"loss=([0-9\.eE+-]+)",
    "validation:loss": r"val_loss=([0-9\.eE+-]+)",
    "validation:rmse": r"val_rmse=([0-9\.eE+-]+)",
}
FEATURES = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
HYPER = ["--epochs", "40", "--batch_size", "32", "--ensemble", "2", "--patience", "10", "--seed", "7"]


def train_job(tmp_path: Path, splits: Path, name: str, *hyper: str):
    model_dir = tmp_path / name / "model"
    env = {
        "SM_CHANNEL_TRAIN": str(splits / "train"),
        "SM_CHANNEL_VALIDATION": str(splits / "validation"),
        "SM_MODEL_DIR": str(model_dir),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / name / "output"),
    }
    # The TensorFlow toolkit appends --model_dir (an S3 URI) to the user's hyper-parameters in script mode.
    return run_script("train.py", *hyper, "--model_dir", "s3://bucket/prefix/model", env=env), model_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Preprocess the sample data, train once, pack model.tar.gz as SageMaker does, then evaluate it."""
    tmp_path = tmp_path_factory.mktemp("job")
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "boston_housing.csv").write_text(SAMPLE_DATA.read_text())
    splits = tmp_path / "splits"
    prep = run_script(
        "preprocess.py",
        *("--input-dir", str(tmp_path / "input"), "--output-dir", str(splits)),
        *("--message-file", str(tmp_path / "message"), "--resource-config", str(tmp_path / "none.json")),
    )
    assert prep.returncode == 0, prep.stderr
    training, model_dir = train_job(tmp_path, splits, "run1", *HYPER)
    assert training.returncode == 0, training.stderr
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        for child in model_dir.iterdir():
            tar.add(child, arcname=child.name)
    evaluation = run_script(
        "evaluate.py",
        *("--model-dir", str(packed), "--test-dir", str(splits / "test")),
        *("--output-dir", str(tmp_path / "evaluation"), "--message-file", str(tmp_path / "eval-message")),
    )
    return {
        "tmp": tmp_path,
        "splits": splits,
        "training": training,
        "model_dir": model_dir,
        "evaluation": evaluation,
    }


def last_metrics(stdout: str) -> dict[str, float]:
    return {name: float(re.findall(regex, stdout)[-1]) for name, regex in METRIC_REGEXES.items()}


def test_training_prints_metric_lines_the_tuner_parses(trained: dict[str, object]) -> None:
    # GIVEN a finished training job
    stdout = trained["training"].stdout  # type: ignore[attr-defined]

    # WHEN the tuner applies the pipeline's metric regexes
    lines = [line for line in stdout.splitlines() if line.startswith("epoch=")]
    metrics = last_metrics(stdout)

    # THEN there is one line per epoch plus the restored model's, and its objective beats guessing the mean
    history = json.loads((trained["model_dir"] / "history.json").read_text())  # type: ignore[operator]
    assert len(lines) == len(history["loss"]) + 1
    best = history["best_epoch"] - 1
    assert metrics["validation:rmse"] == pytest.approx(history["val_rmse"][best], rel=1e-3)
    assert metrics["validation:loss"] == pytest.approx(history["val_loss"][best], rel=1e-3)
    assert 0 < metrics["validation:rmse"] < 7.0


def test_model_is_saved_in_the_layout_tensorflow_serving_loads(trained: dict[str, object]) -> None:
    # GIVEN a finished training job
    model_dir: Path = trained["model_dir"]  # type: ignore[assignment]

    # THEN SM_MODEL_DIR holds a versioned SavedModel, the serving handlers and the training record
    assert (model_dir / "model" / "1" / "saved_model.pb").is_file()
    assert (model_dir / "code" / "inference.py").read_text() == (
        Path(__file__).resolve().parents[2] / "training_code" / "inference.py"
    ).read_text()
    assert json.loads((model_dir / "feature_columns.json").read_text()) == FEATURES
    history = json.loads((model_dir / "history.json").read_text())
    assert len(history["loss"]) == len(history["val_loss"]) >= history["best_epoch"] >= 1


def test_evaluation_writes_sagemaker_model_quality_metrics(trained: dict[str, object]) -> None:
    # GIVEN the packed model scored on the test split
    evaluation = trained["evaluation"]
    assert evaluation.returncode == 0, evaluation.stderr  # type: ignore[attr-defined]
    output: Path = trained["tmp"] / "evaluation"  # type: ignore[operator]

    # WHEN the quality gate reads evaluation.json
    metrics = json.loads((output / "evaluation.json").read_text())["regression_metrics"]

    # THEN RMSE, MAE and R² are there in SageMaker's shape, and the model explains most of the variance
    assert set(metrics) == {"rmse", "mae", "r2"}
    assert 0 < metrics["mae"]["value"] <= metrics["rmse"]["value"] < 7.0
    assert 0.5 < metrics["r2"]["value"] <= 1.0


def test_evaluation_report_shows_the_pictures_a_reviewer_needs(trained: dict[str, object]) -> None:
    # GIVEN the evaluation output
    output: Path = trained["tmp"] / "evaluation"  # type: ignore[operator]
    report = (output / "report.html").read_text()

    # THEN the report shows each picture, and each is a real PNG
    for picture in ("predicted_vs_actual.png", "residuals.png", "training_curve.png"):
        assert f'src="{picture}"' in report
        assert (output / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "RMSE" in report


def test_same_seed_trains_the_same_model(trained: dict[str, object], tmp_path: Path) -> None:
    # GIVEN the hyper-parameters and seed of the first run
    # WHEN the job runs again on the same splits
    again, _ = train_job(tmp_path, trained["splits"], "run2", *HYPER)  # type: ignore[arg-type]

    # THEN it reports the same objective, so tuning trials are reproducible
    assert again.returncode == 0, again.stderr
    assert last_metrics(again.stdout) == last_metrics(trained["training"].stdout)  # type: ignore[attr-defined]


def test_evaluation_of_test_data_without_a_trained_column_fails_clearly(
    trained: dict[str, object], tmp_path: Path
) -> None:
    # GIVEN test data that lacks the LSTAT column the model was trained with
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    source = next((trained["splits"] / "test").glob("*.csv")).read_text().splitlines()  # type: ignore[operator]
    header = source[0].split(",")
    drop = header.index("LSTAT")
    rows = [",".join(v for i, v in enumerate(line.split(",")) if i != drop) for line in source]
    (test_dir / "test.csv").write_text("\n".join(rows) + "\n")

    # WHEN the evaluation job runs
    result = run_script(
        "evaluate.py",
        *("--model-dir", str(trained["model_dir"]), "--test-dir", str(test_dir)),
        *("--output-dir", str(tmp_path / "out"), "--message-file", str(tmp_path / "message")),
    )

    # THEN it fails, and its exit message (ExitMessage on SageMaker) names the missing column
    assert result.returncode == 1
    assert "'LSTAT'" in (tmp_path / "message").read_text()
    assert not (tmp_path / "out" / "evaluation.json").exists()
