"""Model hosting: the TensorFlow Serving container (ModelHost, LoadedModel), and endpoints and batch
transforms served on the embedded AWS (EndpointHosting).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import tarfile
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from localcloud.aws import EmbeddedAws
from localcloud.runtime.hosting import EndpointHosting, _batches, attach_hosting, traffic_schedule
from localcloud.runtime.model_servers import ScriptModeModel, ServingError, XGBoostAlgorithmModel, server_kind
from localcloud.runtime.serving import ModelHost, ModelLoadError, find_saved_model

BUCKET = "models"
N_FEATURES = 3

HANDLERS = """
import json

def input_handler(data, context):
    text = data.read().decode("utf-8")
    if context.request_content_type == "text/csv":
        rows = []
        for number, line in enumerate(text.strip().splitlines(), start=1):
            try:
                rows.append([float(cell) for cell in line.split(",")])
            except ValueError:
                raise ValueError(f"row {number}: {line!r} has a value that is not a number") from None
        return json.dumps({"instances": rows})
    return text

def output_handler(response, context):
    if response.status_code != 200:
        raise ValueError(response.content.decode("utf-8"))
    predictions = [p[0] for p in json.loads(response.content)["predictions"]]
    if context.accept_header == "text/csv":
        return "\\n".join(str(p) for p in predictions) + "\\n", "text/csv"
    return json.dumps({"predictions": predictions}), "application/json"
"""


def build_model_archive(
    tmp: Path, handlers: str | None, seed: int = 0, version_dir: str = "model/1"
) -> tuple[bytes, Any]:
    """A tiny Keras regressor saved as model/1 (or ``version_dir``) with a serving_default(features)
    signature."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((N_FEATURES,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)]
    )

    class Export(tf.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        @tf.function(input_signature=[tf.TensorSpec([None, N_FEATURES], tf.float32, name="features")])
        def serve(self, features: Any) -> dict[str, Any]:
            return {"predictions": self.inner(features)}

    root = tmp / f"model-{seed}"
    export = Export(model)
    tf.saved_model.save(export, str(root / version_dir), signatures={"serving_default": export.serve})
    if handlers is not None:
        (root / "code").mkdir(parents=True)
        (root / "code" / "inference.py").write_text(textwrap.dedent(handlers))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for entry in sorted(root.iterdir()):
            tar.add(entry, arcname=entry.name)
    return buffer.getvalue(), model


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture(scope="module")
def host(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> ModelHost:
    return ModelHost(s3, tmp_path_factory.mktemp("host"))


@pytest.fixture(scope="module")
def with_handlers(s3: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Any]:
    archive, model = build_model_archive(tmp_path_factory.mktemp("m1"), HANDLERS, seed=1)
    s3.put_object(Bucket=BUCKET, Key="with-handlers/model.tar.gz", Body=archive)
    return f"s3://{BUCKET}/with-handlers/model.tar.gz", model


ROWS = [[0.5, 1.0, -2.0], [3.0, 0.25, 1.5]]


def direct(model: Any, rows: list[list[float]]) -> list[float]:
    return [float(v) for v in model(np.array(rows, dtype="float32")).numpy()[:, 0]]


def test_csv_and_json_invocations_match_the_model_called_directly(host: ModelHost, with_handlers: Any):
    # GIVEN a model package with inference.py handlers, loaded by the host
    url, model = with_handlers
    loaded = host.load(url)
    expected = direct(model, ROWS)

    # WHEN it is invoked with CSV (CSV out) and with JSON (JSON out)
    csv_status, csv_body, csv_type = loaded.invoke(b"0.5,1.0,-2.0\n3.0,0.25,1.5\n", "text/csv", "text/csv")
    json_status, json_body, json_type = loaded.invoke(
        json.dumps({"instances": ROWS}).encode(), "application/json", "application/json"
    )

    # THEN both answer the same predictions as the model itself
    assert (csv_status, csv_type) == (200, "text/csv")
    assert [float(v) for v in csv_body.decode().split()] == pytest.approx(expected, rel=1e-5)
    assert (json_status, json_type) == (200, "application/json")
    assert json.loads(json_body)["predictions"] == pytest.approx(expected, rel=1e-5)


def test_a_bad_row_is_a_400_with_the_handlers_message(host: ModelHost, with_handlers: Any):
    # GIVEN the loaded model
    loaded = host.load(with_handlers[0])

    # WHEN a CSV row holds a word
    status, body, content_type = loaded.invoke(b"1,2,3\n4,five,6\n", "text/csv", "application/json")

    # THEN the container answers 400 with the handler's message
    assert status == 400 and content_type == "application/json"
    assert json.loads(body) == {"error": "row 2: '4,five,6' has a value that is not a number"}


def test_a_row_of_the_wrong_width_is_rejected_by_serving_with_400(host: ModelHost, with_handlers: Any):
    # GIVEN the loaded model
    loaded = host.load(with_handlers[0])

    # WHEN a row has two features where the signature takes three
    status, body, _ = loaded.invoke(b"1,2\n", "text/csv", "application/json")

    # THEN TensorFlow Serving's 400 reaches the client through the output handler
    assert status == 400
    assert "features" in json.loads(body)["error"]


def test_without_inference_py_the_container_speaks_plain_tfs_json(s3: Any, host: ModelHost, tmp_path: Path):
    # GIVEN a model package without handlers
    archive, model = build_model_archive(tmp_path, None, seed=2)
    s3.put_object(Bucket=BUCKET, Key="plain/model.tar.gz", Body=archive)
    loaded = host.load(f"s3://{BUCKET}/plain/model.tar.gz")

    # WHEN invoked with a TFS body, with a bare list of rows, and with CSV
    answers = [
        loaded.invoke(json.dumps({"instances": ROWS}).encode(), "application/json", "application/json"),
        loaded.invoke(json.dumps(ROWS).encode(), "application/json", "application/json"),
        loaded.invoke(b"0.5,1.0,-2.0\n3.0,0.25,1.5\n", "text/csv", "application/json"),
    ]

    # THEN each answers TFS's {"predictions": [[...], ...]} for the same rows
    expected = direct(model, ROWS)
    for status, body, content_type in answers:
        assert (status, content_type) == (200, "application/json")
        assert [p[0] for p in json.loads(body)["predictions"]] == pytest.approx(expected, rel=1e-5)
    # AND the columnar form answers "outputs", as TFS does
    status, body, _ = loaded.invoke(json.dumps({"inputs": ROWS}).encode(), "application/json", "")
    assert status == 200 and [p[0] for p in json.loads(body)["outputs"]] == pytest.approx(expected, rel=1e-5)


def test_tfs_json_rules_for_bare_lists_and_json_lines(s3: Any, host: ModelHost, tmp_path: Path):
    # GIVEN a model without handlers, saved as <version>/saved_model.pb at the archive's root: a layout the
    # TFS container serves (its find_models takes any all-digit folder holding saved_model.pb, at any depth)
    archive, model = build_model_archive(tmp_path, None, seed=3, version_dir="1")
    s3.put_object(Bucket=BUCKET, Key="root-layout/model.tar.gz", Body=archive)
    loaded = host.load(f"s3://{BUCKET}/root-layout/model.tar.gz")
    assert (loaded.model_name, loaded.model_version) == ("model", "1")
    expected = direct(model, ROWS)
    # WHEN a bare row is sent: TFS's nginx module wraps JSON that is not a list of lists as one instance
    status, body, _ = loaded.invoke(json.dumps(ROWS[0]).encode(), "application/json", "")
    assert status == 200
    assert [p[0] for p in json.loads(body)["predictions"]] == pytest.approx(expected[:1], rel=1e-5)
    # AND JSON lines, one instance per line, whether sent as application/jsonlines or application/json
    lines = "\n".join(json.dumps(row) for row in ROWS).encode()
    for content_type in ("application/jsonlines", "application/json"):
        status, body, _ = loaded.invoke(lines, content_type, "")
        assert status == 200
        assert [p[0] for p in json.loads(body)["predictions"]] == pytest.approx(expected, rel=1e-5)
    # AND a type the container does not read is refused as it refuses it
    status, body, _ = loaded.invoke(b"\x00", "application/x-npy", "")
    assert status == 400
    assert "Unsupported Media Type: application/x-npy" in json.loads(body)["error"]


@pytest.mark.parametrize(
    ("files", "served"),
    [
        (["1/saved_model.pb"], "1"),
        (["model/1/saved_model.pb", "code/inference.py"], "model/1"),
        (["export/Servo/1/saved_model.pb", "export/Servo/1/variables/variables.index"], "export/Servo/1"),
        (["model/1/saved_model.pb", "model/12/saved_model.pb", "model/3/saved_model.pb"], "model/12"),
        (["a/1/saved_model.pb", "b/7/saved_model.pb"], "a/1"),  # the first model found is the default
    ],
)
def test_every_layout_the_tfs_container_finds(tmp_path: Path, files: list[str], served: str):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert find_saved_model(tmp_path) == tmp_path / served


@pytest.mark.parametrize(
    "files",
    [
        ["saved_model.pb"],  # no version folder
        ["model/v1/saved_model.pb"],  # a version folder that is not all digits
        ["model/1/saved_model.pbtxt"],
    ],
)
def test_layouts_the_tfs_container_refuses(tmp_path: Path, files: list[str]):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ModelLoadError, match="no SavedModel bundles found!"):
        find_saved_model(tmp_path)


def test_the_default_model_name_picks_among_several(tmp_path: Path):
    for name in ("a/1/saved_model.pb", "b/7/saved_model.pb"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert find_saved_model(tmp_path, "b") == tmp_path / "b" / "7"
    with pytest.raises(ModelLoadError, match="names none of the models"):
        find_saved_model(tmp_path, "c")


def test_loading_the_same_url_twice_returns_the_loaded_model(host: ModelHost, with_handlers: Any):
    # GIVEN a model already loaded
    first = host.load(with_handlers[0])

    # WHEN loaded again
    second = host.load(with_handlers[0])

    # THEN the host serves the same instance (no second download or TF load)
    assert first is second


def test_an_archive_without_a_savedmodel_fails_to_load_with_a_clear_error(
    s3: Any, host: ModelHost, tmp_path: Path
):
    # GIVEN a model.tar.gz holding only a text file
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"not a model"
        info = tarfile.TarInfo("README.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    s3.put_object(Bucket=BUCKET, Key="empty/model.tar.gz", Body=buffer.getvalue())

    # WHEN it is loaded THEN the error says what TFS looks for
    with pytest.raises(ModelLoadError, match=r"no SavedModel bundles found! \(TFS serves <model>/<version>/"):
        host.load(f"s3://{BUCKET}/empty/model.tar.gz")


def test_the_projects_inference_handlers_serve_through_the_container(
    s3: Any, host: ModelHost, tmp_path: Path
):
    # GIVEN a model packaged with the project's inference.py
    archive, model = build_model_archive(
        tmp_path, (Path(__file__).resolve().parents[2] / "training_code" / "inference.py").read_text(), seed=3
    )
    s3.put_object(Bucket=BUCKET, Key="project/model.tar.gz", Body=archive)
    loaded = host.load(f"s3://{BUCKET}/project/model.tar.gz")

    # WHEN invoked with good CSV, and with a bad row
    status, body, _ = loaded.invoke(b"0.5,1.0,-2.0\n3.0,0.25,1.5\n", "text/csv", "application/json")
    bad_status, bad_body, _ = loaded.invoke(b"0.5,1.0,-2.0\n3.0,x,1.5\n", "text/csv", "application/json")

    # THEN predictions match the model and the bad row is a 400 naming the row
    assert status == 200
    assert json.loads(body)["predictions"] == pytest.approx(direct(model, ROWS), rel=1e-5)
    assert bad_status == 400 and "row 2" in json.loads(bad_body)["error"]


# -- endpoints and transforms on the embedded AWS ------------------------------------------------------

ROLE = "arn:aws:iam::123456789012:role/sagemaker"
ROW = b"0.5,1.0,-2.0\n"


class Cloud:
    """An embedded AWS with hosting attached, its clients, and the events it emitted."""

    def __init__(self, aws: EmbeddedAws, hosting: EndpointHosting, workdir: Path) -> None:
        self.aws, self.hosting, self.workdir = aws, hosting, workdir
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=aws.region
        )
        self.client: Callable[[str], Any] = lambda service: session.client(
            service, endpoint_url=aws.endpoint_url
        )
        self.s3, self.sm = self.client("s3"), self.client("sagemaker")
        self.runtime, self.cloudwatch = self.client("sagemaker-runtime"), self.client("cloudwatch")
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        aws.subscribe_events(self._record)

    def _record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def endpoint_statuses(self, name: str) -> list[str]:
        self.aws.wait_for_events(10)
        return [
            e["detail"]["EndpointStatus"]
            for e in self.events
            if e["detail-type"] == "SageMaker Endpoint State Change" and e["detail"]["EndpointName"] == name
        ]

    def model_from_archive(self, name: str, seed: int, via_package: bool = True) -> Any:
        """Upload a tiny model; register it as a package (or not) and create a Model for it."""
        archive, keras_model = build_model_archive(self.workdir / name, HANDLERS, seed=seed)
        self.s3.put_object(Bucket="hosting", Key=f"{name}/model.tar.gz", Body=archive)
        url = f"s3://hosting/{name}/model.tar.gz"
        if via_package:
            group = f"group-{name}"
            self.sm.create_model_package_group(ModelPackageGroupName=group)
            package = self.sm.create_model_package(
                ModelPackageGroupName=group,
                InferenceSpecification={
                    "Containers": [{"Image": "tfs:2", "ModelDataUrl": url}],
                    "SupportedContentTypes": ["text/csv"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
            )
            self.sm.create_model(
                ModelName=name,
                ExecutionRoleArn=ROLE,
                Containers=[{"ModelPackageName": package["ModelPackageArn"]}],
            )
        else:
            self.sm.create_model(
                ModelName=name,
                ExecutionRoleArn=ROLE,
                PrimaryContainer={"Image": "tfs:2", "ModelDataUrl": url},
            )
        return keras_model

    def config(self, name: str, variants: dict[str, tuple[str, float]]) -> str:
        self.sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": variant,
                    "ModelName": model,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "InitialVariantWeight": weight,
                }
                for variant, (model, weight) in variants.items()
            ],
        )
        return name

    def wait_status(self, name: str, wanted: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            described = self.sm.describe_endpoint(EndpointName=name)
            if described["EndpointStatus"] == wanted:
                return described
            assert time.monotonic() < deadline, described
            time.sleep(0.05)

    def predict(self, endpoint: str, body: bytes = ROW) -> float:
        answer = self.runtime.invoke_endpoint(
            EndpointName=endpoint, Body=body, ContentType="text/csv", Accept="application/json"
        )
        return float(json.loads(answer["Body"].read())["predictions"][0])


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    workdir = tmp_path_factory.mktemp("cloud")
    with EmbeddedAws(work_dir=workdir / "aws") as aws:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name=aws.region
        )
        s3_client = session.client("s3", endpoint_url=aws.endpoint_url)
        s3_client.create_bucket(Bucket="hosting")
        # a 200 s canary bake lasts 2 s here
        hosting = attach_hosting(aws, ModelHost(s3_client, workdir / "host"), time_scale=0.01)
        yield Cloud(aws, hosting, workdir)
        hosting.wait_idle(30)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def one_prediction(model: Any) -> float:
    return direct(model, [[0.5, 1.0, -2.0]])[0]


def test_an_endpoint_of_a_model_package_serves_invoke_endpoint(cloud: Cloud):
    # GIVEN a model registered as a package, and an endpoint config for it
    model_name = unique("pkg-model")
    keras_model = cloud.model_from_archive(model_name, seed=11)
    endpoint = unique("ep")

    # WHEN the endpoint is created
    config = cloud.config(unique("cfg"), {"AllTraffic": (model_name, 1.0)})
    cloud.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    cloud.wait_status(endpoint, "InService")

    # THEN InvokeEndpoint answers what the model computes, and the state changes were emitted
    assert cloud.predict(endpoint) == pytest.approx(one_prediction(keras_model), rel=1e-5)
    assert cloud.endpoint_statuses(endpoint) == ["CREATING", "IN_SERVICE"]


def test_a_bad_row_reaches_the_caller_as_a_model_error_with_the_400(cloud: Cloud):
    # GIVEN an endpoint in service (model container without a package)
    model_name = unique("plain-model")
    cloud.model_from_archive(model_name, seed=12, via_package=False)
    endpoint = unique("ep")
    config = cloud.config(unique("cfg"), {"AllTraffic": (model_name, 1.0)})
    cloud.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    cloud.wait_status(endpoint, "InService")

    # WHEN a row holds a word
    with pytest.raises(cloud.runtime.exceptions.ModelError) as raised:
        cloud.predict(endpoint, b"1,2,three\n")

    # THEN SageMaker's ModelError carries the container's 400 and the handler's message
    assert raised.value.response["OriginalStatusCode"] == 400
    assert "row 1: '1,2,three' has a value that is not a number" in raised.value.response["OriginalMessage"]


def test_an_endpoint_whose_model_cannot_load_fails_with_the_reason(cloud: Cloud):
    # GIVEN a model whose data does not exist
    model_name = unique("missing-model")
    cloud.sm.create_model(
        ModelName=model_name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "tfs:2", "ModelDataUrl": "s3://hosting/nothing/model.tar.gz"},
    )
    endpoint = unique("ep")

    # WHEN the endpoint is created
    config = cloud.config(unique("cfg"), {"AllTraffic": (model_name, 1.0)})
    cloud.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)

    # THEN it ends Failed, saying which model data could not be downloaded
    described = cloud.wait_status(endpoint, "Failed")
    assert "s3://hosting/nothing/model.tar.gz" in described["FailureReason"]
    assert cloud.endpoint_statuses(endpoint)[-1] == "FAILED"


def canary_config(alarms: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 200,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            },
            "TerminationWaitInSeconds": 0,
        },
    }
    if alarms:
        config["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": name} for name in alarms]}
    return config


def deployed_pair(cloud: Cloud) -> tuple[str, str, str, float, float]:
    old_model, new_model = unique("blue"), unique("green")
    old_value = one_prediction(cloud.model_from_archive(old_model, seed=21))
    new_value = one_prediction(cloud.model_from_archive(new_model, seed=22))
    assert abs(old_value - new_value) > 1e-3  # the two fleets answer differently
    endpoint = unique("ep")
    old_config = cloud.config(unique("cfg-blue"), {"AllTraffic": (old_model, 1.0)})
    cloud.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=old_config)
    cloud.wait_status(endpoint, "InService")
    new_config = cloud.config(unique("cfg-green"), {"AllTraffic": (new_model, 1.0)})
    return endpoint, old_config, new_config, old_value, new_value


def wait_for_canary(cloud: Cloud, endpoint: str, new_config: str) -> None:
    deadline = time.monotonic() + 30
    while cloud.hosting.serving_config(endpoint)[1:] != (new_config, 0.5):
        assert time.monotonic() < deadline, cloud.hosting.serving_config(endpoint)
        time.sleep(0.02)


def which(value: float, old_value: float, new_value: float) -> str:
    return "old" if abs(value - old_value) < abs(value - new_value) else "new"


def test_a_canary_update_splits_traffic_then_switches_to_the_new_fleet(cloud: Cloud):
    # GIVEN an endpoint serving the old model, and a config for the new one
    endpoint, _, new_config, old_value, new_value = deployed_pair(cloud)

    # WHEN it is updated with a 50 % canary
    cloud.sm.update_endpoint(
        EndpointName=endpoint, EndpointConfigName=new_config, DeploymentConfig=canary_config([])
    )
    wait_for_canary(cloud, endpoint, new_config)
    during = {which(cloud.predict(endpoint), old_value, new_value) for _ in range(30)}
    described = cloud.wait_status(endpoint, "InService")

    # THEN during the canary both fleets answered, and afterwards only the new one does
    assert during == {"old", "new"}
    assert described["EndpointConfigName"] == new_config
    assert {which(cloud.predict(endpoint), old_value, new_value) for _ in range(10)} == {"new"}
    assert [s.weight for s in cloud.hosting.history if s.endpoint_name == endpoint] == [1.0, 0.5, 1.0]
    assert cloud.endpoint_statuses(endpoint) == ["CREATING", "IN_SERVICE", "UPDATING", "IN_SERVICE"]


def quiet_alarm(cloud: Cloud, metric: str, **extra: Any) -> str:
    """An alarm on a SageMaker metric's sum (at least 1 in a minute), set to OK."""
    alarm = unique(metric.lower())
    cloud.cloudwatch.put_metric_alarm(
        AlarmName=alarm,
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        **extra,
    )
    cloud.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet")
    return alarm


def test_invocation_metrics_are_evaluated_by_the_alarms_of_the_server_that_served_them(cloud: Cloud):
    # GIVEN an endpoint, and an alarm on its variant's invocations that is OK
    endpoint, *_ = deployed_pair(cloud)
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": "AllTraffic"}]
    alarm = quiet_alarm(cloud, "Invocations", Dimensions=dimensions)
    # and another embedded AWS of this process has since taken the CloudWatch backend's hooks
    with EmbeddedAws() as other:
        other.alarms.ensure_attached()

    # WHEN the endpoint serves a request (its metrics go to the backend, not through the API)
    cloud.predict(endpoint)
    cloud.hosting.wait_idle(30)

    # THEN this server's evaluator judged them: the alarm is in ALARM
    assert cloud.aws.wait_for_events()
    assert cloud.aws.backend("cloudwatch").alarms[alarm].state_value == "ALARM"


def test_an_alarm_during_baking_rolls_the_update_back(cloud: Cloud):
    # GIVEN an endpoint, a rollback alarm that is OK, and a canary update under way
    endpoint, old_config, new_config, old_value, new_value = deployed_pair(cloud)
    alarm = quiet_alarm(cloud, "Invocation5XXErrors")
    cloud.sm.update_endpoint(
        EndpointName=endpoint, EndpointConfigName=new_config, DeploymentConfig=canary_config([alarm])
    )
    wait_for_canary(cloud, endpoint, new_config)

    # WHEN the alarm goes off while the canary bakes
    cloud.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="5xx errors")
    described = cloud.wait_status(endpoint, "InService")

    # THEN the endpoint is back on the old config, says why, and serves only the old model
    assert described["EndpointConfigName"] == old_config
    assert alarm in described["FailureReason"] and "rolled back" in described["FailureReason"]
    assert {which(cloud.predict(endpoint), old_value, new_value) for _ in range(10)} == {"old"}
    assert cloud.endpoint_statuses(endpoint)[-3:] == ["UPDATING", "ROLLING_BACK", "IN_SERVICE"]


def test_weighted_production_variants_split_traffic(cloud: Cloud):
    # GIVEN an endpoint config with two variants of equal weight, and one with a zero-weight variant
    model_a, model_b = unique("variant-a"), unique("variant-b")
    value_a = one_prediction(cloud.model_from_archive(model_a, seed=31))
    value_b = one_prediction(cloud.model_from_archive(model_b, seed=32))
    split, only_a = unique("ab"), unique("a-only")
    cloud.sm.create_endpoint(
        EndpointName=split,
        EndpointConfigName=cloud.config(unique("cfg-ab"), {"A": (model_a, 1.0), "B": (model_b, 1.0)}),
    )
    cloud.sm.create_endpoint(
        EndpointName=only_a,
        EndpointConfigName=cloud.config(unique("cfg-a"), {"A": (model_a, 1.0), "B": (model_b, 0.0)}),
    )
    cloud.wait_status(split, "InService")
    cloud.wait_status(only_a, "InService")

    # WHEN each is invoked repeatedly
    split_answers = {which(cloud.predict(split), value_a, value_b) for _ in range(30)}
    only_a_answers = {which(cloud.predict(only_a), value_a, value_b) for _ in range(15)}

    # THEN traffic follows the variant weights
    assert split_answers == {"old", "new"}
    assert only_a_answers == {"old"}


def test_weights_change_with_update_endpoint_weights_and_capacities_and_each_variant_is_measured(
    cloud: Cloud,
):
    # GIVEN an A/B endpoint: A takes everything, B nothing
    model_a, model_b = unique("ab-live"), unique("ab-candidate")
    value_a = one_prediction(cloud.model_from_archive(model_a, seed=41))
    value_b = one_prediction(cloud.model_from_archive(model_b, seed=42))
    endpoint = unique("ab-weights")
    cloud.sm.create_endpoint(
        EndpointName=endpoint,
        EndpointConfigName=cloud.config(unique("cfg"), {"A": (model_a, 1.0), "B": (model_b, 0.0)}),
    )
    cloud.wait_status(endpoint, "InService")

    def served(count: int) -> list[tuple[str, str]]:
        answers = []
        for _ in range(count):
            answer = cloud.runtime.invoke_endpoint(
                EndpointName=endpoint, Body=ROW, ContentType="text/csv", Accept="application/json"
            )
            value = float(json.loads(answer["Body"].read())["predictions"][0])
            answers.append((answer["InvokedProductionVariant"], which(value, value_a, value_b)))
        return answers

    # the response names the variant that served (InvokedProductionVariant), and it is the one that answered
    assert set(served(10)) == {("A", "old")}

    # WHEN the split changes to B only (UpdateEndpointWeightsAndCapacities: Updating, then InService)
    cloud.sm.update_endpoint_weights_and_capacities(
        EndpointName=endpoint,
        DesiredWeightsAndCapacities=[
            {"VariantName": "A", "DesiredWeight": 0.0},
            {"VariantName": "B", "DesiredWeight": 1.0},
        ],
    )
    described = cloud.wait_status(endpoint, "InService")
    weights = {
        v["VariantName"]: (v["CurrentWeight"], v["DesiredWeight"]) for v in described["ProductionVariants"]
    }
    assert weights == {"A": (0.0, 0.0), "B": (1.0, 1.0)}
    assert cloud.endpoint_statuses(endpoint)[-2:] == ["UPDATING", "IN_SERVICE"]
    assert set(served(10)) == {("B", "new")}
    # AND InvokeEndpoint's TargetVariant reaches the variant it names, whatever its weight
    pinned = cloud.runtime.invoke_endpoint(
        EndpointName=endpoint, Body=ROW, ContentType="text/csv", Accept="application/json", TargetVariant="A"
    )
    assert pinned["InvokedProductionVariant"] == "A"

    # THEN CloudWatch has each variant's invocations, errors and latency (AWS/SageMaker, EndpointName and
    # VariantName; developer guide, monitoring-cloudwatch)
    watch = cloud.aws.new_client("cloudwatch")

    def total(metric: str, variant: str, statistic: str = "Sum") -> float:
        points = watch.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName=metric,
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": variant},
            ],
            StartTime=datetime.now(UTC) - timedelta(minutes=10),
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=3600,
            Statistics=[statistic],
        )["Datapoints"]
        return sum(point[statistic] for point in points)

    assert (total("Invocations", "A"), total("Invocations", "B")) == (11.0, 10.0)
    assert total("Invocation5XXErrors", "A") == total("Invocation4XXErrors", "B") == 0.0
    assert total("ModelLatency", "B", "Maximum") > 0


@pytest.mark.parametrize(
    ("percent", "header", "expected"),
    [
        (100, {"CsvContentTypes": ["text/csv"], "JsonContentTypes": ["application/json"]}, ("CSV", "JSON")),
        (100, None, ("BASE64", "BASE64")),  # no header: base64 (API reference, CaptureContentTypeHeader)
        (0, None, None),
    ],
)
def test_data_capture_writes_what_model_monitor_reads(cloud: Cloud, percent: int, header: Any, expected: Any):
    # GIVEN an endpoint whose config captures requests and responses
    model = unique("captured")
    cloud.model_from_archive(model, seed=51)
    endpoint, prefix = unique("capture"), unique("capture-prefix")
    capture = {
        "EnableCapture": True,
        "InitialSamplingPercentage": percent,
        "DestinationS3Uri": f"s3://hosting/{prefix}",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    } | ({"CaptureContentTypeHeader": header} if header else {})
    config = unique("cfg")
    cloud.sm.create_endpoint_config(
        EndpointConfigName=config,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
        DataCaptureConfig=capture,
    )
    cloud.sm.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)
    cloud.wait_status(endpoint, "InService")

    # WHEN it is invoked three times
    answers = [
        cloud.runtime.invoke_endpoint(
            EndpointName=endpoint, Body=ROW, ContentType="text/csv", Accept="application/json"
        )["Body"].read()
        for _ in range(3)
    ]
    cloud.hosting.wait_idle(30)

    # THEN each sampled request is a JSON line under <destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/
    # (developer guide, model-monitor-data-capture-endpoint)
    s3 = cloud.aws.new_client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="hosting", Prefix=f"{prefix}/").get("Contents", [])]
    if expected is None:
        assert keys == []
        return
    assert len(keys) == 3
    now = datetime.now(UTC)
    for key in keys:
        assert re.fullmatch(
            rf"{prefix}/{endpoint}/AllTraffic/\d{{4}}/\d\d/\d\d/\d\d/\d\d-\d\d-\d{{3}}-[0-9a-f-]{{36}}\.jsonl",
            key,
        ), key
        assert key.split("/")[3] == f"{now:%Y}"
    [line] = s3.get_object(Bucket="hosting", Key=keys[0])["Body"].read().decode().splitlines()
    record = json.loads(line)
    assert record["eventVersion"] == "0"
    assert set(record["eventMetadata"]) == {"eventId", "inferenceTime"}
    sent, answered = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
    assert (sent["encoding"], answered["encoding"]) == expected
    assert (sent["mode"], sent["observedContentType"]) == ("INPUT", "text/csv")
    assert (answered["mode"], answered["observedContentType"]) == ("OUTPUT", "application/json")
    if expected[0] == "CSV":
        assert sent["data"] == ROW.decode() and answered["data"] == answers[0].decode()
    else:
        assert base64.b64decode(sent["data"]) == ROW


def test_weights_for_a_variant_the_endpoint_lacks_are_refused(cloud: Cloud):
    model_a = unique("only")
    cloud.model_from_archive(model_a, seed=43)
    endpoint = unique("one-variant")
    cloud.sm.create_endpoint(
        EndpointName=endpoint, EndpointConfigName=cloud.config(unique("cfg"), {"A": (model_a, 1.0)})
    )
    cloud.wait_status(endpoint, "InService")
    with pytest.raises(ClientError) as refused:
        cloud.sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint, DesiredWeightsAndCapacities=[{"VariantName": "B", "DesiredWeight": 1.0}]
        )
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError):
        cloud.runtime.invoke_endpoint(
            EndpointName=endpoint, Body=ROW, ContentType="text/csv", TargetVariant="B"
        )
    assert cloud.sm.describe_endpoint(EndpointName=endpoint)["EndpointStatus"] == "InService"


def test_a_batch_transform_writes_one_out_file_per_input_object(cloud: Cloud):
    # GIVEN a model and two CSV files under an input prefix
    model_name = unique("batch-model")
    keras_model = cloud.model_from_archive(model_name, seed=41)
    prefix = unique("batch")
    files = {"part-a.csv": ROWS, "part-b.csv": [[1.0, 2.0, 3.0]]}
    for name, rows in files.items():
        body = "".join(",".join(str(v) for v in row) + "\n" for row in rows)
        cloud.s3.put_object(Bucket="hosting", Key=f"{prefix}/in/{name}", Body=body.encode())
    job = unique("transform")

    # WHEN a transform job runs over the prefix (CSV in, one line per record out)
    cloud.sm.create_transform_job(
        TransformJobName=job,
        ModelName=model_name,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://hosting/{prefix}/in"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://hosting/{prefix}/out",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    assert cloud.hosting.wait_idle(60)

    # THEN it completed, and each input has its .out with the model's predictions
    assert cloud.sm.describe_transform_job(TransformJobName=job)["TransformJobStatus"] == "Completed"
    for name, rows in files.items():
        out = cloud.s3.get_object(Bucket="hosting", Key=f"{prefix}/out/{name}.out")["Body"].read()
        assert [float(v) for v in out.decode().split()] == pytest.approx(direct(keras_model, rows), rel=1e-5)
    cloud.aws.wait_for_events(10)
    statuses = [
        e["detail"]["TransformJobStatus"]
        for e in cloud.events
        if e["detail-type"] == "SageMaker Transform Job State Change"
        and e["detail"]["TransformJobName"] == job
    ]
    assert statuses == ["InProgress", "Completed"]


def test_traffic_schedules_follow_the_routing_configuration():
    # GIVEN the three routing types WHEN scheduled THEN the shares and waits are SageMaker's
    linear = {
        "BlueGreenUpdatePolicy": {
            "TerminationWaitInSeconds": 5,
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 60,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
            },
        }
    }
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 30,
                "CanarySize": {"Type": "INSTANCE_COUNT", "Value": 1},
            }
        }
    }
    assert traffic_schedule(linear, 2) == [(0.25, 60), (0.5, 60), (0.75, 60), (1.0, 5)]
    assert traffic_schedule(canary, 4) == [(0.25, 30), (1.0, 0)]
    assert traffic_schedule({}, 1) == [(1.0, 0)]


def xgboost_model_dir(tmp_path: Path, pickled: bool) -> Path:
    import pickle

    import xgboost

    rows = np.random.default_rng(0).uniform(0, 1, size=(60, 2))
    booster = xgboost.train(
        {"max_depth": 2}, xgboost.DMatrix(rows, label=2 * rows[:, 0] + rows[:, 1]), num_boost_round=20
    )
    folder = tmp_path / ("pickled" if pickled else "native")
    folder.mkdir()
    if pickled:
        (folder / "xgboost-model").write_bytes(pickle.dumps(booster))
    else:
        booster.save_model(str(folder / "xgboost-model"))
    return folder


IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:{}"


def test_the_xgboost_algorithms_server_answers_as_its_container(tmp_path: Path) -> None:
    # (aws/sagemaker-xgboost-container, algorithm_mode/serve.py: CSV in; CSV out, or JSON scores)
    body = b"0.5,0.5\n1.0,0.0\n"
    old = XGBoostAlgorithmModel(xgboost_model_dir(tmp_path, pickled=True), IMAGE.format("1.0-1"))
    new = XGBoostAlgorithmModel(xgboost_model_dir(tmp_path, pickled=False), IMAGE.format("1.7-1"))
    status, answer, kind = old.invoke(body, "text/csv", "text/csv")
    assert (status, kind) == (200, "text/csv") and answer.count(b",") == 1 and b"\n" not in answer
    status, answer, _ = new.invoke(body, "text/csv", "text/csv")
    assert status == 200 and len(answer.decode().splitlines()) == 2 and answer.endswith(b"\n")
    status, answer, _ = old.invoke(body, "text/csv", "text/csv", batch=True)  # SAGEMAKER_BATCH: a line each
    assert answer.decode().splitlines() == [str(float(v)) for v in answer.decode().split()]
    status, answer, kind = new.invoke(body, "text/csv", "application/json")
    assert (
        kind == "application/json" and [set(p) for p in json.loads(answer)["predictions"]] == [{"score"}] * 2
    )
    status, answer, _ = new.invoke(b"1 0:0.5 1:0.5\n", "text/libsvm", "text/csv")  # XGBoost's 0-based columns
    assert status == 200 and len(answer.decode().splitlines()) == 1
    status, answer, _ = new.invoke(b"{}", "application/x-npy", "text/csv")
    assert status == 415


def test_script_mode_needs_the_scripts_model_fn(tmp_path: Path) -> None:
    (tmp_path / "model" / "code").mkdir(parents=True)
    (tmp_path / "model" / "code" / "inference.py").write_text(
        "def predict_fn(data, model):\n    return data\n"
    )
    with pytest.raises(ServingError, match=r"Please provide a model_fn implementation\."):
        ScriptModeModel(tmp_path / "model", {"SAGEMAKER_PROGRAM": "inference.py"}, None, tmp_path / "work")


def test_script_mode_uses_the_toolkits_default_handlers_around_model_fn(tmp_path: Path) -> None:
    (tmp_path / "model" / "code").mkdir(parents=True)
    (tmp_path / "model" / "code" / "inference.py").write_text(
        "class Double:\n    def predict(self, x):\n        return x.sum(axis=1) * 2\n\n"
        "def model_fn(model_dir):\n    return Double()\n"
    )
    model = ScriptModeModel(
        tmp_path / "model", {"SAGEMAKER_PROGRAM": "inference.py"}, None, tmp_path / "work"
    )
    assert model.invoke(b"1,2\n3,4\n", "text/csv", "application/json")[1] == b"[6.0, 14.0]"
    assert model.invoke(b"[[1, 2]]", "application/json", "text/csv")[1] == b"6\n"
    assert model.invoke(b"1,2", "text/plain", "application/json")[0] == 415


@pytest.mark.parametrize(
    ("image", "environment", "kind"),
    [
        (IMAGE.format("1.7-1"), {}, "xgboost"),
        (IMAGE.format("1.7-1"), {"SAGEMAKER_PROGRAM": "serve.py"}, "script"),
        ("683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3", {}, "script"),
        ("763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu", {}, "tensorflow"),
        (
            "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-inference:2.13-cpu",
            {"SAGEMAKER_PROGRAM": "inference.py"},
            "tensorflow",
        ),
    ],
)
def test_the_image_picks_the_server(image: str, environment: dict[str, str], kind: str) -> None:
    assert server_kind(image, environment) == kind


def test_transform_requests_follow_split_type_batch_strategy_and_max_payload() -> None:
    # (CreateTransformJob: SplitType, BatchStrategy, MaxPayloadInMB as the API reference documents them)
    body = b"1,2\n3,4\n\n5,6\n"
    assert _batches(body, split_lines=False, single=False, max_bytes=6) == [body]  # SplitType None
    assert _batches(body, split_lines=True, single=True, max_bytes=6) == [b"1,2\n", b"3,4\n", b"5,6\n"]
    assert _batches(body, split_lines=True, single=False, max_bytes=8) == [b"1,2\n3,4\n", b"5,6\n"]
    assert _batches(body, split_lines=True, single=False, max_bytes=0) == [b"1,2\n3,4\n5,6\n"]  # no limit
    with pytest.raises(ValueError, match=r"a record of 4 bytes is larger than MaxPayloadInMB"):
        _batches(body, split_lines=True, single=False, max_bytes=3)
