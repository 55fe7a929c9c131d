"""Transform jobs: they start InProgress, and their state changes are SageMaker's events."""

from __future__ import annotations

from typing import Any

from localcloud.aws.protocol import AwsError
from localcloud.aws.sagemaker.base import SageMakerFamily
from localcloud.aws.sagemaker.common import (
    SOURCE,
    _iso,
    _now,
)


class TransformApis(SageMakerFamily):
    LISTENERS = (("sagemaker", "CreateTransformJob", "_on_create_transform_job"),)

    def _on_create_transform_job(self, params: dict[str, Any], _: dict[str, Any]) -> None:
        self.set_transform_job_status(params["TransformJobName"], "InProgress")

    def set_transform_job_status(self, job_name: str, status: str, failure_reason: str | None = None) -> None:
        """Set a transform job's status (DescribeTransformJob) and emit the transform job state change."""
        with self.lock:
            job = self.backend.transform_jobs.get(job_name)
            if job is None:
                raise AwsError("ValidationException", f"Could not find transform job '{job_name}'.")
            moment = _now()
            job.transform_job_status = status
            job.last_modified_time = moment
            if status == "InProgress":
                job.transform_start_time, job.transform_end_time = moment, None
            elif status in ("Completed", "Failed", "Stopped"):
                job.transform_end_time = moment
            if failure_reason is not None:
                job.failure_reason = failure_reason
            detail = {
                "TransformJobName": job.transform_job_name,
                "TransformJobArn": job.arn,
                "TransformJobStatus": status,
                "ModelName": job.model_name,
                "MaxConcurrentTransforms": job.max_concurrent_transforms,
                "MaxPayloadInMB": job.max_payload_in_mb,
                "BatchStrategy": job.batch_strategy,
                "Environment": job.environment or {},
                "TransformInput": job.transform_input,
                "TransformOutput": job.transform_output,
                "TransformResources": job.transform_resources,
                # times as AWS's documented example writes them: ISO 8601 strings
                "CreationTime": _iso(job.creation_time),
                "TransformStartTime": _iso(job.transform_start_time),
                "Tags": {tag["Key"]: tag["Value"] for tag in (job.tags or [])},
            }
            if job.transform_end_time is not None:
                detail["TransformEndTime"] = _iso(job.transform_end_time)
            if job.failure_reason:
                detail["FailureReason"] = job.failure_reason
        detail = {k: v for k, v in detail.items() if v is not None}
        self.aws.emit_event(SOURCE, "SageMaker Transform Job State Change", detail, [job.arn])
