"""Tuning steps: a HyperParameterTuningJob whose trials are training jobs, searched with optuna."""

from __future__ import annotations

import copy
import threading
from typing import Any

from localcloud.engine.expressions import ResolutionContext, to_text
from localcloud.engine.state import ProgressUpdate
from localcloud.engine.steps.base import StepExecutor, StepFailure, digest, register
from localcloud.engine.steps.training import run_training_job
from localcloud.engine.tuning import HyperParameterSearch


@register
class TuningStepExecutor(StepExecutor):
    step_type = "Tuning"
    cacheable = True

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        engine, run, spec, step = self.engine, self.run, self.spec, self.step
        config = arguments["HyperParameterTuningJobConfig"]
        definition = (
            arguments.get("TrainingJobDefinition") or (arguments.get("TrainingJobDefinitions") or [{}])[0]
        )
        limits = config.get("ResourceLimits", {})
        max_jobs = int(limits.get("MaxNumberOfTrainingJobs", 1))
        max_parallel = max(1, int(limits.get("MaxParallelTrainingJobs", 1)))
        objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective") or {}
        metric_name = objective.get("MetricName")
        if not metric_name:
            raise StepFailure("ClientError: the tuning job has no objective metric")
        ranges = config.get("ParameterRanges") or definition.get("HyperParameterRanges") or {}
        search = HyperParameterSearch(
            ranges,
            objective.get("Type", "Minimize"),
            max_jobs,
            config.get("Strategy", "Bayesian"),
            seed=engine.tuning_seed,
        )
        tuning_name = f"{run.id[:12]}-{digest(run.arn, spec.name, arguments)}"[:32]
        tuning_arn = engine.records.tuning_started(tuning_name, config, definition)
        step.metadata = {"TuningJob": {"Arn": tuning_arn}}
        engine.publish_step(run, step, step.status, f"tuning job {tuning_name}")
        with engine.lock:
            engine.tuning_summaries[tuning_name] = []
        resources = copy.deepcopy(
            definition.get("ResourceConfig") or definition.get("HyperParameterTuningResourceConfig") or {}
        )
        for member in ("AllocationStrategy", "InstanceConfigs"):
            resources.pop(member, None)
        template = {
            k: v
            for k, v in definition.items()
            if k
            not in (
                "StaticHyperParameters",
                "HyperParameterTuningResourceConfig",
                "ResourceConfig",
                "HyperParameterRanges",
                "TuningObjective",
                "DefinitionName",
            )
        }
        lock = threading.Lock()
        counters = {
            "Completed": 0,
            "InProgress": 0,
            "RetryableError": 0,
            "NonRetryableError": 0,
            "Stopped": 0,
        }
        objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        summaries: list[dict[str, Any]] = []
        next_index = [0]
        best: list[dict[str, Any] | None] = [None]

        def trial_worker() -> None:
            while True:
                with lock:
                    if next_index[0] >= max_jobs or run.stop_requested.is_set():
                        return
                    index = next_index[0]
                    next_index[0] += 1
                    counters["InProgress"] += 1
                    objectives["Pending"] += 1
                trial = search.ask()
                job_name = f"{tuning_name}-{index + 1:03d}-{digest(tuning_name, index, length=8)}"
                hyper_parameters = {
                    **{k: to_text(v) for k, v in definition.get("StaticHyperParameters", {}).items()},
                    **trial.hyper_parameters,
                }
                request = {
                    "TrainingJobName": job_name,
                    **copy.deepcopy(template),
                    "HyperParameters": hyper_parameters,
                    "ResourceConfig": resources,
                    **engine.experiment(run, job_name),
                }
                _, described = run_training_job(engine, request, tuning_arn)
                value = next(
                    (m["Value"] for m in described["FinalMetricDataList"] if m["MetricName"] == metric_name),
                    None,
                )
                completed = described["TrainingJobStatus"] == "Completed"
                search.tell(trial, value if completed else None)
                summary: dict[str, Any] = {
                    "TrainingJobName": job_name,
                    "TrainingJobArn": described["TrainingJobArn"],
                    "TuningJobName": tuning_name,
                    "CreationTime": described["CreationTime"],
                    "TrainingStartTime": described["TrainingStartTime"],
                    "TrainingEndTime": described["TrainingEndTime"],
                    "TrainingJobStatus": described["TrainingJobStatus"],
                    "TunedHyperParameters": trial.hyper_parameters,
                    "ObjectiveStatus": "Succeeded" if completed and value is not None else "Failed",
                }
                if completed and value is not None:
                    summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                        "Type": objective.get("Type", "Minimize"),
                        "MetricName": metric_name,
                        "Value": value,
                    }
                elif not completed:
                    summary["FailureReason"] = described.get("FailureReason", "training job failed")
                else:
                    summary["FailureReason"] = f"The objective metric {metric_name} was not emitted"
                with lock:
                    summaries.append(summary)
                    counters["InProgress"] -= 1
                    counters["Completed" if completed else "NonRetryableError"] += 1
                    objectives["Pending"] -= 1
                    objectives[summary["ObjectiveStatus"]] += 1
                    incumbent = best[0]
                    if (
                        value is not None
                        and summary["ObjectiveStatus"] == "Succeeded"
                        and (
                            incumbent is None
                            or search.is_better(
                                value, incumbent["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
                            )
                        )
                    ):
                        best[0] = summary
                    engine.records.tuning_progress(tuning_name, counters, objectives, best[0])
                    with engine.lock:
                        engine.tuning_summaries[tuning_name] = list(summaries)
                    done = len(summaries)
                shown = (
                    f"{metric_name}={value:.4g}" if value is not None else summary.get("FailureReason", "")
                )
                engine.progress(
                    ProgressUpdate(
                        run.arn,
                        "Executing",
                        spec.name,
                        spec.type,
                        f"trial {done}/{max_jobs} {job_name}: {shown}",
                    )
                )

        workers = [
            threading.Thread(target=trial_worker, name=f"trial-{tuning_name}-{i}", daemon=True)
            for i in range(min(max_parallel, max_jobs))
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        minimize = objective.get("Type", "Minimize") == "Minimize"
        scored = sorted(
            (s for s in summaries if s["ObjectiveStatus"] == "Succeeded"),
            key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
            reverse=not minimize,
        )
        ordered = scored + [s for s in summaries if s["ObjectiveStatus"] != "Succeeded"]
        if run.stop_requested.is_set():
            status, reason = "Stopped", "The tuning job was stopped with the pipeline execution"
        elif not scored:
            first = next(
                (s.get("FailureReason") for s in summaries if s.get("FailureReason")), "no trial ran"
            )
            status, reason = "Failed", f"All training jobs failed. First failure: {first}"
        else:
            status, reason = "Completed", None
        engine.records.tuning_finished(tuning_name, status, reason)
        step.properties = {
            "HyperParameterTuningJobName": tuning_name,
            "HyperParameterTuningJobArn": tuning_arn,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "HyperParameterTuningJobStatus": status,
            "TrainingJobStatusCounters": counters,
            "ObjectiveStatusCounters": objectives,
            "TrainingJobSummaries": ordered,
        }
        if scored:
            step.properties["BestTrainingJob"] = scored[0]
        if reason:
            raise StepFailure(reason)
