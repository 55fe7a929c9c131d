"""The one place that owns logging, tracing and metrics, and the decorator order every handler uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.getenv("POWERTOOLS_SERVICE_NAME", "mlops-orchestrator")
NAMESPACE = os.getenv("POWERTOOLS_METRICS_NAMESPACE", "MLOpsOrchestrator")

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def instrumented(handler: Handler) -> Handler:
    """Apply, in this order for every handler: Lambda context in logs, metrics flush, tracing."""
    traced = tracer.capture_lambda_handler(capture_response=False)(handler)
    measured = metrics.log_metrics(traced)
    return logger.inject_lambda_context(clear_state=True)(measured)
