"""Model servers besides TensorFlow Serving: what SageMaker's XGBoost and scikit-learn containers answer.

`ModelHost` picks the server from the model's container image (`server_kind`):

- **the XGBoost algorithm** (the `sagemaker-xgboost` image, no `SAGEMAKER_PROGRAM`): the container's
  algorithm-mode server (aws/sagemaker-xgboost-container, algorithm_mode/serve.py, serve_utils.py). It loads
  the first file of the model directory (pickled Booster, else `Booster.load_model`); reads `text/csv` rows
  (no label) or `text/libsvm`; answers `text/csv` (the default) or `application/json`
  (`{"predictions": [{"score": …}]}`). In a batch transform (`SAGEMAKER_BATCH`) CSV answers are one line per
  prediction; in real time, one per line from 1.3-1 on and comma-joined on one line before it;
- **script mode** (the `sagemaker-scikit-learn` image, or the XGBoost image with `SAGEMAKER_PROGRAM`): the
  SageMaker inference toolkit's handler chain around the user's script (`model_fn`, and `input_fn`,
  `predict_fn`, `output_fn` when the script defines them, else the toolkit's defaults: NPY/JSON/CSV decoded to
  a NumPy array, `model.predict`, and the answer encoded in the Accept type). The script comes from
  `SAGEMAKER_SUBMIT_DIRECTORY` (a sourcedir.tar.gz) or the model archive's `code/`.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import pickle
import re
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from localcloud.runtime.algorithms import XGBOOST_IMAGE, XGBOOST_PICKLED_VERSIONS
from localcloud.runtime.s3io import S3Location, extract_archive

CSV = "text/csv"
JSON = "application/json"
NPY = "application/x-npy"
LIBSVM = "text/libsvm"
_TENSORFLOW_IMAGE = re.compile(r"/(sagemaker-)?tensorflow[-a-z]*:")


class ServingError(Exception):
    """The model cannot be served (no model file, no model_fn, a script that fails to import)."""


def server_kind(image: str, environment: dict[str, str]) -> str:
    """ "xgboost", "script" or "tensorflow": which container the image runs."""
    if "SAGEMAKER_PROGRAM" in environment and not _TENSORFLOW_IMAGE.search(image):
        return "script"  # (the TFS container's own code/inference.py handlers are the TFS server's)
    if XGBOOST_IMAGE.search(image):
        return "xgboost"
    if "/sagemaker-scikit-learn:" in image:
        return "script"
    return "tensorflow"


def _answer(status: int, message: str) -> tuple[int, bytes, str]:
    return status, json.dumps({"error": message}).encode(), JSON


def _kind(content_type: str) -> str:
    return (content_type or "").split(";")[0].strip().lower()


class XGBoostAlgorithmModel:
    """The XGBoost container in algorithm mode."""

    def __init__(self, model_dir: Path, image: str) -> None:
        import xgboost

        self._xgboost = xgboost
        match = XGBOOST_IMAGE.search(image)
        self.version = match.group("version") if match else ""
        files = sorted(p for p in model_dir.iterdir() if p.is_file())
        if not files:
            raise ServingError(f"no model file in the model data at {model_dir}")
        try:
            with files[0].open("rb") as handle:
                booster = pickle.load(handle)  # noqa: S301 - the algorithm's own artifact, as its server loads it
        except Exception:  # not a pickle: XGBoost's own format (1.3-1 and later)
            booster = xgboost.Booster()
            try:
                booster.load_model(str(files[0]))
            except xgboost.core.XGBoostError as error:
                message = f"{files[0].name} is neither a pickled Booster nor an XGBoost model"
                raise ServingError(message) from error
        self.booster = booster

    def invoke(
        self, body: bytes, content_type: str, accept: str, batch: bool = False
    ) -> tuple[int, bytes, str]:
        kind = _kind(content_type) or LIBSVM
        try:
            if kind in (CSV, "csv"):
                matrix = self._xgboost.DMatrix(_decode(body, CSV).astype("float32"))
            elif kind in (LIBSVM, "libsvm", "text/x-libsvm"):
                with tempfile.NamedTemporaryFile(suffix=".libsvm") as handle:
                    handle.write(body)
                    handle.flush()
                    matrix = self._xgboost.DMatrix(f"{handle.name}?format=libsvm")
            else:
                return _answer(415, f"Content type {content_type} is not supported by this algorithm here")
            predictions = self.booster.predict(matrix)
        except (ValueError, self._xgboost.core.XGBoostError) as error:
            return _answer(400, f"Unable to evaluate payload provided: {error}")
        flat = [float(p) for p in np.asarray(predictions).reshape(len(predictions), -1)[:, 0]]
        if _kind(accept) == JSON:
            return 200, json.dumps({"predictions": [{"score": p} for p in flat]}).encode(), JSON
        if batch or self.version not in XGBOOST_PICKLED_VERSIONS:
            return 200, ("\n".join(map(str, flat)) + "\n").encode(), CSV
        return 200, ",".join(map(str, flat)).encode(), CSV


class ScriptModeModel:
    """The SageMaker inference toolkit's handler chain around a user's script (scikit-learn, XGBoost)."""

    def __init__(self, model_dir: Path, environment: dict[str, str], s3: Any, workdir: Path) -> None:
        self.model_dir = model_dir
        program = environment.get("SAGEMAKER_PROGRAM", "")
        code_dir = model_dir / "code"
        submit = environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            code_dir = workdir / "code"
            code_dir.mkdir(parents=True, exist_ok=True)
            archive = workdir / "sourcedir.tar.gz"
            location = S3Location.parse(submit)
            s3.download_file(location.bucket, location.key, str(archive))
            extract_archive(archive, code_dir)
        script = code_dir / program
        if not program or not script.is_file():
            where = submit or "the model data's code/"
            raise ServingError(f"the inference script {program!r} is not in {where}")
        self.module = import_script(
            script, "serving_" + hashlib.sha256(str(script).encode()).hexdigest()[:12]
        )
        model_fn = getattr(self.module, "model_fn", None)
        if model_fn is None:
            raise ServingError("Please provide a model_fn implementation.")  # the toolkit's own refusal
        try:
            self.model = model_fn(str(model_dir))
        except Exception as error:
            raise ServingError(f"model_fn failed: {type(error).__name__}: {error}") from error

    def invoke(
        self, body: bytes, content_type: str, accept: str, batch: bool = False
    ) -> tuple[int, bytes, str]:
        accept = accept if _kind(accept) not in ("", "*/*") else JSON
        try:
            input_fn = getattr(self.module, "input_fn", None)
            data = input_fn(body, content_type) if input_fn else _decode(body, content_type)
            predict_fn = getattr(self.module, "predict_fn", None)
            prediction = predict_fn(data, self.model) if predict_fn else self.model.predict(data)
            output_fn = getattr(self.module, "output_fn", None)
            if output_fn:
                out = output_fn(prediction, accept)
                out, out_type = out if isinstance(out, tuple) else (out, accept)
            else:
                out, out_type = _encode(prediction, accept), _kind(accept)
        except UnsupportedMediaType as error:
            return _answer(415, str(error))
        except ValueError as error:
            return _answer(400, str(error))
        except Exception as error:
            return _answer(500, f"{type(error).__name__}: {error}")
        return 200, out.encode() if isinstance(out, str) else bytes(out), out_type


class UnsupportedMediaType(ValueError):
    """A content type the toolkit's default decoder or encoder does not know."""


def _decode(body: bytes, content_type: str) -> np.ndarray:
    """The inference toolkit's default input_fn: NPY, JSON or CSV to a NumPy array."""
    kind = _kind(content_type)
    if kind == NPY:
        return np.load(io.BytesIO(body), allow_pickle=False)
    if kind == JSON:
        return np.array(json.loads(body))
    if kind == CSV:
        return np.array([[float(c) for c in row] for row in csv.reader(io.StringIO(body.decode())) if row])
    raise UnsupportedMediaType(f"Content type {content_type} is not supported by this framework.")


def _encode(prediction: Any, accept: str) -> bytes:
    """The inference toolkit's default output_fn: the prediction as JSON, CSV or NPY."""
    array = np.asarray(prediction)
    kind = _kind(accept)
    if kind == JSON:
        return json.dumps(array.tolist()).encode()
    if kind == CSV:
        rows = array.reshape(len(array), -1) if array.ndim else array.reshape(1, 1)
        return ("\n".join(",".join(str(v) for v in row) for row in rows.tolist()) + "\n").encode()
    if kind == NPY:
        buffer = io.BytesIO()
        np.save(buffer, array)
        return buffer.getvalue()
    raise UnsupportedMediaType(f"Accept type {accept} is not supported by this framework.")


def import_script(path: Path, module_name: str, shown: str | None = None) -> ModuleType:
    """Import a serving container's user script by path, with its folder on the path while it imports (the
    containers put the code directory on the path, for helper modules)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ServingError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        message = f"importing {shown or path.name} failed: {type(error).__name__}: {error}"
        raise ServingError(message) from error
    finally:
        sys.path.remove(str(path.parent))
    return module
