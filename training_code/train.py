"""Training job (TensorFlow container): fit a Keras regressor on the train channel with early stopping on the
validation channel, print the tuner's metric lines, and save a SavedModel that TensorFlow Serving loads.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LOGGER = logging.getLogger("train")


@dataclass(frozen=True)
class HyperParameters:
    """The knobs a tuning job searches; defaults are what the model-quality benchmark measures."""

    epochs: int = 400
    batch_size: int = 32
    learning_rate: float = 0.003
    hidden_units: int = 128
    layers: int = 2
    dropout: float = 0.1
    l2: float = 3e-4
    patience: int = 60
    seed: int = 42
    ensemble: int = 8
    refit: int = 1  # 1: also retrain on train + validation for the best epoch count and average both
    log_skewed: int = 1
    target_column: str = "MEDV"


@dataclass(frozen=True)
class TrainedModel:
    model: Any  # keras.Model; typed loosely so this module imports without TensorFlow for type checks
    feature_columns: list[str]
    history: dict[str, list[float]]
    best_epoch: int
    best_metrics: dict[str, float]


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, HyperParameters]:
    parser = argparse.ArgumentParser(description=__doc__)
    defaults = HyperParameters()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name}", type=type(value), default=value)
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    parser.add_argument(
        "--validation", default=os.environ.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation")
    )
    parser.add_argument("--sm-model-dir", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    parser.add_argument(
        "--output-data-dir", default=os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")
    )
    # The TensorFlow toolkit appends `--model_dir s3://...` in script mode; SM_MODEL_DIR is what counts.
    parser.add_argument("--model_dir", default=None, help=argparse.SUPPRESS)
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        LOGGER.warning("ignoring unknown arguments: %s", " ".join(unknown))
    hyper = HyperParameters(**{name: getattr(args, name) for name in asdict(defaults)})
    return args, hyper


def read_channel(channel_dir: Path) -> pd.DataFrame:
    """Every CSV in a channel (one per preprocessing host), concatenated in file-name order."""
    paths = sorted(p for p in channel_dir.rglob("*.csv") if p.is_file())
    if not paths:
        raise FileNotFoundError(f"no .csv file in channel {channel_dir}")
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def split_features(frame: pd.DataFrame, target_column: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if target_column not in frame.columns:
        raise ValueError(f"target column '{target_column}' is not in the data ({', '.join(frame.columns)})")
    feature_columns = [c for c in frame.columns if c != target_column]
    features = frame[feature_columns].to_numpy(dtype="float32")
    target = frame[target_column].to_numpy(dtype="float32").reshape(-1, 1)
    return features, target, feature_columns


def skewed_feature_mask(train_x: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    """Non-negative features whose sample skewness exceeds the threshold; the model takes their log1p."""
    centred = train_x - train_x.mean(axis=0)
    sd = train_x.std(axis=0)
    skewness = np.divide((centred**3).mean(axis=0), sd**3, out=np.zeros_like(sd), where=sd > 0)
    return (train_x.min(axis=0) >= 0) & (skewness > threshold)


def member_dense(members: int, units: int, activation: str | None, regulariser: Any, name: str) -> Any:
    """A dense layer for `members` independent towers: [batch, in] or [members, batch, in] in,
    [members, batch, units] out; each member's kernel is Glorot-uniform over its own [in, units]."""
    import keras

    class MemberDense(keras.layers.Layer):
        def build(self, input_shape: tuple[int | None, ...]) -> None:
            self.kernel = self.add_weight(
                name="kernel",
                shape=(members, input_shape[-1], units),
                initializer=keras.initializers.VarianceScaling(
                    1.0, mode="fan_avg", distribution="uniform", input_axes=[1], output_axes=[2]
                ),
                regularizer=regulariser,
            )
            self.bias = self.add_weight(name="bias", shape=(members, 1, units), initializer="zeros")

        def call(self, inputs: Any) -> Any:
            if len(inputs.shape) == 2:
                # One plain [batch, in] x [in, members * units] matmul, then members to the front.
                kernel = keras.ops.reshape(keras.ops.transpose(self.kernel, (1, 0, 2)), (-1, members * units))
                outputs = keras.ops.reshape(keras.ops.matmul(inputs, kernel), (-1, members, units))
                outputs = keras.ops.transpose(outputs, (1, 0, 2)) + self.bias
            else:
                outputs = keras.ops.matmul(inputs, self.kernel) + self.bias
            return keras.activations.get(activation)(outputs)

        def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
            return (members, input_shape[-2], units)

    return MemberDense(name=name)


def build_model(train_x: np.ndarray, train_y: np.ndarray, hyper: HyperParameters) -> Any:
    """Raw feature rows in, predictions out: feature normalisation and target scaling live in the model,
    fitted on the training rows, so serving needs no preprocessing. `ensemble` identical towers from different
    initialisations are averaged, which steadies a small-data regressor more than any single tower. The
    towers are fused: each layer holds every member's kernel as one [members, in, out] tensor and runs one
    batched matmul, so a training step and its tracing cost a few ops instead of a few per member."""
    import keras

    inputs = keras.Input(shape=(train_x.shape[1],), name="features", dtype="float32")
    reshaped = inputs
    skewed = skewed_feature_mask(train_x) if hyper.log_skewed else np.zeros(train_x.shape[1], dtype=bool)
    if skewed.any():
        mask = skewed.tolist()
        # Long right tails (crime rates, distances) squash most rows into a sliver after plain scaling.
        reshaped = keras.layers.Lambda(
            lambda t: keras.ops.where(mask, keras.ops.log1p(keras.ops.maximum(t, 0.0)), t), name="log_skewed"
        )(inputs)
    normaliser = keras.layers.Normalization(name="normalise")
    normaliser.adapt(np.where(skewed, np.log1p(np.maximum(train_x, 0.0)), train_x))
    normalised = normaliser(reshaped)
    regulariser = keras.regularizers.L2(hyper.l2) if hyper.l2 > 0 else None
    members = max(1, hyper.ensemble)
    hidden = normalised
    for layer in range(hyper.layers):
        hidden = member_dense(members, hyper.hidden_units, "relu", regulariser, name=f"member_dense{layer}")(
            hidden
        )
        if hyper.dropout > 0:
            hidden = keras.layers.Dropout(hyper.dropout, name=f"dropout{layer}")(hidden)
    member_outputs = member_dense(members, 1, None, None, name="member_outputs")(hidden)
    scaled = keras.layers.Lambda(lambda t: keras.ops.mean(t, axis=0), name="average")(member_outputs)
    # The last layer learns a unit-scale target, so Adam's step sizes suit any target's range.
    target_mean = float(np.mean(train_y))
    target_sd = float(np.std(train_y)) or 1.0
    outputs = keras.layers.Rescaling(target_sd, offset=target_mean, name="predictions")(scaled)
    model = keras.Model(inputs, outputs, name="regressor")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=hyper.learning_rate),
        loss="mse",
        metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
    )
    return model


def metric_lines_callback() -> Any:
    """A callback printing `epoch=N loss=.. val_loss=.. val_rmse=..` per epoch (the tuner's regexes)."""
    import keras

    class MetricLines(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            print_metrics(epoch + 1, logs or {})

    return MetricLines()


def print_metrics(epoch: int, logs: dict[str, float]) -> None:
    print(
        f"epoch={epoch} loss={logs['loss']:.6g} val_loss={logs['val_loss']:.6g} "
        f"val_rmse={logs['val_rmse']:.6g}",
        flush=True,
    )


def early_stopping_class() -> Any:
    import keras

    class StopEarlyOnly(keras.callbacks.EarlyStopping):
        """Keras' EarlyStopping, except that the best epoch's weights are restored only when patience ran
        out. A run that completes its `epochs` keeps its final weights: the tuned epoch count then means
        what it says, and a small validation split is not used twice (once to pick an epoch inside each
        trial, again by the tuner to pick a trial), which favours models caught early by luck."""

        def on_train_end(self, logs: dict[str, float] | None = None) -> None:
            if not self.stopped_epoch:
                self.best_weights = None
            super().on_train_end(logs)

    return StopEarlyOnly


def fit(
    train: pd.DataFrame, validation: pd.DataFrame, hyper: HyperParameters, verbose_metrics: bool = True
) -> TrainedModel:
    """The whole training procedure: seeded, early-stopped on validation loss, best weights restored. With
    `refit`, the validation rows then only pick the epoch count: the ensemble is retrained from the same
    initial weights on train + validation for the best epoch count, and the returned model averages the
    early-stopped and the retrained members. Metric lines, history and best metrics are the early-stopped
    run's, the only honest validation figures."""
    import keras

    keras.utils.set_random_seed(hyper.seed)
    train_x, train_y, feature_columns = split_features(train, hyper.target_column)
    val_x, val_y, val_columns = split_features(validation, hyper.target_column)
    if val_columns != feature_columns:
        raise ValueError(f"validation columns {val_columns} differ from training columns {feature_columns}")
    if len(train_x) == 0 or len(val_x) == 0:
        raise ValueError(f"need training and validation rows, got {len(train_x)} and {len(val_x)}")
    model = build_model(train_x, train_y, hyper)
    model.optimizer.build(model.trainable_variables)
    initial_weights = model.get_weights()
    initial_optimizer = [variable.numpy() for variable in model.optimizer.variables]
    # Stop on validation RMSE, not val_loss: Keras adds the L2 penalty to val_loss, and that penalty grows
    # as the weights do, so val_loss bottoms out epochs before the predictions stop improving.
    stopper = early_stopping_class()(
        monitor="val_rmse", mode="min", patience=hyper.patience, restore_best_weights=True
    )
    callbacks: list[Any] = [stopper]
    if verbose_metrics:
        callbacks.append(metric_lines_callback())
    result = model.fit(
        train_x,
        train_y,
        validation_data=(val_x, val_y),
        epochs=hyper.epochs,
        batch_size=hyper.batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    history = {key: [float(v) for v in values] for key, values in result.history.items()}
    best_epoch = stopper.best_epoch + 1 if stopper.stopped_epoch else len(history["val_rmse"])
    train_eval = model.evaluate(train_x, train_y, verbose=0, return_dict=True)
    val_eval = model.evaluate(val_x, val_y, verbose=0, return_dict=True)
    best = {
        "loss": float(train_eval["loss"]),
        "val_loss": float(val_eval["loss"]),
        "val_rmse": float(val_eval["rmse"]),
    }
    if hyper.refit:
        model = refit_and_combine(
            model, initial_weights, initial_optimizer, train_x, train_y, val_x, val_y, best_epoch, hyper
        )
    return TrainedModel(model, feature_columns, history, best_epoch, best)


def refit_and_combine(
    model: Any,
    initial_weights: list[np.ndarray],
    initial_optimizer: list[np.ndarray],
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    epochs: int,
    hyper: HyperParameters,
) -> Any:
    """Retrain `model` from its initial weights and optimiser state on every labelled row for `epochs`,
    then return one model whose members are the early-stopped ones and the retrained ones."""
    stopped = {layer.name: layer.get_weights() for layer in model.layers}
    model.set_weights(initial_weights)
    for variable, value in zip(model.optimizer.variables, initial_optimizer, strict=True):
        variable.assign(value)
    model.fit(
        np.concatenate([train_x, val_x]),
        np.concatenate([train_y, val_y]),
        epochs=epochs,
        batch_size=hyper.batch_size,
        shuffle=True,
        verbose=0,
    )
    refitted = {layer.name: layer.get_weights() for layer in model.layers}
    # Normalisation and target scaling stay fitted on the training rows, as in both runs.
    combined = build_model(train_x, train_y, replace(hyper, ensemble=2 * max(1, hyper.ensemble)))
    for layer in combined.layers:
        if layer.name.startswith("member_"):
            layer.set_weights(
                [np.concatenate(pair) for pair in zip(stopped[layer.name], refitted[layer.name], strict=True)]
            )
        elif layer.weights:
            layer.set_weights(refitted[layer.name])
    return combined


def export_serving_model(model: Any, n_features: int, export_dir: Path) -> None:
    """SavedModel, signature `serving_default`: `features` float32 [None, n] in, `predictions` [None, 1]."""
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(features: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"predictions": model(features, training=False)}

    archive.add_endpoint(
        name="serving_default",
        fn=serve,
        input_signature=[tf.TensorSpec(shape=(None, n_features), dtype=tf.float32, name="features")],
    )
    archive.write_out(str(export_dir), verbose=False)


def save(trained: TrainedModel, model_dir: Path) -> None:
    export_serving_model(trained.model, len(trained.feature_columns), model_dir / "model" / "1")
    code_dir = model_dir / "code"
    code_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("inference.py"), code_dir / "inference.py")
    history = {**trained.history, "best_epoch": trained.best_epoch}
    (model_dir / "history.json").write_text(json.dumps(history))
    (model_dir / "feature_columns.json").write_text(json.dumps(trained.feature_columns))


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args, hyper = parse_args(argv)
    LOGGER.info("hyper-parameters: %s", json.dumps(asdict(hyper)))
    train = read_channel(Path(args.train))
    validation = read_channel(Path(args.validation))
    trained = fit(train, validation, hyper)
    # The tuner keeps the last value its regex matches: make that the restored (best) model's.
    print_metrics(trained.best_epoch, trained.best_metrics)
    save(trained, Path(args.sm_model_dir))
    LOGGER.info("saved model to %s (best epoch %d)", args.sm_model_dir, trained.best_epoch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
