"""Real-time endpoints and batch transforms on the embedded AWS, served by `ModelHost`.

CreateEndpoint loads every production variant's model and brings the endpoint InService (or Failed);
UpdateEndpoint is a blue/green deployment: the new fleet loads first, then traffic shifts as the
DeploymentConfig says (all at once, canary, linear), with each wait scaled down for local runs by
`LOCALCLOUD_DEPLOYMENT_TIME_SCALE` (default 0.01: a 600 s bake takes 6 s) and a rollback to the old fleet
when an alarm of AutoRollbackConfiguration is in ALARM. Requests are split between the fleets by the
current weight, and between a fleet's variants by their weights (A/B). CreateTransformJob runs the
model over every object of the input prefix and writes `<output prefix>/<input name>.out`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from localcloud.runtime.s3io import S3Location, list_keys, relative_key
from localcloud.runtime.serving import LoadedModel, ModelHost

if TYPE_CHECKING:
    from localcloud.aws import EmbeddedAws

LOGGER = logging.getLogger(__name__)
TIME_SCALE_ENV = "LOCALCLOUD_DEPLOYMENT_TIME_SCALE"
DEFAULT_TIME_SCALE = 0.01
_ALARM_POLL_SECONDS = 0.05
_DEFAULT_MAX_PAYLOAD_MB = 6


@dataclass(frozen=True)
class Variant:
    """A production variant: its share of its fleet's traffic and the model serving it."""

    name: str
    weight: float
    model: LoadedModel


@dataclass(frozen=True)
class Fleet:
    """What one endpoint config serves."""

    config_name: str
    variants: tuple[Variant, ...]
    capture: dict[str, Any] | None = None  # the config's DataCaptureConfig, when EnableCapture

    def pick(self, rng: random.Random) -> Variant:
        total = sum(v.weight for v in self.variants)
        if total <= 0:
            return self.variants[0]
        point = rng.uniform(0, total)
        for variant in self.variants:
            point -= variant.weight
            if point <= 0:
                return variant
        return self.variants[-1]


@dataclass
class _Serving:
    """An endpoint's live fleet and, during a blue/green update, the new fleet and its traffic share."""

    fleet: Fleet
    candidate: Fleet | None = None
    candidate_weight: float = 0.0
    cancelled: bool = False


@dataclass(frozen=True)
class TrafficStep:
    """One point of a deployment's traffic history, for watchers and tests."""

    endpoint_name: str
    config_name: str
    weight: float
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


class DeploymentRolledBack(Exception):
    """An alarm fired while the new fleet was baking."""


class EndpointHosting:
    """Serves the embedded AWS's endpoints and transform jobs; `attach()` wires it to the API calls."""

    def __init__(
        self,
        aws: EmbeddedAws,
        host: ModelHost,
        time_scale: float | None = None,
        seed: int | None = None,
    ) -> None:
        self.aws = aws
        self.host = host
        self.time_scale = (
            time_scale
            if time_scale is not None
            else float(os.environ.get(TIME_SCALE_ENV, DEFAULT_TIME_SCALE))
        )
        self.history: list[TrafficStep] = []
        self._rng = random.Random(seed)  # noqa: S311 - traffic splitting, not security
        self._lock = threading.RLock()
        self._endpoints: dict[str, _Serving] = {}
        self._threads: list[threading.Thread] = []
        self._clients: dict[str, Any] = {}
        self._captures = ThreadPoolExecutor(max_workers=1, thread_name_prefix="data-capture")

    # -- wiring ----------------------------------------------------------------------------------------

    def attach(self) -> EndpointHosting:
        """Take over endpoint and transform-job completion from the embedded AWS's instant defaults."""
        self.aws.sagemaker.auto_complete_endpoints = False
        self.aws.add_listener("sagemaker", "CreateEndpoint", self._on_create_endpoint)
        self.aws.add_listener("sagemaker", "UpdateEndpoint", self._on_update_endpoint)
        self.aws.add_listener("sagemaker", "DeleteEndpoint", self._on_delete_endpoint)
        self.aws.add_listener("sagemaker", "CreateTransformJob", self._on_create_transform_job)
        self.aws.sagemaker.register_endpoint_invoker(self.invoke)
        self.aws.sagemaker.weight_listeners.append(self._on_new_weights)
        return self

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until every deployment and transform started so far has finished, and every captured
        request is written."""
        deadline = time.monotonic() + timeout
        self._captures.submit(lambda: None).result(timeout)
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
                self._threads = alive
            if not alive:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            alive[0].join(min(remaining, 0.5))

    def _background(self, name: str, fn: Any, *args: Any) -> None:
        thread = threading.Thread(target=fn, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.aws.new_client(service)
            return self._clients[service]

    # -- invocations -----------------------------------------------------------------------------------

    def invoke(
        self,
        endpoint_name: str,
        body: bytes,
        content_type: str | None,
        accept: str | None,
        target_variant: str | None = None,
    ) -> tuple[int, bytes, str, str]:
        """The endpoint invoker: pick the fleet by the deployment's weight, the variant by its weight (or
        the one InvokeEndpoint's TargetVariant names); answers with the variant that served."""
        with self._lock:
            serving = self._endpoints.get(endpoint_name)
            if serving is None:
                return 503, b'{"error": "the endpoint has no model loaded"}', "application/json", "AllTraffic"
            fleet = serving.fleet
            if serving.candidate is not None and self._rng.random() < serving.candidate_weight:
                fleet = serving.candidate
            named = [v for v in fleet.variants if v.name == target_variant]
            variant = named[0] if named else fleet.pick(self._rng)
            captured = fleet.capture is not None and self._rng.uniform(0, 100) < float(
                fleet.capture.get("InitialSamplingPercentage", 0)
            )
        request_type = content_type or "application/json"
        status, answer, answer_type = variant.model.invoke(body, request_type, accept or "application/json")
        if captured and fleet.capture is not None and status < 400:
            record = capture_record(fleet.capture, body, request_type, answer, answer_type)
            self._captures.submit(self._write_capture, fleet.capture, endpoint_name, variant.name, record)
        return status, answer, answer_type, variant.name

    def _write_capture(
        self, capture: dict[str, Any], endpoint: str, variant: str, record: dict[str, Any]
    ) -> None:
        """One captured request as SageMaker stores it: JSON lines under
        <DestinationS3Uri>/<endpoint>/<variant>/yyyy/mm/dd/hh/ by the hour of the invocation (developer
        guide, model-monitor-data-capture-endpoint). SageMaker buffers several records per file; here each
        file holds one (readers list the hour's prefix either way)."""
        moment = datetime.now(UTC)
        location = S3Location.parse(str(capture["DestinationS3Uri"]).rstrip("/"))
        name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
        key = f"{location.key}/{endpoint}/{variant}/{moment:%Y/%m/%d/%H}/{name}".lstrip("/")
        try:
            self._client("s3").put_object(
                Bucket=location.bucket, Key=key, Body=(json.dumps(record) + "\n").encode()
            )
        except Exception as error:  # a capture that cannot be written is lost, as on AWS; serving goes on
            LOGGER.warning("data capture of %s not written: %s", endpoint, error)

    def _on_new_weights(self, endpoint_name: str, weights: dict[str, float]) -> None:
        """UpdateEndpointWeightsAndCapacities: the live fleet's variants take their new weights."""
        with self._lock:
            serving = self._endpoints.get(endpoint_name)
            if serving is None:
                return
            fleet = serving.fleet
            serving.fleet = Fleet(
                fleet.config_name,
                tuple(Variant(v.name, weights.get(v.name, v.weight), v.model) for v in fleet.variants),
                fleet.capture,
            )

    def serving_config(self, endpoint_name: str) -> tuple[str | None, str | None, float]:
        """(live config, config being deployed, its share of traffic) for an endpoint."""
        with self._lock:
            serving = self._endpoints.get(endpoint_name)
            if serving is None:
                return None, None, 0.0
            candidate = serving.candidate.config_name if serving.candidate else None
            return serving.fleet.config_name, candidate, serving.candidate_weight

    # -- endpoints -------------------------------------------------------------------------------------

    def _on_create_endpoint(self, params: dict[str, Any], _: dict[str, Any]) -> None:
        self._background(
            f"create-{params['EndpointName']}",
            self._create_endpoint,
            params["EndpointName"],
            params["EndpointConfigName"],
        )

    def _create_endpoint(self, endpoint_name: str, config_name: str) -> None:
        try:
            fleet = self.load_fleet(config_name)
        except Exception as error:
            LOGGER.warning("endpoint %s failed to load: %s", endpoint_name, error)
            self.aws.sagemaker.set_endpoint_status(endpoint_name, "Failed", failure_reason=_reason(error))
            return
        with self._lock:
            self._endpoints[endpoint_name] = _Serving(fleet)
            self.history.append(TrafficStep(endpoint_name, config_name, 1.0))
        self.aws.sagemaker.set_endpoint_status(endpoint_name, "InService")

    def _on_update_endpoint(self, params: dict[str, Any], _: dict[str, Any]) -> None:
        name = params["EndpointName"]
        deployment = params.get("DeploymentConfig")
        if deployment is None and params.get("RetainDeploymentConfig"):
            described = self._client("sagemaker").describe_endpoint(EndpointName=name)
            deployment = described.get("LastDeploymentConfig")
        self._background(
            f"update-{name}", self._update_endpoint, name, params["EndpointConfigName"], deployment or {}
        )

    def _update_endpoint(self, endpoint_name: str, config_name: str, deployment: dict[str, Any]) -> None:
        sagemaker = self.aws.sagemaker
        try:
            new_fleet = self.load_fleet(config_name)
        except Exception as error:
            sagemaker.complete_endpoint_update(
                endpoint_name,
                succeeded=False,
                failure_reason=f"Update failed and was rolled back: {_reason(error)}",
            )
            return
        with self._lock:
            serving = self._endpoints.get(endpoint_name)
            if serving is None:  # the endpoint never loaded (e.g. it was Failed): serve the new fleet
                self._endpoints[endpoint_name] = serving = _Serving(new_fleet)
                new_fleet_only = True
            else:
                serving.candidate, serving.candidate_weight = new_fleet, 0.0
                new_fleet_only = False
        if new_fleet_only:
            sagemaker.complete_endpoint_update(endpoint_name)
            return
        alarms = [a["AlarmName"] for a in deployment.get("AutoRollbackConfiguration", {}).get("Alarms", [])]
        try:
            for weight, wait_seconds in traffic_schedule(deployment, self._instance_count(new_fleet)):
                self._shift(endpoint_name, serving, config_name, weight)
                self._bake(serving, alarms, wait_seconds)
        except DeploymentRolledBack as rollback:
            reason = f"Deployment rolled back: {rollback}"
            with self._lock:
                serving.candidate, serving.candidate_weight = None, 0.0
                self.history.append(TrafficStep(endpoint_name, serving.fleet.config_name, 1.0))
            sagemaker.set_endpoint_status(endpoint_name, "RollingBack", failure_reason=reason)
            sagemaker.complete_endpoint_update(endpoint_name, succeeded=False, failure_reason=reason)
            return
        if serving.cancelled:
            return
        with self._lock:
            serving.fleet, serving.candidate, serving.candidate_weight = new_fleet, None, 0.0
        sagemaker.complete_endpoint_update(endpoint_name)

    def _shift(self, endpoint_name: str, serving: _Serving, config_name: str, weight: float) -> None:
        with self._lock:
            serving.candidate_weight = weight
            self.history.append(TrafficStep(endpoint_name, config_name, weight))

    def _bake(self, serving: _Serving, alarms: list[str], wait_seconds: float) -> None:
        deadline = time.monotonic() + wait_seconds * self.time_scale
        while True:
            if serving.cancelled:
                return
            firing = self._alarms_in_alarm(alarms)
            if firing:
                raise DeploymentRolledBack(f"alarm {', '.join(firing)} in ALARM state during baking")
            if time.monotonic() >= deadline:
                return
            time.sleep(min(_ALARM_POLL_SECONDS, max(deadline - time.monotonic(), 0)))

    def _alarms_in_alarm(self, alarms: list[str]) -> list[str]:
        if not alarms:
            return []
        answer = self._client("cloudwatch").describe_alarms(AlarmNames=alarms)
        return sorted(a["AlarmName"] for a in answer.get("MetricAlarms", []) if a["StateValue"] == "ALARM")

    def _instance_count(self, fleet: Fleet) -> int:
        config = self._client("sagemaker").describe_endpoint_config(EndpointConfigName=fleet.config_name)
        return sum(int(v.get("InitialInstanceCount", 1)) for v in config["ProductionVariants"])

    def _on_delete_endpoint(self, params: dict[str, Any], _: dict[str, Any]) -> None:
        with self._lock:
            serving = self._endpoints.pop(params["EndpointName"], None)
            if serving is not None:
                serving.cancelled = True

    def load_fleet(self, config_name: str) -> Fleet:
        """Load every production variant's model of an endpoint config."""
        config = self._client("sagemaker").describe_endpoint_config(EndpointConfigName=config_name)
        variants = []
        for variant in config["ProductionVariants"]:
            model = self.host.load(*self.model_container(variant["ModelName"]))
            variants.append(
                Variant(variant["VariantName"], float(variant.get("InitialVariantWeight", 1.0)), model)
            )
        if not variants:
            raise ValueError(f"endpoint config {config_name} has no production variants")
        capture = config.get("DataCaptureConfig")
        return Fleet(
            config_name, tuple(variants), capture if capture and capture.get("EnableCapture") else None
        )

    def model_container(self, model_name: str) -> tuple[str, str, dict[str, str]]:
        """A Model's (model data URL, image, environment): its container's, or its model package's."""
        sagemaker = self._client("sagemaker")
        model = sagemaker.describe_model(ModelName=model_name)
        containers = [c for c in [*model.get("Containers", []), model.get("PrimaryContainer") or {}] if c]
        if not containers:
            raise ValueError(f"model {model_name} has no container")
        container = containers[0]
        if container.get("ModelPackageName"):
            package = sagemaker.describe_model_package(ModelPackageName=container["ModelPackageName"])
            packaged = package["InferenceSpecification"]["Containers"][0]
            url, image = packaged.get("ModelDataUrl"), packaged.get("Image", "")
            environment = {**packaged.get("Environment", {}), **container.get("Environment", {})}
        else:
            url, image = container.get("ModelDataUrl"), container.get("Image", "")
            environment = dict(container.get("Environment", {}))
        if not url:
            raise ValueError(f"model {model_name} has no ModelDataUrl")
        return str(url), str(image), environment

    # -- batch transform -------------------------------------------------------------------------------

    def _on_create_transform_job(self, params: dict[str, Any], _: dict[str, Any]) -> None:
        self._background(f"transform-{params['TransformJobName']}", self._transform_job, params)

    def _transform_job(self, request: dict[str, Any]) -> None:
        name = request["TransformJobName"]
        try:
            self.run_transform(request)
        except Exception as error:
            LOGGER.warning("transform job %s failed: %s", name, error)
            self.aws.sagemaker.set_transform_job_status(name, "Failed", failure_reason=_reason(error))
            return
        self.aws.sagemaker.set_transform_job_status(name, "Completed")

    def run_transform(self, request: dict[str, Any]) -> list[str]:
        """Run a CreateTransformJob request; returns the S3 URIs written. Raises on the first failure."""
        model = self.host.load(*self.model_container(request["ModelName"]))
        transform_input = request["TransformInput"]
        source = S3Location.parse(transform_input["DataSource"]["S3DataSource"]["S3Uri"])
        output = request["TransformOutput"]
        destination = S3Location.parse(output["S3OutputPath"])
        content_type = transform_input.get("ContentType", "text/csv")
        accept = output.get("Accept", "application/json")
        split_lines = transform_input.get("SplitType", "None") == "Line"
        single = request.get("BatchStrategy", "MultiRecord") == "SingleRecord"
        max_bytes = int(request.get("MaxPayloadInMB", _DEFAULT_MAX_PAYLOAD_MB)) * 1024 * 1024
        line_joined = output.get("AssembleWith", "None") == "Line"
        s3 = self.host.s3
        keys = list_keys(s3, source)
        if not keys:
            raise ValueError(f'No S3 objects found under S3 URL "{source.uri}" in the transform input')
        written = []
        for key in keys:
            body = s3.get_object(Bucket=source.bucket, Key=key)["Body"].read()
            answers = []
            for batch in _batches(body, split_lines, single, max_bytes):
                status, answer, _ = model.invoke(batch, content_type, accept, batch=True)
                if status != 200:
                    message = answer.decode("utf-8", "replace")
                    raise ValueError(
                        f"ClientError: the model answered {status} for s3://{source.bucket}/{key}: {message}"
                    )
                answers.append(answer if not line_joined or answer.endswith(b"\n") else answer + b"\n")
            target = destination.child(relative_key(source.key, key) + ".out")
            s3.put_object(Bucket=target.bucket, Key=target.key, Body=b"".join(answers))
            written.append(target.uri)
        return written


def _encoded(data: bytes, content_type: str, header: dict[str, Any]) -> tuple[str, str]:
    """(encoding, data) as data capture stores a payload: CSV or JSON text for the content types
    CaptureContentTypeHeader lists, else base64 ("If no headers are specified SageMaker AI will by default
    base64 encode": API reference, CaptureContentTypeHeader)."""
    kind = content_type.split(";")[0].strip().lower()
    if kind in [t.lower() for t in header.get("CsvContentTypes") or []]:
        return "CSV", data.decode("utf-8", "replace")
    if kind in [t.lower() for t in header.get("JsonContentTypes") or []]:
        return "JSON", data.decode("utf-8", "replace")
    return "BASE64", base64.b64encode(data).decode()


def capture_record(
    capture: dict[str, Any], body: bytes, content_type: str, answer: bytes, answer_type: str
) -> dict[str, Any]:
    """One line of a data capture file, in the format Model Monitor reads (developer guide,
    model-monitor-data-capture-endpoint): captureData with endpointInput and/or endpointOutput as
    CaptureOptions ask, eventMetadata, eventVersion "0"."""
    modes = {option.get("CaptureMode") for option in capture.get("CaptureOptions") or []}
    header = capture.get("CaptureContentTypeHeader") or {}
    data: dict[str, Any] = {}
    for mode, key, payload, kind in (
        ("Input", "endpointInput", body, content_type),
        ("Output", "endpointOutput", answer, answer_type),
    ):
        if mode in modes or "InputAndOutput" in modes:
            encoding, text = _encoded(payload, kind, header)
            data[key] = {
                "observedContentType": kind,
                "mode": mode.upper(),
                "data": text,
                "encoding": encoding,
            }
    return {
        "captureData": data,
        "eventMetadata": {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "eventVersion": "0",
    }


def attach_hosting(aws: EmbeddedAws, host: ModelHost, time_scale: float | None = None) -> EndpointHosting:
    """Serve the embedded AWS's endpoints and transform jobs with `host`."""
    return EndpointHosting(aws, host, time_scale=time_scale).attach()


def traffic_schedule(deployment: dict[str, Any], new_instance_count: int) -> list[tuple[float, float]]:
    """(new fleet's traffic share, seconds to bake at it) for each step of a blue/green update.

    The last step's bake is TerminationWaitInSeconds, during which the alarms still roll back.
    """
    policy = deployment.get("BlueGreenUpdatePolicy", {})
    routing = policy.get("TrafficRoutingConfiguration", {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0})
    wait = float(routing.get("WaitIntervalInSeconds", 0))
    final_wait = float(policy.get("TerminationWaitInSeconds", 0))
    kind = routing.get("Type", "ALL_AT_ONCE")
    if kind == "ALL_AT_ONCE":
        return [(1.0, wait + final_wait)]
    if kind == "CANARY":
        canary = routing.get("CanarySize", {"Type": "CAPACITY_PERCENT", "Value": 10})
        share = _share(canary, new_instance_count)
        return [(share, wait), (1.0, final_wait)]
    if kind == "LINEAR":
        step = _share(
            routing.get("LinearStepSize", {"Type": "CAPACITY_PERCENT", "Value": 10}), new_instance_count
        )
        steps: list[tuple[float, float]] = []
        weight = step
        while weight < 1.0 - 1e-9:
            steps.append((weight, wait))
            weight += step
        return [*steps, (1.0, final_wait)]
    raise ValueError(f"unknown TrafficRoutingConfiguration Type {kind!r}")


def _share(size: dict[str, Any], instance_count: int) -> float:
    value = float(size.get("Value", 0))
    by_instances = size.get("Type") == "INSTANCE_COUNT"
    fraction = value / max(instance_count, 1) if by_instances else value / 100.0
    return min(max(fraction, 0.0), 1.0) or 1.0


def _batches(body: bytes, split_lines: bool, single: bool, max_bytes: int) -> list[bytes]:
    """One input object's requests, as CreateTransformJob documents them: SplitType None sends the whole
    object; Line splits records on newlines, and BatchStrategy SingleRecord sends one per request while
    MultiRecord packs "as many records in a mini-batch as can fit within the MaxPayloadInMB limit"
    (`max_bytes`; 0 means no limit, the chunked encoding); a record larger than the limit fails the job
    ("MaxPayloadInMB must be greater than, or equal to, the size of a single record")."""
    if not split_lines:
        return [body]
    records = [line + b"\n" for line in body.splitlines() if line.strip()]
    if max_bytes:
        too_large = next((r for r in records if len(r) > max_bytes), None)
        if too_large is not None:
            raise ValueError(
                f"ClientError: a record of {len(too_large)} bytes is larger than MaxPayloadInMB "
                f"({max_bytes // (1024 * 1024)} MB)"
            )
    if single:
        return records
    batches: list[bytes] = []
    current = b""
    for record in records:
        if current and max_bytes and len(current) + len(record) > max_bytes:
            batches.append(current)
            current = b""
        current += record
    return [*batches, current] if current else batches


def _reason(error: Exception) -> str:
    text = str(error)
    return text if text.startswith(("ClientError", "AlgorithmError")) else f"ClientError: {text}"
