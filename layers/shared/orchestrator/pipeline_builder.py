"""Build the SageMaker pipeline with the SageMaker Python SDK and synthesize its definition JSON.

This module and image_registry.py are the only ones that import the SDK (v2). It runs at build time
(`make synth`); the Lambda layer ships the JSON it writes and never imports this module.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

# The SDK must not phone home or need an account while it only synthesizes a definition.
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3
from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.metadata_properties import MetadataProperties
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.pipeline_experiment_config import PipelineExperimentConfig
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TuningStep

DEFAULT_OUTPUT = Path(__file__).with_name("pipeline_definition.json")

# Container paths of the processing jobs (the container contract in docs/architecture.md).
CODE_DIR = "/opt/ml/processing/input/code"
DATA_DIR = "/opt/ml/processing/input/data"
OUTPUT_DIR = "/opt/ml/processing/output"

# Metric lines printed by training_code/train.py: `epoch=3 loss=12.3 val_loss=14.5 val_rmse=3.81`.
NUMBER = r"([0-9\.eE+-]+)"
METRIC_DEFINITIONS = [
    {"Name": "loss", "Regex": rf"\bloss={NUMBER}"},
    {"Name": "validation:loss", "Regex": rf"val_loss={NUMBER}"},
    {"Name": "validation:rmse", "Regex": rf"val_rmse={NUMBER}"},
]
OBJECTIVE_METRIC = "validation:rmse"

SYNTH_SDK_CONFIG = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}


def _synth_session() -> PipelineSession:
    """A session that never calls AWS: steps are only captured, and every location is a parameter."""
    # Placeholder credentials stop botocore from searching for real ones; nothing is ever sent.
    boto_session = boto3.Session(
        aws_access_key_id="synth",
        aws_secret_access_key="synth",  # noqa: S106 - not a secret, see above
        region_name="us-east-1",
    )
    return PipelineSession(
        boto_session=boto_session,
        default_bucket="synth-only-never-used",
        sagemaker_config=SYNTH_SDK_CONFIG,
    )


def get_pipeline(pipeline_name: str = "mlops-pipeline", cache_expiry: str = "P30D") -> Pipeline:
    """Return the pipeline: PreprocessData → (BaselineData, TuneModel → EvaluateModel) → CheckQuality →
    RegisterModel.

    Everything that differs per account, region, run or commit is a pipeline parameter.
    """
    session = _synth_session()
    cache = CacheConfig(enable_caching=True, expire_after=cache_expiry)

    input_data_uri = ParameterString("InputDataUri")
    target_column = ParameterString("TargetColumn", default_value="MEDV")
    commit_id = ParameterString("CommitId")
    repository_name = ParameterString("RepositoryName")
    artifact_bucket = ParameterString("ArtifactBucket")
    preprocess_code_uri = ParameterString("PreprocessCodeUri")
    evaluate_code_uri = ParameterString("EvaluateCodeUri")
    baseline_code_uri = ParameterString("BaselineCodeUri")
    training_code_uri = ParameterString("TrainingCodeUri")
    role = ParameterString("ExecutionRoleArn")
    processing_image = ParameterString("ProcessingImageUri")
    training_image = ParameterString("TrainingImageUri")
    inference_image = ParameterString("InferenceImageUri")
    group_name = ParameterString("ModelPackageGroupName")
    preprocess_instance_type = ParameterString("PreprocessInstanceType", default_value="ml.m5.large")
    preprocess_instance_count = ParameterInteger("PreprocessInstanceCount", default_value=1)
    training_instance_type = ParameterString("TrainingInstanceType", default_value="ml.m5.large")
    evaluate_instance_type = ParameterString("EvaluateInstanceType", default_value="ml.m5.large")
    max_tuning_jobs = ParameterInteger("MaxTuningJobs", default_value=8)
    max_parallel_tuning_jobs = ParameterInteger("MaxParallelTuningJobs", default_value=2)
    rmse_threshold = ParameterFloat("RmseThreshold", default_value=6.0)
    approval_status = ParameterString("ModelApprovalStatus", default_value="PendingManualApproval")
    # Step caching keys on a step's arguments, never on what its S3 URIs hold (SageMaker developer guide,
    # pipelines-default-keys: Processing = AppSpecification, Environment, ProcessingInputs). A push passes
    # the constant "push", so new code reuses the last split of the data; a retraining passes its own
    # value, so the data at InputDataUri is read again and every later step runs on what it holds now.
    # (Never empty: StartPipelineExecution refuses "" as a parameter value, sagemaker-python-sdk#4016.)
    data_version = ParameterString("DataVersion", default_value="push")

    def s3(*parts: Any) -> Join:
        return Join(on="/", values=["s3:/", artifact_bucket, *parts])

    execution_id = ExecutionVariables.PIPELINE_EXECUTION_ID

    # PreprocessData: the scikit-learn container runs the commit's preprocess.py over sharded input.
    preprocessor = Processor(
        role=role,
        image_uri=processing_image,
        instance_count=preprocess_instance_count,
        instance_type=preprocess_instance_type,
        entrypoint=["python3", f"{CODE_DIR}/preprocess.py"],
        env={"DATA_VERSION": data_version},
        base_job_name="preprocess-data",
        sagemaker_session=session,
    )
    split_names = ("train", "validation", "test")
    preprocess = ProcessingStep(
        name="PreprocessData",
        step_args=preprocessor.run(
            inputs=[
                ProcessingInput(
                    input_name="data",
                    source=input_data_uri,
                    destination=DATA_DIR,
                    s3_data_distribution_type="ShardedByS3Key",
                ),
                ProcessingInput(input_name="code", source=preprocess_code_uri, destination=CODE_DIR),
            ],
            outputs=[
                ProcessingOutput(
                    output_name=split,
                    source=f"{OUTPUT_DIR}/{split}",
                    destination=s3("pipelines", execution_id, "PreprocessData", split),
                )
                for split in split_names
            ],
            arguments=["--target-column", target_column],
        ),
        cache_config=cache,
    )
    split_uri = {
        split: preprocess.properties.ProcessingOutputConfig.Outputs[split].S3Output.S3Uri
        for split in split_names
    }

    # BaselineData: statistics and constraints of the train split in Model Monitor's formats, by the layer's
    # data_quality.py (standard library only) in the scikit-learn container; they travel with the package as
    # its DriftCheckBaselines, and the monitor function compares captured requests with them.
    baseliner = Processor(
        role=role,
        image_uri=processing_image,
        instance_count=1,
        instance_type=preprocess_instance_type,
        entrypoint=["python3", f"{CODE_DIR}/data_quality.py"],
        base_job_name="baseline-data",
        sagemaker_session=session,
    )
    baseline = ProcessingStep(
        name="BaselineData",
        step_args=baseliner.run(
            inputs=[
                ProcessingInput(
                    input_name="train",
                    source=split_uri["train"],
                    destination="/opt/ml/processing/input/baseline",
                ),
                ProcessingInput(input_name="code", source=baseline_code_uri, destination=CODE_DIR),
            ],
            outputs=[
                ProcessingOutput(
                    output_name="baseline",
                    source=f"{OUTPUT_DIR}/baseline",
                    destination=s3("pipelines", execution_id, "BaselineData", "baseline"),
                )
            ],
            arguments=["--target-column", target_column],
        ),
        cache_config=cache,
    )
    baseline_uri = baseline.properties.ProcessingOutputConfig.Outputs["baseline"].S3Output.S3Uri

    # TuneModel: the TensorFlow training container runs train.py of the commit (training toolkit contract).
    estimator = Estimator(
        image_uri=training_image,
        role=role,
        instance_count=1,
        instance_type=training_instance_type,
        output_path=s3("pipelines", "training"),
        hyperparameters={
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": training_code_uri,
            "target_column": target_column,
        },
        metric_definitions=METRIC_DEFINITIONS,
        base_job_name="train-model",
        sagemaker_session=session,
        disable_profiler=True,
    )
    tuner = HyperparameterTuner(
        estimator=estimator,
        objective_metric_name=OBJECTIVE_METRIC,
        objective_type="Minimize",
        metric_definitions=METRIC_DEFINITIONS,
        hyperparameter_ranges={
            "learning_rate": ContinuousParameter(0.001, 0.2, scaling_type="Logarithmic"),
            "epochs": IntegerParameter(5, 60),
            "batch_size": IntegerParameter(32, 256),
        },
        strategy="Bayesian",
        max_jobs=max_tuning_jobs,
        max_parallel_jobs=max_parallel_tuning_jobs,
        base_tuning_job_name="tune-model",
    )
    tune = TuningStep(
        name="TuneModel",
        step_args=tuner.fit(
            inputs={
                "train": TrainingInput(s3_data=split_uri["train"], content_type="text/csv"),
                "validation": TrainingInput(s3_data=split_uri["validation"], content_type="text/csv"),
            }
        ),
        cache_config=cache,
    )
    best_model_uri = tune.get_top_model_s3_uri(
        top_k=0, s3_bucket=artifact_bucket, prefix="pipelines/training"
    )

    # EvaluateModel: scores the best training job's model on the held-out test split.
    evaluator = Processor(
        role=role,
        image_uri=training_image,
        instance_count=1,
        instance_type=evaluate_instance_type,
        entrypoint=["python3", f"{CODE_DIR}/evaluate.py"],
        base_job_name="evaluate-model",
        sagemaker_session=session,
    )
    evaluation_report = PropertyFile(
        name="EvaluationReport", output_name="evaluation", path="evaluation.json"
    )
    evaluate = ProcessingStep(
        name="EvaluateModel",
        step_args=evaluator.run(
            inputs=[
                ProcessingInput(
                    input_name="model", source=best_model_uri, destination="/opt/ml/processing/input/model"
                ),
                ProcessingInput(
                    input_name="test", source=split_uri["test"], destination="/opt/ml/processing/input/test"
                ),
                ProcessingInput(input_name="code", source=evaluate_code_uri, destination=CODE_DIR),
            ],
            outputs=[
                ProcessingOutput(
                    output_name="evaluation",
                    source=f"{OUTPUT_DIR}/evaluation",
                    destination=s3("pipelines", execution_id, "EvaluateModel", "evaluation"),
                )
            ],
            arguments=["--target-column", target_column],
        ),
        property_files=[evaluation_report],
        cache_config=cache,
    )
    evaluation_uri = evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri
    rmse = JsonGet(
        step_name=evaluate.name, property_file=evaluation_report, json_path="regression_metrics.rmse.value"
    )

    # RegisterModel: a package for the TensorFlow Serving image, pending approval, stamped with the commit.
    model = Model(
        image_uri=inference_image,
        model_data=best_model_uri,
        role=role,
        sagemaker_session=session,
    )
    register = ModelStep(
        name="RegisterModel",
        step_args=model.register(
            content_types=["text/csv", "application/json"],
            response_types=["application/json", "text/csv"],
            inference_instances=["ml.t2.medium", "ml.m5.large", "ml.m5.xlarge", "ml.c5.large"],
            transform_instances=["ml.m5.large", "ml.m5.xlarge"],
            model_package_group_name=group_name,
            approval_status=approval_status,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(
                    s3_uri=Join(on="/", values=[evaluation_uri, "evaluation.json"]),
                    content_type="application/json",
                )
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=MetricsSource(
                    s3_uri=Join(on="/", values=[baseline_uri, "statistics.json"]),
                    content_type="application/json",
                ),
                model_data_constraints=MetricsSource(
                    s3_uri=Join(on="/", values=[baseline_uri, "constraints.json"]),
                    content_type="application/json",
                ),
            ),
            metadata_properties=MetadataProperties(
                commit_id=commit_id,
                repository=repository_name,
                generated_by=ExecutionVariables.PIPELINE_EXECUTION_ARN,
            ),
            customer_metadata_properties={
                "CommitId": commit_id,
                "RepositoryName": repository_name,
                "EvaluationReportUri": Join(on="/", values=[evaluation_uri, "report.html"]),
            },
            description=Join(on=" ", values=["Commit", commit_id, "of", repository_name]),
        ),
    )
    fail = FailStep(
        name="FailQualityGate",
        error_message=Join(
            on=" ", values=["Test RMSE", rmse, "is above the quality threshold", rmse_threshold]
        ),
    )
    check = ConditionStep(
        name="CheckQuality",
        conditions=[ConditionLessThanOrEqualTo(left=rmse, right=rmse_threshold)],
        if_steps=[register],
        else_steps=[fail],
    )

    pipeline = Pipeline(
        name=pipeline_name,
        parameters=[
            input_data_uri,
            target_column,
            commit_id,
            repository_name,
            artifact_bucket,
            preprocess_code_uri,
            evaluate_code_uri,
            baseline_code_uri,
            training_code_uri,
            role,
            processing_image,
            training_image,
            inference_image,
            group_name,
            preprocess_instance_type,
            preprocess_instance_count,
            training_instance_type,
            evaluate_instance_type,
            max_tuning_jobs,
            max_parallel_tuning_jobs,
            rmse_threshold,
            approval_status,
            data_version,
        ],
        steps=[preprocess, baseline, tune, evaluate, check],
        pipeline_experiment_config=PipelineExperimentConfig(
            ExecutionVariables.PIPELINE_NAME, ExecutionVariables.PIPELINE_EXECUTION_ID
        ),
        sagemaker_session=session,
    )
    return pipeline


def synthesize(pipeline_name: str = "mlops-pipeline") -> dict[str, Any]:
    """The definition as a dict, keys sorted so that equal pipelines give equal bytes."""
    return json.loads(get_pipeline(pipeline_name).definition())


def render(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Synthesize the SageMaker pipeline definition JSON.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="file to write ('-' for stdout)")
    args = parser.parse_args(argv)
    text = render(synthesize())
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"wrote {args.output} ({len(text)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
