"""Local SageMaker compute: processing and training jobs (forked from a fork server that imported TensorFlow
once), the TensorFlow Serving container, and endpoints and batch transforms on the embedded AWS.
"""

from localcloud.runtime.hosting import (
    TIME_SCALE_ENV,
    EndpointHosting,
    attach_hosting,
    traffic_schedule,
)
from localcloud.runtime.jobs import COMPLETED, FAILED, JobResult, JobRunner, parse_metrics
from localcloud.runtime.serving import LoadedModel, ModelHost, ModelLoadError

__all__ = [
    "COMPLETED",
    "FAILED",
    "TIME_SCALE_ENV",
    "EndpointHosting",
    "JobResult",
    "JobRunner",
    "LoadedModel",
    "ModelHost",
    "ModelLoadError",
    "attach_hosting",
    "parse_metrics",
    "traffic_schedule",
]
