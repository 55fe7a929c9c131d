"""inference.py as the TensorFlow Serving container loads it: from `code/` beside the model's files."""

from __future__ import annotations

import importlib.util
import io
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import requests

from tests.training.conftest import TRAINING_CODE

FEATURES = ["CRIM", "RM", "LSTAT"]


@dataclass
class RequestContext:
    request_content_type: str = "application/json"
    accept_header: str = "application/json"


@pytest.fixture
def handlers(tmp_path: Path) -> ModuleType:
    """The handler module loaded from a model root laid out the way train.py saves it."""
    (tmp_path / "code").mkdir()
    shutil.copy(TRAINING_CODE / "inference.py", tmp_path / "code" / "inference.py")
    (tmp_path / "feature_columns.json").write_text(json.dumps(FEATURES))
    spec = importlib.util.spec_from_file_location("model_inference", tmp_path / "code" / "inference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def serving_response(status: int, body: object) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


def test_csv_rows_become_a_tensorflow_serving_request(handlers: ModuleType) -> None:
    # GIVEN two CSV rows without header (and a trailing blank line)
    body = io.BytesIO(b"0.1,6.5,4.9\n0.2, 5.9 ,12\n\n")

    # WHEN the input handler prepares the request
    request = handlers.input_handler(body, RequestContext(request_content_type="text/csv"))

    # THEN TensorFlow Serving receives the rows as float instances
    assert json.loads(request) == {"instances": [[0.1, 6.5, 4.9], [0.2, 5.9, 12.0]]}


@pytest.mark.parametrize(
    "body",
    [{"instances": [[0.1, 6.5, 4.9]]}, [[0.1, 6.5, 4.9]], [0.1, 6.5, 4.9]],
    ids=["instances", "list-of-rows", "single-row"],
)
def test_json_bodies_become_instances(handlers: ModuleType, body: object) -> None:
    # GIVEN a JSON body in any accepted shape
    # WHEN the input handler prepares the request
    request = handlers.input_handler(io.BytesIO(json.dumps(body).encode()), RequestContext())

    # THEN it is one instance of three features
    assert json.loads(request) == {"instances": [[0.1, 6.5, 4.9]]}


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/csv", "0.1,6.5,4.9\n0.2,abc,12\n", "row 2, column 2: 'abc' is not a number"),
        ("text/csv", "0.1,6.5\n", "row 1: expected 3 feature values, got 2"),
        ("application/json", '{"instances": [[0.1, 6.5, 4.9], [1, 2, NaN]]}', "row 2, column 3"),
        ("application/json", '{"rows": [[1, 2, 3]]}', "'instances'"),
        ("application/json", "[[1, 2, 3]", "not valid JSON"),
        ("application/json", "[]", "no rows"),
        ("text/plain", "1,2,3", "unsupported content type 'text/plain'"),
    ],
    ids=["non-number", "short-row", "nan", "wrong-key", "broken-json", "empty", "content-type"],
)
def test_a_bad_request_is_refused_with_a_message_naming_the_problem(
    handlers: ModuleType, content_type: str, body: str, message: str
) -> None:
    # GIVEN a request the model cannot score
    # WHEN the input handler reads it
    # THEN it raises ValueError (the container answers 4xx) saying which row and what is wrong
    with pytest.raises(ValueError, match=re.escape(message)):
        handlers.input_handler(io.BytesIO(body.encode()), RequestContext(request_content_type=content_type))


def test_predictions_come_back_as_json_by_default(handlers: ModuleType) -> None:
    # GIVEN TensorFlow Serving's answer for two rows
    response = serving_response(200, {"predictions": [[24.5], [18.25]]})

    # WHEN the output handler formats it for a JSON client
    body, content_type = handlers.output_handler(response, RequestContext())

    # THEN the client gets a flat list of predictions
    assert content_type == "application/json"
    assert json.loads(body) == {"predictions": [24.5, 18.25]}


def test_predictions_come_back_as_csv_lines_when_asked(handlers: ModuleType) -> None:
    # GIVEN TensorFlow Serving's answer and a client accepting CSV
    response = serving_response(200, {"predictions": [[24.5], [18.25]]})

    # WHEN the output handler formats it
    body, content_type = handlers.output_handler(response, RequestContext(accept_header="text/csv"))

    # THEN there is one prediction per line
    assert content_type == "text/csv"
    assert body == "24.5\n18.25\n"


def test_a_serving_error_is_passed_on_with_its_reason(handlers: ModuleType) -> None:
    # GIVEN TensorFlow Serving refused the request
    response = serving_response(400, {"error": "Matrix size-incompatible"})

    # WHEN the output handler sees it
    # THEN the error keeps TensorFlow Serving's reason
    with pytest.raises(ValueError, match=r"400.*Matrix size-incompatible"):
        handlers.output_handler(response, RequestContext())
