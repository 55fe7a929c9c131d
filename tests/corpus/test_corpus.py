"""Pipelines written with the SageMaker Python SDK, unchanged but for their role, run on the local cloud.

Each program under `pipelines/` is written the way the SDK's documentation and AWS's public examples write
one (see each program's docstring for what it covers); the test runs it as a user would and checks what it
reports, and what the local cloud holds afterwards, against what SageMaker documents.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from typing import Any

import pytest

from localcloud.cloud import LocalCloud

pytestmark = pytest.mark.slow


def test_keras_pipeline_registers_into_a_new_group_and_transforms(
    run_program: Callable[[str], dict[str, Any]], local_cloud: LocalCloud
) -> None:
    report = run_program("keras_register_transform")
    assert report["status"] == "Succeeded", report
    assert report["steps"] == {
        "Preprocess": "Succeeded",
        "Train": "Succeeded",
        "CreateModel": "Succeeded",
        "Register-RegisterModel": "Succeeded",
        "Transform": "Succeeded",
    }
    sagemaker = local_cloud.session.client("sagemaker")
    # the group no one created exists (SageMaker Pipelines creates it) and holds the package
    packages = sagemaker.list_model_packages(ModelPackageGroupName=report["group"])["ModelPackageSummaryList"]
    assert [p["ModelApprovalStatus"] for p in packages] == ["PendingManualApproval"]
    # the transform served the model saved as <version>/saved_model.pb: one prediction per test row
    s3 = local_cloud.session.client("s3")
    bucket, _, prefix = report["transform_output"].removeprefix("s3://").partition("/")
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    assert key.endswith("features.csv.out")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    # (TFS answers each mini-batch with one {"predictions": [...]} document; AssembleWith=Line ends each
    # with a newline, as the CreateTransformJob reference documents)
    documents = [json.loads(line) for line in body.splitlines() if line.strip()]
    predictions = [p for document in documents for p in document["predictions"]]
    assert len(predictions) == 30  # the test rows: 200 x 0.3 x 0.5
    assert all(0 < p[0] < 80 for p in predictions), "house prices in $1000s"


def test_the_projects_template_pipeline_with_the_builtin_xgboost_algorithm(
    run_program: Callable[..., dict[str, Any]], local_cloud: LocalCloud
) -> None:
    # WHEN the template's pipeline runs with a threshold the model meets
    report = run_program("builtin_xgboost_quality_gate")
    # THEN it trains with the built-in algorithm, evaluates, passes the gate and registers
    assert report["status"] == "Succeeded", report
    assert report["steps"] == {
        "PreprocessData": "Succeeded",
        "TrainModel": "Succeeded",
        "EvaluateModel": "Succeeded",
        "CheckMseEvaluation": "Succeeded",
        "RegisterModel-RegisterModel": "Succeeded",
        "CreateModel-CreateModel": "Succeeded",
    }
    sagemaker = local_cloud.session.client("sagemaker")
    job = sagemaker.describe_training_job(TrainingJobName=report["training_job"])
    # the algorithm's own metrics, read from its log lines by its own metric definitions
    # (as DescribeTrainingJob shows them for a built-in XGBoost job: its definitions, e.g. validation:rmse)
    definitions = {d["Name"]: d["Regex"] for d in job["AlgorithmSpecification"]["MetricDefinitions"]}
    assert definitions["validation:rmse"].startswith(r".*\[[0-9]+\].*#011validation-rmse:")
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert set(metrics) == {"train:rmse", "validation:rmse"}
    assert 0 < metrics["train:rmse"] < metrics["validation:rmse"] < 10
    # the artifact is the algorithm's: model.tar.gz holding xgboost-model (pickled, as version 1.0-1 does)
    s3 = local_cloud.session.client("s3")
    bucket, _, key = job["ModelArtifacts"]["S3ModelArtifacts"].removeprefix("s3://").partition("/")
    with tarfile.open(fileobj=io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as archive:
        assert archive.getnames() == ["xgboost-model"]
    packages = sagemaker.list_model_packages(ModelPackageGroupName=report["group"])["ModelPackageSummaryList"]
    assert len(packages) == 1


def test_the_template_pipeline_ends_in_its_fail_step_when_the_gate_is_missed(
    run_program: Callable[..., dict[str, Any]], local_cloud: LocalCloud
) -> None:
    report = run_program("builtin_xgboost_quality_gate", "0.5")
    assert report["status"] == "Failed"
    assert report["failure"] == "Execution failed: the test MSE is above 0.5"
    assert report["steps"]["CheckMseEvaluation"] == "Succeeded"
    assert report["steps"]["MseTooHigh"] == "Failed"
    assert "RegisterModel-RegisterModel" not in report["steps"]


def test_sklearn_script_mode_tuning_caching_and_parallelism(
    run_program: Callable[..., dict[str, Any]], local_cloud: LocalCloud
) -> None:
    report = run_program("sklearn_tuning_cached")
    first, second = report["executions"]
    steps = {"Prepare", "Describe", "Tune", "RegisterBest-RegisterModel"}
    for execution in (first, second):
        assert execution["status"] == "Succeeded", execution
        assert set(execution["steps"]) == steps and set(execution["steps"].values()) == {"Succeeded"}
    # the second execution took both processing steps from the first one's (CacheConfig)
    assert first["cache_hits"] == {}
    assert second["cache_hits"] == {"Prepare": first["arn"], "Describe": first["arn"]}
    # MaxParallelExecutionSteps=1: the two independent processing steps never overlapped
    (a_start, a_end), (b_start, b_end) = first["times"]["Prepare"], first["times"]["Describe"]
    assert a_end <= b_start or b_end <= a_start
    # the tuner ran its 4 trials, and the package registered is the best trial's model
    sagemaker = local_cloud.session.client("sagemaker")
    tuning = sagemaker.describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=first["tuning_job"].rsplit("/", 1)[-1]
    )
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 4
    best = tuning["BestTrainingJob"]["TrainingJobName"]
    packages = sagemaker.list_model_packages(ModelPackageGroupName=report["group"], SortOrder="Ascending")[
        "ModelPackageSummaryList"
    ]
    assert len(packages) == 2  # one per execution, into the group the program created
    package = sagemaker.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])
    (container,) = package["InferenceSpecification"]["Containers"]
    assert container["ModelDataUrl"].endswith(f"/sklearn-corpus/models/{best}/output/model.tar.gz")


def test_xgboost_script_mode_and_a_lambda_step_whose_function_the_sdk_creates(
    run_program: Callable[..., dict[str, Any]],
) -> None:
    report = run_program("xgboost_script_lambda")
    assert report["status"] == "Succeeded", report
    assert report["steps"] == {
        "Prepare": "Succeeded",
        "Train": "Succeeded",
        "CheckModel": "Succeeded",
        "KeepTheModel": "Succeeded",
        "CreateModel-CreateModel": "Succeeded",
    }
    # the function ran in its own environment, read the artifact from the embedded S3, and answered
    outputs = {o["Name"]: o["Value"] for o in report["lambda"]["OutputParameters"]}
    assert outputs["decision"] == "keep"
    assert int(outputs["size"]) > 100


def test_batch_transforms_of_xgboost_and_scikit_learn_models(
    run_program: Callable[..., dict[str, Any]], local_cloud: LocalCloud
) -> None:
    report = run_program("batch_transforms")
    assert report["status"] == "Succeeded", report
    assert set(report["steps"].values()) == {"Succeeded"}
    s3 = local_cloud.session.client("s3")

    def output(uri: str) -> str:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
        assert key.endswith("features.csv.out")
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    # XGBoost (the algorithm's server, in a batch transform): one prediction per line, one line per row
    xgboost_lines = output(report["outputs"]["xgboost"]).splitlines()
    assert len(xgboost_lines) == 30
    assert all(0 < float(line) < 80 for line in xgboost_lines)
    # scikit-learn (the inference toolkit's default output_fn, JSON), one record per request, a line each
    sklearn_lines = output(report["outputs"]["sklearn"]).splitlines()
    assert len(sklearn_lines) == 30
    assert all(len(json.loads(line)) == 1 and 0 < json.loads(line)[0] < 80 for line in sklearn_lines)


def test_parameters_execution_variables_and_a_branch_on_a_boolean(
    run_program: Callable[..., dict[str, Any]], local_cloud: LocalCloud
) -> None:
    report = run_program("parameters_and_branches")
    published, held = report["executions"]
    assert published["status"] == "Succeeded", published
    assert published["steps"] == {
        "Summarize": "Succeeded", "Audit": "Succeeded", "ShouldPublish": "Succeeded", "Publish": "Succeeded"
    }  # fmt: skip
    assert published["order"] == ["Summarize", "Audit", "ShouldPublish", "Publish"]  # DependsOn held
    assert held["status"] == "Failed"
    assert held["failure"] == "not published: 3"
    assert "Publish" not in held["steps"] and held["steps"]["NotPublished"] == "Failed"
    assert (report["listed"], report["pipeline"]) == (2, "params-corpus")
    # each output went where the Join of the execution's id put it, written with the execution's arguments
    s3 = local_cloud.session.client("s3")
    for execution, count in ((published, 7), (held, 3)):
        key = f"params-corpus/{execution['id']}/Summarize/run.json"
        run = json.loads(s3.get_object(Bucket=report["bucket"], Key=key)["Body"].read())
        assert run == {"execution_id": execution["id"], "rows": count}
