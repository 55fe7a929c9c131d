"""The shipped pipeline definition: what the builder synthesizes, and what a run needs from it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "layers" / "shared" / "orchestrator" / "pipeline_definition.json"
SYNTH_PYTHON = ROOT / ".venv-synth" / "bin" / "python"

REQUIRED_AT_START = {
    "InputDataUri",
    "CommitId",
    "RepositoryName",
    "ArtifactBucket",
    "PreprocessCodeUri",
    "EvaluateCodeUri",
    "BaselineCodeUri",
    "TrainingCodeUri",
    "ExecutionRoleArn",
    "ProcessingImageUri",
    "TrainingImageUri",
    "InferenceImageUri",
    "ModelPackageGroupName",
}


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    return json.loads(SHIPPED.read_text())


def all_steps(steps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for step in steps:
        found[step["Name"]] = step
        if step["Type"] == "Condition":
            found |= all_steps(step["Arguments"]["IfSteps"] + step["Arguments"]["ElseSteps"])
    return found


def references(node: Any) -> set[str]:
    """Names of the steps whose properties a node reads (its data dependencies)."""
    text = json.dumps(node)
    return set(re.findall(r'"Steps\.([A-Za-z0-9-]+)\.', text))


@pytest.mark.slow
def test_shipped_definition_is_what_the_builder_synthesizes_today(tmp_path: Path) -> None:
    assert SYNTH_PYTHON.exists(), "the SDK's virtualenv (.venv-synth) is missing: `make test` bootstraps it"
    # GIVEN the builder, run with the pinned SageMaker SDK
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "shared")}
    # WHEN it synthesizes the definition
    result = subprocess.run(
        [str(SYNTH_PYTHON), "-m", "orchestrator.pipeline_builder", "--output", str(tmp_path / "def.json")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # THEN the layer ships exactly that (run `make synth` after changing the builder)
    synthesized = json.loads((tmp_path / "def.json").read_text())
    assert synthesized == json.loads(SHIPPED.read_text()), "definition drift: run `make synth`"


def test_steps_run_preprocess_tune_evaluate_then_gate(definition: dict[str, Any]) -> None:
    steps = all_steps(definition["Steps"])
    assert [s["Name"] for s in definition["Steps"]] == [
        "PreprocessData",
        "BaselineData",
        "TuneModel",
        "EvaluateModel",
        "CheckQuality",
    ]
    assert {name: s["Type"] for name, s in steps.items()} == {
        "PreprocessData": "Processing",
        "BaselineData": "Processing",
        "TuneModel": "Tuning",
        "EvaluateModel": "Processing",
        "CheckQuality": "Condition",
        "RegisterModel-RegisterModel": "RegisterModel",
        "FailQualityGate": "Fail",
    }
    # Data dependencies: each step reads the outputs of the one before it.
    assert references(steps["TuneModel"]) == {"PreprocessData"}
    assert references(steps["EvaluateModel"]) == {"PreprocessData", "TuneModel"}
    assert references(steps["CheckQuality"]["Arguments"]["Conditions"]) == {"EvaluateModel"}
    assert references(steps["BaselineData"]) == {"PreprocessData"}
    assert references(steps["RegisterModel-RegisterModel"]) == {"TuneModel", "EvaluateModel", "BaselineData"}


def test_baseline_of_the_train_split_travels_with_the_package(definition: dict[str, Any]) -> None:
    steps = all_steps(definition["Steps"])
    args = steps["BaselineData"]["Arguments"]
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in args["ProcessingInputs"]}
    assert inputs["train"] == {
        "Get": "Steps.PreprocessData.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"
    }
    assert args["AppSpecification"]["ContainerEntrypoint"] == [
        "python3",
        "/opt/ml/processing/input/code/data_quality.py",
    ]
    # DriftCheckBaselines.ModelDataQuality{Statistics, Constraints} (botocore: MetricsSource)
    quality = steps["RegisterModel-RegisterModel"]["Arguments"]["DriftCheckBaselines"]["ModelDataQuality"]
    baseline = "Steps.BaselineData.ProcessingOutputConfig.Outputs['baseline'].S3Output.S3Uri"
    for part, name in (("Statistics", "statistics.json"), ("Constraints", "constraints.json")):
        assert quality[part]["ContentType"] == "application/json"
        assert quality[part]["S3Uri"] == {"Std:Join": {"On": "/", "Values": [{"Get": baseline}, name]}}


def test_quality_gate_compares_test_rmse_with_the_threshold(definition: dict[str, Any]) -> None:
    gate = all_steps(definition["Steps"])["CheckQuality"]["Arguments"]
    (condition,) = gate["Conditions"]
    assert condition["Type"] == "LessThanOrEqualTo"
    assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "regression_metrics.rmse.value"
    assert condition["RightValue"] == {"Get": "Parameters.RmseThreshold"}
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterModel-RegisterModel"]
    assert [s["Name"] for s in gate["ElseSteps"]] == ["FailQualityGate"]
    fail_message = json.dumps(gate["ElseSteps"][0]["Arguments"]["ErrorMessage"])
    assert "regression_metrics.rmse.value" in fail_message, "the failure names the measured RMSE"


def test_tuning_is_bayesian_and_minimises_validation_rmse(definition: dict[str, Any]) -> None:
    config = all_steps(definition["Steps"])["TuneModel"]["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {"MetricName": "validation:rmse", "Type": "Minimize"}
    ranges = config["ParameterRanges"]
    (lr,) = ranges["ContinuousParameterRanges"]
    assert (lr["Name"], float(lr["MinValue"]), float(lr["MaxValue"]), lr["ScalingType"]) == (
        "learning_rate",
        0.001,
        0.2,
        "Logarithmic",
    )
    integers = {r["Name"]: (int(r["MinValue"]), int(r["MaxValue"])) for r in ranges["IntegerParameterRanges"]}
    # The seed article's ranges (epochs 5-30, batch 64-256) widened to where 8 trials find a model that
    # fits: more passes and smaller batches (see docs/architecture.md, "Tuning ranges").
    assert integers == {"epochs": (5, 60), "batch_size": (32, 256)}
    assert integers["epochs"][0] <= 5 and integers["epochs"][1] >= 30
    assert integers["batch_size"][0] <= 64 and integers["batch_size"][1] >= 256
    assert config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": {"Get": "Parameters.MaxTuningJobs"},
        "MaxParallelTrainingJobs": {"Get": "Parameters.MaxParallelTuningJobs"},
    }


def test_training_code_enters_as_parameters_not_baked_in(definition: dict[str, Any]) -> None:
    steps = all_steps(definition["Steps"])
    job = steps["TuneModel"]["Arguments"]["TrainingJobDefinition"]
    assert job["StaticHyperParameters"]["sagemaker_program"] == "train.py"
    assert job["StaticHyperParameters"]["sagemaker_submit_directory"] == {"Get": "Parameters.TrainingCodeUri"}
    regexes = {m["Name"]: re.compile(m["Regex"]) for m in job["AlgorithmSpecification"]["MetricDefinitions"]}
    line = "epoch=7 loss=21.5 val_loss=18.25 val_rmse=4.272"
    assert {name: rx.search(line).group(1) for name, rx in regexes.items()} == {  # type: ignore[union-attr]
        "loss": "21.5",
        "validation:loss": "18.25",
        "validation:rmse": "4.272",
    }
    code_parameters = {
        "PreprocessData": "PreprocessCodeUri",
        "EvaluateModel": "EvaluateCodeUri",
        "BaselineData": "BaselineCodeUri",
    }
    for name, code_parameter in code_parameters.items():
        inputs = {i["InputName"]: i["S3Input"] for i in steps[name]["Arguments"]["ProcessingInputs"]}
        assert inputs["code"]["S3Uri"] == {"Get": f"Parameters.{code_parameter}"}


def test_preprocessing_input_is_sharded_over_instances(definition: dict[str, Any]) -> None:
    args = all_steps(definition["Steps"])["PreprocessData"]["Arguments"]
    data = next(i for i in args["ProcessingInputs"] if i["InputName"] == "data")["S3Input"]
    assert data["S3DataDistributionType"] == "ShardedByS3Key"
    assert args["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == {
        "Get": "Parameters.PreprocessInstanceCount"
    }


def test_steps_cache_so_unchanged_inputs_are_reused(definition: dict[str, Any]) -> None:
    steps = all_steps(definition["Steps"])
    for name in ("PreprocessData", "TuneModel", "EvaluateModel"):
        assert steps[name]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}


def test_registered_package_is_pending_and_stamped_with_the_commit(definition: dict[str, Any]) -> None:
    register = all_steps(definition["Steps"])["RegisterModel-RegisterModel"]["Arguments"]
    assert register["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    assert register["ModelPackageGroupName"] == {"Get": "Parameters.ModelPackageGroupName"}
    assert register["MetadataProperties"] == {
        "CommitId": {"Get": "Parameters.CommitId"},
        "Repository": {"Get": "Parameters.RepositoryName"},
        "GeneratedBy": {"Get": "Execution.PipelineExecutionArn"},
    }
    statistics = register["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert "evaluation.json" in json.dumps(statistics["S3Uri"])
    assert "report.html" in json.dumps(register["CustomerMetadataProperties"]["EvaluationReportUri"])


def test_parameters_cover_every_per_run_knob_and_pin_no_account_region_or_code(
    definition: dict[str, Any],
) -> None:
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    assert {name for name, p in parameters.items() if "DefaultValue" not in p} == REQUIRED_AT_START
    assert parameters["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    assert parameters["TargetColumn"]["DefaultValue"] == "MEDV"
    for knob in ("PreprocessInstanceCount", "MaxTuningJobs", "MaxParallelTuningJobs", "RmseThreshold"):
        assert knob in parameters
    text = SHIPPED.read_text()
    assert not re.search(r"\b\d{12}\b", text), "an account id is pinned"
    assert not re.search(r"\b(us|eu|ap|sa|ca|me|af)-[a-z]+-\d\b", text), "a region is pinned"
    assert "s3://" not in text, "an S3 location is pinned"
    assert "amazonaws.com" not in text, "an image URI is pinned"


def test_experiment_tracking_uses_pipeline_name_and_execution(definition: dict[str, Any]) -> None:
    assert definition["PipelineExperimentConfig"] == {
        "ExperimentName": {"Get": "Execution.PipelineName"},
        "TrialName": {"Get": "Execution.PipelineExecutionId"},
    }


def test_run_time_never_imports_the_sdk() -> None:
    # GIVEN the layer package, WHEN a handler's modules are imported, THEN the SDK is not among them
    code = (
        "import sys, importlib, pkgutil, orchestrator;"
        "[importlib.import_module('orchestrator.' + m.name)"
        " for m in pkgutil.iter_modules(orchestrator.__path__) if m.name != 'pipeline_builder'];"
        "print('sagemaker' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "shared")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
