"""The embedded AWS: moto's server on loopback, behind a middleware that adds what moto lacks.

Moto's backends are process-global, so code in this process (the pipeline engine, the router) reads and
changes the same state the API serves: ``EmbeddedAws.backend("sagemaker")`` is moto's SageMaker backend
for this account and region. Do not use ``moto.mock_aws`` in the same process: it resets those backends.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moto.backends import get_backend
from moto.core.exceptions import ServiceException, _RESTError
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from localcloud.aws.protocol import (
    INTERNAL_AGENT,
    AwsError,
    RawResponse,
    RequestInfo,
    decode_request,
    render_error,
    render_result,
    request_params,
    response_document,
)

if TYPE_CHECKING:
    from localcloud.faults import Faults

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
INTERNAL_PREFIX = "/_localcloud/"

Override = Callable[[dict[str, Any], RequestInfo], "dict[str, Any] | RawResponse"]
Listener = Callable[[dict[str, Any], dict[str, Any]], None]
EventSubscriber = Callable[[dict[str, Any]], object]  # what a subscriber returns is ignored
InternalRoute = Callable[[dict[str, Any]], dict[str, Any]]


def _utc_iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventBus:
    """The default event bus: events go to moto's EventBridge backend and, in order, to local subscribers.

    Delivery to subscribers is asynchronous (one dispatcher thread), as EventBridge's is: the call that
    caused an event returns before its targets run. ``wait_until_idle`` waits for delivery to finish.
    """

    def __init__(self, account_id: str, region: str):
        self.account_id = account_id
        self.region = region
        self._subscribers: list[EventSubscriber] = []
        self._queue: deque[dict[str, Any]] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._closed = False
        self.faults: Faults | None = None
        self.history: deque[dict[str, Any]] = deque(maxlen=2000)
        self._thread = threading.Thread(target=self._dispatch, name="localcloud-events", daemon=True)
        self._thread.start()

    def subscribe(self, fn: EventSubscriber) -> Callable[[], None]:
        """Call ``fn(event)`` for every event on the default bus; returns a function that unsubscribes."""
        with self._cond:
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self._cond:
                if fn in self._subscribers:
                    self._subscribers.remove(fn)

        return unsubscribe

    def emit(
        self,
        source: str,
        detail_type: str,
        detail: dict[str, Any],
        resources: Iterable[str] = (),
        time: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """Put an event on the default bus (moto's PutEvents) and deliver it to subscribers."""
        moment = time or dt.datetime.now(dt.UTC)
        entry: dict[str, Any] = {
            "Source": source,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, default=str),
            "Resources": list(resources),
            "EventBusName": "default",
        }
        results = get_backend("events")[self.account_id][self.region].put_events([entry])
        event_id = results[0].get("EventId") if results else None
        if not event_id:
            raise AwsError(
                results[0].get("ErrorCode", "InternalException"), results[0].get("ErrorMessage", "")
            )
        event = {
            "version": "0",
            "id": event_id,
            "detail-type": detail_type,
            "source": source,
            "account": self.account_id,
            "time": _utc_iso(moment),
            "region": self.region,
            "resources": list(resources),
            "detail": json.loads(entry["Detail"]),
        }
        self.deliver(event)
        return event

    def deliver(self, event: dict[str, Any]) -> None:
        """Queue an already-formed event for the subscribers (fault mode: maybe twice, maybe late)."""
        holds = self.faults.event_fate(event) if self.faults is not None else [0.0]
        with self._cond:
            self.history.append(event)
            self._pending += len(holds)
        for hold in holds:
            self._enqueue(event, hold)

    def _enqueue(self, event: dict[str, Any], hold: float) -> None:
        if hold > 0:
            timer = threading.Timer(hold, self._enqueue, args=(event, 0.0))
            timer.daemon = True
            timer.start()
            return
        with self._cond:
            self._queue.append(event)
            self._cond.notify_all()

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued event has been delivered; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def _dispatch(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                event = self._queue.popleft()
                subscribers = list(self._subscribers)
            for fn in subscribers:
                try:
                    fn(event)
                except Exception:  # a failing target must not stop delivery to the others
                    logger.exception("event subscriber failed", extra={"detail_type": event["detail-type"]})
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()


class _Middleware:
    """WSGI app in front of moto: internal routes, overrides, then moto; listeners after success."""

    def __init__(self, aws: EmbeddedAws):
        self.aws = aws
        self.moto_app = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        path = environ.get("PATH_INFO", "/")
        if path.startswith(INTERNAL_PREFIX):
            return self._internal(path[len(INTERNAL_PREFIX) :], body, start_response)
        info = decode_request(environ, body, self.aws.region)
        if info.service in ("monitoring", "cloudwatch"):  # CloudWatch signs as "monitoring"
            self.aws.alarms.ensure_attached()
        fault = self.aws.faults.api_fault(info) if self.aws.faults is not None else None
        if fault is not None:
            reply = render_error(info, fault)
            start_response(f"{reply.status} {_reason(reply.status)}", list(reply.headers.items()))
            return [reply.body]
        override = self.aws._overrides.get((info.service, info.action))
        if override is not None:
            reply = self._run_override(override, info)
            document = reply.body
        else:
            reply, document = self._run_moto(environ)
        if 200 <= reply.status < 300:
            self._notify(info, reply)
        start_response(f"{reply.status} {_reason(reply.status)}", list(reply.headers.items()))
        return [document]

    def _run_override(self, override: Override, info: RequestInfo) -> RawResponse:
        try:
            params = request_params(info)
            return render_result(info, override(params, info))
        except AwsError as error:
            return render_error(info, error)
        except (_RESTError, ServiceException) as error:  # moto backend errors raised inside an override
            return render_error(info, _from_moto(error))
        except Exception as error:
            logger.exception("override failed", extra={"service": info.service, "action": info.action})
            return render_error(info, AwsError("InternalFailure", str(error), 500))

    def _run_moto(self, environ: dict[str, Any]) -> tuple[RawResponse, bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.moto_app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        status = int(str(captured.get("status", "500")).split(" ", 1)[0])
        headers = dict(captured.get("headers", []))
        return RawResponse(status, body, headers), body

    def _notify(self, info: RequestInfo, reply: RawResponse) -> None:
        listeners = self.aws._listeners.get((info.service, info.action), [])
        if not listeners:
            return
        params = request_params(info)
        document = response_document(info, reply.body)
        for fn in list(listeners):
            try:
                fn(params, document)
            except Exception:
                logger.exception("listener failed", extra={"service": info.service, "action": info.action})

    def _internal(self, route: str, body: bytes, start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self.aws._internal_routes.get(route)
        if handler is None:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"message": "no such route"}']
        try:
            result = handler(json.loads(body or b"{}"))
            status, document = "200 OK", result
        except Exception as error:
            logger.exception("internal route failed", extra={"route": route})
            status, document = "500 Internal Server Error", {"message": str(error)}
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(document, default=str).encode()]


class _QuietRequestHandler(MotoRequestHandler):
    """Moto's request handler without one log line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _from_moto(error: Exception) -> AwsError:
    if isinstance(error, _RESTError):
        return AwsError(error.error_type, error.message, int(error.code or 400))
    code = getattr(error, "code", "ValidationException")
    return AwsError(str(code), getattr(error, "message", str(error)), 400)


class EmbeddedAws:
    """moto in server mode on 127.0.0.1, with overrides, listeners and an event bus on top.

    ``start()`` binds an ephemeral port unless one is given; ``endpoint_url`` is what boto3 takes as
    ``endpoint_url`` or ``AWS_ENDPOINT_URL``. With ``work_dir`` set, CodeCommit repositories are real git
    repositories under ``work_dir/codecommit`` (see ``codecommit``), and SageMaker's gaps are filled
    (see ``sagemaker``).
    """

    def __init__(
        self,
        work_dir: str | Path | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        account_id: str = DEFAULT_ACCOUNT_ID,
        region: str = DEFAULT_REGION,
    ):
        self.host = host
        self.account_id = account_id
        self.region = region
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self._requested_port = port
        self._overrides: dict[tuple[str, str], Override] = {}
        self._listeners: dict[tuple[str, str], list[Listener]] = {}
        self._internal_routes: dict[str, InternalRoute] = {}
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.events = EventBus(account_id, region)
        self.faults: Faults | None = None
        self.add_listener("events", "PutEvents", self._forward_put_events)
        from localcloud.aws.sagemaker import SageMakerExtensions

        self.sagemaker = SageMakerExtensions(self)
        from localcloud.aws.alarms import AlarmEvaluator

        self.alarms = AlarmEvaluator(self)
        self.codecommit = None
        if self.work_dir is not None:
            from localcloud.aws.codecommit import LocalCodeCommit

            self.codecommit = LocalCodeCommit(self, self.work_dir / "codecommit")

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> EmbeddedAws:
        if self._server is not None:
            return self
        self._server = make_server(
            self.host,
            self._requested_port,
            _Middleware(self),
            threaded=True,
            request_handler=_QuietRequestHandler,
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="localcloud-aws", daemon=True)
        self._thread.start()
        self.alarms.attach()
        if self.codecommit is not None:
            self.codecommit.attach()
        return self

    def stop(self) -> None:
        """Stop serving and close the event bus (final: make a new EmbeddedAws to serve again)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server = None
        self.alarms.close()
        self.events.close()

    def __enter__(self) -> EmbeddedAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("EmbeddedAws is not started")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment variables that point boto3, the AWS CLI and the SageMaker Python SDK at this server."""
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }
        if self.work_dir is not None:
            env["SAGEMAKER_USER_CONFIG_OVERRIDE"] = str(self.sdk_config())
        return env

    def sdk_config(self) -> Path:
        """The SageMaker Python SDK's defaults file (its `SAGEMAKER_USER_CONFIG_OVERRIDE`), so that SDK code
        runs here unchanged. `Session.default_bucket()` asks STS for the account at the regional endpoint,
        which it passes explicitly (`sts_regional_endpoint`), so `AWS_ENDPOINT_URL` cannot redirect it; given
        `DefaultS3Bucket` it asks nothing (sagemaker/session.py, `default_bucket`). The bucket is the one the
        SDK would derive itself, `sagemaker-<region>-<account>`. Telemetry is off: it would GET an
        amazonaws.com address (sagemaker/telemetry/telemetry_logging.py)."""
        assert self.work_dir is not None
        path = self.work_dir / "sagemaker-sdk-config.yaml"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "# Written by the local cloud (schema: sagemaker/config/config_schema.py)\n"
                "SchemaVersion: '1.0'\n"
                "SageMaker:\n"
                "  PythonSDK:\n"
                "    Modules:\n"
                "      TelemetryOptOut: true\n"
                "      Session:\n"
                f"        DefaultS3Bucket: sagemaker-{self.region}-{self.account_id}\n"
            )
        return path

    def new_client(self, service: str, max_pool_connections: int = 10) -> Any:
        """A boto3 client of this server, for the local cloud's own components (engine, hosting)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106 - the embedded AWS accepts any key
            config=Config(
                retries={"max_attempts": 2},
                max_pool_connections=max_pool_connections,
                user_agent_extra=INTERNAL_AGENT,
            ),
        )

    # extension points ----------------------------------------------------------------------------
    def register_override(self, service: str, action: str, fn: Override) -> None:
        """Answer ``service:action`` with ``fn(params, request_info)`` instead of moto.

        ``fn`` returns the response document (a dict, rendered in the service's JSON protocol) or a
        ``RawResponse``; it raises ``AwsError(code, message, status)`` for an AWS error. Errors that
        moto's backends raise inside ``fn`` are rendered with moto's code and status.
        """
        self._overrides[(service, action)] = fn

    def add_listener(self, service: str, action: str, fn: Listener) -> None:
        """Call ``fn(params, response)`` after each successful ``service:action``, before the reply is sent.

        ``response`` is the parsed JSON reply for JSON services, ``{"Body": bytes}`` otherwise. Listeners
        run in the request's thread: keep them short, or hand work to a thread of your own.
        """
        self._listeners.setdefault((service, action), []).append(fn)

    def add_internal_route(self, name: str, fn: InternalRoute) -> None:
        """Serve ``POST /_localcloud/<name>`` (JSON in, JSON out) for local helpers such as git hooks."""
        self._internal_routes[name] = fn

    def emit_event(
        self, source: str, detail_type: str, detail: dict[str, Any], resources: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Put an event on the default bus as EventBridge delivers it; returns the event."""
        return self.events.emit(source, detail_type, detail, resources)

    def subscribe_events(self, fn: EventSubscriber) -> Callable[[], None]:
        """Deliver every default-bus event (emitted here or sent with PutEvents) to ``fn``."""
        return self.events.subscribe(fn)

    def inject_faults(self, faults: Faults | None) -> None:
        """Fault mode (``localcloud.faults``): throttle and fail API calls, duplicate and delay events."""
        self.faults = faults
        self.events.faults = faults

    def wait_for_events(self, timeout: float = 10.0) -> bool:
        """Wait until all metric data so far is evaluated by the alarms, and all events so far have been
        delivered to the subscribers."""
        self.alarms.wait_until_idle()
        return self.events.wait_until_idle(timeout)

    def backend(self, service: str) -> Any:
        """Moto's backend of ``service`` for this account and region (e.g. ``backend("sagemaker")``)."""
        return get_backend(service)[self.account_id][self.region]  # type: ignore[call-overload]

    def _forward_put_events(self, params: dict[str, Any], response: dict[str, Any]) -> None:
        for entry, result in zip(params.get("Entries", []), response.get("Entries", []), strict=False):
            if not result.get("EventId") or entry.get("EventBusName") not in (None, "", "default"):
                continue
            when = entry.get("Time")
            moment = (
                dt.datetime.fromtimestamp(float(when), dt.UTC)
                if when is not None
                else dt.datetime.now(dt.UTC)
            )
            try:
                detail = json.loads(entry.get("Detail") or "{}")
            except ValueError:
                continue
            self.events.deliver(
                {
                    "version": "0",
                    "id": result["EventId"],
                    "detail-type": entry.get("DetailType"),
                    "source": entry.get("Source"),
                    "account": self.account_id,
                    "time": _utc_iso(moment),
                    "region": self.region,
                    "resources": entry.get("Resources", []),
                    "detail": detail,
                }
            )
