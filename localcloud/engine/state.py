"""What one pipeline execution and its steps look like while the engine runs them, in SageMaker's words."""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

from localcloud.engine.definition import PipelineDefinition

EXECUTION_TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})
STEP_TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})

#: ListPipelineExecutionSteps' Metadata member for each step type, and the ARN property that fills it.
METADATA_KEY = {
    "Processing": ("ProcessingJob", "ProcessingJobArn"),
    "Training": ("TrainingJob", "TrainingJobArn"),
    "Tuning": ("TuningJob", "HyperParameterTuningJobArn"),
    "RegisterModel": ("RegisterModel", "ModelPackageArn"),
    "Model": ("Model", "ModelArn"),
    "Transform": ("TransformJob", "TransformJobArn"),
    "Lambda": ("Lambda", "FunctionArn"),
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class StepRun:
    """One step of one execution: status, times, metadata, and the properties later steps read."""

    name: str
    type: str
    status: str = "Starting"
    start_time: dt.datetime = field(default_factory=utcnow)
    end_time: dt.datetime | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    cache_source_arn: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    property_files: dict[str, Any] = field(default_factory=dict)
    cache_key: str | None = None
    attempt_count: int = 1

    def summary(self) -> dict[str, Any]:
        """The PipelineExecutionStep shape of ListPipelineExecutionSteps."""
        item: dict[str, Any] = {
            "StepName": self.name,
            "StepDisplayName": self.name,
            "StartTime": self.start_time,
            "StepStatus": self.status,
            "AttemptCount": self.attempt_count,
            "Metadata": self.metadata,
        }
        if self.end_time is not None:
            item["EndTime"] = self.end_time
        if self.failure_reason:
            item["FailureReason"] = self.failure_reason[:1024]
        if self.cache_source_arn:
            item["CacheHitResult"] = {"SourcePipelineExecutionArn": self.cache_source_arn}
        return item


@dataclass
class ExecutionRun:
    """One pipeline execution as the engine runs it."""

    arn: str
    pipeline_name: str
    pipeline_arn: str
    display_name: str
    description: str | None
    definition: PipelineDefinition | None
    given_parameters: list[dict[str, Any]]
    parallelism: int = 50
    status: str = "Executing"
    failure_reason: str | None = None
    start_time: dt.datetime = field(default_factory=utcnow)
    end_time: dt.datetime | None = None
    last_modified_time: dt.datetime = field(default_factory=utcnow)
    parameters: dict[str, Any] = field(default_factory=dict)
    experiment_config: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepRun] = field(default_factory=dict)
    outcomes: dict[str, bool] = field(default_factory=dict)  # condition step -> branch taken
    stop_requested: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    def describe(self) -> dict[str, Any]:
        """The DescribePipelineExecution shape."""
        with self.lock:
            document: dict[str, Any] = {
                "PipelineArn": self.pipeline_arn,
                "PipelineExecutionArn": self.arn,
                "PipelineExecutionDisplayName": self.display_name,
                "PipelineExecutionStatus": self.status,
                "PipelineExperimentConfig": self.experiment_config,
                "CreationTime": self.start_time,
                "LastModifiedTime": self.last_modified_time,
                "ParallelismConfiguration": {"MaxParallelExecutionSteps": self.parallelism},
            }
            if self.description:
                document["PipelineExecutionDescription"] = self.description
            if self.failure_reason:
                document["FailureReason"] = self.failure_reason
            return document

    def list_steps(self, ascending: bool = False) -> list[dict[str, Any]]:
        """Steps newest first (as AWS lists them by default), or oldest first when ``ascending``."""
        with self.lock:
            ordered = list(self.steps.values())  # insertion order is start order
            if not ascending:
                ordered.reverse()
            return [step.summary() for step in ordered]


@dataclass(frozen=True)
class ProgressUpdate:
    """One thing that happened in an execution, for live progress displays."""

    execution_arn: str
    status: str
    step_name: str | None = None
    step_type: str | None = None
    message: str = ""
    time: dt.datetime = field(default_factory=utcnow)
