"""The one place that owns logging, tracing and metrics, and the decorator order every handler uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared.functions import strtobool

SERVICE = os.getenv("POWERTOOLS_SERVICE_NAME", "mlops-orchestrator")
NAMESPACE = os.getenv("POWERTOOLS_METRICS_NAMESPACE", "MLOpsOrchestrator")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def tracing_enabled(environ: dict[str, str] | None = None) -> bool:
    """Whether Powertools' Tracer would trace here: on Lambda, not under SAM local, not turned off.

    The same rule as `Tracer._is_tracer_disabled`, decided before the X-Ray SDK is imported: building a
    Tracer imports `aws_xray_sdk.core` (about 130 ms) even where it then disables itself, so a handler
    that will not trace (tests, the local cloud, `sam local invoke`) skips that cost at cold start.
    """
    env = os.environ if environ is None else environ
    if strtobool(env.get("POWERTOOLS_TRACE_DISABLED", "false")):
        return False
    emulated = env.get("AWS_SAM_LOCAL") or env.get("AWS_CHALICE_CLI_MODE")
    return bool(env.get("LAMBDA_TASK_ROOT")) and not emulated


def instrumented(handler: Handler) -> Handler:
    """Apply, in this order for every handler: Lambda context in logs, metrics flush, tracing."""
    inner = handler
    if tracing_enabled():
        from aws_lambda_powertools import Tracer

        inner = Tracer(service=SERVICE).capture_lambda_handler(capture_response=False)(handler)
    measured = metrics.log_metrics(inner)
    return logger.inject_lambda_context(clear_state=True)(measured)
