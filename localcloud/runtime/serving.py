"""Model serving as SageMaker's TensorFlow Serving container does it: a model.tar.gz with a SavedModel at
`<name>/<version>/` and optional `code/inference.py` handlers, answering invocations in-process.

Serving runs in the local cloud's own process: TensorFlow is imported once (lazily, on the first load),
each model is loaded once per model-data URL, and a request is a direct call of the `serving_default`
signature, so an invocation costs milliseconds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from localcloud.runtime.model_servers import (
    ScriptModeModel,
    ServingError,
    XGBoostAlgorithmModel,
    import_script,
    server_kind,
)
from localcloud.runtime.quiet_start import import_quietly
from localcloud.runtime.s3io import S3Location, extract_archive

JSON = "application/json"
CSV = "text/csv"
JSON_TYPES = (JSON, "application/jsonlines", "application/jsons")


@dataclass(frozen=True)
class Context:
    """The request context the TFS container hands to `input_handler` / `output_handler`."""

    model_name: str
    model_version: str
    method: str
    rest_uri: str
    grpc_uri: str
    custom_attributes: str
    request_content_type: str
    accept_header: str
    content_length: int


@dataclass(frozen=True)
class TfsResponse:
    """What TensorFlow Serving's REST API answered (the `requests.Response` the handlers see)."""

    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": JSON})

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.content)


class ModelLoadError(Exception):
    """The model data cannot be served (no SavedModel, bad archive, broken handlers)."""


class TfsRequestError(Exception):
    """A request TensorFlow Serving rejects with 400."""


class LoadedModel:
    """One model as a TFS container serves it: handlers around the `serving_default` signature."""

    def __init__(self, model_data_url: str, model_dir: Path, saved_model_dir: Path) -> None:
        import tensorflow as tf

        self.model_data_url = model_data_url
        self.model_dir = model_dir
        # TFS names a model by its folder; the archive's root is /opt/ml/model, so "model"
        self.model_name = "model" if saved_model_dir.parent == model_dir else saved_model_dir.parent.name
        self.model_version = saved_model_dir.name
        self._tf = tf
        try:
            self._saved_model = tf.saved_model.load(str(saved_model_dir))
            self._signatures = dict(self._saved_model.signatures)
        except Exception as error:
            raise ModelLoadError(f"TensorFlow Serving could not load {saved_model_dir}: {error}") from error
        if "serving_default" not in self._signatures:
            raise ModelLoadError(f"the SavedModel in {saved_model_dir} has no serving_default signature")
        self.handlers = _import_handlers(model_dir / "code" / "inference.py", model_data_url)

    # -- the container's /invocations ------------------------------------------------------------------

    def invoke(
        self, body: bytes, content_type: str, accept: str, batch: bool = False
    ) -> tuple[int, bytes, str]:
        """One POST /invocations: returns (HTTP status, body, content type) as the container answers (TFS
        answers a batch transform's requests as any other)."""
        content_type = content_type or JSON
        accept = accept or JSON
        context = Context(
            model_name=self.model_name,
            model_version=self.model_version,
            method="predict",
            rest_uri=f"http://localhost:8501/v1/models/{self.model_name}:predict",
            grpc_uri="localhost:9000",
            custom_attributes="",
            request_content_type=content_type,
            accept_header=accept,
            content_length=len(body),
        )
        try:
            if self.handlers is not None and hasattr(self.handlers, "input_handler"):
                request = self.handlers.input_handler(io.BytesIO(body), context)
            else:
                request = _default_request(body, content_type)
            response = self.predict(request)
            if self.handlers is not None and hasattr(self.handlers, "output_handler"):
                out, out_type = self.handlers.output_handler(response, context)
            else:
                out, out_type = response.content, JSON
                if response.status_code != 200:
                    return response.status_code, response.content, JSON
        except ValueError as error:  # the container's answer to a handler's ValueError: a 4xx
            return 400, _error_body(str(error)), JSON
        except Exception as error:
            return 500, _error_body(f"{type(error).__name__}: {error}"), JSON
        return 200, out.encode("utf-8") if isinstance(out, str) else bytes(out), out_type

    # -- TensorFlow Serving's REST predict ------------------------------------------------------------

    def predict(self, request: str | bytes | dict[str, Any]) -> TfsResponse:
        """`POST /v1/models/<name>:predict` with a TFS REST body (row `instances` or columnar `inputs`)."""
        try:
            document = request if isinstance(request, dict) else json.loads(request)
            if not isinstance(document, dict):
                raise TfsRequestError("JSON Value is not an object: the request must be a JSON object")
            return TfsResponse(200, json.dumps(self._predict(document)).encode())
        except json.JSONDecodeError as error:
            return TfsResponse(400, _error_body(f"JSON Parse error: {error.msg} at offset {error.pos}"))
        except TfsRequestError as error:
            return TfsResponse(400, _error_body(str(error)))
        except self._tf.errors.InvalidArgumentError as error:
            return TfsResponse(400, _error_body(error.message))
        except (ValueError, TypeError) as error:
            return TfsResponse(400, _error_body(str(error)))

    def _predict(self, document: dict[str, Any]) -> dict[str, Any]:
        name = document.get("signature_name", "serving_default")
        if name not in self._signatures:
            raise TfsRequestError(f'Serving signature name: "{name}" not found in signature def')
        signature = self._signatures[name]
        specs: dict[str, Any] = signature.structured_input_signature[1]
        if "instances" in document:
            inputs = self._row_inputs(document["instances"], specs)
            outputs = {k: v.numpy().tolist() for k, v in signature(**inputs).items()}
            if len(outputs) == 1:
                return {"predictions": next(iter(outputs.values()))}
            rows = len(next(iter(outputs.values())))
            return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(rows)]}
        if "inputs" in document:
            given = document["inputs"]
            if not isinstance(given, dict):
                if len(specs) != 1:
                    raise TfsRequestError("inputs must be an object naming each input of the signature")
                given = {next(iter(specs)): given}
            inputs = {k: self._tensor(given.get(k), spec, k) for k, spec in specs.items()}
            outputs = {k: v.numpy().tolist() for k, v in signature(**inputs).items()}
            return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
        raise TfsRequestError("Missing 'inputs' or 'instances' key")

    def _row_inputs(self, instances: Any, specs: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(instances, list) or not instances:
            raise TfsRequestError("instances must be a non-empty JSON list")
        if all(isinstance(row, dict) for row in instances):
            columns = {k: [row.get(k) for row in instances] for k in specs}
        elif len(specs) == 1:
            columns = {next(iter(specs)): instances}
        else:
            raise TfsRequestError("instances must be objects naming each input of a multi-input signature")
        return {k: self._tensor(columns[k], spec, k) for k, spec in specs.items()}

    def _tensor(self, value: Any, spec: Any, name: str) -> Any:
        if value is None or (isinstance(value, list) and any(v is None for v in value)):
            raise TfsRequestError(f"input {name!r} is missing")
        tf = self._tf
        tensor = tf.convert_to_tensor(value, dtype=spec.dtype)
        if not spec.shape.is_compatible_with(tensor.shape):
            raise TfsRequestError(
                f"input {name!r} has shape {tensor.shape.as_list()}, the signature expects {spec.shape}"
            )
        return tensor


class ModelHost:
    """Loads model.tar.gz archives from S3 and keeps one LoadedModel per model-data URL."""

    def __init__(self, s3_client: Any, workdir: Path) -> None:
        self.s3 = s3_client
        self.workdir = Path(workdir) / "models"
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def load(self, model_data_url: str, image: str = "", environment: dict[str, str] | None = None) -> Any:
        """Download, extract and load a model with the server its image runs (once per model data, image and
        environment; later calls return the same model). Every model answers
        `invoke(body, content_type, accept, batch=False) -> (status, body, content type)`."""
        environment = dict(environment or {})
        key = json.dumps([model_data_url, image, sorted(environment.items())])
        with self._lock:
            if key in self._models:
                return self._models[key]
            url_lock = self._loading.setdefault(key, threading.Lock())
        with url_lock:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            model = self._load(model_data_url, image, environment, key)
            with self._lock:
                self._models[key] = model
            return model

    def _load(self, model_data_url: str, image: str, environment: dict[str, str], key: str) -> Any:
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        target = self.workdir / digest
        archive = self.workdir / f"{digest}.tar.gz"
        target.mkdir(parents=True, exist_ok=True)
        try:
            location = S3Location.parse(model_data_url)
            self.s3.download_file(location.bucket, location.key, str(archive))
            extract_archive(archive, target)
        except (ValueError, tarfile.TarError, OSError) as error:
            raise ModelLoadError(f"could not extract {model_data_url}: {error}") from error
        except Exception as error:  # botocore ClientError: the object is missing or unreadable
            raise ModelLoadError(f"could not download {model_data_url}: {error}") from error
        kind = server_kind(image, environment)
        try:
            if kind == "xgboost":
                return XGBoostAlgorithmModel(target, image)
            if kind == "script":
                return ScriptModeModel(target, environment, self.s3, self.workdir / f"{digest}-code")
        except ServingError as error:
            raise ModelLoadError(str(error)) from error
        import_quietly("tensorflow", self.workdir.parent / "tensorflow-start.log")
        return LoadedModel(
            model_data_url,
            target,
            find_saved_model(target, environment.get("SAGEMAKER_TFS_DEFAULT_MODEL_NAME")),
        )


def find_saved_model(model_dir: Path, default_model_name: str | None = None) -> Path:
    """The SavedModel version TFS serves from the model data, found as the SageMaker TFS container finds
    models (`tfs_utils.find_models`, aws/sagemaker-tensorflow-serving-container and the deep learning
    containers): every `saved_model.pb` at any depth whose folder is all digits is a version, and the folder
    above it is a model, named by its base name (`/opt/ml/model` itself when the version is at the archive's
    root: `1/saved_model.pb`, `model/1/…`, `export/Servo/1/…`, `<name>/<version>/…` all serve). The default
    model is `SAGEMAKER_TFS_DEFAULT_MODEL_NAME`, else the first found; TF Serving serves its highest version.
    """
    models: list[Path] = []
    for folder, subfolders, files in os.walk(model_dir):
        subfolders.sort()
        here = Path(folder)
        if "saved_model.pb" in files and here.name.isdigit() and here.parent not in models:
            models.append(here.parent)
    if not models:
        found = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("saved_model.pb"))
        raise ModelLoadError(
            "no SavedModel bundles found! (TFS serves <model>/<version>/saved_model.pb, the version all "
            f"digits; found: {found})"
        )

    def name_of(model: Path) -> str:
        return "model" if model == model_dir else model.name  # model_dir stands for /opt/ml/model

    chosen = models[0]
    if default_model_name:
        named = [m for m in models if name_of(m) == default_model_name]
        if not named:
            raise ModelLoadError(
                f"SAGEMAKER_TFS_DEFAULT_MODEL_NAME {default_model_name!r} names none of the models "
                f"{[name_of(m) for m in models]}"
            )
        chosen = named[0]
    versions = [v for v in chosen.iterdir() if v.name.isdigit() and (v / "saved_model.pb").is_file()]
    return max(versions, key=lambda version: int(version.name))


def _import_handlers(path: Path, model_data_url: str) -> ModuleType | None:
    if not path.is_file():
        return None
    name = "inference_" + re.sub(r"\W", "_", hashlib.sha256(model_data_url.encode()).hexdigest()[:12])
    try:
        module = import_script(path, name, shown="code/inference.py")
    except ServingError as error:
        raise ModelLoadError(str(error)) from error
    if hasattr(module, "handler") and not hasattr(module, "input_handler"):
        raise ModelLoadError(
            "code/inference.py defines handler(); only input_handler/output_handler are supported locally"
        )
    return module


_TFS_JSON = re.compile(r'"(instances|inputs|examples)"\s*:')
_JSON_LINES = re.compile(r"[}\]]\s*[\[{]")  # objects separated only by whitespace
_LIST_OF_LISTS = re.compile(r"^\s*\[\s*\[")


def _default_request(body: bytes, content_type: str) -> str:
    """The container's translation without inference.py, as its nginx module does it
    (`tensorflowServing.js`: `json_request`, `csv_request`): CSV rows, JSON or JSON lines to a TFS REST
    body. application/json, application/jsonlines and application/jsons are all read as JSON: JSON lines
    become one instance per line; a body that names `instances`, `inputs` or `examples` passes unchanged;
    any other JSON is one instance unless it is already a list of lists."""
    kind = content_type.split(";")[0].strip().lower()
    text = body.decode("utf-8")
    if kind == CSV:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
        try:
            instances = [[float(cell) for cell in row] for row in rows]
        except ValueError as error:
            raise ValueError(f"CSV body has a value that is not a number: {error}") from None
        return json.dumps({"instances": instances})
    if kind in JSON_TYPES:
        if _JSON_LINES.search(text):
            lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
            listed = lines[0] if len(lines) == 1 else "[" + ",".join(lines) + "]"
            document = '{"instances":' + listed + "}"
        elif _TFS_JSON.search(text):
            document = text
        else:
            document = '{"instances":' + (text if _LIST_OF_LISTS.search(text) else "[" + text + "]") + "}"
        try:
            json.loads(document)
        except ValueError as error:
            raise ValueError(f"the JSON body does not parse: {error}") from None
        return document
    raise ValueError(f"Unsupported Media Type: {content_type or 'Unknown'}")


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}).encode()
