"""The local event router: EventBridge rules from template.yaml invoke the handlers, as deployed.

Each function of the template gets its own worker thread and queue (Lambda runs one event at a time per
execution environment, and EventBridge invokes functions asynchronously). Handlers are the unchanged
modules under functions/, loaded once (a cold start) and called with a Lambda context. A handler that
raises is retried as its EventInvokeConfig says (Lambda's default: twice), then recorded as a dead letter
and, when the function has an OnFailure destination, sent there as Lambda's invocation record.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import queue
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from moto.events.models import EventPattern

from localcloud.template import ACCOUNT_ID, REGION, FunctionSpec, StackTemplate

log = logging.getLogger(__name__)

DeadLetterSink = Callable[[str, dict[str, Any]], None]  # (destination ARN, invocation record)


@dataclass
class LambdaContext:
    """The context object Lambda hands a Python handler."""

    function_name: str
    memory_limit_in_mb: int
    timeout_s: int
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """One handler invocation: which function, for which event, what it returned or raised."""

    function: str
    rule: str
    event_id: str
    detail_type: str
    attempt: int
    seconds: float
    result: Any = None
    error: str | None = None

    def error_payload(self) -> dict[str, str]:
        """The error as Lambda reports an unhandled one: {"errorMessage", "errorType"}."""
        error_type, _, message = (self.error or "").partition(": ")
        return {"errorMessage": message, "errorType": error_type}

    def as_dict(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "rule": self.rule,
            "event_id": self.event_id,
            "detail_type": self.detail_type,
            "attempt": self.attempt,
            "seconds": round(self.seconds, 3),
            "result": self.result,
            "error": self.error,
        }


class _FunctionWorker:
    """A function's execution environment: its module, loaded once, and a queue of events."""

    def __init__(
        self,
        spec: FunctionSpec,
        root: Path,
        record: Callable[[Invocation], None],
        dead_letter: Callable[[dict[str, Any], Invocation], None],
        retry_delay: float,
    ):
        self.spec = spec
        self.root = root
        self.record = record
        self.dead_letter = dead_letter
        self.retry_delay = retry_delay
        self.queue: queue.Queue[tuple[dict[str, Any], str, threading.Event | None] | None] = queue.Queue()
        self._handler: Callable[[dict[str, Any], Any], Any] | None = None
        self.cold_start_s: float | None = None
        self.thread = threading.Thread(target=self._run, name=f"lambda-{spec.logical_id}", daemon=True)
        self.thread.start()

    def handler(self) -> Callable[[dict[str, Any], Any], Any]:
        if self._handler is None:
            started = time.perf_counter()
            path = self.root / self.spec.module_path
            module_name = f"localcloud_functions.{self.spec.logical_id}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load handler module {path}")
            module: ModuleType = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            spec.loader.exec_module(module)
            self._handler = getattr(module, self.spec.function_name)
            self.cold_start_s = time.perf_counter() - started
        return self._handler

    def invoke_once(self, event: dict[str, Any], rule: str, attempt: int = 1) -> Invocation:
        """One invocation, recorded; an exception the handler raises is its error."""
        context = LambdaContext(self.spec.logical_id, self.spec.memory_mb, self.spec.timeout)
        started = time.perf_counter()
        outcome: dict[str, Any]
        try:
            outcome = {"result": _jsonable(self.handler()(event, context))}
        except Exception as error:  # a handler's failure is data for the retry policy, not a crash
            outcome = {"error": f"{type(error).__name__}: {error}"}
            log.warning("handler failed: %s\n%s", outcome["error"], traceback.format_exc(limit=5))
        invocation = Invocation(
            self.spec.logical_id,
            rule,
            event.get("id", ""),
            event.get("detail-type", ""),
            attempt,
            time.perf_counter() - started,
            **outcome,
        )
        self.record(invocation)
        return invocation

    def invoke(self, event: dict[str, Any], rule: str) -> Invocation:
        """An asynchronous invocation: retried with a growing delay until MaximumRetryAttempts."""
        attempt = 0
        while True:
            attempt += 1
            invocation = self.invoke_once(event, rule, attempt)
            if invocation.error is None or attempt > self.spec.maximum_retry_attempts:
                return invocation
            time.sleep(self.retry_delay * attempt)

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                self.queue.task_done()
                return
            event, rule, done = item
            try:
                final = self.invoke(event, rule)
                if final.error is not None:
                    self.dead_letter(event, final)
            finally:
                if done is not None:
                    done.set()
                self.queue.task_done()


class EventRouter:
    """Matches events against the template's rules and invokes the functions they target."""

    def __init__(
        self,
        template: StackTemplate,
        root: Path,
        retry_delay: float = 0.5,
        dead_letter_sink: DeadLetterSink | None = None,
    ) -> None:
        self.template = template
        self.root = root
        self.functions = {spec.logical_id: spec for spec in template.functions()}
        self.rules = [
            (rule, EventPattern.load(json.dumps(rule.pattern)))
            for f in self.functions.values()
            for rule in f.rules
        ]
        self.invocations: list[Invocation] = []
        self.dead_letters: list[tuple[dict[str, Any], Invocation]] = []
        self.dead_letter_sink = dead_letter_sink
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Invocation], None]] = []
        self._apply_environment()
        self._workers = {
            logical_id: _FunctionWorker(spec, root, self._record, self._dead_letter, retry_delay)
            for logical_id, spec in self.functions.items()
        }

    def _apply_environment(self) -> None:
        """Every function's environment, as Lambda would set it; functions must agree on shared names."""
        merged: dict[str, str] = {}
        for spec in self.functions.values():
            for name, value in spec.environment.items():
                if name in merged and merged[name] != value and name != "POWERTOOLS_SERVICE_NAME":
                    log.warning("functions disagree on %s; the local cloud uses %r", name, merged[name])
                merged.setdefault(name, value)
        os.environ.update(merged)
        os.environ.setdefault("AWS_REGION", REGION)
        os.environ.setdefault("AWS_DEFAULT_REGION", REGION)

    def add_listener(self, listener: Callable[[Invocation], None]) -> None:
        self._listeners.append(listener)

    def _record(self, invocation: Invocation) -> None:
        with self._lock:
            self.invocations.append(invocation)
        for listener in self._listeners:
            listener(invocation)

    def _dead_letter(self, event: dict[str, Any], invocation: Invocation) -> None:
        log.error(
            "event %s went to %s's dead-letter queue: %s",
            event.get("id"),
            invocation.function,
            invocation.error,
        )
        with self._lock:
            self.dead_letters.append((event, invocation))
        spec = self.functions[invocation.function]
        if spec.on_failure and self.dead_letter_sink is not None:
            try:
                self.dead_letter_sink(spec.on_failure, invocation_record(spec, event, invocation))
            except Exception:  # Lambda counts these as DestinationDeliveryFailures; the event stays listed
                log.exception("could not send the invocation record to %s", spec.on_failure)

    def function(self, name_or_arn: str) -> FunctionSpec | None:
        """The function that Invoke's FunctionName names: its name, ARN or partial ARN."""
        name = name_or_arn.split(":function:")[-1].split(":")[0]
        return next((spec for spec in self.functions.values() if name in (spec.name, spec.logical_id)), None)

    def invoke_sync(self, function: FunctionSpec, event: dict[str, Any]) -> Invocation:
        """A synchronous invocation (RequestResponse): run now, not retried."""
        return self._workers[function.logical_id].invoke_once(event, "Invoke")

    def invoke_async(self, function: FunctionSpec, event: dict[str, Any]) -> None:
        """An asynchronous invocation (Invoke with InvocationType=Event): queued, retried, dead-lettered."""
        self._workers[function.logical_id].queue.put((event, "Invoke", None))

    def matching_rules(self, event: dict[str, Any]) -> list[str]:
        return [f"{rule.function}/{rule.name}" for rule, pattern in self.rules if _matches(pattern, event)]

    def route(self, event: dict[str, Any], wait: bool = False, timeout: float = 300.0) -> list[Invocation]:
        """Deliver one event to every function whose rule matches it; optionally wait for the results."""
        done_events = []
        before = len(self.invocations)
        for rule, pattern in self.rules:
            if not _matches(pattern, event):
                continue
            done = threading.Event() if wait else None
            self._workers[rule.function].queue.put((event, rule.name, done))
            if done is not None:
                done_events.append(done)
        for done in done_events:
            done.wait(timeout)
        if not wait:
            return []
        with self._lock:
            return [i for i in self.invocations[before:] if i.event_id == event.get("id")]

    def wait_until_idle(self, timeout: float = 60.0) -> bool:
        """Wait until every queued event has been handled (EventBridge delivery is asynchronous)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(w.queue.unfinished_tasks == 0 for w in self._workers.values()):
                return True
            time.sleep(0.05)
        return False

    def cold_starts(self) -> dict[str, float | None]:
        return {logical_id: worker.cold_start_s for logical_id, worker in self._workers.items()}

    def close(self) -> None:
        for worker in self._workers.values():
            worker.queue.put(None)
        for worker in self._workers.values():
            worker.thread.join(timeout=5)


def invocation_record(spec: FunctionSpec, event: dict[str, Any], invocation: Invocation) -> dict[str, Any]:
    """What Lambda sends an OnFailure destination when retries run out (Lambda developer guide,
    "Capturing records of Lambda asynchronous invocations": the invocation record)."""
    return {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.name}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": invocation.attempt,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": invocation.error_payload(),
    }


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)


def _matches(pattern: EventPattern, event: dict[str, Any]) -> bool:
    """moto's EventBridge matcher (typed for its own event records, which are plain dicts like ours)."""
    return bool(pattern.matches_event(cast("Any", event)))
