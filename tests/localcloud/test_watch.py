"""`localcloud watch`: a line per step change, and for a tuning step a progress bar of trials done of the
maximum with the best objective so far and the elapsed time, read from DescribeHyperParameterTuningJob."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console

from localcloud.cli import TuningProgress, watch

STARTED = dt.datetime(2026, 12, 1, 5, 0, 0, tzinfo=dt.UTC)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e1"
TUNING = "arn:aws:sagemaker:us-east-1:123456789012:hyper-parameter-tuning-job/t1"


def tuning_job(done: int, best: float | None, failed: int = 0) -> dict[str, Any]:
    """DescribeHyperParameterTuningJob's shape (botocore's sagemaker model), as far as watch reads it."""
    described: dict[str, Any] = {
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:rmse"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 8, "MaxParallelTrainingJobs": 2},
        },
        "TrainingJobStatusCounters": {
            "Completed": done,
            "InProgress": 2,
            "RetryableError": 0,
            "NonRetryableError": failed,
            "Stopped": 0,
        },
    }
    if best is not None:
        described["BestTrainingJob"] = {
            "TrainingJobName": "t1-001",
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:rmse", "Value": best},
        }
    return described


class ScriptedSageMaker:
    """Answers each poll with the next scripted state of the execution."""

    def __init__(self, polls: list[tuple[str, str, dict[str, Any]]]) -> None:
        self.polls = polls
        self.index = 0
        self.started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=75)  # the step began before watching

    def list_pipeline_execution_steps(self, PipelineExecutionArn: str) -> dict[str, Any]:
        tuning_status, _, _ = self.polls[self.index]
        steps = [
            {"StepName": "TuneModel", "StepStatus": tuning_status, "StartTime": self.started,
             "Metadata": {"TuningJob": {"Arn": TUNING}}},
            {"StepName": "PreprocessData", "StepStatus": "Succeeded", "StartTime": STARTED,
             "Metadata": {"ProcessingJob": {"Arn": "arn:x"}}},
        ]  # fmt: skip
        return {"PipelineExecutionSteps": steps}  # newest first, as AWS lists them

    def describe_hyper_parameter_tuning_job(self, HyperParameterTuningJobName: str) -> dict[str, Any]:
        assert HyperParameterTuningJobName == "t1"
        return self.polls[self.index][2]

    def describe_pipeline_execution(self, PipelineExecutionArn: str) -> dict[str, Any]:
        status = self.polls[self.index][1]
        self.index += 1
        return {"PipelineExecutionStatus": status}


def test_tuning_progress_counts_ended_trials_and_reads_the_best_objective() -> None:
    state = TuningProgress.of(tuning_job(3, 3.21, failed=1), STARTED, STARTED + dt.timedelta(seconds=42))
    assert (state.done, state.total, state.best, state.elapsed_s) == (4, 8, 3.21, 42.0)
    assert state.describe() == "4/8 trials, best validation:rmse 3.21"
    assert (
        TuningProgress.of(tuning_job(0, None), STARTED, STARTED).describe() == "0/8 trials, no objective yet"
    )


def test_watch_shows_step_lines_and_the_tuning_bar_to_the_end() -> None:
    sagemaker = ScriptedSageMaker(
        [
            ("Executing", "Executing", tuning_job(1, 4.5)),
            ("Executing", "Executing", tuning_job(5, 3.3)),
            ("Succeeded", "Succeeded", tuning_job(8, 2.9)),
        ]
    )
    console = Console(record=True, width=140, force_terminal=False)
    assert watch(sagemaker, ARN, console, poll_s=0) == 0
    shown = console.export_text()
    lines = shown.splitlines()
    assert [line.split()[1:3] for line in lines if line[:2].isdigit()] == [
        ["PreprocessData", "Succeeded"],
        ["TuneModel", "Executing"],
        ["TuneModel", "Succeeded"],
    ]
    (bar,) = [line for line in lines if "TuneModel" in line and "/" in line]
    assert "8/8" in bar and "best validation:rmse 2.9" in bar
    assert bar.endswith(("0:01:15", "0:01:16"))  # elapsed since the step started, not since watching
    assert lines[-1] == "execution Succeeded"
