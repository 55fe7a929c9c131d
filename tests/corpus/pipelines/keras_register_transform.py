"""Preprocess, train, create a model, register it and batch-transform, as the SageMaker Python SDK's docs and
AWS's examples write it: an `SKLearnProcessor` with `code=`, a `TensorFlow` estimator with
`entry_point`/`source_dir`, `TrainingStep`, `CreateModelStep`, `RegisterModel` (into a model package group
that no one created) and `TransformStep`; then `upsert`, `start`, `wait` and `list_steps`.

Run it against AWS as it is, or against the local cloud with `eval "$(localcloud env)"` first. It prints one
JSON line: the execution's status and each step's status.
"""

import json
import sys
import time
from pathlib import Path

from sagemaker.inputs import CreateModelInput, TrainingInput, TransformInput
from sagemaker.model import Model
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.tensorflow import TensorFlow
from sagemaker.transformer import Transformer
from sagemaker.workflow.parameters import ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.step_collections import RegisterModel
from sagemaker.workflow.steps import CreateModelStep, ProcessingStep, TrainingStep, TransformStep

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
CODE = Path(__file__).resolve().parents[1] / "code" / "keras"
DATA = Path(__file__).resolve().parents[3] / "data" / "boston_housing.csv"

session = PipelineSession()
bucket = session.default_bucket()
input_data = session.upload_data(str(DATA), bucket=bucket, key_prefix="keras-corpus/input")

epochs = ParameterInteger(name="Epochs", default_value=15)
group = ParameterString(name="ModelPackageGroup", default_value=f"keras-corpus-{int(time.time())}")

processor = SKLearnProcessor(
    framework_version="1.2-1",
    role=ROLE,
    instance_type="ml.m5.xlarge",
    instance_count=1,
    sagemaker_session=session,
)
preprocess = ProcessingStep(
    name="Preprocess",
    step_args=processor.run(
        code=str(CODE / "preprocess.py"),
        inputs=[ProcessingInput(source=input_data, destination="/opt/ml/processing/input")],
        outputs=[
            ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
            ProcessingOutput(output_name="validation", source="/opt/ml/processing/validation"),
            ProcessingOutput(output_name="test", source="/opt/ml/processing/test"),
        ],
        arguments=["--rows", "200"],
    ),
)

estimator = TensorFlow(
    entry_point="train.py",
    source_dir=str(CODE),
    role=ROLE,
    instance_count=1,
    instance_type="ml.m5.large",
    framework_version="2.13",
    py_version="py310",
    hyperparameters={"epochs": epochs, "learning-rate": 0.02},
    sagemaker_session=session,
)
outputs = preprocess.properties.ProcessingOutputConfig.Outputs
train = TrainingStep(
    name="Train",
    step_args=estimator.fit(
        {
            "train": TrainingInput(outputs["train"].S3Output.S3Uri, content_type="text/csv"),
            "validation": TrainingInput(outputs["validation"].S3Output.S3Uri, content_type="text/csv"),
        }
    ),
)

model = Model(
    image_uri=estimator.training_image_uri().replace("-training:", "-inference:").replace("-gpu-", "-cpu-"),
    model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
    role=ROLE,
    sagemaker_session=session,
)
create_model = CreateModelStep(
    name="CreateModel", model=model, inputs=CreateModelInput(instance_type="ml.m5.large")
)
register = RegisterModel(
    name="Register",
    estimator=estimator,
    model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
    content_types=["text/csv"],
    response_types=["application/json"],
    inference_instances=["ml.m5.large"],
    transform_instances=["ml.m5.large"],
    model_package_group_name=group,
    approval_status="PendingManualApproval",
)
transformer = Transformer(
    model_name=create_model.properties.ModelName,
    instance_type="ml.m5.large",
    instance_count=1,
    output_path=f"s3://{bucket}/keras-corpus/transform",
    accept="application/json",
    assemble_with="Line",
    sagemaker_session=session,
)
transform = TransformStep(
    name="Transform",
    transformer=transformer,
    inputs=TransformInput(data=outputs["test"].S3Output.S3Uri, content_type="text/csv", split_type="Line"),
)

pipeline = Pipeline(
    name="keras-corpus",
    parameters=[epochs, group],
    steps=[preprocess, train, create_model, register, transform],
    sagemaker_session=session,
)
pipeline.upsert(role_arn=ROLE)
execution = pipeline.start()
try:
    execution.wait(delay=2, max_attempts=600)
except Exception as error:  # the waiter raises when the execution fails; the status says how
    print(f"wait: {error}", file=sys.stderr)
described = execution.describe()
print(
    json.dumps(
        {
            "status": described["PipelineExecutionStatus"],
            "failure": described.get("FailureReason"),
            "steps": {s["StepName"]: s["StepStatus"] for s in execution.list_steps()},
            "metadata": {s["StepName"]: s.get("Metadata", {}) for s in execution.list_steps()},
            "group": group.default_value,
            "transform_output": transformer.output_path,
        },
        default=str,
    )
)
