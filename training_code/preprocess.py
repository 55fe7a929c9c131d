"""Preprocessing job (scikit-learn container): validate every input CSV and split rows into
train/validation/test by a hash of each row's content, so the split is the same however the input is sharded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

LOGGER = logging.getLogger("preprocess")
SPLITS = ("train", "validation", "test")


class InputDataError(ValueError):
    """Input that cannot be trained on; the message names the file and the column."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--input-dir", default="/opt/ml/processing/input/data")
    parser.add_argument("--output-dir", default="/opt/ml/processing/output")
    parser.add_argument("--target-column", default="MEDV")
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    # A processing container explains its exit in /opt/ml/output/message: DescribeProcessingJob returns its
    # first KB as ExitMessage (sagemaker/latest/dg/byoc-metadata.html). /opt/ml/output/failure is the
    # training containers' file; SageMaker does not read it for a processing job.
    parser.add_argument("--message-file", default="/opt/ml/output/message")
    parser.add_argument("--resource-config", default="/opt/ml/config/resourceconfig.json")
    return parser.parse_args(argv)


def current_host(resource_config: Path) -> str:
    """The instance name SageMaker gives this host (`algo-1`, `algo-2`, ...); `algo-1` outside SageMaker."""
    if resource_config.is_file():
        return str(json.loads(resource_config.read_text())["current_host"])
    return "algo-1"


def read_csv_checked(path: Path, target_column: str) -> pd.DataFrame:
    """Read one CSV and reject what training could not use, naming the file and the column."""
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputDataError(f"{path.name}: the file is empty (no header and no rows)") from None
    if frame.empty:
        raise InputDataError(f"{path.name}: the file has a header but no data rows")
    if target_column not in frame.columns:
        raise InputDataError(
            f"{path.name}: target column '{target_column}' is missing (columns: {', '.join(frame.columns)})"
        )
    for column in frame.columns:
        values = frame[column]
        empty = values.isna()
        if empty.any():
            first_row = int(np.flatnonzero(empty.to_numpy())[0]) + 2  # +1 header, +1 one-based line numbers
            raise InputDataError(
                f"{path.name}: column '{column}' has {int(empty.sum())} empty value(s), "
                f"first on line {first_row}"
            )
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna()
        if bad.any():
            first = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputDataError(
                f"{path.name}: column '{column}' is not numeric "
                f"(value {values.iloc[first]!r} on line {first + 2})"
            )
        frame[column] = numeric.astype("float64")
    return frame


def load_inputs(input_dir: Path, target_column: str) -> pd.DataFrame:
    """All CSVs under input_dir, checked to share one schema; columns reordered so the target is last."""
    paths = sorted(p for p in input_dir.rglob("*.csv") if p.is_file())
    if not paths:
        raise InputDataError(f"{input_dir}: no .csv file found in the input")
    frames: list[pd.DataFrame] = []
    columns: list[str] | None = None
    for path in paths:
        frame = read_csv_checked(path, target_column)
        if columns is None:
            columns = list(frame.columns)
        else:
            missing = [c for c in columns if c not in frame.columns]
            extra = [c for c in frame.columns if c not in columns]
            if missing:
                raise InputDataError(
                    f"{path.name}: column '{missing[0]}' is missing (present in {paths[0].name})"
                )
            if extra:
                raise InputDataError(f"{path.name}: column '{extra[0]}' is not in {paths[0].name}")
        frames.append(frame[columns])
    assert columns is not None
    if len(columns) < 2:
        raise InputDataError(f"{paths[0].name}: no feature column besides target '{target_column}'")
    features = [c for c in columns if c != target_column]
    return pd.concat(frames, ignore_index=True)[[*features, target_column]]


def row_fraction(values: np.ndarray) -> float:
    """A number in [0, 1) determined by the row's values alone, whatever file or position it came from."""
    canonical = ",".join(repr(float(v)) for v in values).encode()
    return int.from_bytes(hashlib.sha256(canonical).digest()[:8], "big") / 2.0**64


def assign_splits(frame: pd.DataFrame, validation_fraction: float, test_fraction: float) -> pd.Series:
    """Split name per row; identical rows always land in the same split, so duplicates cannot leak."""
    if validation_fraction < 0 or test_fraction < 0 or validation_fraction + test_fraction >= 1:
        raise InputDataError(
            f"validation fraction {validation_fraction} and test fraction {test_fraction} "
            "must be non-negative and leave rows for training"
        )
    fractions = np.array([row_fraction(row) for row in frame.to_numpy()])
    names = np.where(
        fractions < test_fraction,
        "test",
        np.where(fractions < test_fraction + validation_fraction, "validation", "train"),
    )
    return pd.Series(names, index=frame.index)


def write_splits(frame: pd.DataFrame, splits: pd.Series, output_dir: Path, host: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in SPLITS:
        part = frame[splits == name]
        target_dir = output_dir / name
        target_dir.mkdir(parents=True, exist_ok=True)
        part.to_csv(target_dir / f"{name}-{host}.csv", index=False)
        counts[name] = len(part)
    return counts


def run(args: argparse.Namespace) -> dict[str, int]:
    frame = load_inputs(Path(args.input_dir), args.target_column)
    splits = assign_splits(frame, args.validation_fraction, args.test_fraction)
    host = current_host(Path(args.resource_config))
    counts = write_splits(frame, splits, Path(args.output_dir), host)
    LOGGER.info("host=%s rows=%d %s", host, len(frame), " ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        run(args)
    except InputDataError as error:
        message_file = Path(args.message_file)
        message_file.parent.mkdir(parents=True, exist_ok=True)
        message_file.write_text(str(error), encoding="utf-8")
        LOGGER.error("invalid input: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
