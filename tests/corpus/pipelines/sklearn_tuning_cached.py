"""Scikit-learn in script mode, tuned, with step caching and a parallelism limit, as the SDK documents them:
a `FrameworkProcessor` with `source_dir` (its entry script imports a module beside it) and an
`SKLearnProcessor` with `code=` run side by side; an `SKLearn` estimator with `entry_point`/`source_dir` is
tuned by a `HyperparameterTuner` in a `TuningStep` (Bayesian, 4 trials, 2 at a time); the best trial's
model (`get_top_model_s3_uri`) is registered with `ModelStep`/`SKLearnModel.register` into a model package
group that already exists. Both processing steps are cached (`CacheConfig`), and the pipeline runs one step
at a time (`ParallelismConfiguration`). It runs twice: the second execution takes both processing steps
from the cache.

It prints one JSON line: each execution's status and steps, and the tuning job's name.
"""

import json
import sys
import time
from pathlib import Path

import boto3
from sagemaker.inputs import TrainingInput
from sagemaker.processing import FrameworkProcessor, ProcessingInput, ProcessingOutput
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.sklearn.model import SKLearnModel
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TuningStep

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
CODE = Path(__file__).resolve().parents[1] / "code" / "sklearn"
DATA = Path(__file__).resolve().parents[3] / "data" / "boston_housing.csv"

session = PipelineSession()
bucket = session.default_bucket()
input_data = session.upload_data(str(DATA), bucket=bucket, key_prefix="sklearn-corpus/input")
group = f"sklearn-corpus-{int(time.time())}"
boto3.client("sagemaker").create_model_package_group(
    ModelPackageGroupName=group, ModelPackageGroupDescription="registered into by the sklearn corpus pipeline"
)
cache = CacheConfig(enable_caching=True, expire_after="PT1H")

framework_processor = FrameworkProcessor(
    estimator_cls=SKLearn,
    framework_version="1.2-1",
    role=ROLE,
    instance_type="ml.m5.xlarge",
    instance_count=1,
    sagemaker_session=session,
)
prepare = ProcessingStep(
    name="Prepare",
    step_args=framework_processor.run(
        code="prepare.py",
        source_dir=str(CODE),
        inputs=[ProcessingInput(source=input_data, destination="/opt/ml/processing/input")],
        outputs=[
            ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
            ProcessingOutput(output_name="validation", source="/opt/ml/processing/validation"),
        ],
    ),
    cache_config=cache,
)
describe = ProcessingStep(
    name="Describe",
    step_args=SKLearnProcessor(
        framework_version="1.2-1",
        role=ROLE,
        instance_type="ml.m5.xlarge",
        instance_count=1,
        sagemaker_session=session,
    ).run(
        code=str(CODE / "describe.py"),
        inputs=[ProcessingInput(source=input_data, destination="/opt/ml/processing/input")],
        outputs=[ProcessingOutput(output_name="summary", source="/opt/ml/processing/summary")],
    ),
    cache_config=cache,
)

estimator = SKLearn(
    entry_point="train.py",
    source_dir=str(CODE),
    framework_version="1.2-1",
    py_version="py3",
    instance_type="ml.m5.large",
    role=ROLE,
    output_path=f"s3://{bucket}/sklearn-corpus/models",
    sagemaker_session=session,
)
metric = [{"Name": "validation:rmse", "Regex": r"validation rmse: ([0-9\.]+)"}]
tuner = HyperparameterTuner(
    estimator,
    objective_metric_name="validation:rmse",
    objective_type="Minimize",
    hyperparameter_ranges={"alpha": ContinuousParameter(0.01, 100, scaling_type="Logarithmic")},
    metric_definitions=metric,
    max_jobs=4,
    max_parallel_jobs=2,
    strategy="Bayesian",
)
outputs = prepare.properties.ProcessingOutputConfig.Outputs
tune = TuningStep(
    name="Tune",
    step_args=tuner.fit(
        {
            "train": TrainingInput(outputs["train"].S3Output.S3Uri, content_type="text/csv"),
            "validation": TrainingInput(outputs["validation"].S3Output.S3Uri, content_type="text/csv"),
        }
    ),
)
best = SKLearnModel(
    model_data=tune.get_top_model_s3_uri(top_k=0, s3_bucket=bucket, prefix="sklearn-corpus/models"),
    role=ROLE,
    entry_point="inference.py",
    source_dir=str(CODE),
    framework_version="1.2-1",
    sagemaker_session=session,
)
register = ModelStep(
    name="RegisterBest",
    step_args=best.register(
        content_types=["text/csv"],
        response_types=["text/csv"],
        inference_instances=["ml.m5.large"],
        transform_instances=["ml.m5.large"],
        model_package_group_name=group,
        approval_status="PendingManualApproval",
    ),
)

pipeline = Pipeline(
    name="sklearn-corpus", steps=[prepare, describe, tune, register], sagemaker_session=session
)
pipeline.upsert(role_arn=ROLE, parallelism_config={"MaxParallelExecutionSteps": 1})
report = {"group": group, "executions": []}
for _ in range(2):
    execution = pipeline.start()
    try:
        execution.wait(delay=2, max_attempts=600)
    except Exception as error:  # the waiter raises when the execution fails; the status says how
        print(f"wait: {error}", file=sys.stderr)
    steps = execution.list_steps()
    report["executions"].append(
        {
            "arn": execution.arn,
            "status": execution.describe()["PipelineExecutionStatus"],
            "steps": {s["StepName"]: s["StepStatus"] for s in steps},
            "times": {s["StepName"]: [s.get("StartTime"), s.get("EndTime")] for s in steps},
            "cache_hits": {
                s["StepName"]: s["CacheHitResult"]["SourcePipelineExecutionArn"]
                for s in steps
                if s.get("CacheHitResult")
            },
            "tuning_job": next(s for s in steps if s["StepName"] == "Tune")["Metadata"]["TuningJob"]["Arn"],
        }
    )
print(json.dumps(report, default=str))
