"""Local SageMaker compute: processing and training jobs, real-time endpoints and batch transforms."""

from localcloud.runtime.jobs import COMPLETED, FAILED, JobResult, JobRunner, parse_metrics

__all__ = ["COMPLETED", "FAILED", "JobResult", "JobRunner", "parse_metrics"]
