"""The SageMaker Projects "build, train, deploy" template's pipeline, on this repository's data: an
`SKLearnProcessor` preprocesses; the **built-in XGBoost algorithm** trains (an `Estimator` with the image from
`image_uris.retrieve`, hyper-parameters only, CSV channels); a `ScriptProcessor` in the XGBoost image
evaluates into a `PropertyFile`; a `ConditionStep` on a `JsonGet` of it either registers the model
(`ModelStep` with `model.register`, into a group that may not exist yet) and creates it (`model.create`), or
ends in a `FailStep`.

    python builtin_xgboost_quality_gate.py [MSE_THRESHOLD]

It prints one JSON line: the execution's status, each step's status and the evaluation.
"""

import json
import sys
import time
from pathlib import Path

import sagemaker
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
from sagemaker.sklearn.processing import SKLearnProcessor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.steps import ProcessingStep, TrainingStep

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
CODE = Path(__file__).resolve().parents[1] / "code" / "xgboost"
DATA = Path(__file__).resolve().parents[3] / "data" / "boston_housing.csv"

session = PipelineSession()
region = session.boto_region_name
bucket = session.default_bucket()
input_data_url = session.upload_data(str(DATA), bucket=bucket, key_prefix="xgboost-corpus/input")

model_approval_status = ParameterString(name="ModelApprovalStatus", default_value="PendingManualApproval")
input_data = ParameterString(name="InputDataUrl", default_value=input_data_url)
mse_threshold = ParameterFloat(name="MseThreshold", default_value=40.0)
group_name = f"xgboost-corpus-{int(time.time())}"

sklearn_processor = SKLearnProcessor(
    framework_version="0.23-1",
    instance_type="ml.m5.xlarge",
    instance_count=1,
    base_job_name="sklearn-preprocess",
    sagemaker_session=session,
    role=ROLE,
)
step_process = ProcessingStep(
    name="PreprocessData",
    step_args=sklearn_processor.run(
        outputs=[
            ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
            ProcessingOutput(output_name="validation", source="/opt/ml/processing/validation"),
            ProcessingOutput(output_name="test", source="/opt/ml/processing/test"),
        ],
        inputs=[ProcessingInput(source=input_data, destination="/opt/ml/processing/input")],
        code=str(CODE / "preprocess.py"),
    ),
)

image_uri = sagemaker.image_uris.retrieve(
    framework="xgboost", region=region, version="1.0-1", py_version="py3", instance_type="ml.m5.xlarge"
)
xgb_train = Estimator(
    image_uri=image_uri,
    instance_type="ml.m5.xlarge",
    instance_count=1,
    output_path=f"s3://{bucket}/xgboost-corpus/train",
    base_job_name="train",
    sagemaker_session=session,
    role=ROLE,
)
xgb_train.set_hyperparameters(
    objective="reg:linear",
    num_round=50,
    max_depth=5,
    eta=0.2,
    gamma=4,
    min_child_weight=6,
    subsample=0.7,
    silent=0,
)
outputs = step_process.properties.ProcessingOutputConfig.Outputs
step_train = TrainingStep(
    name="TrainModel",
    step_args=xgb_train.fit(
        inputs={
            "train": TrainingInput(s3_data=outputs["train"].S3Output.S3Uri, content_type="text/csv"),
            "validation": TrainingInput(
                s3_data=outputs["validation"].S3Output.S3Uri, content_type="text/csv"
            ),
        }
    ),
)

script_eval = ScriptProcessor(
    image_uri=image_uri,
    command=["python3"],
    instance_type="ml.m5.xlarge",
    instance_count=1,
    base_job_name="script-eval",
    sagemaker_session=session,
    role=ROLE,
)
evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
step_eval = ProcessingStep(
    name="EvaluateModel",
    step_args=script_eval.run(
        inputs=[
            ProcessingInput(
                source=step_train.properties.ModelArtifacts.S3ModelArtifacts,
                destination="/opt/ml/processing/model",
            ),
            ProcessingInput(source=outputs["test"].S3Output.S3Uri, destination="/opt/ml/processing/test"),
        ],
        outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")],
        code=str(CODE / "evaluate.py"),
    ),
    property_files=[evaluation_report],
)

model_metrics = ModelMetrics(
    model_statistics=MetricsSource(
        s3_uri="{}/evaluation.json".format(
            step_eval.arguments["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
        ),
        content_type="application/json",
    )
)
model = Model(
    image_uri=image_uri,
    model_data=step_train.properties.ModelArtifacts.S3ModelArtifacts,
    sagemaker_session=session,
    role=ROLE,
)
step_register = ModelStep(
    name="RegisterModel",
    step_args=model.register(
        content_types=["text/csv"],
        response_types=["text/csv"],
        inference_instances=["ml.t2.medium", "ml.m5.large"],
        transform_instances=["ml.m5.large"],
        model_package_group_name=group_name,
        approval_status=model_approval_status,
        model_metrics=model_metrics,
    ),
)
step_create = ModelStep(name="CreateModel", step_args=model.create(instance_type="ml.m5.large"))
step_fail = FailStep(
    name="MseTooHigh",
    error_message=Join(on=" ", values=["Execution failed: the test MSE is above", mse_threshold]),
)
step_cond = ConditionStep(
    name="CheckMseEvaluation",
    conditions=[
        ConditionLessThanOrEqualTo(
            left=JsonGet(
                step_name=step_eval.name,
                property_file=evaluation_report,
                json_path="regression_metrics.mse.value",
            ),
            right=mse_threshold,
        )
    ],
    if_steps=[step_register, step_create],
    else_steps=[step_fail],
)

pipeline = Pipeline(
    name="xgboost-corpus",
    parameters=[model_approval_status, input_data, mse_threshold],
    steps=[step_process, step_train, step_eval, step_cond],
    sagemaker_session=session,
)
pipeline.upsert(role_arn=ROLE)
parameters = {"MseThreshold": float(sys.argv[1])} if len(sys.argv) > 1 else {}
execution = pipeline.start(parameters=parameters)
try:
    execution.wait(delay=2, max_attempts=600)
except Exception as error:  # the waiter raises when the execution fails; the status says how
    print(f"wait: {error}", file=sys.stderr)
described = execution.describe()
steps = execution.list_steps()
train_job = next(s for s in steps if s["StepName"] == "TrainModel")["Metadata"]["TrainingJob"]["Arn"]
print(
    json.dumps(
        {
            "status": described["PipelineExecutionStatus"],
            "failure": described.get("FailureReason"),
            "steps": {s["StepName"]: s["StepStatus"] for s in steps},
            "training_job": train_job.rsplit("/", 1)[-1],
            "group": group_name,
        },
        default=str,
    )
)
