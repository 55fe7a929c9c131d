"""Fault mode: a local cloud that fails the way AWS does, on purpose, reproducibly.

With a seed and rates, the embedded AWS throttles a fraction of API calls and answers another fraction with
a 5xx; the event bus delivers some events twice, holds some back so that later events overtake them; and
the job runner fails a fraction of jobs. Every draw comes from one seeded generator and every injected
fault is counted, so a test or a benchmark can say exactly what it survived.

What AWS does, and where it says so:
- Throttling and server errors carry each service's own error code (botocore's service models, and the
  "Common Errors" of the API references). botocore's standard retry mode retries exactly these
  (botocore/retries/standard.py: ThrottledRetryableChecker._THROTTLED_ERROR_CODES and
  TransientRetryableChecker._TRANSIENT_STATUS_CODES = 500, 502, 503, 504).
- EventBridge delivers at least once, and "SageMaker may send several events for the same state change"
  (EventBridge user guide, "Events from AWS services"; SageMaker developer guide, "Automating SageMaker
  with EventBridge"), with no ordering guarantee.
- A job that fails for SageMaker's own reasons reports ``FailureReason`` "InternalServerError: ...".

Only requests from code under test are faulted (handlers, users' SDK code, the CLI). The local cloud's own
plumbing (its pipeline engine, model hosting and provisioning) marks its clients with ``INTERNAL_AGENT``:
on AWS those calls are SageMaker's and CloudFormation's internal work, which they retry themselves.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

from localcloud.aws.protocol import INTERNAL_AGENT, AwsError, RequestInfo

# (code, HTTP status) of a throttled request, per service, from botocore's service models; services whose
# models declare none use the Common Errors code ThrottlingException (query protocol: Throttling).
THROTTLING: dict[str, tuple[str, int]] = {
    "dynamodb": ("ProvisionedThroughputExceededException", 400),
    "sns": ("Throttled", 429),
    "sqs": ("RequestThrottled", 400),
    "s3": ("SlowDown", 503),
    "sts": ("Throttling", 400),
    "iam": ("Throttling", 400),
    "lambda": ("TooManyRequestsException", 429),
}
DEFAULT_THROTTLING = ("ThrottlingException", 400)

# (code, HTTP status) of a server-side failure, per service, from botocore's service models.
SERVER_ERRORS: dict[str, tuple[str, int]] = {
    "dynamodb": ("InternalServerError", 500),
    "sns": ("InternalError", 500),
    "s3": ("InternalError", 500),
    "events": ("InternalException", 500),
    "sagemaker-runtime": ("ServiceUnavailable", 503),
}
DEFAULT_SERVER_ERROR = ("InternalFailure", 500)

JOB_FAILURE_REASON = "InternalServerError: We encountered an internal error. Please try again."


@dataclass(frozen=True)
class FaultPlan:
    """What to inject, and how often (each rate a fraction in [0, 1])."""

    seed: int = 0
    throttle: float = 0.0  # API calls answered with the service's throttling error
    server_error: float = 0.0  # API calls answered with a 5xx
    duplicate: float = 0.0  # events delivered a second time (same id: at-least-once delivery)
    delay: float = 0.0  # events held back, so that later events overtake them
    max_delay_s: float = 1.0
    job_failure: float = 0.0  # processing and training jobs that fail with an internal error
    training_failure: float = 0.0  # training jobs only (a run gets as far as its tuning step)

    def __post_init__(self) -> None:
        for name in ("throttle", "server_error", "duplicate", "delay", "job_failure", "training_failure"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {name}={value} is not a fraction between 0 and 1")
        if self.throttle + self.server_error > 1.0:
            raise ValueError("throttle + server_error exceeds 1")
        if self.max_delay_s < 0:
            raise ValueError("max_delay_s must not be negative")

    @property
    def active(self) -> bool:
        rates = (self.throttle, self.server_error, self.duplicate, self.delay, self.job_failure)
        return any((*rates, self.training_failure))

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """``seed=7,throttle=0.1,server_error=0.05,duplicate=0.1,delay=0.1,job_failure=0.1``."""
        known = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, raw = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in known:
                raise ValueError(f"unknown fault setting {item!r}; known: {', '.join(known)}")
            values[name] = int(raw) if name == "seed" else float(raw)
        return cls(**values)


class Faults:
    """Draws faults from a seeded generator (thread-safe) and counts the ones injected."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._random = random.Random(plan.seed)  # noqa: S311 - reproducible faults, not secrets
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def _draw(self) -> float:
        with self._lock:
            return self._random.random()

    def _count(self, what: str) -> None:
        with self._lock:
            self.injected[what] += 1

    def api_fault(self, info: RequestInfo) -> AwsError | None:
        """The error to answer this request with instead of serving it, or None."""
        if info.protocol == "unknown" or INTERNAL_AGENT in info.headers.get("user-agent", ""):
            return None
        draw = self._draw()
        if draw < self.plan.throttle:
            code, status = THROTTLING.get(info.service, DEFAULT_THROTTLING)
            self._count(f"throttled:{info.service}:{info.action}")
            return AwsError(code, "Rate exceeded (localcloud fault mode)", status)
        if draw < self.plan.throttle + self.plan.server_error:
            code, status = SERVER_ERRORS.get(info.service, DEFAULT_SERVER_ERROR)
            self._count(f"server-error:{info.service}:{info.action}")
            return AwsError(code, "We encountered an internal error (localcloud fault mode)", status)
        return None

    def event_fate(self, event: dict[str, Any]) -> list[float]:
        """How long to hold back each copy of the event to deliver: one copy, or two (the second later)."""
        duplicate = self._draw() < self.plan.duplicate
        delayed = self._draw() < self.plan.delay
        hold = self._draw() * self.plan.max_delay_s if delayed else 0.0
        if duplicate:
            self._count(f"duplicated:{event.get('detail-type')}")
        if delayed:
            self._count(f"delayed:{event.get('detail-type')}")
        return [hold, hold + self.plan.max_delay_s / 2] if duplicate else [hold]

    def job_fails(self, kind: str, job_name: str) -> bool:
        rate = max(self.plan.job_failure, self.plan.training_failure if kind == "training" else 0.0)
        if self._draw() < rate:
            self._count(f"job-failed:{kind}")
            return True
        return False

    def summary(self) -> dict[str, int]:
        """Injected faults by kind (throttled, server-error, duplicated, delayed, job-failed)."""
        with self._lock:
            totals: Counter[str] = Counter()
            for key, count in self.injected.items():
                totals[key.split(":", 1)[0]] += count
            return dict(sorted(totals.items()))


class FaultyJobRunner:
    """A job runner (``localcloud.engine.JobRunnerPort``) that fails a fraction of jobs before they run."""

    def __init__(self, runner: Any, faults: Faults | None = None) -> None:
        self._runner = runner
        self.faults = faults  # None: no job fails on purpose

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def _failed(self, job_name: str) -> Any:
        from localcloud.runtime.jobs import FAILED, JobResult, _now

        moment = _now()
        log_path = self._runner.workdir / "fault-injected.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as log:
            log.write(f"{job_name}: {JOB_FAILURE_REASON}\n")
        return JobResult(job_name, FAILED, moment, moment, log_path, failure_reason=JOB_FAILURE_REASON)

    def run_processing(self, job_name: str, request: dict[str, Any]) -> Any:
        if self.faults is not None and self.faults.job_fails("processing", job_name):
            return self._failed(job_name)
        return self._runner.run_processing(job_name, request)

    def run_training(self, job_name: str, request: dict[str, Any]) -> Any:
        if self.faults is not None and self.faults.job_fails("training", job_name):
            return self._failed(job_name)
        return self._runner.run_training(job_name, request)
