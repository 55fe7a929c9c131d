"""Compare the production variants of an endpoint during an A/B test, from the metrics SageMaker publishes
per variant (CloudWatch AWS/SageMaker, dimensions EndpointName and VariantName: Invocations,
Invocation4XXErrors, Invocation5XXErrors, ModelLatency; developer guide, monitoring-cloudwatch).

    python tools/compare_variants.py ENDPOINT [--minutes 60] [--json]

Prints one row per variant with its current weight (DescribeEndpoint) and what it did over the last
`--minutes`: invocations, error rate and mean model latency. It reaches AWS with your credentials, or the
local cloud when ``AWS_ENDPOINT_URL`` points at it (the local cloud records the same metrics per request).
The deploy handler records the same figures with the decision that ends an A/B test.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers" / "shared"))

from orchestrator.promote import variant_metrics


def compare(
    endpoint: str, minutes: int, sagemaker: Any = None, cloudwatch: Any = None
) -> list[dict[str, Any]]:
    """One row per production variant: its weight now, and its measures since `minutes` ago."""
    described = (sagemaker or boto3.client("sagemaker")).describe_endpoint(EndpointName=endpoint)
    variants = described.get("ProductionVariants") or []
    since = datetime.now(UTC) - timedelta(minutes=minutes)
    measured = variant_metrics(
        endpoint, [v["VariantName"] for v in variants], since, cloudwatch or boto3.client("cloudwatch")
    )
    rows = []
    for variant in variants:
        name = variant["VariantName"]
        found = measured[name]
        calls = float(found["Invocations"] or 0)
        errors = float(found["Invocation4XXErrors"] or 0) + float(found["Invocation5XXErrors"] or 0)
        rows.append(
            {
                "variant": name,
                "weight": variant.get("CurrentWeight"),
                "invocations": int(calls),
                "errors": int(errors),
                "error_rate": round(errors / calls, 4) if calls else None,
                "model_latency_ms": None
                if found["ModelLatency"] is None
                else round(found["ModelLatency"] / 1000, 3),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("endpoint")
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = compare(args.endpoint, args.minutes)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'variant':<12} {'weight':>7} {'calls':>7} {'errors':>7} {'error rate':>11} {'latency ms':>11}")
    for row in rows:
        rate = "n/a" if row["error_rate"] is None else f"{row['error_rate']:.2%}"
        latency = "n/a" if row["model_latency_ms"] is None else f"{row['model_latency_ms']:.3f}"
        print(
            f"{row['variant']:<12} {row['weight'] if row['weight'] is not None else 'n/a':>7} "
            f"{row['invocations']:>7} {row['errors']:>7} {rate:>11} {latency:>11}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
