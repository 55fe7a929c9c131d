"""Parameters, execution variables and branches, as the SDK's pipeline guide writes them: typed parameters
(`ParameterString`, `ParameterInteger`, `ParameterBoolean`), an output destination `Join`ed from
`ExecutionVariables.PIPELINE_EXECUTION_ID`, container arguments from both, a `ScriptProcessor` in the
scikit-learn image, an explicit `DependsOn`, and a `ConditionStep` on a boolean parameter choosing a branch.
The pipeline is started twice, with each value of the flag, then listed and described.

It prints one JSON line: each execution's status, steps and output prefix.
"""

import json
import sys
from pathlib import Path

import sagemaker
from sagemaker.processing import ProcessingOutput, ScriptProcessor
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionEquals
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join
from sagemaker.workflow.parameters import ParameterBoolean, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.pipeline_context import PipelineSession
from sagemaker.workflow.steps import ProcessingStep

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecutionRole"
CODE = Path(__file__).resolve().parents[1] / "code" / "params"

session = PipelineSession()
bucket = session.default_bucket()
instance_type = ParameterString(name="ProcessingInstanceType", default_value="ml.m5.large")
rows = ParameterInteger(name="Rows", default_value=10)
publish = ParameterBoolean(name="Publish", default_value=False)

processor = ScriptProcessor(
    image_uri=sagemaker.image_uris.retrieve("sklearn", session.boto_region_name, version="1.2-1"),
    command=["python3"],
    role=ROLE,
    instance_type=instance_type,
    instance_count=1,
    sagemaker_session=session,
)
destination = Join(on="/", values=["s3:/", bucket, "params-corpus", ExecutionVariables.PIPELINE_EXECUTION_ID])


def summarize(name: str) -> ProcessingStep:
    return ProcessingStep(
        name=name,
        step_args=processor.run(
            code=str(CODE / "summarize.py"),
            outputs=[
                ProcessingOutput(
                    output_name="out",
                    source="/opt/ml/processing/out",
                    destination=Join(on="/", values=[destination, name]),
                )
            ],
            arguments=[
                "--execution-id",
                ExecutionVariables.PIPELINE_EXECUTION_ID,
                "--rows",
                rows.to_string(),
            ],
        ),
    )


first = summarize("Summarize")
audit = summarize("Audit")
audit.add_depends_on([first])
branch = ConditionStep(
    name="ShouldPublish",
    conditions=[ConditionEquals(left=publish, right=True)],
    if_steps=[summarize("Publish")],
    else_steps=[FailStep(name="NotPublished", error_message=Join(on=" ", values=["not published:", rows]))],
)
branch.add_depends_on([audit])

pipeline = Pipeline(
    name="params-corpus",
    parameters=[instance_type, rows, publish],
    steps=[first, audit, branch],
    sagemaker_session=session,
)
pipeline.upsert(role_arn=ROLE)
report = {"executions": []}
for flag, count in ((True, 7), (False, 3)):
    execution = pipeline.start(parameters={"Publish": flag, "Rows": count})
    try:
        execution.wait(delay=2, max_attempts=300)
    except Exception as error:  # the waiter raises when the execution fails; the status says how
        print(f"wait: {error}", file=sys.stderr)
    described = execution.describe()
    steps = execution.list_steps()
    report["executions"].append(
        {
            "publish": flag,
            "id": execution.arn.rsplit("/", 1)[-1],
            "status": described["PipelineExecutionStatus"],
            "failure": described.get("FailureReason"),
            "steps": {s["StepName"]: s["StepStatus"] for s in steps},
            "order": [s["StepName"] for s in sorted(steps, key=lambda s: s["StartTime"])],
        }
    )
report["listed"] = len(pipeline.list_executions()["PipelineExecutionSummaries"])
report["pipeline"] = pipeline.describe()["PipelineName"]
report["bucket"] = bucket
print(json.dumps(report, default=str))
