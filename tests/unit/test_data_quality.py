"""orchestrator.data_quality: baselines and violations in Model Monitor's formats (developer guide:
model-monitor-byoc-statistics, model-monitor-byoc-constraints, model-monitor-interpreting-violations)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from orchestrator import data_quality as dq

ROOT = Path(__file__).resolve().parents[2]
HEADER = ["a", "b", "MEDV"]


def write_csv(folder: Path, name: str, rows: list[list[Any]], header: list[str] = HEADER) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header)] + [",".join(str(v) for v in row) for row in rows]
    (folder / name).write_text("\n".join(lines) + "\n")


def baseline_of(rows: list[list[str]], names: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    profiles, count = dq.profile_rows(names, rows)
    stats = dq.statistics(profiles, count)
    return stats, dq.constraints(stats)


def uniform_rows(n: int, low: float = 0.0, high: float = 10.0, seed: int = 1) -> list[list[str]]:
    rng = random.Random(seed)
    return [[f"{rng.uniform(low, high):.4f}", str(rng.randint(0, 5))] for _ in range(n)]


def test_the_baseline_job_writes_model_monitors_two_files(tmp_path: Path) -> None:
    # GIVEN a train split as the preprocessing job writes it (header, target last), in two files
    write_csv(tmp_path / "in", "train-algo-1.csv", [[1.5, 2, 10.0], [2.5, 4, 11.0]])
    write_csv(tmp_path / "in", "train-algo-2.csv", [[3.5, 0, 12.0], [-1.0, "", 13.0]])

    # WHEN the baseline job runs over it
    assert dq.main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")]) == 0

    # THEN statistics.json describes each feature (not the target) as Model Monitor does
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert stats["version"] == 0 and stats["dataset"] == {"item_count": 4}
    a, b = stats["features"]
    assert (a["name"], a["inferred_type"], b["name"], b["inferred_type"]) == (
        "a",
        "Fractional",
        "b",
        "Integral",
    )
    numbers = a["numerical_statistics"]
    assert numbers["common"] == {"num_present": 4, "num_missing": 0}
    assert (numbers["min"], numbers["max"], numbers["sum"], numbers["mean"]) == (-1.0, 3.5, 6.5, 1.625)
    assert numbers["std_dev"] == pytest.approx(1.67239, abs=1e-5)
    buckets = numbers["distribution"]["kll"]["buckets"]
    assert len(buckets) == 10 and sum(x["count"] for x in buckets) == 4
    assert (buckets[0]["lower_bound"], buckets[-1]["upper_bound"]) == (-1.0, 3.5)
    assert b["numerical_statistics"]["common"] == {"num_present": 3, "num_missing": 1}
    # AND constraints.json holds what the monitor checks
    limits = json.loads((tmp_path / "out" / "constraints.json").read_text())
    ca, cb = limits["features"]
    assert ca == {
        "name": "a",
        "inferred_type": "Fractional",
        "completeness": 1.0,
        "num_constraints": {"is_non_negative": False},
    }
    assert cb["completeness"] == 0.75 and cb["num_constraints"] == {"is_non_negative": True}
    config = limits["monitoring_config"]
    assert config["distribution_constraints"] == {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
    }
    assert (config["evaluate_constraints"], config["emit_metrics"]) == ("Enabled", "Enabled")


def test_files_with_different_columns_or_no_target_are_refused_with_a_message(tmp_path: Path) -> None:
    write_csv(tmp_path / "in", "a.csv", [[1, 2, 3]])
    write_csv(tmp_path / "in", "b.csv", [[1, 2, 3]], header=["a", "c", "MEDV"])
    message = tmp_path / "message"
    args = ["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")]
    assert dq.main([*args, "--message-file", str(message)]) == 1
    assert message.read_text() == "b.csv: its columns differ from the other files'"
    assert not (tmp_path / "out").exists()
    assert dq.main([*args, "--message-file", str(message), "--target-column", "PRICE"]) == 1
    assert message.read_text() == "a.csv: target column 'PRICE' is missing"


def test_a_sample_of_the_same_distribution_raises_nothing() -> None:
    stats, limits = baseline_of(uniform_rows(2000, seed=1), ["a", "b"])
    profiles, _ = dq.profile_rows(["a", "b"], uniform_rows(300, seed=2))
    assert dq.violations(stats, limits, profiles) == []
    distances = dq.drift_distances(stats, limits, profiles)
    assert set(distances) == {"a", "b"} and max(distances.values()) < 0.1


def test_a_shifted_feature_is_reported_as_drift_and_only_that_one() -> None:
    stats, limits = baseline_of(uniform_rows(2000, seed=1), ["a", "b"])
    shifted = [[str(float(a) + 4.0), b] for a, b in uniform_rows(300, seed=2)]
    profiles, _ = dq.profile_rows(["a", "b"], shifted)
    [violation] = dq.violations(stats, limits, profiles)
    assert (violation["feature_name"], violation["constraint_check_type"]) == ("a", "baseline_drift_check")
    distance = dq.drift_distances(stats, limits, profiles)["a"]
    assert distance == pytest.approx(0.4, abs=0.06)
    limit = max(0.1, dq.critical_distance(2000, 300))  # 0.1008
    assert (
        violation["description"] == f"Baseline drift distance: {distance:.4f} exceeds threshold: {limit:.4f}"
    )


def test_values_beyond_the_baseline_on_either_side_count_as_drift() -> None:
    stats, limits = baseline_of(uniform_rows(1000), ["a", "b"])
    for value in ("-5", "50"):
        profiles, _ = dq.profile_rows(["a", "b"], [[value, "1"]] * 200)
        assert dq.drift_distances(stats, limits, profiles)["a"] == 1.0


def test_a_small_sample_must_clear_the_tests_critical_value_not_only_the_threshold() -> None:
    # 20 rows differ from any baseline by more than 0.1 by chance: the Robust comparison asks for
    # 1.628 * sqrt((n + m) / (n m)) (= 0.37 for 1000 and 20 rows), the Simple one for the threshold only
    stats, limits = baseline_of(uniform_rows(1000), ["a", "b"])
    few = [[f"{2.5 + 7.5 * i / 20:.3f}", "2"] for i in range(20)]  # none below 2.5: distance ~0.25
    profiles, _ = dq.profile_rows(["a", "b"], few)
    distance = dq.drift_distances(stats, limits, profiles)["a"]
    assert 0.1 < distance < dq.critical_distance(1000, 20)
    assert [v["feature_name"] for v in dq.violations(stats, limits, profiles)] == ["b"]  # b: all 2s
    simple = json.loads(json.dumps(limits))
    simple["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Simple"
    assert [v["feature_name"] for v in dq.violations(stats, simple, profiles)] == ["a", "b"]
    assert dq.critical_distance(1000, 20) == pytest.approx(1.628 * ((1020 / 20000) ** 0.5))
    assert dq.critical_distance(0, 20) == float("inf")


def test_comparison_turned_off_in_the_constraints_reports_no_drift() -> None:
    stats, limits = baseline_of(uniform_rows(1000), ["a", "b"])
    limits["monitoring_config"]["distribution_constraints"]["perform_comparison"] = "Disabled"
    profiles, _ = dq.profile_rows(["a", "b"], [["50", "1"]] * 100)
    assert dq.drift_distances(stats, limits, profiles) == {}
    assert dq.violations(stats, limits, profiles) == []


def test_text_in_a_numeric_feature_fails_the_data_type_check_above_its_threshold() -> None:
    stats, limits = baseline_of(uniform_rows(1000), ["a", "b"])
    rows = uniform_rows(100, seed=3)
    # 10 % text: exactly at the threshold, not above it
    at_threshold = [[("n/a" if i < 10 else a), b] for i, (a, b) in enumerate(rows)]
    profiles, _ = dq.profile_rows(["a", "b"], at_threshold)
    assert [v["constraint_check_type"] for v in dq.violations(stats, limits, profiles)] == []
    above = [[("n/a" if i < 11 else a), b] for i, (a, b) in enumerate(rows)]
    profiles, _ = dq.profile_rows(["a", "b"], above)
    [violation] = dq.violations(stats, limits, profiles)
    assert (violation["feature_name"], violation["constraint_check_type"]) == ("a", "data_type_check")
    assert violation["description"] == (
        "Data type match requirement is not met. Expected data type: Fractional, Expected match: 90.0%. "
        "Observed: Only 89.0% of data is Fractional."
    )


def test_empty_cells_fail_the_completeness_check() -> None:
    stats, limits = baseline_of(uniform_rows(1000), ["a", "b"])
    rows = [[a, ("" if i == 0 else b)] for i, (a, b) in enumerate(uniform_rows(100, seed=3))]
    profiles, _ = dq.profile_rows(["a", "b"], rows)
    [violation] = dq.violations(stats, limits, profiles)
    assert (violation["feature_name"], violation["constraint_check_type"]) == ("b", "completeness_check")
    assert violation["description"] == (
        "Data completeness requirement is not met. Expected: 100.0% of data is non-null. "
        "Observed: Only 99.0% of data is non-null."
    )


def test_rows_narrower_or_wider_than_the_baseline_are_column_violations() -> None:
    assert dq.column_violations(13, [13, 13]) == []
    assert dq.column_violations(13, []) == []
    narrow, wide = dq.column_violations(13, [13, 12, 14])
    assert (narrow["constraint_check_type"], wide["constraint_check_type"]) == (
        "missing_column_check",
        "extra_column_check",
    )
    assert narrow["description"] == (
        "There are missing columns in current dataset. Number of columns in current dataset: 12, "
        "Number of columns in baseline constraints: 13"
    )
    assert "current dataset: 14," in wide["description"]


def test_non_finite_numbers_are_not_numbers() -> None:
    assert [dq.parse_number(t) for t in ("1.5", "-2", "nan", "inf", "-inf", "x", "1e3")] == [
        1.5,
        -2.0,
        None,
        None,
        None,
        None,
        1000.0,
    ]


def test_a_constant_feature_has_one_wide_bucket_and_drifts_when_it_moves() -> None:
    stats, limits = baseline_of([["3", "1"]] * 50, ["a", "b"])
    buckets = stats["features"][0]["numerical_statistics"]["distribution"]["kll"]["buckets"]
    assert buckets[0]["count"] == 50 and all(b["lower_bound"] == 3.0 for b in buckets)
    same, _ = dq.profile_rows(["a", "b"], [["3", "1"]] * 40)
    assert dq.drift_distances(stats, limits, same) == {"a": 0.0, "b": 0.0}
    moved, _ = dq.profile_rows(["a", "b"], [["4", "1"]] * 30 + [["3", "1"]] * 10)
    assert dq.drift_distances(stats, limits, moved)["a"] == 0.75


def test_boston_housing_ordered_by_town_is_not_a_sample_of_the_whole(tmp_path: Path) -> None:
    # The sample data set is sorted by town: its first rows are a different population, every tenth row
    # is the same one. The baseline job's reading of the real file, end to end.
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "data.csv").write_bytes((ROOT / "data" / "boston_housing.csv").read_bytes())
    assert dq.main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")]) == 0
    stats = json.loads((tmp_path / "out" / "statistics.json").read_text())
    limits = json.loads((tmp_path / "out" / "constraints.json").read_text())
    names, rows = dq.read_csv_dir(tmp_path / "in", "MEDV")
    spread, _ = dq.profile_rows(names, rows[::10])
    assert dq.violations(stats, limits, spread) == []
    first, _ = dq.profile_rows(names, rows[:50])
    assert {v["feature_name"] for v in dq.violations(stats, limits, first)} >= {"INDUS", "TAX"}
