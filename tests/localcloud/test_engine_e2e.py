"""The real pipeline definition, run by the engine with the real job runner and the real training code."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.aws import EmbeddedAws
from localcloud.engine import PipelineEngine, ProgressUpdate

ROOT = Path(__file__).resolve().parents[2]
CODE = ROOT / "training_code"
SCRIPTS = ("preprocess.py", "train.py", "evaluate.py", "inference.py")

pytestmark = [pytest.mark.slow]


def _put_content_addressed(s3: Any, bucket: str, name: str, body: bytes) -> str:
    key = f"code/{hashlib.sha256(body).hexdigest()}/{name}"
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def _sourcedir() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for script in ("train.py", "inference.py"):
            info = archive.gettarinfo(str(CODE / script), arcname=script)
            info.mtime = 0  # content-addressed: the same code gives the same bytes
            with (CODE / script).open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


@pytest.fixture
def job_runner(client: Callable[[str], Any], tmp_path: Path) -> Iterator[Any]:
    from localcloud.runtime.jobs import JobRunner

    with JobRunner(tmp_path / "jobs", client("s3"), max_workers=2) as runner:
        runner.warm_up(wait=True)
        yield runner


def test_real_pipeline_preprocesses_tunes_evaluates_and_registers(
    embedded_aws: EmbeddedAws, job_runner: Any, client: Callable[[str], Any], tmp_path: Path
) -> None:
    # GIVEN the sample data and the training code in S3, and the synthesized definition as a pipeline
    s3, sagemaker = client("s3"), client("sagemaker")
    bucket = f"engine-e2e-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket, Key="data/boston_housing.csv", Body=(ROOT / "data/boston_housing.csv").read_bytes()
    )
    sagemaker.create_model_package_group(ModelPackageGroupName=bucket)
    pipeline = f"engine-e2e-{uuid.uuid4().hex[:8]}"
    sagemaker.create_pipeline(
        PipelineName=pipeline,
        PipelineDefinition=(ROOT / "layers/shared/orchestrator/pipeline_definition.json").read_text(),
        RoleArn="arn:aws:iam::123456789012:role/pipeline",
    )
    parameters = {
        "InputDataUri": f"s3://{bucket}/data",
        "CommitId": "e2e0000",
        "RepositoryName": "demo",
        "ArtifactBucket": bucket,
        "PreprocessCodeUri": _put_content_addressed(
            s3, bucket, "preprocess.py", (CODE / "preprocess.py").read_bytes()
        ),
        "EvaluateCodeUri": _put_content_addressed(
            s3, bucket, "evaluate.py", (CODE / "evaluate.py").read_bytes()
        ),
        "BaselineCodeUri": _put_content_addressed(
            s3, bucket, "data_quality.py", (ROOT / "layers/shared/orchestrator/data_quality.py").read_bytes()
        ),
        "TrainingCodeUri": _put_content_addressed(s3, bucket, "sourcedir.tar.gz", _sourcedir()),
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/sagemaker",
        "ProcessingImageUri": "sklearn",
        "TrainingImageUri": "tensorflow-training",
        "InferenceImageUri": "tensorflow-inference",
        "ModelPackageGroupName": bucket,
        "MaxTuningJobs": "4",
        "MaxParallelTuningJobs": "2",
    }
    engine = PipelineEngine(embedded_aws, job_runner, tmp_path / "engine", tuning_seed=1).attach()
    trials: list[ProgressUpdate] = []
    engine.add_progress_listener(lambda u: trials.append(u) if u.message.startswith("trial ") else None)
    try:
        # WHEN an execution is started through the API
        began = time.monotonic()
        arn = sagemaker.start_pipeline_execution(
            PipelineName=pipeline,
            PipelineParameters=[{"Name": k, "Value": v} for k, v in parameters.items()],
            ClientRequestToken=uuid.uuid4().hex,
        )["PipelineExecutionArn"]
        status = engine.wait(arn, timeout=540)
        wall = time.monotonic() - began
    finally:
        engine.close()

    # THEN it succeeded through every step and registered a package pointing at the best trial's model
    listed = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    steps = {s["StepName"]: s for s in listed}
    assert status == "Succeeded", {n: s.get("FailureReason") for n, s in steps.items()}
    assert set(steps) == {
        "PreprocessData",
        "BaselineData",
        "TuneModel",
        "EvaluateModel",
        "CheckQuality",
        "RegisterModel-RegisterModel",
    }
    tuning_arn = steps["TuneModel"]["Metadata"]["TuningJob"]["Arn"]
    tuning = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_arn.rsplit("/", 1)[1]
    )
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 4
    best = tuning["BestTrainingJob"]
    package = sagemaker.describe_model_package(
        ModelPackageName=steps["RegisterModel-RegisterModel"]["Metadata"]["RegisterModel"]["Arn"]
    )
    model_url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert best["TrainingJobName"] in model_url
    report_key = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"].split(f"s3://{bucket}/", 1)[1]
    report = json.loads(s3.get_object(Bucket=bucket, Key=report_key)["Body"].read())
    test_rmse = report["regression_metrics"]["rmse"]["value"]
    assert 0 < test_rmse <= 6.0
    # AND the package carries the train split's data-quality baseline as its drift-check baselines
    # (DriftCheckBaselines.ModelDataQuality, API_DriftCheckModelDataQuality), in Model Monitor's formats
    quality = package["DriftCheckBaselines"]["ModelDataQuality"]
    baseline = {}
    for part, source in quality.items():
        assert source["ContentType"] == "application/json"
        key = source["S3Uri"].split(f"s3://{bucket}/", 1)[1]
        baseline[part] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    with (ROOT / "data/boston_housing.csv").open(newline="") as handle:
        header = next(csv.reader(handle))
    features = [c for c in header if c != "MEDV"]
    assert [f["name"] for f in baseline["Statistics"]["features"]] == features
    assert [f["name"] for f in baseline["Constraints"]["features"]] == features
    train_rows = baseline["Statistics"]["dataset"]["item_count"]
    assert 250 < train_rows < 506  # the train split, not the whole file
    tuning_seconds = (steps["TuneModel"]["EndTime"] - steps["TuneModel"]["StartTime"]).total_seconds()
    print(
        json.dumps(
            {
                "pipeline_wall_s": round(wall, 1),
                "tuning_s": round(tuning_seconds, 1),
                "trials_per_min": round(4 / tuning_seconds * 60, 2),
                "best_val_rmse": best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                "test_rmse": test_rmse,
                "steps_s": {
                    n: round((s["EndTime"] - s["StartTime"]).total_seconds(), 1) for n, s in steps.items()
                },
            }
        )
    )
