"""Pipeline executions: StartPipelineExecution (idempotent on ClientRequestToken), StopPipelineExecution,
ListPipelineExecutions, ListPipelineExecutionSteps, and the hooks the engine drives."""

from __future__ import annotations

import datetime as dt
from typing import Any

from localcloud.aws.protocol import AwsError, RequestInfo
from localcloud.aws.sagemaker.base import SageMakerFamily
from localcloud.aws.sagemaker.common import (
    PIPELINE_TERMINAL,
    SOURCE,
    _as_datetime,
    _iso,
    _now,
    _paginate,
)


class PipelineApis(SageMakerFamily):
    OVERRIDES = {
        "StartPipelineExecution": "_start_pipeline_execution",
        "StopPipelineExecution": "_stop_pipeline_execution",
        "ListPipelineExecutionSteps": "_list_pipeline_execution_steps",
        "ListPipelineExecutions": "_list_pipeline_executions",
    }

    def find_pipeline_execution(self, execution_arn: str) -> Any:
        """Moto's execution object for an ARN (raises ResourceNotFound as SageMaker does)."""
        pipeline_name = execution_arn.split(":pipeline/", 1)[-1].split("/execution/", 1)[0]
        pipeline = self.backend.pipelines.get(pipeline_name)
        if pipeline is None or execution_arn not in pipeline.pipeline_executions:
            raise AwsError("ResourceNotFound", f"Pipeline execution {execution_arn} does not exist.")
        return pipeline.pipeline_executions[execution_arn]

    def _start_pipeline_execution(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["PipelineName"].split(":pipeline/")[-1]
        token = params.get("ClientRequestToken")
        with self.lock:
            pipeline = self.backend.pipelines.get(name)
            if pipeline is None:
                raise AwsError("ResourceNotFound", f"Pipeline {params['PipelineName']} does not exist.")
            if token:
                for arn, execution in pipeline.pipeline_executions.items():
                    if execution.client_request_token == token:
                        return {"PipelineExecutionArn": arn}
            result = self.backend.start_pipeline_execution(
                name,
                params.get("PipelineExecutionDisplayName"),
                params.get("PipelineParameters", []),
                params.get("PipelineExecutionDescription"),
                params.get("ParallelismConfiguration"),
                token,
            )
            execution = pipeline.pipeline_executions[result["PipelineExecutionArn"]]
            execution.pipeline_execution_status = "Executing"
            execution.pipeline_execution_display_name = (
                execution.pipeline_execution_display_name or result["PipelineExecutionArn"].rsplit("/", 1)[-1]
            )
            return {"PipelineExecutionArn": result["PipelineExecutionArn"]}

    def _list_pipeline_executions(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["PipelineName"].split(":pipeline/")[-1]
        pipeline = self.backend.pipelines.get(name)
        if pipeline is None:
            raise AwsError("ResourceNotFound", f"Pipeline {params['PipelineName']} does not exist.")
        after, before = _as_datetime(params.get("CreatedAfter")), _as_datetime(params.get("CreatedBefore"))
        summaries = []
        for arn, execution in pipeline.pipeline_executions.items():
            start = execution.start_time
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.UTC)
            if (after and start <= after) or (before and start >= before):
                continue
            summary = {
                "PipelineExecutionArn": arn,
                "StartTime": start,
                "PipelineExecutionStatus": execution.pipeline_execution_status,
                "PipelineExecutionDisplayName": execution.pipeline_execution_display_name,
            }
            if execution.pipeline_execution_description:
                summary["PipelineExecutionDescription"] = execution.pipeline_execution_description
            if execution.pipeline_execution_failure_reason:
                summary["PipelineExecutionFailureReason"] = execution.pipeline_execution_failure_reason
            summaries.append(summary)
        summaries.sort(key=lambda s: s["StartTime"], reverse=params.get("SortOrder") != "Ascending")
        return _paginate(summaries, params, "PipelineExecutionSummaries")

    def _stop_pipeline_execution(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params["PipelineExecutionArn"]
        with self.lock:
            execution = self.find_pipeline_execution(arn)
            status = execution.pipeline_execution_status
            if status in PIPELINE_TERMINAL:
                raise AwsError(
                    "ValidationException",
                    f"Pipeline execution {arn} is in status {status} and cannot be stopped.",
                )
            if status != "Stopping":
                self.set_pipeline_execution_status(arn, "Stopping")
        return {"PipelineExecutionArn": arn}

    def set_pipeline_execution_status(
        self, execution_arn: str, status: str, failure_reason: str | None = None
    ) -> None:
        """Set an execution's status and emit the pipeline execution status change event if it changed."""
        with self.lock:
            execution = self.find_pipeline_execution(execution_arn)
            previous = execution.pipeline_execution_status
            execution.pipeline_execution_status = status
            execution.last_modified_time = _now()
            if failure_reason is not None:
                execution.pipeline_execution_failure_reason = failure_reason
        if previous == status:
            return
        pipeline_arn = execution_arn.split("/execution/")[0]
        detail: dict[str, Any] = {
            "pipelineExecutionDisplayName": execution.pipeline_execution_display_name,
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": previous,
            "executionStartTime": _iso(execution.start_time),
            "pipelineArn": pipeline_arn,
            "pipelineExecutionArn": execution_arn,
        }
        if status in PIPELINE_TERMINAL:
            detail["executionEndTime"] = _iso(_now())
        if execution.pipeline_execution_description:
            detail["pipelineExecutionDescription"] = execution.pipeline_execution_description
        self.aws.emit_event(
            SOURCE,
            "SageMaker Model Building Pipeline Execution Status Change",
            detail,
            [pipeline_arn, execution_arn],
        )

    def put_pipeline_execution_step(self, execution_arn: str, step: dict[str, Any]) -> None:
        """Insert or replace (by StepName) a step as ListPipelineExecutionSteps returns it."""
        self.find_pipeline_execution(execution_arn)
        with self.lock:
            self._steps.setdefault(execution_arn, {})[step["StepName"]] = dict(step)

    def _list_pipeline_execution_steps(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params["PipelineExecutionArn"]
        self.find_pipeline_execution(arn)
        with self.lock:
            steps = list(self._steps.get(arn, {}).values())
        epoch = dt.datetime.fromtimestamp(0, dt.UTC)
        steps.sort(
            key=lambda s: _as_datetime(s.get("StartTime")) or epoch,
            reverse=params.get("SortOrder") != "Ascending",
        )
        return _paginate(steps, params, "PipelineExecutionSteps")
