"""One executor per pipeline step type (see `base`); importing this package registers them all."""

from localcloud.engine.steps import (  # noqa: F401 - each module registers its executor
    condition,
    fail,
    lambda_,
    model,
    processing,
    register_model,
    training,
    transform,
    tuning,
)
from localcloud.engine.steps.base import EXECUTORS, FailedJob, StepExecutor, StepFailure, digest, register

__all__ = ["EXECUTORS", "FailedJob", "StepExecutor", "StepFailure", "digest", "register"]
