"""The one place that owns logging, tracing and metrics, and the decorator order every handler uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.getenv("POWERTOOLS_SERVICE_NAME", "mlops-orchestrator")
NAMESPACE = os.getenv("POWERTOOLS_METRICS_NAMESPACE", "MLOpsOrchestrator")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def tracing_enabled() -> bool:
    """Whether Powertools' Tracer would trace here (on Lambda, not under SAM local, not turned off).

    Asked of Powertools' own rule before a Tracer is built: building one imports `aws_xray_sdk.core`
    (about 0.2 s, it creates botocore clients) even where it then disables itself, so a handler that will
    not trace (tests, the local cloud, `sam local invoke`) skips that cost at cold start.
    """
    return not Tracer._is_tracer_disabled()


def instrumented(handler: Handler) -> Handler:
    """Apply, in this order for every handler: Lambda context in logs, metrics flush, tracing."""
    inner = handler
    if tracing_enabled():
        inner = Tracer(service=SERVICE).capture_lambda_handler(capture_response=False)(handler)
    measured = metrics.log_metrics(inner)
    return logger.inject_lambda_context(clear_state=True)(measured)
