"""preprocess.py under the processing-container contract: splits, sharding, and each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.training.conftest import SAMPLE_DATA, run_script


def preprocess(input_dir: Path, output_dir: Path, tmp_path: Path, host: str | None = None, *extra: str):
    args = ["--input-dir", str(input_dir), "--output-dir", str(output_dir)]
    args += ["--message-file", str(tmp_path / "message"), *extra]
    config = tmp_path / f"resourceconfig-{host}.json"
    if host:
        config.write_text(json.dumps({"current_host": host, "hosts": ["algo-1", "algo-2"]}))
    args += ["--resource-config", str(config)]
    return run_script("preprocess.py", *args)


def rows_of(output_dir: Path, split: str) -> set[tuple[float, ...]]:
    rows: set[tuple[float, ...]] = set()
    for path in (output_dir / split).glob("*.csv"):
        rows |= set(pd.read_csv(path).itertuples(index=False, name=None))
    return rows


def test_single_instance_splits_every_row_once_with_target_last(tmp_path: Path) -> None:
    # GIVEN the sample data with the target moved to the first column
    data = pd.read_csv(SAMPLE_DATA)
    input_dir = tmp_path / "input" / "nested"
    input_dir.mkdir(parents=True)
    data[["MEDV", *[c for c in data.columns if c != "MEDV"]]].to_csv(input_dir / "houses.csv", index=False)

    # WHEN one instance preprocesses it
    result = preprocess(tmp_path / "input", tmp_path / "out", tmp_path)

    # THEN each split is one CSV named for the host, the target is last, features keep dataset order
    assert result.returncode == 0, result.stderr
    sizes = {}
    for split in ("train", "validation", "test"):
        files = list((tmp_path / "out" / split).glob("*.csv"))
        assert [f.name for f in files] == [f"{split}-algo-1.csv"]
        frame = pd.read_csv(files[0])
        assert list(frame.columns) == [*[c for c in data.columns if c != "MEDV"], "MEDV"]
        sizes[split] = len(frame)
    # AND every row lands in exactly one split, in roughly the asked-for proportions
    assert sum(sizes.values()) == len(data)
    assert 0.6 < sizes["train"] / len(data) < 0.8
    assert 0.08 < sizes["validation"] / len(data) < 0.22
    assert 0.08 < sizes["test"] / len(data) < 0.22


def test_sharded_input_gives_the_same_split_as_one_instance(tmp_path: Path) -> None:
    # GIVEN the data in four files, and the same files sharded by key over two instances
    data = pd.read_csv(SAMPLE_DATA)
    whole = tmp_path / "whole"
    whole.mkdir()
    shard_dirs = [tmp_path / "shard1", tmp_path / "shard2"]
    for shard_dir in shard_dirs:
        shard_dir.mkdir()
    for index in range(4):
        part = data.iloc[index::4]
        part.to_csv(whole / f"part-{index}.csv", index=False)
        part.to_csv(shard_dirs[index % 2] / f"part-{index}.csv", index=False)

    # WHEN one instance processes all files, and two instances process one shard each into one output
    assert preprocess(whole, tmp_path / "single", tmp_path).returncode == 0
    for host, shard_dir in zip(("algo-1", "algo-2"), shard_dirs, strict=True):
        result = preprocess(shard_dir, tmp_path / "sharded", tmp_path, host)
        assert result.returncode == 0, result.stderr

    # THEN the instances did not overwrite each other, and each split holds the very same rows
    assert sorted(p.name for p in (tmp_path / "sharded" / "train").iterdir()) == [
        "train-algo-1.csv",
        "train-algo-2.csv",
    ]
    for split in ("train", "validation", "test"):
        assert rows_of(tmp_path / "sharded", split) == rows_of(tmp_path / "single", split)
        assert rows_of(tmp_path / "single", split)


HEADER = "CRIM,RM,MEDV\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"empty.csv": ""}, ["empty.csv", "empty"]),
        ({"header.csv": HEADER}, ["header.csv", "no data rows"]),
        ({"notarget.csv": "CRIM,RM\n0.1,6.5\n"}, ["notarget.csv", "'MEDV'", "missing"]),
        (
            {"text.csv": HEADER + "0.1,6.5,24\n0.2,six,21\n"},
            ["text.csv", "'RM'", "not numeric", "'six'", "line 3"],
        ),
        ({"gap.csv": HEADER + "0.1,,24\n"}, ["gap.csv", "'RM'", "empty value"]),
        ({"a.csv": HEADER + "0.1,6.5,24\n", "b.csv": "CRIM,MEDV\n0.2,21\n"}, ["b.csv", "'RM'", "missing"]),
        ({"only_target.csv": "MEDV\n24\n"}, ["only_target.csv", "no feature column"]),
    ],
    ids=[
        "empty-file",
        "header-only",
        "missing-target",
        "non-numeric",
        "empty-cell",
        "shard-lacks-column",
        "no-features",
    ],
)
def test_bad_input_fails_the_job_with_a_message_naming_file_and_column(
    tmp_path: Path, files: dict[str, str], expected: list[str]
) -> None:
    # GIVEN input that cannot be trained on
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    for name, text in files.items():
        (input_dir / name).write_text(text)

    # WHEN the preprocessing job runs
    result = preprocess(input_dir, tmp_path / "out", tmp_path)

    # THEN it exits non-zero, and its exit message (/opt/ml/output/message: ExitMessage on SageMaker)
    # says what is wrong and where
    assert result.returncode == 1
    reason = (tmp_path / "message").read_text()
    for fragment in expected:
        assert fragment in reason
    assert not (tmp_path / "out" / "train").exists()


def test_no_csv_in_input_is_reported(tmp_path: Path) -> None:
    # GIVEN an input channel with no CSV in it
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "notes.txt").write_text("not data")

    # WHEN the preprocessing job runs
    result = preprocess(tmp_path / "input", tmp_path / "out", tmp_path)

    # THEN the failure says there was no CSV
    assert result.returncode == 1
    assert "no .csv file" in (tmp_path / "message").read_text()
