"""The pipeline engine against the embedded AWS, with an in-memory job runner standing in for real jobs.

The fake runner behaves like the real one at its interface: it writes each processing output to S3,
uploads a model for each training job, and reports a validation RMSE that depends on the hyper-parameters
(a smooth bowl around lr=0.02, epochs=20, batch_size=128), so the search has something real to find.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from localcloud.aws import EmbeddedAws
from localcloud.engine import PipelineEngine, ProgressUpdate
from localcloud.engine.steps import FailedJob
from localcloud.runtime.jobs import RunnerClosedError

DEFINITION_PATH = Path(__file__).resolve().parents[2] / "layers/shared/orchestrator/pipeline_definition.json"


@dataclass
class FakeJobResult:
    job_name: str
    status: str
    failure_reason: str | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    model_artifacts: str | None = None


def bowl(hyper_parameters: dict[str, str]) -> float:
    """The fake model's validation RMSE: 3.0 at the optimum, growing away from it."""
    lr = float(hyper_parameters.get("learning_rate", 0.02))
    epochs = int(hyper_parameters.get("epochs", 20))
    batch = int(hyper_parameters.get("batch_size", 128))
    return 3.0 + (math.log10(lr / 0.02)) ** 2 + ((epochs - 20) / 10) ** 2 + ((batch - 128) / 128) ** 2


class FakeRunner:
    """``JobRunner``'s interface, in memory: outputs to S3, metrics from ``bowl``, concurrency measured."""

    def __init__(self, s3: Any, job_seconds: float = 0.05, test_rmse: float = 4.2):
        self.s3 = s3
        self.job_seconds = job_seconds
        self.test_rmse = test_rmse
        self.fail_jobs_matching: str | None = None
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.running = 0
        self.max_running = 0
        self.max_running_training = 0
        self._running_training = 0
        self._lock = threading.Lock()

    def _enter(self, kind: str) -> None:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            if kind == "training":
                self._running_training += 1
                self.max_running_training = max(self.max_running_training, self._running_training)

    def _leave(self, kind: str) -> None:
        with self._lock:
            self.running -= 1
            if kind == "training":
                self._running_training -= 1

    def _put(self, uri: str, body: bytes) -> None:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        self.s3.put_object(Bucket=bucket, Key=key, Body=body)

    def _input_digest(self, uris: list[str]) -> str:
        digest = hashlib.sha256()
        for uri in uris:
            bucket, _, prefix = uri.removeprefix("s3://").partition("/")
            for item in self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
                digest.update(item["ETag"].encode())
        return digest.hexdigest()[:12]

    def run_processing(self, job_name: str, request: dict[str, Any]) -> FakeJobResult:
        self._enter("processing")
        try:
            with self._lock:
                self.calls.append(("processing", job_name, request))
            time.sleep(self.job_seconds)
            if self.fail_jobs_matching and self.fail_jobs_matching in job_name:
                return FakeJobResult(
                    job_name, "Failed", "AlgorithmError: column 'MEDV' is missing in data.csv"
                )
            inputs = [i["S3Input"]["S3Uri"] for i in request.get("ProcessingInputs", [])]
            digest = self._input_digest(inputs)
            for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
                uri = output["S3Output"]["S3Uri"].rstrip("/")
                if output["OutputName"] == "evaluation":
                    report = {
                        "regression_metrics": {"rmse": {"value": self.test_rmse}, "mae": {"value": 2.0}}
                    }
                    self._put(f"{uri}/evaluation.json", json.dumps(report).encode())
                else:
                    self._put(
                        f"{uri}/{output['OutputName']}-algo-1.csv", f"a,b,MEDV\n1,2,{digest}\n".encode()
                    )
            return FakeJobResult(job_name, "Completed")
        finally:
            self._leave("processing")

    def run_training(self, job_name: str, request: dict[str, Any]) -> FakeJobResult:
        self._enter("training")
        try:
            with self._lock:
                self.calls.append(("training", job_name, request))
            time.sleep(self.job_seconds)
            artifacts = (
                f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job_name}/output/model.tar.gz"
            )
            self._put(artifacts, b"model bytes of " + job_name.encode())
            rmse = bowl(request["HyperParameters"])
            return FakeJobResult(
                job_name,
                "Completed",
                final_metrics={"validation:rmse": rmse, "loss": rmse**2},
                model_artifacts=artifacts,
            )
        finally:
            self._leave("training")

    def jobs(self, kind: str) -> list[str]:
        return [name for k, name, _ in self.calls if k == kind]


@pytest.fixture
def bucket(client: Callable[[str], Any], unique: Callable[[str], str]) -> str:
    name = unique("engine-artifacts")
    client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def runner(client: Callable[[str], Any]) -> FakeRunner:
    return FakeRunner(client("s3"))


@pytest.fixture
def engine(embedded_aws: EmbeddedAws, runner: FakeRunner, tmp_path: Path) -> Iterator[PipelineEngine]:
    engine = PipelineEngine(embedded_aws, runner, tmp_path / "engine", tuning_seed=7).attach()
    yield engine
    engine.close()


def create_pipeline(client: Callable[[str], Any], name: str, definition: dict[str, Any] | str) -> None:
    text = definition if isinstance(definition, str) else json.dumps(definition)
    client("sagemaker").create_pipeline(
        PipelineName=name, PipelineDefinition=text, RoleArn="arn:aws:iam::123456789012:role/pipeline"
    )


def start(client: Callable[[str], Any], name: str, parameters: dict[str, Any], **extra: Any) -> str:
    reply = client("sagemaker").start_pipeline_execution(
        PipelineName=name,
        PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in parameters.items()],
        ClientRequestToken=extra.pop("token", uuid.uuid4().hex),
        **extra,
    )
    return str(reply["PipelineExecutionArn"])


def steps_of(client: Callable[[str], Any], arn: str) -> dict[str, dict[str, Any]]:
    listed = client("sagemaker").list_pipeline_execution_steps(PipelineExecutionArn=arn)[
        "PipelineExecutionSteps"
    ]
    return {step["StepName"]: step for step in listed}


def upload(client: Callable[[str], Any], bucket: str, key: str, body: bytes) -> str:
    client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return f"s3://{bucket}/{key}"


def real_parameters(
    client: Callable[[str], Any],
    bucket: str,
    training_code: bytes = b"train v1",
    data_csv: bytes = b"a,b,MEDV\n1,2,3\n",
    **overrides: Any,
) -> dict[str, Any]:
    data = upload(client, bucket, "data/boston.csv", data_csv)
    params: dict[str, Any] = {
        "InputDataUri": data.rsplit("/", 1)[0],
        "CommitId": "abc123",
        "RepositoryName": "demo-repo",
        "ArtifactBucket": bucket,
        "PreprocessCodeUri": upload(client, bucket, "code/p1/preprocess.py", b"print('pre')"),
        "EvaluateCodeUri": upload(client, bucket, "code/e1/evaluate.py", b"print('eval')"),
        "BaselineCodeUri": upload(client, bucket, "code/b1/data_quality.py", b"print('baseline')"),
        "TrainingCodeUri": upload(
            client,
            bucket,
            f"code/{hashlib.sha256(training_code).hexdigest()[:8]}/sourcedir.tar.gz",
            training_code,
        ),
        "ExecutionRoleArn": "arn:aws:iam::123456789012:role/sagemaker",
        "ProcessingImageUri": "sklearn:1.2",
        "TrainingImageUri": "tensorflow-training:2.13",
        "InferenceImageUri": "tensorflow-inference:2.13",
        "ModelPackageGroupName": bucket,
        "MaxTuningJobs": 4,
        "MaxParallelTuningJobs": 2,
    }
    params.update(overrides)
    return params


@pytest.fixture
def real_pipeline(client: Callable[[str], Any], unique: Callable[[str], str], bucket: str) -> str:
    name = unique("engine-real")
    create_pipeline(client, name, DEFINITION_PATH.read_text())
    client("sagemaker").create_model_package_group(ModelPackageGroupName=bucket)
    return name


# --- the project's own definition --------------------------------------------------------------------


def test_quality_gate_passes_registers_model_package_of_best_trial(
    engine: PipelineEngine, runner: FakeRunner, client: Callable[[str], Any], real_pipeline: str, bucket: str
) -> None:
    # GIVEN the synthesized definition and an evaluation RMSE (4.2) under the threshold (6.0)
    arn = start(client, real_pipeline, real_parameters(client, bucket))

    # WHEN the execution runs to its end
    status = engine.wait(arn, timeout=60)

    # THEN it succeeded, every step ran in order, and the package points at the best trial's model
    sagemaker = client("sagemaker")
    described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert status == "Succeeded" and described["PipelineExecutionStatus"] == "Succeeded"
    steps = steps_of(client, arn)
    assert {n: s["StepStatus"] for n, s in steps.items()} == {
        "PreprocessData": "Succeeded",
        "BaselineData": "Succeeded",
        "TuneModel": "Succeeded",
        "EvaluateModel": "Succeeded",
        "CheckQuality": "Succeeded",
        "RegisterModel-RegisterModel": "Succeeded",
    }
    assert steps["CheckQuality"]["Metadata"]["Condition"]["Outcome"] == "True"
    listed = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]
    assert listed[0]["StepName"] == "RegisterModel-RegisterModel"  # newest first, as AWS lists them
    assert listed[-1]["StepName"] == "PreprocessData"
    tuning_name = steps["TuneModel"]["Metadata"]["TuningJob"]["Arn"].rsplit("/", 1)[1]
    trials = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_name, SortBy="FinalObjectiveMetricValue", SortOrder="Ascending"
    )["TrainingJobSummaries"]
    best = trials[0]["TrainingJobName"]
    package_arn = steps["RegisterModel-RegisterModel"]["Metadata"]["RegisterModel"]["Arn"]
    package = sagemaker.describe_model_package(ModelPackageName=package_arn)
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == f"s3://{bucket}/pipelines/training/{best}/output/model.tar.gz"
    assert container["Image"] == "tensorflow-inference:2.13"
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["MetadataProperties"]["GeneratedBy"] == arn
    assert package["CustomerMetadataProperties"]["CommitId"] == "abc123"
    execution_id = arn.rsplit("/", 1)[1]
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == (
        f"s3://{bucket}/pipelines/{execution_id}/EvaluateModel/evaluation/evaluation.json"
    )
    # the evaluation read the best model and the preprocessing's test split
    evaluate = next(r for k, n, r in runner.calls if "EvaluateModel" in n)
    inputs = {i["InputName"]: i["S3Input"]["S3Uri"] for i in evaluate["ProcessingInputs"]}
    assert inputs["model"] == container["ModelDataUrl"]
    assert inputs["test"] == f"s3://{bucket}/pipelines/{execution_id}/PreprocessData/test"
    assert evaluate["AppSpecification"]["ContainerArguments"] == ["--target-column", "MEDV"]


def test_quality_gate_fails_with_the_resolved_message(
    engine: PipelineEngine, runner: FakeRunner, client: Callable[[str], Any], real_pipeline: str, bucket: str
) -> None:
    # GIVEN an evaluation RMSE (7.5) above a threshold given at start (5.0)
    runner.test_rmse = 7.5
    arn = start(client, real_pipeline, real_parameters(client, bucket, RmseThreshold=5.0))

    # WHEN it runs
    engine.wait(arn, timeout=60)

    # THEN the execution failed with the FailStep's message, and nothing was registered
    described = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "Test RMSE 7.5 is above the quality threshold 5.0"
    steps = steps_of(client, arn)
    assert steps["CheckQuality"]["Metadata"]["Condition"]["Outcome"] == "False"
    assert steps["FailQualityGate"]["StepStatus"] == "Failed"
    assert steps["FailQualityGate"]["Metadata"]["Fail"]["ErrorMessage"] == described["FailureReason"]
    assert "RegisterModel-RegisterModel" not in steps


def test_missing_required_parameter_fails_the_execution(
    engine: PipelineEngine, runner: FakeRunner, client: Callable[[str], Any], real_pipeline: str, bucket: str
) -> None:
    # GIVEN a start without CommitId, which has no default
    parameters = real_parameters(client, bucket)
    del parameters["CommitId"]
    arn = start(client, real_pipeline, parameters)

    # WHEN the engine picks it up
    engine.wait(arn, timeout=30)

    # THEN the execution failed naming the parameter, and no job ran
    described = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "Parameter 'CommitId' is undefined."
    assert runner.calls == []


def test_processing_job_request_is_resolved_and_visible_through_describe(
    engine: PipelineEngine, runner: FakeRunner, client: Callable[[str], Any], real_pipeline: str, bucket: str
) -> None:
    # GIVEN two preprocessing instances asked for at start
    arn = start(client, real_pipeline, real_parameters(client, bucket, PreprocessInstanceCount=2))
    engine.wait(arn, timeout=60)

    # WHEN the preprocessing job is described through the API
    steps = steps_of(client, arn)
    job_name = steps["PreprocessData"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    job = client("sagemaker").describe_processing_job(ProcessingJobName=job_name)

    # THEN it is the fully resolved request, completed, with the integer parameter typed
    execution_id = arn.rsplit("/", 1)[1]
    assert job_name.startswith(f"pipelines-{execution_id}-PreprocessData-")
    assert job["ProcessingJobStatus"] == "Completed"
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    outputs = {o["OutputName"]: o["S3Output"]["S3Uri"] for o in job["ProcessingOutputConfig"]["Outputs"]}
    assert outputs["train"] == f"s3://{bucket}/pipelines/{execution_id}/PreprocessData/train"
    request = next(r for k, n, r in runner.calls if n == job_name)
    assert request["ProcessingInputs"][0]["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2


def test_tuning_runs_n_trials_at_most_p_at_once_and_ranks_best_first(
    engine: PipelineEngine, runner: FakeRunner, client: Callable[[str], Any], real_pipeline: str, bucket: str
) -> None:
    # GIVEN a tuning budget of 6 trials, 3 at a time, each taking a moment
    runner.job_seconds = 0.3
    arn = start(
        client, real_pipeline, real_parameters(client, bucket, MaxTuningJobs=6, MaxParallelTuningJobs=3)
    )

    # WHEN it runs
    assert engine.wait(arn, timeout=60) == "Succeeded"

    # THEN 6 training jobs ran, never more than 3 at once (and 3 did overlap)
    trials = runner.jobs("training")
    assert len(trials) == 6
    assert runner.max_running_training == 3
    # AND the tuning job reports them, best first, with the sampled values inside the declared ranges
    sagemaker = client("sagemaker")
    tuning_name = steps_of(client, arn)["TuneModel"]["Metadata"]["TuningJob"]["Arn"].rsplit("/", 1)[1]
    tuning = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_name)
    assert tuning["HyperParameterTuningJobStatus"] == "Completed"
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 6
    assert tuning["ObjectiveStatusCounters"]["Succeeded"] == 6
    summaries = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_name, MaxResults=100
    )["TrainingJobSummaries"]
    values = {
        s["TrainingJobName"]: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries
    }
    assert tuning["BestTrainingJob"]["TrainingJobName"] == min(values, key=values.__getitem__)
    declared = tuning["HyperParameterTuningJobConfig"]["ParameterRanges"]
    bounds = {
        r["Name"]: (float(r["MinValue"]), float(r["MaxValue"]))
        for kind in ("ContinuousParameterRanges", "IntegerParameterRanges")
        for r in declared[kind]
    }
    assert set(bounds) == {"learning_rate", "epochs", "batch_size"}
    for summary in summaries:
        for name, value in summary["TunedHyperParameters"].items():
            assert bounds[name][0] <= float(value) <= bounds[name][1], (name, value)
            if name != "learning_rate":
                assert float(value).is_integer()
    # AND each trial is a training job with the static hyper-parameters and its real objective
    best = sagemaker.describe_training_job(TrainingJobName=tuning["BestTrainingJob"]["TrainingJobName"])
    assert best["HyperParameters"]["sagemaker_program"] == "train.py"
    assert best["HyperParameters"]["sagemaker_submit_directory"].endswith("sourcedir.tar.gz")
    assert best["TuningJobArn"] == tuning["HyperParameterTuningJobArn"]
    metrics = {m["MetricName"]: m["Value"] for m in best["FinalMetricDataList"]}
    assert metrics["validation:rmse"] == pytest.approx(bowl(best["HyperParameters"]))
    assert [d["Name"] for d in best["AlgorithmSpecification"]["MetricDefinitions"]] == [
        "loss",
        "validation:loss",
        "validation:rmse",
    ]


def test_failed_preprocessing_fails_the_execution_and_starts_nothing_after_it(
    engine: PipelineEngine, runner: FakeRunner, client: Callable[[str], Any], real_pipeline: str, bucket: str
) -> None:
    # GIVEN a preprocessing job that fails
    runner.fail_jobs_matching = "PreprocessData"
    arn = start(client, real_pipeline, real_parameters(client, bucket))

    # WHEN it runs
    engine.wait(arn, timeout=30)

    # THEN the step failed with the job's reason and no later step started
    described = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineExecutionStatus"] == "Failed"
    assert described["FailureReason"] == "Step failure: One or multiple steps failed."
    steps = steps_of(client, arn)
    assert list(steps) == ["PreprocessData"]
    assert "column 'MEDV' is missing" in steps["PreprocessData"]["FailureReason"]
    job_name = steps["PreprocessData"]["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    job = client("sagemaker").describe_processing_job(ProcessingJobName=job_name)
    assert job["ProcessingJobStatus"] == "Failed"


def test_second_run_with_new_training_code_reuses_preprocessing_until_a_new_data_version(
    engine: PipelineEngine, runner: FakeRunner, client: Callable[[str], Any], real_pipeline: str, bucket: str
) -> None:
    # GIVEN a first successful run
    first = start(client, real_pipeline, real_parameters(client, bucket, training_code=b"train v1"))
    assert engine.wait(first, timeout=60) == "Succeeded"
    preprocess_jobs = len(runner.jobs("processing"))

    # WHEN a second run changes only the training code
    second = start(client, real_pipeline, real_parameters(client, bucket, training_code=b"train v2"))
    assert engine.wait(second, timeout=60) == "Succeeded"

    # THEN PreprocessData is a cache hit from the first run, and tuning and evaluation ran again
    steps = steps_of(client, second)
    assert steps["PreprocessData"]["CacheHitResult"]["SourcePipelineExecutionArn"] == first
    assert "CacheHitResult" not in steps["TuneModel"]
    assert "CacheHitResult" not in steps["EvaluateModel"]
    assert len(runner.jobs("processing")) == preprocess_jobs + 1  # only EvaluateModel
    # the tuning read the first run's preprocessing output (the cached step's properties)
    first_id = first.rsplit("/", 1)[1]
    last_training = next(r for k, n, r in reversed(runner.calls) if k == "training")
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in last_training["InputDataConfig"]
    }
    assert channels["train"] == f"s3://{bucket}/pipelines/{first_id}/PreprocessData/train"

    # AND WHEN a third run changes nothing, every cacheable step is a hit
    third = start(client, real_pipeline, real_parameters(client, bucket, training_code=b"train v2"))
    assert engine.wait(third, timeout=60) == "Succeeded"
    steps = steps_of(client, third)
    assert steps["TuneModel"]["CacheHitResult"]["SourcePipelineExecutionArn"] == second
    assert steps["EvaluateModel"]["CacheHitResult"]["SourcePipelineExecutionArn"] == second

    # AND WHEN new data replaces the old under the same URI, it is still a hit: AWS keys a processing
    # step on AppSpecification, Environment and ProcessingInputs, never on what the URIs hold (SageMaker
    # developer guide, pipelines-default-keys)
    new_data = b"a,b,MEDV\n1,2,3\n4,5,6\n"
    fourth = start(client, real_pipeline, real_parameters(client, bucket, b"train v2", new_data))
    assert engine.wait(fourth, timeout=60) == "Succeeded"
    assert steps_of(client, fourth)["PreprocessData"]["CacheHitResult"]["SourcePipelineExecutionArn"] == first

    # AND WHEN a run gives a new DataVersion (PreprocessData's Environment), preprocessing runs again
    fifth = start(
        client,
        real_pipeline,
        real_parameters(client, bucket, b"train v2", new_data, DataVersion="schedule:1"),
    )
    assert engine.wait(fifth, timeout=60) == "Succeeded"
    steps = steps_of(client, fifth)
    assert "CacheHitResult" not in steps["PreprocessData"]
    assert "CacheHitResult" not in steps["TuneModel"]  # it reads the new split's URIs


def test_execution_and_step_events_are_emitted_like_aws(
    engine: PipelineEngine, client: Callable[[str], Any], real_pipeline: str, bucket: str, events: Any
) -> None:
    # GIVEN a progress listener
    updates: list[ProgressUpdate] = []
    remove = engine.add_progress_listener(updates.append)

    # WHEN an execution runs
    arn = start(
        client, real_pipeline, real_parameters(client, bucket), PipelineExecutionDisplayName="demo-run"
    )
    engine.wait(arn, timeout=60)
    remove()

    # THEN the execution status change events go Executing -> Succeeded with AWS's detail fields
    changes = events.of("SageMaker Model Building Pipeline Execution Status Change", pipelineExecutionArn=arn)
    final = changes[-1]
    assert final["source"] == "aws.sagemaker"
    assert final["detail"]["currentPipelineExecutionStatus"] == "Succeeded"
    assert final["detail"]["previousPipelineExecutionStatus"] == "Executing"
    assert final["detail"]["pipelineExecutionDisplayName"] == "demo-run"
    assert final["detail"]["pipelineArn"] == arn.split("/execution/")[0]
    assert {"executionStartTime", "executionEndTime"} <= final["detail"].keys()
    assert arn in final["resources"]
    # AND each step reports its transitions with its job in the metadata
    step_events = events.of(
        "SageMaker Model Building Pipeline Execution Step Status Change", pipelineExecutionArn=arn
    )
    preprocess = [e["detail"] for e in step_events if e["detail"]["stepName"] == "PreprocessData"]
    assert preprocess[0]["currentStepStatus"] == "Starting"
    assert preprocess[-1]["currentStepStatus"] == "Succeeded"
    assert preprocess[-1]["metadata"]["processingJob"]["arn"].startswith("arn:aws:sagemaker:")
    assert preprocess[-1]["stepType"] == "Processing"
    # AND the progress hook saw every step and the tuning trials
    assert {u.step_name for u in updates if u.step_name} == {
        "PreprocessData",
        "BaselineData",
        "TuneModel",
        "EvaluateModel",
        "CheckQuality",
        "RegisterModel-RegisterModel",
    }
    assert any(u.message.startswith("trial 4/4") for u in updates)
    assert updates[-1].status == "Succeeded" and updates[-1].step_name is None


# --- generic definitions -----------------------------------------------------------------------------


def processing_step(
    name: str, bucket: str, inputs: list[Any], depends_on: list[str] | None = None, seconds_marker: str = ""
) -> dict[str, Any]:
    step: dict[str, Any] = {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "AppSpecification": {"ImageUri": "img", "ContainerEntrypoint": ["python3", "x.py"]},
            "ProcessingInputs": [
                {
                    "InputName": f"in{i}",
                    "S3Input": {
                        "S3Uri": uri,
                        "LocalPath": f"/opt/ml/processing/input/{i}",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                }
                for i, uri in enumerate(inputs)
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": "out",
                        "S3Output": {
                            "S3Uri": {
                                "Std:Join": {
                                    "On": "/",
                                    "Values": [
                                        "s3:/",
                                        bucket,
                                        {"Get": "Execution.PipelineExecutionId"},
                                        name,
                                    ],
                                }
                            },
                            "LocalPath": "/opt/ml/processing/output",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                ]
            },
            "ProcessingResources": {
                "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 1}
            },
            "RoleArn": "arn:aws:iam::123456789012:role/r",
        },
    }
    if depends_on:
        step["DependsOn"] = depends_on
    return step


def two_step_chain(client: Callable[[str], Any], bucket: str, name: str, first: str, second: str) -> str:
    """Create pipeline `name`: processing step `first`, then `second` after it, over one small input."""
    source = upload(client, bucket, f"in/{name}.csv", b"1")
    definition = {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            processing_step(first, bucket, [source]),
            processing_step(second, bucket, [source], [first]),
        ],
    }
    create_pipeline(client, name, definition)
    return name


def test_independent_steps_run_in_parallel_and_dependents_wait(
    engine: PipelineEngine,
    runner: FakeRunner,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    bucket: str,
) -> None:
    # GIVEN A and B independent, C reading A's output, and D after B and C by DependsOn
    source = upload(client, bucket, "in/x.csv", b"1")
    out_a = {"Get": "Steps.A.ProcessingOutputConfig.Outputs['out'].S3Output.S3Uri"}
    definition = {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            processing_step("A", bucket, [source]),
            processing_step("B", bucket, [source]),
            processing_step("C", bucket, [out_a]),
            processing_step("D", bucket, [source], depends_on=["B", "C"]),
        ],
    }
    name = unique("engine-dag")
    create_pipeline(client, name, definition)
    runner.job_seconds = 0.4

    # WHEN it runs
    arn = start(client, name, {})
    assert engine.wait(arn, timeout=30) == "Succeeded"

    # THEN A and B overlapped, C started after A ended, and D after both B and C
    steps = steps_of(client, arn)
    assert runner.max_running >= 2
    assert steps["C"]["StartTime"] >= steps["A"]["EndTime"]
    assert steps["D"]["StartTime"] >= max(steps["B"]["EndTime"], steps["C"]["EndTime"])
    assert steps["A"]["StartTime"] < steps["B"]["EndTime"] and steps["B"]["StartTime"] < steps["A"]["EndTime"]
    c_request = next(r for k, n, r in runner.calls if "-C-" in n)
    assert c_request["ProcessingInputs"][0]["S3Input"]["S3Uri"] == f"s3://{bucket}/{arn.rsplit('/', 1)[1]}/A"


def condition_definition(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    fail = {
        "Name": "Otherwise",
        "Type": "Fail",
        "Arguments": {
            "ErrorMessage": {"Std:Join": {"On": "", "Values": ["mode was ", {"Get": "Parameters.Mode"}]}}
        },
    }
    passed = {"Name": "Passed", "Type": "Fail", "Arguments": {"ErrorMessage": "took the if branch"}}
    return {
        "Version": "2020-12-01",
        "Parameters": [
            {"Name": "Mode", "Type": "String", "DefaultValue": "fast"},
            {"Name": "Score", "Type": "Float", "DefaultValue": 0.5},
            {"Name": "Count", "Type": "Integer", "DefaultValue": 3},
        ],
        "Steps": [
            {
                "Name": "Decide",
                "Type": "Condition",
                "Arguments": {"Conditions": conditions, "IfSteps": [passed], "ElseSteps": [fail]},
            }
        ],
    }


@pytest.mark.parametrize(
    ("conditions", "parameters", "branch"),
    [
        ([{"Type": "Equals", "LeftValue": {"Get": "Parameters.Mode"}, "RightValue": "fast"}], {}, True),
        (
            [{"Type": "GreaterThan", "LeftValue": {"Get": "Parameters.Score"}, "RightValue": 0.7}],
            {"Score": 0.9},
            True,
        ),
        (
            [{"Type": "GreaterThanOrEqualTo", "LeftValue": {"Get": "Parameters.Count"}, "RightValue": 4}],
            {},
            False,
        ),
        ([{"Type": "LessThan", "LeftValue": {"Get": "Parameters.Count"}, "RightValue": 4}], {}, True),
        (
            [{"Type": "In", "QueryValue": {"Get": "Parameters.Mode"}, "Values": ["slow", "careful"]}],
            {},
            False,
        ),
        (
            [
                {
                    "Type": "Not",
                    "Condition": {
                        "Type": "Equals",
                        "LeftValue": {"Get": "Parameters.Mode"},
                        "RightValue": "fast",
                    },
                }
            ],
            {"Mode": "slow"},
            True,
        ),
        (
            [
                {
                    "Type": "Or",
                    "Conditions": [
                        {"Type": "Equals", "LeftValue": {"Get": "Parameters.Mode"}, "RightValue": "x"},
                        {
                            "Type": "LessThanOrEqualTo",
                            "LeftValue": {"Get": "Parameters.Score"},
                            "RightValue": 0.5,
                        },
                    ],
                }
            ],
            {},
            True,
        ),
        (
            [
                {"Type": "Equals", "LeftValue": {"Get": "Parameters.Mode"}, "RightValue": "fast"},
                {"Type": "Equals", "LeftValue": {"Get": "Parameters.Count"}, "RightValue": 2},
            ],
            {},
            False,
        ),
    ],
)
def test_condition_types_pick_the_branch(
    engine: PipelineEngine,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    conditions: list[dict[str, Any]],
    parameters: dict[str, Any],
    branch: bool,
) -> None:
    # GIVEN a condition whose branches each end in a distinct Fail step
    name = unique("engine-cond")
    create_pipeline(client, name, condition_definition(conditions))

    # WHEN it runs with the given parameters
    arn = start(client, name, parameters)
    engine.wait(arn, timeout=30)

    # THEN only the chosen branch ran and its message is the execution's failure reason
    steps = steps_of(client, arn)
    assert steps["Decide"]["Metadata"]["Condition"]["Outcome"] == ("True" if branch else "False")
    reason = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)["FailureReason"]
    if branch:
        assert set(steps) == {"Decide", "Passed"} and reason == "took the if branch"
    else:
        assert set(steps) == {"Decide", "Otherwise"}
        assert reason == f"mode was {parameters.get('Mode', 'fast')}"


def test_training_step_properties_feed_a_model_step(
    engine: PipelineEngine,
    runner: FakeRunner,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    bucket: str,
) -> None:
    # GIVEN a Training step and a Model step built from its ModelArtifacts
    train = upload(client, bucket, "train/t.csv", b"1,2")
    definition = {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Epochs", "Type": "Integer", "DefaultValue": 20}],
        "Steps": [
            {
                "Name": "Train",
                "Type": "Training",
                "Arguments": {
                    "AlgorithmSpecification": {
                        "TrainingImage": "img",
                        "TrainingInputMode": "File",
                        "MetricDefinitions": [{"Name": "validation:rmse", "Regex": "x=(.*)"}],
                    },
                    "HyperParameters": {
                        "epochs": {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Epochs"}]}},
                        "learning_rate": "0.02",
                        "batch_size": "128",
                    },
                    "InputDataConfig": [
                        {
                            "ChannelName": "train",
                            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": train}},
                        }
                    ],
                    "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/models"},
                    "ResourceConfig": {
                        "InstanceCount": 1,
                        "InstanceType": "ml.m5.large",
                        "VolumeSizeInGB": 1,
                    },
                    "RoleArn": "arn:aws:iam::123456789012:role/r",
                    "StoppingCondition": {"MaxRuntimeInSeconds": 60},
                },
            },
            {
                "Name": "CreateModel",
                "Type": "Model",
                "Arguments": {
                    "ExecutionRoleArn": "arn:aws:iam::123456789012:role/r",
                    "PrimaryContainer": {
                        "Image": "serve",
                        "ModelDataUrl": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
                    },
                },
            },
        ],
    }
    name = unique("engine-train")
    create_pipeline(client, name, definition)

    # WHEN it runs with a different epoch count
    arn = start(client, name, {"Epochs": 25})
    assert engine.wait(arn, timeout=30) == "Succeeded"

    # THEN the training job got the resolved hyper-parameters and the model points at its artifacts
    steps = steps_of(client, arn)
    job_name = steps["Train"]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[1]
    job = client("sagemaker").describe_training_job(TrainingJobName=job_name)
    assert job["HyperParameters"]["epochs"] == "25"
    assert job["TrainingJobStatus"] == "Completed"
    model_name = steps["CreateModel"]["Metadata"]["Model"]["Arn"].rsplit("/", 1)[1]
    model = client("sagemaker").describe_model(ModelName=model_name)
    assert model["PrimaryContainer"]["ModelDataUrl"] == f"s3://{bucket}/models/{job_name}/output/model.tar.gz"


def test_stop_marks_execution_stopped_and_starts_no_further_step(
    engine: PipelineEngine,
    runner: FakeRunner,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    bucket: str,
) -> None:
    # GIVEN a two-step chain whose first job takes a while
    name = two_step_chain(client, bucket, unique("engine-stop"), "First", "Second")
    runner.job_seconds = 0.8
    arn = start(client, name, {})
    deadline = time.monotonic() + 10
    while "First" not in steps_of(client, arn) and time.monotonic() < deadline:
        time.sleep(0.05)

    # WHEN it is stopped while the first step runs
    client("sagemaker").stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=uuid.uuid4().hex)
    stopping = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)[
        "PipelineExecutionStatus"
    ]

    # THEN it goes Stopping -> Stopped and the second step never starts
    assert stopping == "Stopping"
    assert engine.wait(arn, timeout=30) == "Stopped"
    assert (
        client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        == "Stopped"
    )
    assert "Second" not in steps_of(client, arn)
    assert runner.jobs("processing") and all("-Second-" not in n for n in runner.jobs("processing"))


def test_repeated_start_with_same_token_runs_once(
    engine: PipelineEngine,
    runner: FakeRunner,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    bucket: str,
) -> None:
    # GIVEN a one-step pipeline
    source = upload(client, bucket, "in/r.csv", b"1")
    name = unique("engine-idem")
    create_pipeline(
        client,
        name,
        {"Version": "2020-12-01", "Parameters": [], "Steps": [processing_step("Only", bucket, [source])]},
    )

    # WHEN it is started twice with the same ClientRequestToken
    first = start(client, name, {}, token="same-token-0123456789abcdef0123456789")
    second = start(client, name, {}, token="same-token-0123456789abcdef0123456789")

    # THEN one execution ran one job
    assert first == second
    assert engine.wait(first, timeout=30) == "Succeeded"
    assert len(runner.jobs("processing")) == 1


def test_tuning_search_learns_toward_the_optimum(
    engine: PipelineEngine, client: Callable[[str], Any], unique: Callable[[str], str], bucket: str
) -> None:
    # GIVEN a tuning step with 16 sequential trials over the fake model's bowl
    train = upload(client, bucket, "tune/t.csv", b"1")
    definition = json.loads(DEFINITION_PATH.read_text())
    tuning = next(s for s in definition["Steps"] if s["Type"] == "Tuning")
    tuning["Arguments"]["TrainingJobDefinition"]["InputDataConfig"] = [
        {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": train}}}
    ]
    tuning["Arguments"]["HyperParameterTuningJobConfig"]["ResourceLimits"] = {
        "MaxNumberOfTrainingJobs": 16,
        "MaxParallelTrainingJobs": 1,
    }
    definition["Steps"] = [tuning]
    name = unique("engine-tune")
    create_pipeline(client, name, definition)

    # WHEN it runs
    parameters = {
        p: v
        for p, v in real_parameters(client, bucket).items()
        if p in ("ArtifactBucket", "TrainingCodeUri", "ExecutionRoleArn", "TrainingImageUri")
    }
    arn = start(
        client,
        name,
        {
            **parameters,
            "InputDataUri": "s3://x/y",
            "CommitId": "c",
            "RepositoryName": "r",
            "PreprocessCodeUri": "s3://x/p",
            "EvaluateCodeUri": "s3://x/e",
            "BaselineCodeUri": "s3://x/b",
            "ProcessingImageUri": "i",
            "InferenceImageUri": "i",
            "ModelPackageGroupName": "g",
        },
    )
    assert engine.wait(arn, timeout=60) == "Succeeded"

    # THEN later (model-guided) trials are better on average than the random start-up ones
    tuning_name = steps_of(client, arn)["TuneModel"]["Metadata"]["TuningJob"]["Arn"].rsplit("/", 1)[1]
    summaries = client("sagemaker").list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_name, SortBy="CreationTime", SortOrder="Ascending", MaxResults=100
    )["TrainingJobSummaries"]
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries]
    assert len(values) == 16
    startup, guided = values[:5], values[-8:]
    assert sum(guided) / len(guided) < sum(startup) / len(startup)
    assert min(values) < 3.6  # within 0.6 of the optimum (3.0) of a bowl spanning ~3.0-7.4


def test_wait_times_out_for_an_unknown_execution(engine: PipelineEngine) -> None:
    # GIVEN an ARN the engine never saw / WHEN waited on briefly / THEN a TimeoutError says so
    with pytest.raises(TimeoutError, match="never started"):
        engine.wait("arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/none", timeout=0.2)


def test_step_times_are_utc_and_ordered(
    engine: PipelineEngine, client: Callable[[str], Any], real_pipeline: str, bucket: str
) -> None:
    # GIVEN a finished execution
    arn = start(client, real_pipeline, real_parameters(client, bucket))
    engine.wait(arn, timeout=60)
    # WHEN its steps are listed / THEN each ended after it started, within the execution's lifetime
    described = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=arn)
    for step in steps_of(client, arn).values():
        assert step["StartTime"] <= step["EndTime"] <= datetime.now(UTC)
        assert step["StartTime"] >= described["CreationTime"]


def test_retry_runs_a_failed_execution_again_from_its_failed_step(
    engine: PipelineEngine,
    runner: FakeRunner,
    client: Callable[[str], Any],
    unique: Callable[[str], str],
    bucket: str,
) -> None:
    # GIVEN an execution whose second step failed
    name = two_step_chain(client, bucket, unique("engine-retry"), "Prepare", "Flaky")
    runner.fail_jobs_matching = "-Flaky-"
    arn = start(client, name, {})
    assert engine.wait(arn, timeout=30) == "Failed"

    # WHEN the cause is gone and the execution is retried through the API
    runner.fail_jobs_matching = None
    sagemaker = client("sagemaker")
    retried = sagemaker.retry_pipeline_execution(
        PipelineExecutionArn=arn, ClientRequestToken=uuid.uuid4().hex
    )
    assert retried["PipelineExecutionArn"] == arn
    assert engine.wait(arn, timeout=30) == "Succeeded"

    # THEN only the failed step ran again (second attempt), and the execution has no failure reason left
    steps = steps_of(client, arn)
    assert steps["Flaky"]["StepStatus"] == "Succeeded" and steps["Flaky"]["AttemptCount"] == 2
    assert steps["Prepare"]["AttemptCount"] == 1
    assert len([n for n in runner.jobs("processing") if "-Prepare-" in n]) == 1
    described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
    assert described["PipelineExecutionStatus"] == "Succeeded" and "FailureReason" not in described
    # AND a Succeeded execution cannot be retried
    with pytest.raises(sagemaker.exceptions.ClientError, match="only a Failed execution"):
        sagemaker.retry_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=uuid.uuid4().hex)


def register_definition(group: str) -> dict[str, Any]:
    return {
        "Version": "2020-12-01",
        "Steps": [
            {
                "Name": "Register-RegisterModel",
                "Type": "RegisterModel",
                "Arguments": {
                    "ModelPackageGroupName": group,
                    "ModelApprovalStatus": "PendingManualApproval",
                    "InferenceSpecification": {
                        "Containers": [{"Image": "serve", "ModelDataUrl": "s3://b/model.tar.gz"}],
                        "SupportedContentTypes": ["text/csv"],
                        "SupportedResponseMIMETypes": ["text/csv"],
                    },
                },
            }
        ],
    }


def test_registering_into_a_group_that_does_not_exist_creates_it(
    engine: PipelineEngine, client: Callable[[str], Any], unique: Callable[[str], str]
) -> None:
    # GIVEN a RegisterModel step naming a group no one has created
    # (AWS: "specify a ModelPackageGroup. SageMaker Pipelines creates this ModelPackageGroup for you",
    # SageMaker developer guide, "Define a pipeline")
    group = unique("new-group")
    name = unique("engine-register")
    create_pipeline(client, name, register_definition(group))
    # WHEN the pipeline runs twice
    first, second = start(client, name, {}), None
    assert engine.wait(first, timeout=30) == "Succeeded"
    second = start(client, name, {})
    assert engine.wait(second, timeout=30) == "Succeeded"
    # THEN the group exists and holds both versions, in order
    sagemaker = client("sagemaker")
    described = sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    assert described["ModelPackageGroupName"] == group
    packages = sagemaker.list_model_packages(ModelPackageGroupName=group, SortOrder="Ascending")
    assert [p["ModelPackageVersion"] for p in packages["ModelPackageSummaryList"]] == [1, 2]


def test_a_group_named_by_arn_is_never_created(
    engine: PipelineEngine, client: Callable[[str], Any], unique: Callable[[str], str]
) -> None:
    # GIVEN a RegisterModel step naming, by ARN, a group that does not exist
    group = unique("arn-group")
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:model-package-group/{group}"
    name = unique("engine-register-arn")
    create_pipeline(client, name, register_definition(arn))
    # WHEN it runs, THEN the step fails and no group of that name appears
    execution = start(client, name, {})
    assert engine.wait(execution, timeout=30) == "Failed"
    step = steps_of(client, execution)["Register-RegisterModel"]
    assert step["StepStatus"] == "Failed"
    groups = client("sagemaker").list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]
    assert groups == []


def test_each_supported_step_type_has_one_executor_module() -> None:
    # the engine's shape: one executor per step type, in localcloud/engine/steps/<type>.py, behind a registry
    from localcloud.engine.caching import CACHEABLE_STEP_TYPES
    from localcloud.engine.definition import SUPPORTED_STEP_TYPES
    from localcloud.engine.steps import EXECUTORS

    assert set(EXECUTORS) == set(SUPPORTED_STEP_TYPES)
    assert {kind for kind, executor in EXECUTORS.items() if executor.cacheable} == set(CACHEABLE_STEP_TYPES)
    modules = {executor.__module__.rsplit(".", 1)[-1] for executor in EXECUTORS.values()}
    assert len(modules) == len(EXECUTORS)  # no module holds two step types


def test_a_job_refused_because_the_cloud_is_stopping_fails_its_step_without_a_warning(
    engine: PipelineEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # a run still executing when the local cloud stops: its next job is refused by the closed runner, or by
    # a thread pool of the finalizing interpreter
    def closed(name: str, request: dict[str, Any]) -> Any:
        raise RunnerClosedError("JobRunner is closed")

    def finalizing(name: str, request: dict[str, Any]) -> Any:
        raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    def broken(name: str, request: dict[str, Any]) -> Any:
        raise ValueError("invalid SageMaker job name")

    with caplog.at_level(logging.INFO, logger="localcloud"):
        refused = engine.call_runner(broken, "pipelines-x-TuneModel-1", {})
        stopped = engine.call_runner(closed, "pipelines-x-TuneModel-2", {})
        engine.close()
        after_close = engine.call_runner(finalizing, "pipelines-x-TuneModel-3", {})
    assert all(isinstance(result, FailedJob) for result in (refused, stopped, after_close))
    assert "JobRunner is closed" in stopped.failure_reason
    # the user's terminal (warnings) hears of the broken request, not of the shutdown
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == ["job could not start"]
    quiet = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert quiet.count("job not started: the local cloud is stopping") == 2
