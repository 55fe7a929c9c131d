"""The local event router: EventBridge rules from template.yaml invoke the handlers, as deployed.

Each function of the template gets its own execution environment (a process: `runtime.lambda_environment`)
and a worker thread with a queue (Lambda runs one event at a time per execution environment, and
EventBridge invokes functions asynchronously). Handlers are the unchanged modules under functions/, with
their layers on the import path, loaded once (a cold start) and called with a Lambda context. A handler that
raises is retried as its EventInvokeConfig says (Lambda's default: twice), then recorded as a dead letter
and, when the function has an OnFailure destination, sent there as Lambda's invocation record.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from moto.events.models import EventPattern

from localcloud.runtime.lambda_environment import ExecutionEnvironment, FunctionSetup
from localcloud.template import ACCOUNT_ID, REGION, FunctionSpec, StackTemplate

log = logging.getLogger(__name__)

DeadLetterSink = Callable[[str, dict[str, Any]], None]  # (destination ARN, invocation record)


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
    """A function's execution environment (its own process) and its queue of events."""

    def __init__(
        self,
        environment: ExecutionEnvironment,
        spec: FunctionSpec,
        record: Callable[[Invocation], None],
        dead_letter: Callable[[dict[str, Any], Invocation], None],
        retry_delay: float,
    ):
        self.environment = environment
        self.spec = spec
        self.record = record
        self.dead_letter = dead_letter
        self.retry_delay = retry_delay
        self.queue: queue.Queue[tuple[dict[str, Any], str, threading.Event | None] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"lambda-{spec.logical_id}", daemon=True)
        self.thread.start()

    def invoke_once(self, event: dict[str, Any], rule: str, attempt: int = 1) -> Invocation:
        """One invocation, recorded; an error the function answers with is its error."""
        started = time.perf_counter()
        outcome = self.environment.invoke(event)
        error = None
        if outcome.error is not None:
            error = f"{outcome.error.get('errorType')}: {outcome.error.get('errorMessage')}"
            log.warning("%s failed: %s", self.spec.logical_id, error)
        invocation = Invocation(
            self.spec.logical_id,
            rule,
            event.get("id", "") if isinstance(event, dict) else "",
            event.get("detail-type", "") if isinstance(event, dict) else "",
            attempt,
            time.perf_counter() - started,
            result=outcome.result,
            error=error,
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
        client_env: dict[str, str] | None = None,
        log_dir: Path | None = None,
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
        # the endpoint and credentials the functions' SDK uses (the caller's own, by default)
        client = dict(client_env) if client_env is not None else dict(os.environ)
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        self._workers = {
            logical_id: _FunctionWorker(
                ExecutionEnvironment(
                    function_setup(spec, root),
                    client,
                    log_dir / f"{logical_id}.log" if log_dir is not None else None,
                ),
                spec,
                self._record,
                self._dead_letter,
                retry_delay,
            )
            for logical_id, spec in self.functions.items()
        }

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
        """Each function's last init phase, in seconds (None: not started yet)."""
        return {logical_id: worker.environment.init_seconds for logical_id, worker in self._workers.items()}

    def close(self) -> None:
        for worker in self._workers.values():
            worker.queue.put(None)
        for worker in self._workers.values():
            worker.thread.join(timeout=5)
            worker.environment.close()


def function_setup(spec: FunctionSpec, root: Path) -> FunctionSetup:
    """An execution environment's makings from the template's function: code and layers under ``root``."""
    return FunctionSetup(
        name=spec.name or spec.logical_id,
        handler=spec.handler,
        runtime=spec.runtime,
        task_root=(root / spec.code_uri).resolve(),
        layers=tuple((root / layer).resolve() for layer in spec.layers),
        environment=dict(spec.environment),
        timeout_s=spec.timeout,
        memory_mb=spec.memory_mb,
        region=REGION,
        account_id=ACCOUNT_ID,
    )


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


def _matches(pattern: EventPattern, event: dict[str, Any]) -> bool:
    """moto's EventBridge matcher (typed for its own event records, which are plain dicts like ours)."""
    return bool(pattern.matches_event(cast("Any", event)))
