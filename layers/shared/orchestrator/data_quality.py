"""Data quality in SageMaker Model Monitor's file formats, with the standard library only.

One implementation serves both ends of the loop: the pipeline's BaselineData processing job runs this file
as a script over the train split (`python3 data_quality.py --input-dir ... --output-dir ...`) and writes
`statistics.json` and `constraints.json`; the monitor function imports it to profile captured requests and
to write `statistics.json`, `constraints.json` and `constraint_violations.json` of each monitoring run.

Formats: SageMaker developer guide, model-monitor-byoc-statistics (statistics.json: `version`, `dataset.
item_count`, `features[].numerical_statistics.{common, mean, sum, std_dev, min, max, distribution.kll.
buckets}`), model-monitor-byoc-constraints (constraints.json: `features[].{name, inferred_type,
completeness, num_constraints.is_non_negative}`, `monitoring_config`) and model-monitor-interpreting-
violations (constraint_violations.json: `violations[].{feature_name, constraint_check_type, description}`
with the check types `data_type_check`, `completeness_check`, `baseline_drift_check`,
`missing_column_check`, `extra_column_check`). Model Monitor computes the drift distance of a numerical
feature between the baseline's and the current distribution and flags it above `comparison_threshold`
(default 0.1). Here the distance is the largest gap between the two cumulative distributions (the
two-sample Kolmogorov-Smirnov statistic) at the baseline's bucket bounds, and the "Robust" comparison also
asks it to exceed the KS test's critical value at 1% significance, 1.628 * sqrt((n + m) / (n * m)): a
few dozen captured requests differ from the training data by chance by more than 0.1.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

BUCKETS = 10  # the number of KLL buckets Model Monitor reports per numerical feature
COMPARISON_THRESHOLD = 0.1  # Model Monitor's default distribution comparison threshold
DATATYPE_CHECK_THRESHOLD = 0.1  # a feature fails data_type_check when more than this fraction is not numeric
KS_CRITICAL_1_PERCENT = 1.628  # c(alpha) of the two-sample Kolmogorov-Smirnov test at alpha = 0.01


def parse_number(text: str) -> float | None:
    """A finite number, or None for anything else (text, nan, inf)."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class FeatureProfile:
    """What one column holds: its numbers, how many cells were empty and how many were not numbers."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.values: list[float] = []
        self.missing = 0
        self.not_numeric = 0

    def add(self, cell: str) -> None:
        text = cell.strip()
        if not text:
            self.missing += 1
            return
        value = parse_number(text)
        if value is None:
            self.not_numeric += 1
        else:
            self.values.append(value)

    @property
    def present(self) -> int:
        return len(self.values) + self.not_numeric

    @property
    def inferred_type(self) -> str:
        if self.not_numeric > len(self.values):
            return "String"
        return "Integral" if all(v.is_integer() for v in self.values) else "Fractional"


def profile_rows(names: Sequence[str], rows: Iterable[Sequence[str]]) -> tuple[list[FeatureProfile], int]:
    """Profiles of the named columns (by position) over rows, and the number of rows read. A short row's
    absent cells count as missing; a long row's extra cells are ignored here (see `column_violations`)."""
    profiles = [FeatureProfile(name) for name in names]
    count = 0
    for row in rows:
        count += 1
        for index, feature in enumerate(profiles):
            feature.add(row[index] if index < len(row) else "")
    return profiles, count


def bucket_bounds(low: float, high: float) -> list[float]:
    """BUCKETS equal-width buckets over [low, high] (one point wide when every value is equal)."""
    if high <= low:
        return [low] * (BUCKETS + 1)
    width = (high - low) / BUCKETS
    return [low + width * i for i in range(BUCKETS)] + [high]


def _bucket_counts(values: Sequence[float], bounds: Sequence[float]) -> list[int]:
    counts = [0] * BUCKETS
    low, high = bounds[0], bounds[-1]
    for value in values:
        if high <= low:
            counts[0] += 1
            continue
        index = min(int((value - low) / (high - low) * BUCKETS), BUCKETS - 1)
        counts[max(index, 0)] += 1
    return counts


def feature_statistics(feature: FeatureProfile) -> dict[str, Any]:
    common = {"num_present": feature.present, "num_missing": feature.missing}
    entry: dict[str, Any] = {"name": feature.name, "inferred_type": feature.inferred_type}
    if entry["inferred_type"] == "String":
        entry["string_statistics"] = {"common": common}
        return entry
    values = feature.values
    numerical: dict[str, Any] = {"common": common}
    if values:
        total = math.fsum(values)
        mean = total / len(values)
        bounds = bucket_bounds(min(values), max(values))
        counts = _bucket_counts(values, bounds)
        numerical.update(
            mean=mean,
            sum=total,
            std_dev=math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values)),
            min=min(values),
            max=max(values),
            distribution={
                "kll": {
                    "buckets": [
                        {"lower_bound": bounds[i], "upper_bound": bounds[i + 1], "count": counts[i]}
                        for i in range(BUCKETS)
                    ]
                }
            },
        )
    entry["numerical_statistics"] = numerical
    return entry


def statistics(profiles: Sequence[FeatureProfile], item_count: int) -> dict[str, Any]:
    """statistics.json of a dataset."""
    return {
        "version": 0,
        "dataset": {"item_count": item_count},
        "features": [feature_statistics(p) for p in profiles],
    }


def constraints(stats: dict[str, Any]) -> dict[str, Any]:
    """constraints.json suggested from a baseline's statistics, as Model Monitor's baselining job does:
    the observed type and completeness, non-negativity where the baseline had no negative value."""
    features = []
    for feature in stats["features"]:
        numerical = feature.get("numerical_statistics") or feature.get("string_statistics") or {}
        common = numerical.get("common", {})
        present, missing = int(common.get("num_present", 0)), int(common.get("num_missing", 0))
        entry: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": present / (present + missing) if present + missing else 1.0,
        }
        if "min" in numerical:
            entry["num_constraints"] = {"is_non_negative": numerical["min"] >= 0}
        features.append(entry)
    return {
        "version": 0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": DATATYPE_CHECK_THRESHOLD,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": COMPARISON_THRESHOLD,
                "comparison_method": "Robust",
            },
        },
    }


def drift_distance(baseline_feature: dict[str, Any], values: Sequence[float]) -> float | None:
    """The largest gap between the baseline's cumulative distribution (from its buckets) and the current
    values', at the baseline's bucket bounds and just below its lowest bound; None without data."""
    buckets = baseline_feature.get("numerical_statistics", {}).get("distribution", {}).get("kll", {})
    buckets = buckets.get("buckets") or []
    total = sum(int(b["count"]) for b in buckets)
    if not values or not total:
        return None
    ordered = sorted(values)
    n = len(ordered)
    low, high = float(buckets[0]["lower_bound"]), float(buckets[-1]["upper_bound"])
    if low == high:  # a constant in the baseline: the share of current values that differ from it
        return 1 - (_fraction_at_or_below(ordered, low) - _fraction_below(ordered, low)) / n
    # below the baseline's minimum the baseline holds nothing
    gap = _fraction_below(ordered, float(buckets[0]["lower_bound"])) / n
    seen = 0
    for index, bucket in enumerate(buckets):
        seen += int(bucket["count"])
        bound = float(bucket["upper_bound"])
        # a bucket holds [lower, upper), the last one [lower, upper]: count the current values alike
        last = index == len(buckets) - 1
        current = (_fraction_at_or_below if last else _fraction_below)(ordered, bound) / n
        gap = max(gap, abs(seen / total - current))
    return gap


def _fraction_below(ordered: Sequence[float], bound: float) -> int:
    return bisect.bisect_left(ordered, bound)


def _fraction_at_or_below(ordered: Sequence[float], bound: float) -> int:
    return bisect.bisect_right(ordered, bound)


def drift_distances(
    baseline: dict[str, Any], limits: dict[str, Any], profiles: Sequence[FeatureProfile]
) -> dict[str, float]:
    """Each numerical feature's drift distance from the baseline (the `feature_baseline_drift_<name>`
    metric Model Monitor emits); none when the constraints turn the comparison off."""
    distribution = limits.get("monitoring_config", {}).get("distribution_constraints", {})
    if distribution.get("perform_comparison", "Enabled") != "Enabled":
        return {}
    by_name = {f["name"]: f for f in baseline.get("features", [])}
    found = {}
    for feature in profiles:
        distance = drift_distance(by_name.get(feature.name, {}), feature.values)
        if distance is not None:
            found[feature.name] = distance
    return found


def _baseline_count(feature: dict[str, Any]) -> int:
    buckets = feature.get("numerical_statistics", {}).get("distribution", {}).get("kll", {})
    return sum(int(b["count"]) for b in buckets.get("buckets") or [])


def critical_distance(n: int, m: int) -> float:
    """The KS distance two samples of n and m values exceed by chance only 1% of the time."""
    if n <= 0 or m <= 0:
        return math.inf
    return KS_CRITICAL_1_PERCENT * math.sqrt((n + m) / (n * m))


def column_violations(expected: int, widths: Iterable[int]) -> list[dict[str, str]]:
    """missing_column_check / extra_column_check: rows narrower or wider than the baseline's features."""
    seen = set(widths)
    found = []
    if seen and min(seen) < expected:
        found.append(
            {
                "feature_name": "",
                "constraint_check_type": "missing_column_check",
                "description": f"There are missing columns in current dataset. Number of columns in current "
                f"dataset: {min(seen)}, Number of columns in baseline constraints: {expected}",
            }
        )
    if seen and max(seen) > expected:
        found.append(
            {
                "feature_name": "",
                "constraint_check_type": "extra_column_check",
                "description": f"There are extra columns in current dataset. Number of columns in current "
                f"dataset: {max(seen)}, Number of columns in baseline constraints: {expected}",
            }
        )
    return found


def violations(
    baseline: dict[str, Any], limits: dict[str, Any], profiles: Sequence[FeatureProfile]
) -> list[dict[str, Any]]:
    """constraint_violations.json's entries for current profiles against a baseline and its constraints."""
    config = limits.get("monitoring_config", {})
    distribution = config.get("distribution_constraints", {})
    threshold = float(distribution.get("comparison_threshold", COMPARISON_THRESHOLD))
    type_threshold = float(config.get("datatype_check_threshold", DATATYPE_CHECK_THRESHOLD))
    robust = distribution.get("comparison_method", "Robust") == "Robust"
    baseline_counts = {f["name"]: _baseline_count(f) for f in baseline.get("features", [])}
    distances = drift_distances(baseline, limits, profiles)
    found: list[dict[str, Any]] = []
    constrained = {c["name"]: c for c in limits.get("features", [])}
    for feature in profiles:
        constraint = constrained.get(feature.name)
        cells = feature.present + feature.missing
        if constraint is None or not cells:
            continue
        if constraint.get("inferred_type") in ("Integral", "Fractional") and feature.present:
            numeric = len(feature.values) / feature.present
            if 1 - numeric > type_threshold:
                found.append(
                    {
                        "feature_name": feature.name,
                        "constraint_check_type": "data_type_check",
                        "description": f"Data type match requirement is not met. Expected data type: "
                        f"{constraint['inferred_type']}, Expected match: {100 * (1 - type_threshold):.1f}%. "
                        f"Observed: Only {100 * numeric:.1f}% of data is {constraint['inferred_type']}.",
                    }
                )
        completeness = feature.present / cells
        expected = float(constraint.get("completeness", 1.0))
        if completeness < expected:
            found.append(
                {
                    "feature_name": feature.name,
                    "constraint_check_type": "completeness_check",
                    "description": f"Data completeness requirement is not met. Expected: "
                    f"{100 * expected:.1f}% of data is non-null. Observed: Only {100 * completeness:.1f}% "
                    "of data is non-null.",
                }
            )
        distance = distances.get(feature.name)
        limit = threshold
        if robust and distance is not None:
            chance = critical_distance(baseline_counts.get(feature.name, 0), len(feature.values))
            limit = max(threshold, chance)
        if distance is not None and distance > limit:
            found.append(
                {
                    "feature_name": feature.name,
                    "constraint_check_type": "baseline_drift_check",
                    "description": f"Baseline drift distance: {distance:.4f} exceeds threshold: {limit:.4f}",
                }
            )
    return found


def read_csv_dir(input_dir: Path, target_column: str) -> tuple[list[str], list[list[str]]]:
    """Feature names (the header without the target column, in order) and rows of every CSV under
    input_dir; the preprocessing job's splits have a header and the target last."""
    names: list[str] | None = None
    rows: list[list[str]] = []
    for path in sorted(p for p in input_dir.rglob("*.csv") if p.is_file()):
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                continue
            if target_column not in header:
                raise ValueError(f"{path.name}: target column {target_column!r} is missing")
            keep = [i for i, name in enumerate(header) if name != target_column]
            if names is None:
                names = [header[i] for i in keep]
            elif [header[i] for i in keep] != names:
                raise ValueError(f"{path.name}: its columns differ from the other files'")
            rows.extend([row[i] if i < len(row) else "" for i in keep] for row in reader if row)
    if names is None:
        raise ValueError(f"{input_dir}: no CSV file with a header")
    return names, rows


def csv_rows(text: str) -> list[list[str]]:
    """The rows of a CSV payload (no header), as an endpoint receives it."""
    return [row for row in csv.reader(io.StringIO(text)) if row]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Baseline statistics and constraints of a CSV dataset.")
    parser.add_argument("--input-dir", default="/opt/ml/processing/input/baseline")
    parser.add_argument("--output-dir", default="/opt/ml/processing/output/baseline")
    parser.add_argument("--target-column", default="MEDV")
    parser.add_argument("--message-file", default="/opt/ml/output/message")
    args = parser.parse_args(argv)
    try:
        names, rows = read_csv_dir(Path(args.input_dir), args.target_column)
    except ValueError as error:  # explained to DescribeProcessingJob's ExitMessage (byoc-metadata)
        Path(args.message_file).parent.mkdir(parents=True, exist_ok=True)
        Path(args.message_file).write_text(str(error), encoding="utf-8")
        print(f"baseline refused: {error}", file=sys.stderr)
        return 1
    profiles, count = profile_rows(names, rows)
    stats = statistics(profiles, count)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "statistics.json").write_text(json.dumps(stats, indent=1) + "\n", encoding="utf-8")
    (out / "constraints.json").write_text(json.dumps(constraints(stats), indent=1) + "\n", encoding="utf-8")
    print(f"baseline of {count} rows, {len(names)} features written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
