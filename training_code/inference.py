"""Pre- and post-processing handlers for SageMaker's TensorFlow Serving container (`code/inference.py`):
CSV or JSON feature rows in, `{"predictions": [...]}` JSON or CSV out.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Protocol

# train.py writes feature_columns.json beside code/, i.e. at the model root.
FEATURE_COLUMNS_FILE = Path(__file__).resolve().parent.parent / "feature_columns.json"


class Context(Protocol):
    """The attributes of the TFS container's request context that the handlers read."""

    request_content_type: str
    accept_header: str


def expected_feature_count() -> int | None:
    if FEATURE_COLUMNS_FILE.is_file():
        return len(json.loads(FEATURE_COLUMNS_FILE.read_text()))
    return None


def _number(value: Any, row: int, column: int) -> float:
    if isinstance(value, bool):
        raise ValueError(f"row {row}, column {column}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"row {row}, column {column}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"row {row}, column {column}: {value!r} is not a finite number")
    return number


def validate_rows(rows: list[Any], n_features: int | None) -> list[list[float]]:
    """Numbers only, one length for every row (the model's feature count when known); errors name the row."""
    if not rows:
        raise ValueError("the request holds no rows")
    width = n_features if n_features is not None else (len(rows[0]) if isinstance(rows[0], list) else None)
    checked: list[list[float]] = []
    for index, row in enumerate(rows, start=1):
        if not isinstance(row, list):
            raise ValueError(f"row {index}: expected a list of {width or 'the'} feature values, got {row!r}")
        if len(row) != width:
            raise ValueError(f"row {index}: expected {width} feature values, got {len(row)}")
        checked.append([_number(value, index, column) for column, value in enumerate(row, start=1)])
    return checked


def parse_csv(text: str) -> list[Any]:
    return [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]


def parse_json(text: str) -> list[Any]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"the body is not valid JSON: {error.msg} at position {error.pos}") from None
    if isinstance(body, dict):
        if "instances" not in body:
            raise ValueError(f"a JSON object body needs an 'instances' key, got keys {sorted(body)}")
        body = body["instances"]
    if not isinstance(body, list):
        raise ValueError("the JSON body must be a list of rows or an object with 'instances'")
    # A single flat row is accepted as one instance.
    if body and not any(isinstance(row, list) for row in body):
        body = [body]
    return body


def input_handler(data: Any, context: Context) -> str:
    """Request body to the TensorFlow Serving REST request `{"instances": [[...], ...]}`."""
    raw = data.read() if hasattr(data, "read") else data
    text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    content_type = (context.request_content_type or "application/json").split(";")[0].strip().lower()
    if content_type == "text/csv":
        rows = parse_csv(text)
    elif content_type == "application/json":
        rows = parse_json(text)
    else:
        raise ValueError(f"unsupported content type {content_type!r}; use text/csv or application/json")
    return json.dumps({"instances": validate_rows(rows, expected_feature_count())})


def output_handler(response: Any, context: Context) -> tuple[str, str]:
    """TensorFlow Serving's answer to `{"predictions": [..]}` JSON, or one value per line for text/csv."""
    if response.status_code != 200:
        body = response.content.decode("utf-8") if isinstance(response.content, bytes) else response.content
        raise ValueError(f"TensorFlow Serving answered {response.status_code}: {body}")
    raw = json.loads(response.content)["predictions"]
    predictions = [float(p[0]) if isinstance(p, list) else float(p) for p in raw]
    accept = (context.accept_header or "application/json").split(",")[0].split(";")[0].strip().lower()
    if accept == "text/csv":
        return "".join(f"{value}\n" for value in predictions), "text/csv"
    if accept in ("application/json", "*/*", ""):
        return json.dumps({"predictions": predictions}), "application/json"
    raise ValueError(f"unsupported accept type {accept!r}; use text/csv or application/json")
