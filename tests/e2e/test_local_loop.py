"""The whole loop on the local cloud: push → pipeline → approve → staging → smoke test → promotion →
production → predictions → lineage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_push_runs_the_pipeline_and_approval_deploys_a_serving_endpoint(tmp_path: Path) -> None:
    # GIVEN a fresh local cloud and the sample training code, with a small tuning budget
    command = [
        sys.executable,
        "-m",
        "localcloud",
        "demo",
        "--workdir",
        str(tmp_path / "cloud"),
        "--max-tuning-jobs",
        "2",
        "--max-parallel-tuning-jobs",
        "2",
        "--rows",
        "4",
    ]
    # WHEN the demo pushes, waits for the run, approves the package and invokes the endpoint
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    # THEN every phase succeeded and the last line tells the whole story
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["execution_status"] == "Succeeded"
    assert len(summary["commit"]) == 40
    assert summary["model_package_arn"].endswith("/1")
    assert 0 < summary["test_rmse"] < 10
    assert summary["endpoint_name"] == "mlops-demo-endpoint"
    # staged promotion: the smoke test passed on staging, and production serves the same package
    assert summary["smoke_test"]["Stage"] == "Staging" and summary["smoke_test"]["StageStatus"] == "Passed"
    assert "20 rows, 0 errors" in summary["smoke_test"]["StageDescription"]
    assert summary["predictions_from"] == summary["production_endpoint_name"] == "mlops-demo-production"
    production = summary["production_lineage"]["serving"]
    assert production["package_arn"] == summary["model_package_arn"]
    assert production["reason"] == "promoted"
    assert len(summary["predictions"]) == 4
    for pair in summary["predictions"]:
        assert 0 < pair["predicted"] < 80, "a house price in $1000s"
        assert abs(pair["predicted"] - pair["actual"]) < 25
    serving = summary["lineage"]["serving"]
    assert serving["commit_id"] == summary["commit"]
    assert serving["execution_arn"] == summary["pipeline_execution_arn"]
    assert serving["package_arn"] == summary["model_package_arn"]
    assert serving["approval_status"] == "Approved"
    assert set(serving["hyperparameters"]) >= {"learning_rate", "epochs", "batch_size"}
    # the lineage, drawn as a graph from the ledger and SageMaker's view of the run
    picture = summary["lineage_picture"]
    assert Path(picture["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(picture["kinds"]) == {
        "data", "commit", "execution", "step", "trial", "evaluation", "package", "endpoint config", "endpoint"
    }  # fmt: skip
    assert set(summary["seconds"]) >= {"push training code", "pipeline run", "approve and deploy", "predict"}
