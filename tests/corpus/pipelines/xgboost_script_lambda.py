"""The XGBoost estimator in script mode, checked by a Lambda function, as the SDK documents `LambdaStep`:
an `SKLearnProcessor` prepares the data; an `XGBoost` estimator with an `entry_point` trains (script mode
in the XGBoost image); a `LambdaStep` whose function the SDK creates from a script (`Lambda(script=...,
handler=...)`, with its execution role made first, as AWS's LambdaStep example does) looks at the model
artifact and returns typed outputs; a `ConditionStep` on one of them creates the model or fails.

It prints one JSON line: the execution's status, each step's status and the Lambda step's outputs.
"""

import json
import sys
import time
from pathlib import Path

import boto3
from sagemaker.inputs import TrainingInput
from sagemaker.lambda_helper import Lambda
from sagemaker.model import Model
from sagemaker.processing import ProcessingInput, ProcessingOutput
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.lambda_step import LambdaOutput, LambdaOutputTypeEnum, LambdaStep
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import ProcessingStep, TrainingStep
from sagemaker.xgboost.estimator import XGBoost

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
CODE = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[3] / "data" / "boston_housing.csv"

session = PipelineSession()
bucket = session.default_bucket()
input_data = session.upload_data(str(DATA), bucket=bucket, key_prefix="xgboost-script-corpus/input")

# the Lambda function's execution role (Lambda refuses a role that does not exist)
iam = boto3.client("iam")
role_name = f"corpus-lambda-{int(time.time())}"
lambda_role = iam.create_role(
    RoleName=role_name,
    AssumeRolePolicyDocument=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    ),
)["Role"]["Arn"]

prepare = ProcessingStep(
    name="Prepare",
    step_args=SKLearnProcessor(
        framework_version="1.2-1",
        role=ROLE,
        instance_type="ml.m5.xlarge",
        instance_count=1,
        sagemaker_session=session,
    ).run(
        code=str(CODE / "code" / "keras" / "preprocess.py"),
        inputs=[ProcessingInput(source=input_data, destination="/opt/ml/processing/input")],
        outputs=[
            ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
            ProcessingOutput(output_name="validation", source="/opt/ml/processing/validation"),
            ProcessingOutput(output_name="test", source="/opt/ml/processing/test"),
        ],
    ),
)
estimator = XGBoost(
    entry_point="train.py",
    source_dir=str(CODE / "code" / "xgboost_script"),
    framework_version="1.7-1",
    role=ROLE,
    instance_type="ml.m5.large",
    instance_count=1,
    hyperparameters={"max_depth": 4, "num_round": 40},
    sagemaker_session=session,
)
outputs = prepare.properties.ProcessingOutputConfig.Outputs
train = TrainingStep(
    name="Train",
    step_args=estimator.fit(
        {
            "train": TrainingInput(outputs["train"].S3Output.S3Uri, content_type="text/csv"),
            "validation": TrainingInput(outputs["validation"].S3Output.S3Uri, content_type="text/csv"),
        }
    ),
)
decision = LambdaOutput(output_name="decision", output_type=LambdaOutputTypeEnum.String)
size = LambdaOutput(output_name="size", output_type=LambdaOutputTypeEnum.Integer)
check = LambdaStep(
    name="CheckModel",
    lambda_func=Lambda(
        function_name=f"corpus-check-model-{int(time.time())}",
        execution_role_arn=lambda_role,
        script=str(CODE / "code" / "xgboost_script" / "check_model.py"),
        handler="check_model.lambda_handler",
        timeout=60,
        session=session,
    ),
    inputs={"model_data": train.properties.ModelArtifacts.S3ModelArtifacts, "min_bytes": 100},
    outputs=[decision, size],
)
model = Model(
    image_uri=estimator.training_image_uri(),
    model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
    role=ROLE,
    sagemaker_session=session,
)
gate = ConditionStep(
    name="KeepTheModel",
    conditions=[ConditionEquals(left=check.properties.Outputs["decision"], right="keep")],
    if_steps=[ModelStep(name="CreateModel", step_args=model.create(instance_type="ml.m5.large"))],
    else_steps=[FailStep(name="ModelTooSmall", error_message="the model artifact is too small")],
)

pipeline = Pipeline(
    name="xgboost-script-corpus", steps=[prepare, train, check, gate], sagemaker_session=session
)
pipeline.upsert(role_arn=ROLE)
execution = pipeline.start()
try:
    execution.wait(delay=2, max_attempts=600)
except Exception as error:  # the waiter raises when the execution fails; the status says how
    print(f"wait: {error}", file=sys.stderr)
steps = execution.list_steps()
lambda_step = next((s for s in steps if s["StepName"] == "CheckModel"), {})
print(
    json.dumps(
        {
            "status": execution.describe()["PipelineExecutionStatus"],
            "steps": {s["StepName"]: s["StepStatus"] for s in steps},
            "lambda": lambda_step.get("Metadata", {}).get("Lambda", {}),
            "failures": {s["StepName"]: s["FailureReason"] for s in steps if s.get("FailureReason")},
        },
        default=str,
    )
)
