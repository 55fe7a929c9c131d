"""Batch transforms of the models the XGBoost and scikit-learn containers serve, as the SDK writes them: the
built-in XGBoost algorithm and an `SKLearn` estimator train on the same split; `ModelStep`s create a model of
each (`Model` in the XGBoost image; `SKLearnModel` with an `inference.py` defining `model_fn`); a
`TransformStep` each, with the knobs CreateTransformJob documents: `SplitType=Line`, `BatchStrategy`
(`MultiRecord` up to `MaxPayloadInMB`, and `SingleRecord`), `AssembleWith=Line`, and the Accept type.

It prints one JSON line: the execution's status, each step's status and where each transform wrote.
"""

import json
import sys
from pathlib import Path

import sagemaker
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput, TransformInput
from sagemaker.model import Model
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.estimator import SKLearn
from sagemaker.sklearn.model import SKLearnModel
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.transformer import Transformer
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import ProcessingStep, TrainingStep, TransformStep

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
CODE = Path(__file__).resolve().parents[1] / "code"
DATA = Path(__file__).resolve().parents[3] / "data" / "boston_housing.csv"

session = PipelineSession()
bucket = session.default_bucket()
input_data = session.upload_data(str(DATA), bucket=bucket, key_prefix="transform-corpus/input")

prepare = ProcessingStep(
    name="Prepare",
    step_args=SKLearnProcessor(
        framework_version="1.2-1",
        role=ROLE,
        instance_type="ml.m5.xlarge",
        instance_count=1,
        sagemaker_session=session,
    ).run(
        code=str(CODE / "keras" / "preprocess.py"),
        inputs=[ProcessingInput(source=input_data, destination="/opt/ml/processing/input")],
        outputs=[
            ProcessingOutput(output_name=name, source=f"/opt/ml/processing/{name}")
            for name in ("train", "validation", "test")
        ],
    ),
)
outputs = prepare.properties.ProcessingOutputConfig.Outputs
channels = {
    name: TrainingInput(outputs[name].S3Output.S3Uri, content_type="text/csv")
    for name in ("train", "validation")
}

xgboost_image = sagemaker.image_uris.retrieve("xgboost", session.boto_region_name, version="1.7-1")
xgboost = Estimator(
    image_uri=xgboost_image,
    role=ROLE,
    instance_type="ml.m5.large",
    instance_count=1,
    hyperparameters={"num_round": 40, "max_depth": 4, "eta": 0.2, "objective": "reg:squarederror"},
    sagemaker_session=session,
)
train_xgboost = TrainingStep(name="TrainXGBoost", step_args=xgboost.fit(channels))
sklearn = SKLearn(
    entry_point="train.py",
    source_dir=str(CODE / "sklearn"),
    framework_version="1.2-1",
    instance_type="ml.m5.large",
    role=ROLE,
    hyperparameters={"alpha": 1.0},
    sagemaker_session=session,
)
train_sklearn = TrainingStep(name="TrainSKLearn", step_args=sklearn.fit(channels))

xgboost_model = Model(
    image_uri=xgboost_image,
    model_data=train_xgboost.properties.ModelArtifacts.S3ModelArtifacts,
    role=ROLE,
    sagemaker_session=session,
)
sklearn_model = SKLearnModel(
    model_data=train_sklearn.properties.ModelArtifacts.S3ModelArtifacts,
    role=ROLE,
    entry_point="inference.py",
    source_dir=str(CODE / "sklearn"),
    framework_version="1.2-1",
    sagemaker_session=session,
)
create_xgboost = ModelStep(name="XGBoostModel", step_args=xgboost_model.create(instance_type="ml.m5.large"))
create_sklearn = ModelStep(name="SKLearnModel", step_args=sklearn_model.create(instance_type="ml.m5.large"))

test_data = outputs["test"].S3Output.S3Uri
xgboost_output = f"s3://{bucket}/transform-corpus/xgboost"
sklearn_output = f"s3://{bucket}/transform-corpus/sklearn"
transform_xgboost = TransformStep(
    name="TransformXGBoost",
    transformer=Transformer(
        model_name=create_xgboost.properties.ModelName,
        instance_type="ml.m5.large",
        instance_count=1,
        strategy="MultiRecord",
        max_payload=1,
        assemble_with="Line",
        accept="text/csv",
        output_path=xgboost_output,
        sagemaker_session=session,
    ),
    inputs=TransformInput(data=test_data, content_type="text/csv", split_type="Line"),
)
transform_sklearn = TransformStep(
    name="TransformSKLearn",
    transformer=Transformer(
        model_name=create_sklearn.properties.ModelName,
        instance_type="ml.m5.large",
        instance_count=1,
        strategy="SingleRecord",
        assemble_with="Line",
        accept="application/json",
        output_path=sklearn_output,
        sagemaker_session=session,
    ),
    inputs=TransformInput(data=test_data, content_type="text/csv", split_type="Line"),
)

pipeline = Pipeline(
    name="transform-corpus",
    steps=[
        prepare,
        train_xgboost,
        train_sklearn,
        create_xgboost,
        create_sklearn,
        transform_xgboost,
        transform_sklearn,
    ],
    sagemaker_session=session,
)
pipeline.upsert(role_arn=ROLE)
execution = pipeline.start()
try:
    execution.wait(delay=2, max_attempts=600)
except Exception as error:  # the waiter raises when the execution fails; the status says how
    print(f"wait: {error}", file=sys.stderr)
steps = execution.list_steps()
print(
    json.dumps(
        {
            "status": execution.describe()["PipelineExecutionStatus"],
            "steps": {s["StepName"]: s["StepStatus"] for s in steps},
            "failures": {s["StepName"]: s["FailureReason"] for s in steps if s.get("FailureReason")},
            "outputs": {"xgboost": xgboost_output, "sklearn": sklearn_output},
        },
        default=str,
    )
)
