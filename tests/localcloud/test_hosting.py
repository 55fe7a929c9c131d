"""Model serving as the SageMaker TensorFlow Serving container does it (ModelHost, LoadedModel)."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from moto import mock_aws

from localcloud.runtime.serving import ModelHost, ModelLoadError

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


def build_model_archive(tmp: Path, handlers: str | None, seed: int = 0) -> tuple[bytes, Any]:
    """A tiny Keras regressor saved as model/1 with a serving_default(features) signature."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((N_FEATURES,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])

    class Export(tf.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        @tf.function(input_signature=[tf.TensorSpec([None, N_FEATURES], tf.float32, name="features")])
        def serve(self, features: Any) -> dict[str, Any]:
            return {"predictions": self.inner(features)}

    root = tmp / f"model-{seed}"
    export = Export(model)
    tf.saved_model.save(export, str(root / "model" / "1"), signatures={"serving_default": export.serve})
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
    csv_status, csv_body, csv_type = loaded.invoke(
        b"0.5,1.0,-2.0\n3.0,0.25,1.5\n", "text/csv", "text/csv")
    json_status, json_body, json_type = loaded.invoke(
        json.dumps({"instances": ROWS}).encode(), "application/json", "application/json")

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


def test_without_inference_py_the_container_speaks_plain_tfs_json(
    s3: Any, host: ModelHost, tmp_path: Path
):
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
    with pytest.raises(ModelLoadError, match=r"no SavedModel at <model name>/<version>/saved_model.pb"):
        host.load(f"s3://{BUCKET}/empty/model.tar.gz")


@pytest.mark.skipif(not Path("training_code/inference.py").exists(), reason="training_code not there yet")
def test_the_projects_inference_handlers_serve_through_the_container(
    s3: Any, host: ModelHost, tmp_path: Path
):
    # GIVEN a model packaged with the project's inference.py
    archive, model = build_model_archive(tmp_path, Path("training_code/inference.py").read_text(), seed=3)
    s3.put_object(Bucket=BUCKET, Key="project/model.tar.gz", Body=archive)
    loaded = host.load(f"s3://{BUCKET}/project/model.tar.gz")

    # WHEN invoked with good CSV, and with a bad row
    status, body, _ = loaded.invoke(b"0.5,1.0,-2.0\n3.0,0.25,1.5\n", "text/csv", "application/json")
    bad_status, bad_body, _ = loaded.invoke(b"0.5,1.0,-2.0\n3.0,x,1.5\n", "text/csv", "application/json")

    # THEN predictions match the model and the bad row is a 400 naming the row
    assert status == 200
    assert json.loads(body)["predictions"] == pytest.approx(direct(model, ROWS), rel=1e-5)
    assert bad_status == 400 and "row 2" in json.loads(bad_body)["error"]
