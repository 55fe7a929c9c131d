"""Local processing and training jobs under the SageMaker container contract (JobRunner)."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import xgboost
from moto import mock_aws

from localcloud.runtime import JobRunner, parse_metrics
from localcloud.runtime.quiet_start import LOG_ENV, fork_server_log, fork_server_log_value

BUCKET = "artifacts"


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(scope="module")
def runner(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobRunner]:
    with JobRunner(tmp_path_factory.mktemp("work"), s3, max_workers=2) as job_runner:
        job_runner.warm_up()
        yield job_runner


def put(s3: Any, key: str, body: str | bytes) -> str:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{BUCKET}/{key}"


def get(s3: Any, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def keys_under(s3: Any, prefix: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def processing_request(
    code_uri: str,
    data_uri: str | None = None,
    outputs: dict[str, str] | None = None,
    instance_count: int = 1,
    sharded: bool = False,
    arguments: list[str] | None = None,
    environment: dict[str, str] | None = None,
    script: str = "script.py",
) -> dict[str, Any]:
    inputs: list[dict[str, Any]] = [
        {
            "InputName": "code",
            "S3Input": {
                "S3Uri": code_uri,
                "LocalPath": "/opt/ml/processing/input/code",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": "FullyReplicated",
            },
        },
    ]
    if data_uri:
        inputs.append(
            {
                "InputName": "data",
                "S3Input": {
                    "S3Uri": data_uri,
                    "LocalPath": "/opt/ml/processing/input/data",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "ShardedByS3Key" if sharded else "FullyReplicated",
                },
            }
        )
    return {
        "ProcessingJobName": "ignored-by-runner",
        "ProcessingInputs": inputs,
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": name,
                    "S3Output": {
                        "S3Uri": uri,
                        "LocalPath": f"/opt/ml/processing/output/{name}",
                        "S3UploadMode": "EndOfJob",
                    },
                }
                for name, uri in (outputs or {}).items()
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": instance_count,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 30,
            }
        },
        "AppSpecification": {
            "ImageUri": "sklearn:latest",
            "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{script}"],
            "ContainerArguments": arguments or [],
        },
        "Environment": environment or {},
        "RoleArn": "arn:aws:iam::123456789012:role/sm",
    }


def source_dir(s3: Any, key: str, files: dict[str, str]) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = textwrap.dedent(text).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return put(s3, key, buffer.getvalue())


METRICS = [
    {"Name": "loss", "Regex": r"\bloss=([0-9\.eE+-]+)"},
    {"Name": "validation:rmse", "Regex": r"val_rmse=([0-9\.eE+-]+)"},
]


def training_request(
    submit_uri: str, channels: dict[str, str], hyperparameters: dict[str, str], output_path: str
) -> dict[str, Any]:
    return {
        "AlgorithmSpecification": {
            "TrainingImage": "tf:2",
            "TrainingInputMode": "File",
            "MetricDefinitions": METRICS,
        },
        "HyperParameters": {
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": submit_uri,
            **hyperparameters,
        },
        "InputDataConfig": [
            {
                "ChannelName": name,
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for name, uri in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "RoleArn": "arn:aws:iam::123456789012:role/sm",
    }


SHARD_SCRIPT = """
import argparse, json, os, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("--input-dir", default="/opt/ml/processing/input/data")
parser.add_argument("--output-dir", default="/opt/ml/processing/output")
parser.add_argument("--resource-config", default="/opt/ml/config/resourceconfig.json")
args = parser.parse_args()
host = json.loads(pathlib.Path(args.resource_config).read_text())
seen = sorted(p.name for p in pathlib.Path(args.input_dir).rglob("*.csv"))
out = pathlib.Path(args.output_dir) / "listing"
out.mkdir(parents=True, exist_ok=True)
(out / f"seen-{host['current_host']}.json").write_text(json.dumps({"host": host, "seen": seen}))
print("processed", len(seen), "files on", host["current_host"])
"""


def test_sharded_processing_gives_each_instance_its_share_and_uploads_every_output(
    s3: Any, runner: JobRunner
):
    # GIVEN four CSV objects under a prefix and a script that reports what its instance sees
    for name in ("a", "b", "c", "d"):
        put(s3, f"shard/data/{name}.csv", "x,y\n1,2\n")
    code = put(s3, "shard/code/script.py", SHARD_SCRIPT)
    request = processing_request(
        code,
        f"s3://{BUCKET}/shard/data",
        outputs={"listing": f"s3://{BUCKET}/shard/out"},
        instance_count=2,
        sharded=True,
        arguments=[
            "--input-dir",
            "/opt/ml/processing/input/data",
            "--output-dir",
            "/opt/ml/processing/output",
        ],
    )

    # WHEN the job runs on two instances with ShardedByS3Key
    result = runner.run_processing("shard-job", request)

    # THEN each instance saw every second object in key order, and both instances' outputs are in S3
    assert result.status == "Completed", result.failure_reason
    assert keys_under(s3, "shard/out/") == ["shard/out/seen-algo-1.json", "shard/out/seen-algo-2.json"]
    first = json.loads(get(s3, "shard/out/seen-algo-1.json"))
    second = json.loads(get(s3, "shard/out/seen-algo-2.json"))
    assert first["seen"] == ["a.csv", "c.csv"]
    assert second["seen"] == ["b.csv", "d.csv"]
    assert first["host"]["hosts"] == second["host"]["hosts"] == ["algo-1", "algo-2"]
    assert result.outputs == {"listing": f"s3://{BUCKET}/shard/out"}
    log = result.log_path.read_text()
    assert "processed 2 files on algo-1" in log and "processed 2 files on algo-2" in log


TRAIN_SCRIPT = """
import argparse, json, os, pathlib, sys
from helper import GREETING
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--learning_rate", type=float)
parser.add_argument("--layers", type=int, default=1)
args = parser.parse_args()
model_dir = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model_dir / "model" / "1").mkdir(parents=True)
(model_dir / "model" / "1" / "weights.txt").write_text("w")
names = ["SM_MODEL_DIR", "SM_CHANNEL_TRAIN", "SM_CHANNEL_VALIDATION", "SM_CHANNELS", "SM_OUTPUT_DATA_DIR",
         "SM_OUTPUT_DIR", "SM_HPS", "SM_HOSTS", "SM_CURRENT_HOST", "SM_NUM_CPUS", "SM_TRAINING_ENV",
         "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR"]
config_dir = pathlib.Path(os.environ["SM_INPUT_CONFIG_DIR"])
report = {
    "argv": sys.argv[1:], "args": vars(args), "greeting": GREETING,
    "env": {n: os.environ.get(n) for n in names},
    "train_files": sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"])),
    "hyperparameters.json": json.loads((config_dir / "hyperparameters.json").read_text()),
    "inputdataconfig.json": json.loads((config_dir / "inputdataconfig.json").read_text()),
    "resourceconfig.json": json.loads((config_dir / "resourceconfig.json").read_text()),
}
(model_dir / "report.json").write_text(json.dumps(report))
for epoch, (loss, rmse) in enumerate([(9.0, 4.0), (5.5, 3.25), (4.0, 3.5)], start=1):
    print(f"epoch={epoch} loss={loss} val_loss={loss + 1} val_rmse={rmse}")
"""


def test_training_runs_the_program_like_the_tensorflow_toolkit_and_uploads_the_model(
    s3: Any, runner: JobRunner
):
    # GIVEN a source directory with a program and a helper module, and two channels
    submit = source_dir(
        s3,
        "train/code/sourcedir.tar.gz",
        {"train.py": TRAIN_SCRIPT, "helper.py": "GREETING = 'hello from the source dir'\n"},
    )
    put(s3, "train/data/train/part-1.csv", "1,2\n")
    put(s3, "train/data/train/part-2.csv", "3,4\n")
    put(s3, "train/data/validation/v.csv", "5,6\n")
    request = training_request(
        submit,
        {"train": f"s3://{BUCKET}/train/data/train", "validation": f"s3://{BUCKET}/train/data/validation"},
        {"epochs": "7", "learning_rate": "0.01", "layers": "2"},
        f"s3://{BUCKET}/train/output",
    )

    # WHEN the training job runs
    result = runner.run_training("train-job-1", request)

    # THEN it completed, reported the last value of each metric, and uploaded model.tar.gz
    assert result.status == "Completed", result.failure_reason
    assert result.final_metrics == {"loss": 4.0, "validation:rmse": 3.5}
    assert result.metric_series["validation:rmse"] == [4.0, 3.25, 3.5]
    assert result.model_artifacts == f"s3://{BUCKET}/train/output/train-job-1/output/model.tar.gz"
    with tarfile.open(fileobj=io.BytesIO(get(s3, "train/output/train-job-1/output/model.tar.gz"))) as tar:
        assert "model/1/weights.txt" in tar.getnames()
        report = json.loads(tar.extractfile("report.json").read())  # type: ignore[union-attr]

    # AND the program got the user hyper-parameters as sorted --name value arguments, without sagemaker_*
    assert report["argv"] == ["--epochs", "7", "--layers", "2", "--learning_rate", "0.01"]
    assert report["args"] == {"epochs": 7, "learning_rate": 0.01, "layers": 2}
    assert report["greeting"] == "hello from the source dir"
    # AND the SM_* variables and config files point into the job's own /opt/ml tree
    env = report["env"]
    job_root = runner.workdir / "jobs" / "train-job-1" / "opt" / "ml"
    assert env["SM_MODEL_DIR"] == str(job_root / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(job_root / "input" / "data" / "train")
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert json.loads(env["SM_HPS"]) == {"epochs": 7, "learning_rate": 0.01, "layers": 2}
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"] and env["SM_CURRENT_HOST"] == "algo-1"
    assert int(env["SM_NUM_CPUS"]) >= 1
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "train-job-1"
    for name in ("SM_OUTPUT_DATA_DIR", "SM_OUTPUT_DIR", "SM_INPUT_DIR", "SM_INPUT_CONFIG_DIR"):
        assert env[name].startswith(str(job_root))
    assert report["train_files"] == ["part-1.csv", "part-2.csv"]
    assert report["hyperparameters.json"]["epochs"] == "7"
    assert report["inputdataconfig.json"]["train"]["ContentType"] == "text/csv"
    assert report["resourceconfig.json"]["current_host"] == "algo-1"


FAILING_SCRIPT = """
import pathlib, sys
for path in sys.argv[1:]:
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("column 'RM' in data.csv is not numeric")
print("about to fail")
raise SystemExit(1)
"""


def test_processing_message_file_becomes_the_exit_message(s3: Any, runner: JobRunner):
    # GIVEN a processing script that writes /opt/ml/output/message (and the training-only failure file)
    # and exits 1. AWS: "containers can write UTF-8 encoded text to the /opt/ml/output/message file ...
    # the ExitMessage field in DescribeProcessingJob contains the first 1 KB of this file"
    # (docs.aws.amazon.com/sagemaker/latest/dg/byoc-metadata.html).
    code = put(s3, "fail/code/script.py", FAILING_SCRIPT)
    request = processing_request(
        code,
        arguments=["/opt/ml/output/message", "/opt/ml/output/failure"],
        outputs={"out": f"s3://{BUCKET}/fail/out"},
    )

    # WHEN it runs
    result = runner.run_processing("failing-job", request)

    # THEN the job failed, its exit message is the file's text, and nothing was uploaded
    assert result.status == "Failed"
    assert result.exit_message == "column 'RM' in data.csv is not numeric"
    assert result.exit_code == 1
    assert keys_under(s3, "fail/out/") == []
    # AND the failure file, which SageMaker reads for training jobs only, is not the failure reason
    assert result.failure_reason is not None
    assert result.failure_reason.startswith("AlgorithmError: ExecuteUserScriptError: exit code 1")


def test_processing_message_is_truncated_to_1_kb_and_kept_on_success(s3: Any, runner: JobRunner):
    script = "import pathlib\npathlib.Path('/opt/ml/output/message').write_text('x' * 3000)\n"
    request = processing_request(put(s3, "long/code/script.py", script))
    result = runner.run_processing("long-message-job", request)
    assert result.status == "Completed"
    assert result.exit_message == "x" * 1024


def test_training_failure_file_becomes_the_failure_reason(s3: Any, runner: JobRunner):
    # GIVEN a training program that writes /opt/ml/output/failure: "SageMaker returns the first 1024
    # characters from this file as FailureReason" (sagemaker/latest/dg/your-algorithms-training-algo-output)
    program = (
        "import pathlib\n"
        "pathlib.Path('/opt/ml/output/failure').write_text('learning rate diverged')\n"
        "raise SystemExit(2)\n"
    )
    submit = source_dir(s3, "tfail/code/sourcedir.tar.gz", {"train.py": program})
    request = training_request(submit, {}, {}, f"s3://{BUCKET}/tfail/output")

    # WHEN it runs
    result = runner.run_training("failing-training-job", request)

    # THEN the job's failure reason is the file's text
    assert result.status == "Failed"
    assert result.failure_reason == "AlgorithmError: learning rate diverged"


def test_failure_without_failure_file_reports_the_last_log_lines(s3: Any, runner: JobRunner):
    # GIVEN a script that raises an exception
    code = put(s3, "crash/code/script.py", "print('loading')\nraise RuntimeError('weights are NaN')\n")

    # WHEN it runs
    result = runner.run_processing("crashing-job", processing_request(code))

    # THEN the failure reason carries the traceback's last line
    assert result.status == "Failed"
    assert result.failure_reason is not None
    assert result.failure_reason.startswith("AlgorithmError: ExecuteUserScriptError: exit code 1")
    assert "RuntimeError: weights are NaN" in result.failure_reason


def test_each_job_leaves_a_spec_that_reruns_it_in_a_fresh_interpreter(
    s3: Any, runner: JobRunner, monkeypatch: pytest.MonkeyPatch
):
    # GIVEN a job that lists its input, run while the caller's environment holds a credential
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "do-not-write-me")
    code = put(s3, "rerun/code/script.py", SHARD_SCRIPT)
    put(s3, "rerun/in/a.csv", "x,y\n1,2\n")
    request = processing_request(code, data_uri=f"s3://{BUCKET}/rerun/in/")
    assert runner.run_processing("rerun-job", request).status == "Completed"
    [spec_path] = (runner.workdir / "jobs" / "rerun-job").rglob("*.spec.json")
    listing = next((runner.workdir / "jobs" / "rerun-job").rglob("seen-*.json"))
    listing.unlink()

    # WHEN the saved spec is run by hand, as the file's docstring says
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rerun = subprocess.run(
        [sys.executable, "-m", "localcloud.runtime.worker", str(spec_path)], env=env, check=False
    )

    # THEN the script ran again in its own tree, and the spec kept no credential-looking variable
    assert rerun.returncode == 0
    assert json.loads(listing.read_text())["seen"] == ["a.csv"]
    saved = json.loads(spec_path.read_text())
    assert "SOME_SERVICE_TOKEN" not in saved["env"]
    assert not any("SECRET" in name for name in saved["env"])
    assert oct(spec_path.stat().st_mode & 0o777) == "0o600"


def test_missing_input_is_a_client_error(s3: Any, runner: JobRunner):
    # GIVEN an input prefix with no objects
    code = put(s3, "noinput/code/script.py", "print('never runs')\n")

    # WHEN the job runs
    result = runner.run_processing("no-input-job", processing_request(code, f"s3://{BUCKET}/nothing/here"))

    # THEN it fails before starting, naming the empty S3 URL
    assert result.status == "Failed"
    assert result.failure_reason is not None
    assert result.failure_reason.startswith("ClientError: No S3 objects found under S3 URL")
    assert f"s3://{BUCKET}/nothing/here" in result.failure_reason


ISOLATION_SCRIPT = """
import json, os, pathlib, sys, time
import shared_state_probe  # a module that exists only in this job's code directory
out = pathlib.Path("/opt/ml/processing/output/report")
out.mkdir(parents=True, exist_ok=True)
leaked = os.environ.get("LEAKED_BY_A_JOB")
os.environ["LEAKED_BY_A_JOB"] = os.environ["JOB_MARKER"]
shared_state_probe.COUNTER += 1
time.sleep(float(os.environ.get("HOLD_SECONDS", "0")))
report = {
    "marker": os.environ["JOB_MARKER"], "leaked": leaked, "counter": shared_state_probe.COUNTER,
    "files": sorted(p.name for p in pathlib.Path("/opt/ml/processing/input/data").iterdir()),
    "cwd": os.getcwd(), "argv": sys.argv[1:],
}
(out / "report.json").write_text(json.dumps(report))
"""


def test_parallel_jobs_do_not_see_each_others_files_or_environment(s3: Any, runner: JobRunner):
    # GIVEN two jobs with different inputs and environment, run at the same time from two threads
    put(s3, "iso/code/script.py", ISOLATION_SCRIPT)
    put(s3, "iso/code/shared_state_probe.py", "COUNTER = 0\n")
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        put(s3, f"iso/{name}/data/{name}-only.csv", "1\n")
        request = processing_request(
            f"s3://{BUCKET}/iso/code",
            f"s3://{BUCKET}/iso/{name}/data",
            outputs={"report": f"s3://{BUCKET}/iso/{name}/out"},
            arguments=[name],
            environment={"JOB_MARKER": name, "HOLD_SECONDS": "1"},
        )
        results[name] = runner.run_processing(f"iso-{name}", request)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # WHEN a third job runs after both
    later = processing_request(
        f"s3://{BUCKET}/iso/code",
        f"s3://{BUCKET}/iso/left/data",
        outputs={"report": f"s3://{BUCKET}/iso/later/out"},
        environment={"JOB_MARKER": "later"},
    )
    results["later"] = runner.run_processing("iso-later", later)

    # THEN each job saw only its own input, environment, argv and module state
    failures = {name: r.failure_reason for name, r in results.items() if r.status != "Completed"}
    assert failures == {}
    for name in ("left", "right"):
        report = json.loads(get(s3, f"iso/{name}/out/report.json"))
        assert report["marker"] == name
        assert report["files"] == [f"{name}-only.csv"]
        assert report["argv"] == [name]
        assert report["cwd"] == str(runner.workdir / "jobs" / f"iso-{name}")
        assert report["leaked"] is None and report["counter"] == 1
    later_report = json.loads(get(s3, "iso/later/out/report.json"))
    assert later_report["leaked"] is None and later_report["counter"] == 1
    assert "LEAKED_BY_A_JOB" not in os.environ


PRELOAD_SCRIPT = """
import json, os, pathlib, sys
preloaded = "tensorflow" in sys.modules  # checked before this script imports anything heavy
import tensorflow as tf
value = float(tf.reduce_sum(tf.constant([1.0, 2.0, 3.5])).numpy())
out = pathlib.Path("/opt/ml/processing/output/report")
out.mkdir(parents=True, exist_ok=True)
(out / "report.json").write_text(json.dumps(
    {"preloaded": preloaded, "pid": os.getpid(), "ppid": os.getppid(), "value": value}))
"""


def test_jobs_are_forked_from_a_server_that_already_imported_tensorflow(s3: Any, runner: JobRunner):
    # GIVEN a script that checks whether TensorFlow was imported before it started, then uses it
    code = put(s3, "preload/code/script.py", PRELOAD_SCRIPT)

    # WHEN two jobs run one after the other
    reports = []
    for index in range(2):
        request = processing_request(code, outputs={"report": f"s3://{BUCKET}/preload/{index}"})
        result = runner.run_processing(f"preload-{index}", request)
        assert result.status == "Completed", result.failure_reason
        reports.append(json.loads(get(s3, f"preload/{index}/report.json")))

    # THEN both found TensorFlow already imported, ran TF ops, and are children of the same fork server
    assert all(r["preloaded"] for r in reports)
    assert all(r["value"] == 6.5 for r in reports)
    assert reports[0]["pid"] != reports[1]["pid"]
    assert reports[0]["ppid"] == reports[1]["ppid"] == runner.fork_server_pid
    assert runner.fork_server_pid != os.getpid()


def test_a_job_past_its_max_runtime_is_stopped_and_fails(s3: Any, runner: JobRunner):
    # GIVEN a script that would run for a minute and a one-second limit
    code = put(s3, "slow/code/script.py", "import time\nprint('working', flush=True)\ntime.sleep(60)\n")
    request = processing_request(code)
    request["StoppingCondition"] = {"MaxRuntimeInSeconds": 1}

    # WHEN it runs
    result = runner.run_processing("slow-job", request)

    # THEN it fails after about the limit with the reason
    assert result.status == "Failed"
    assert result.failure_reason == "MaxRuntimeInSeconds exceeded: the job was stopped"
    assert (result.end_time - result.start_time).total_seconds() < 30


def test_metric_definitions_take_the_last_match_and_keep_the_series():
    # GIVEN a log with several epochs and a non-numeric match
    log = "epoch=1 loss=3.0 val_rmse=2.5\nepoch=2 loss=2.0 val_rmse=n/a\nepoch=3 loss=1.5e0 val_rmse=2.25\n"

    # WHEN the regexes are applied
    final, series = parse_metrics(log, [*METRICS, {"Name": "absent", "Regex": r"absent=([0-9.]+)"}])

    # THEN the last numeric match wins and metrics that never matched are absent
    assert final == {"loss": 1.5, "validation:rmse": 2.25}
    assert series == {"loss": [3.0, 2.0, 1.5], "validation:rmse": [2.5, 2.25]}


def test_real_preprocess_script_runs_sharded_on_the_sample_data(s3: Any, runner: JobRunner):
    # GIVEN the project's preprocessing script and the sample data split into two objects
    rows = Path("data/boston_housing.csv").read_text().splitlines()
    header, body = rows[0], rows[1:]
    put(s3, "real/data/part-1.csv", "\n".join([header, *body[::2]]) + "\n")
    put(s3, "real/data/part-2.csv", "\n".join([header, *body[1::2]]) + "\n")
    code = put(
        s3,
        "real/code/preprocess.py",
        (Path(__file__).resolve().parents[2] / "training_code" / "preprocess.py").read_text(),
    )
    outputs = {name: f"s3://{BUCKET}/real/out/{name}" for name in ("train", "validation", "test")}
    request = processing_request(
        code,
        f"s3://{BUCKET}/real/data",
        outputs=outputs,
        instance_count=2,
        sharded=True,
        arguments=["--target-column", "MEDV"],
        script="preprocess.py",
    )

    # WHEN it runs on two instances
    result = runner.run_processing("real-preprocess", request)

    # THEN every row landed in exactly one split, written by both instances
    assert result.status == "Completed", result.failure_reason
    total = 0
    for name in ("train", "validation", "test"):
        keys = keys_under(s3, f"real/out/{name}/")
        assert len(keys) == 2, keys
        total += sum(len(get(s3, key).decode().strip().splitlines()) - 1 for key in keys)
    assert total == len(body)


def xgboost_request(
    version: str, channels: dict[str, tuple[str, str]], hyperparameters: dict[str, str], output_path: str
) -> dict[str, Any]:
    """A built-in XGBoost training job, as `Estimator(image_uri=image_uris.retrieve("xgboost", ...))`
    sends it: the algorithm's image, hyper-parameters only, no MetricDefinitions."""
    return {
        "AlgorithmSpecification": {
            "TrainingImage": f"683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:{version}",
            "TrainingInputMode": "File",
        },
        "HyperParameters": hyperparameters,
        "InputDataConfig": [
            {
                "ChannelName": name,
                **({"ContentType": content_type} if content_type else {}),
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}},
            }
            for name, (uri, content_type) in channels.items()
        ],
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "RoleArn": "arn:aws:iam::123456789012:role/sm",
    }


def regression_rows(seed: int, n: int = 80) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    features = rng.uniform(0, 1, size=(n, 3))
    label = 3 * features[:, 0] - 2 * features[:, 1] + rng.normal(0, 0.05, n)
    return [[float(y), *map(float, x)] for y, x in zip(label, features, strict=True)]


def model_file(s3: Any, uri: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(get(s3, uri.removeprefix(f"s3://{BUCKET}/")))) as archive:
        assert archive.getnames() == ["xgboost-model"]
        handle = archive.extractfile("xgboost-model")
        assert handle is not None
        return handle.read()


@pytest.mark.parametrize("version", ["1.0-1", "1.7-1"])
def test_the_builtin_xgboost_algorithm_trains_on_csv_channels(s3: Any, runner: JobRunner, version: str):
    # GIVEN CSV channels with the label first and no header, and hyper-parameters only
    csv = {
        name: put(
            s3, f"xgb-{version}/{name}/data.csv", "\n".join(",".join(map(str, r)) for r in regression_rows(i))
        )
        for i, name in enumerate(("train", "validation"))
    }
    request = xgboost_request(
        version,
        {name: (uri, "text/csv") for name, uri in csv.items()},
        {"num_round": "30", "max_depth": "3", "eta": "0.3", "objective": "reg:squarederror"},
        f"s3://{BUCKET}/xgb-{version}/output",
    )
    # WHEN it runs
    result = runner.run_training(f"xgb-{version.replace('.', '-')}", request)
    # THEN the algorithm reports its own metrics, read by its own definitions, round by round
    assert result.status == "Completed", result.failure_reason
    assert set(result.final_metrics) == {"train:rmse", "validation:rmse"}
    assert len(result.metric_series["validation:rmse"]) == 30
    assert result.final_metrics["validation:rmse"] < result.metric_series["validation:rmse"][0]
    # AND the artifact is model.tar.gz with xgboost-model: pickled for 1.0-1, XGBoost's own format after
    content = model_file(s3, str(result.model_artifacts))
    booster = xgboost.Booster()
    if version == "1.0-1":
        booster = pickle.loads(content)  # noqa: S301 - the job's own artifact
    else:
        with pytest.raises(pickle.UnpicklingError):
            pickle.loads(content)  # noqa: S301
        booster.load_model(bytearray(content))
    predicted = booster.predict(xgboost.DMatrix(np.array([[0.9, 0.1, 0.5]])))
    assert predicted[0] == pytest.approx(3 * 0.9 - 2 * 0.1, abs=0.5)


def test_the_builtin_xgboost_algorithm_reads_libsvm_by_default(s3: Any, runner: JobRunner):
    rows = regression_rows(3)
    libsvm = "\n".join(f"{r[0]} 1:{r[1]} 2:{r[2]} 3:{r[3]}" for r in rows)
    uri = put(s3, "xgb-libsvm/train/data.libsvm", libsvm)
    request = xgboost_request(
        "1.7-1", {"train": (uri, "")}, {"num_round": "5"}, f"s3://{BUCKET}/xgb-libsvm/out"
    )
    result = runner.run_training("xgb-libsvm", request)
    assert result.status == "Completed", result.failure_reason
    assert set(result.final_metrics) == {"train:rmse"}


def test_the_builtin_xgboost_algorithm_refuses_a_job_without_num_round(s3: Any, runner: JobRunner):
    uri = put(s3, "xgb-no-rounds/train/data.csv", "1,2,3\n4,5,6\n")
    request = xgboost_request("1.7-1", {"train": (uri, "text/csv")}, {"max_depth": "3"}, f"s3://{BUCKET}/o")
    result = runner.run_training("xgb-no-rounds", request)
    assert result.status == "Failed"
    assert result.failure_reason == "ClientError: Missing required hyperparameter: num_round"


def test_a_script_in_the_xgboost_image_runs_in_script_mode(s3: Any, runner: JobRunner):
    # GIVEN the XGBoost image with an entry point (the SDK's XGBoost estimator): the script runs, not the
    # algorithm, even though num_round is missing
    submit = source_dir(s3, "xgb-script/code/sourcedir.tar.gz", {"train.py": "print('script ran')\n"})
    request = training_request(submit, {}, {}, f"s3://{BUCKET}/xgb-script/output")
    request["AlgorithmSpecification"]["TrainingImage"] = (
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"
    )
    result = runner.run_training("xgb-script-mode", request)
    assert result.status == "Completed", result.failure_reason
    assert "script ran" in result.log_path.read_text()


RUNPROC = """#!/bin/bash
cd /opt/ml/processing/input/code/
set -e
if [[ -f 'requirements.txt' ]]; then
    pip uninstall --yes typing
    python -m pip install -r requirements.txt
fi
python job.py "$@"
"""
JOB = """
import pathlib, sys
out = pathlib.Path("/opt/ml/processing/output/result")
out.mkdir(parents=True, exist_ok=True)
(out / "argv.txt").write_text(" ".join(sys.argv[1:]))
"""


def shell_entrypoint_request(s3: Any, prefix: str, files: dict[str, str]) -> dict[str, Any]:
    """A FrameworkProcessor-shaped job: runproc.sh as a bash entrypoint, the code in its own input."""
    for name, body in files.items():
        put(s3, f"{prefix}/code/{name}", body)
    put(s3, f"{prefix}/entrypoint/runproc.sh", RUNPROC)
    request = processing_request(
        f"s3://{BUCKET}/{prefix}/code", outputs={"result": f"s3://{BUCKET}/{prefix}/out"}
    )
    request["ProcessingInputs"].append(
        {
            "InputName": "entrypoint",
            "S3Input": {
                "S3Uri": f"s3://{BUCKET}/{prefix}/entrypoint",
                "LocalPath": "/opt/ml/processing/input/entrypoint",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
            },
        }
    )
    request["AppSpecification"]["ContainerEntrypoint"] = [
        "/bin/bash",
        "/opt/ml/processing/input/entrypoint/runproc.sh",
    ]
    request["AppSpecification"]["ContainerArguments"] = ["--rows", "7"]
    return request


def test_a_shell_entrypoint_runs_python_in_the_jobs_own_tree(s3: Any, runner: JobRunner):
    # GIVEN the SDK's FrameworkProcessor entrypoint: bash cds to /opt/ml/…/code and runs `python job.py`,
    # whose /opt/ml paths are the container's; and a requirements.txt this environment satisfies
    request = shell_entrypoint_request(s3, "runproc-ok", {"job.py": JOB, "requirements.txt": "numpy>=1\n"})
    # WHEN it runs
    result = runner.run_processing("runproc-ok", request)
    # THEN the script ran in the job's tree (its output was uploaded), with the job's arguments
    assert result.status == "Completed", result.failure_reason
    assert get(s3, "runproc-ok/out/argv.txt") == b"--rows 7"
    assert "every requirement of requirements.txt is already satisfied" in result.log_path.read_text()
    assert not Path("/opt/ml/processing/output/result").exists()


def test_a_requirement_the_environment_lacks_fails_the_job_and_installs_nothing(s3: Any, runner: JobRunner):
    files = {"job.py": JOB, "requirements.txt": "numpy>=1\nno-such-package-for-the-corpus==1.0\n"}
    result = runner.run_processing("runproc-missing", shell_entrypoint_request(s3, "runproc-missing", files))
    assert result.status == "Failed"
    log = result.log_path.read_text()
    assert "Missing: no-such-package-for-the-corpus==1.0 (not installed)" in log
    assert keys_under(s3, "runproc-missing/out") == []


QUIET_CHILD = "import localcloud.runtime.quiet_start; print('my own output', flush=True)"


def run_quiet_child(env: dict[str, str]) -> str:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", QUIET_CHILD],
        env={**env, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_after_warm_up_a_program_this_process_starts_keeps_its_own_output(runner: JobRunner, tmp_path: Path):
    # GIVEN a warmed-up runner (its fork server got the log's name when it started)
    # THEN the name is not left in this process's environment
    assert LOG_ENV not in os.environ
    # and a program started afterwards with this environment (a test's `python -m localcloud demo`)
    # prints to its own stdout, not to the fork server's log
    assert run_quiet_child(dict(os.environ)) == "my own output\n"


def test_only_the_direct_child_of_the_process_that_named_the_log_writes_to_it(tmp_path: Path):
    log = tmp_path / "fork-server.log"
    # GIVEN the value this process gives the fork server it starts: the child writes to the log
    assert run_quiet_child({**os.environ, LOG_ENV: fork_server_log_value(log)}) == ""
    assert "my own output" in log.read_text()
    # WHEN the value names another process (the near miss: the pid next to this one's), or is malformed
    for value in (f"{os.getpid() + 1}:{log}", str(log), f"{os.getpid()}:", f"x{os.getpid()}:{log}"):
        # THEN the child keeps its own output
        assert run_quiet_child({**os.environ, LOG_ENV: value}) == "my own output\n", value
    assert fork_server_log(f"{os.getpid()}:{log}", os.getpid()) == str(log)
    assert fork_server_log(f"{os.getpid()}:{log}", os.getpid() + 1) is None
    assert fork_server_log(None, os.getpid()) is None
