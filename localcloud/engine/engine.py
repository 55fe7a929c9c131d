"""The pipeline engine: runs executions started through StartPipelineExecution on the embedded AWS by
interpreting the pipeline's stored definition, step by step, as SageMaker Pipelines would.

Each execution runs on its own thread: a DAG scheduler starts every step whose upstream steps (DependsOn,
property references, property files, the gating condition) have succeeded, runs independent steps in
parallel, and records step, job and execution state where the SageMaker API reads it.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from localcloud.engine.caching import CACHEABLE_STEP_TYPES, CacheEntry, StepCache, cache_key
from localcloud.engine.definition import DefinitionError, PipelineDefinition, StepSpec, evaluate_condition
from localcloud.engine.expressions import ExpressionError, ResolutionContext, resolve, to_text
from localcloud.engine.records import JobRecords
from localcloud.engine.state import EXECUTION_TERMINAL, ExecutionRun, StepRun, utcnow
from localcloud.engine.tuning import HyperParameterSearch, TuningConfigError
from localcloud.runtime.algorithms import builtin_training
from localcloud.runtime.s3io import read_json

if TYPE_CHECKING:
    from localcloud.aws.protocol import RequestInfo
    from localcloud.aws.server import EmbeddedAws

logger = logging.getLogger(__name__)

STEP_EVENT = "SageMaker Model Building Pipeline Execution Step Status Change"
STEP_FAILURE_REASON = "Step failure: One or multiple steps failed."


class JobRunnerPort(Protocol):
    """What the engine needs from the job runner (``localcloud.runtime.JobRunner``).

    Both calls block until the job ends and return an object with ``status`` ('Completed' | 'Failed'),
    ``failure_reason``, and for training ``final_metrics`` (name -> value) and ``model_artifacts``.
    """

    def run_processing(self, job_name: str, request: dict[str, Any]) -> Any: ...

    def run_training(self, job_name: str, request: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class ProgressUpdate:
    """One thing that happened in an execution, for live progress displays."""

    execution_arn: str
    status: str
    step_name: str | None = None
    step_type: str | None = None
    message: str = ""
    time: dt.datetime = field(default_factory=utcnow)


ProgressListener = Callable[[ProgressUpdate], None]


class StepFailure(Exception):
    """A step that ended Failed; ``reason`` becomes its FailureReason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _digest(*parts: Any, length: int = 10) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:length]


def _camel_lower(value: Any) -> Any:
    if isinstance(value, dict):
        return {k[:1].lower() + k[1:]: _camel_lower(v) for k, v in value.items()}
    return value


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


class PipelineEngine:
    """Interprets SageMaker pipeline definitions for executions started on an ``EmbeddedAws``.

    ``attach()`` hooks StartPipelineExecution / StopPipelineExecution and the SageMaker APIs that show
    engine state; ``wait(arn)`` blocks until an execution ends; ``add_progress_listener(fn)`` streams
    ``ProgressUpdate``s. ``tuning_seed`` seeds every tuning search (reproducible trials).
    """

    def __init__(
        self,
        aws: EmbeddedAws,
        runner: JobRunnerPort,
        workdir: str | Path,
        *,
        tuning_seed: int = 0,
        poll_interval: float = 0.2,
    ):
        self.aws = aws
        self.runner = runner
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tuning_seed = tuning_seed
        self.poll_interval = poll_interval
        self.cache = StepCache()
        self._executions: dict[str, ExecutionRun] = {}
        self._tuning_summaries: dict[str, list[dict[str, Any]]] = {}
        self._listeners: list[ProgressListener] = []
        self._lock = threading.RLock()
        self._clients: dict[str, Any] = {}
        self._attached = False
        self._closed = False

    # wiring ------------------------------------------------------------------------------------
    def attach(self) -> PipelineEngine:
        """Start serving executions of this ``EmbeddedAws``; idempotent."""
        if self._attached:
            return self
        self._closed = False
        self.aws.add_listener("sagemaker", "StartPipelineExecution", self._on_start)
        self.aws.add_listener("sagemaker", "StopPipelineExecution", self._on_stop)
        self.aws.register_override("sagemaker", "DescribePipelineExecution", self._describe_execution)
        self.aws.register_override(
            "sagemaker", "ListTrainingJobsForHyperParameterTuningJob", self._list_training_jobs_for_tuning_job
        )
        self.aws.register_override("sagemaker", "RetryPipelineExecution", self._retry_execution)
        self._attached = True
        return self

    def close(self) -> None:
        """Stop taking new executions (the embedded AWS keeps its listeners; a closed engine ignores them)."""
        self._attached = False
        self._closed = True

    def client(self, service: str) -> Any:
        """A boto3 client of the embedded AWS (the engine calls the API like any other caller)."""
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.aws.new_client(service, max_pool_connections=32)
            return self._clients[service]

    @property
    def _records(self) -> JobRecords:
        return JobRecords(self.aws.backend("sagemaker"))

    def add_progress_listener(self, fn: ProgressListener) -> Callable[[], None]:
        """Call ``fn(update)`` on every step and execution change and every tuning trial; returns remover."""
        with self._lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self._lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return remove

    def execution(self, execution_arn: str) -> ExecutionRun:
        with self._lock:
            if execution_arn not in self._executions:
                raise KeyError(f"the engine has not run execution {execution_arn}")
            return self._executions[execution_arn]

    def wait(self, execution_arn: str, timeout: float = 600.0) -> str:
        """Block until the execution is Succeeded, Failed or Stopped; returns that status."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                run = self._executions.get(execution_arn)
            if run is not None:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} was never started by the engine")
            time.sleep(0.05)
        if not run.done.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"execution {execution_arn} still {run.status} after {timeout} s")
        return run.status

    # API hooks ---------------------------------------------------------------------------------
    def _on_start(self, params: dict[str, Any], response: dict[str, Any]) -> None:
        arn = response.get("PipelineExecutionArn")
        if not arn or self._closed:
            return
        with self._lock:
            if arn in self._executions:  # an idempotent repeat of the same start
                return
            moto_execution = self.aws.sagemaker.find_pipeline_execution(arn)
            pipeline_name = arn.split(":pipeline/", 1)[1].split("/execution/", 1)[0]
            parallelism = (moto_execution.parallelism_configuration or {}).get(
                "MaxParallelExecutionSteps", 50
            )
            run = ExecutionRun(
                arn=arn,
                pipeline_name=pipeline_name,
                pipeline_arn=arn.split("/execution/")[0],
                display_name=moto_execution.pipeline_execution_display_name or arn.rsplit("/", 1)[-1],
                description=moto_execution.pipeline_execution_description,
                definition=None,
                given_parameters=list(moto_execution.pipeline_parameters or []),
                parallelism=int(parallelism),
            )
            run.start_time = _aware(moto_execution.start_time)
            self._executions[arn] = run
        definition_text = moto_execution.pipeline_definition_for_execution
        thread = threading.Thread(
            target=self._run_execution, args=(run, definition_text), name=f"pipeline-{run.id}", daemon=True
        )
        thread.start()

    def _on_stop(self, params: dict[str, Any], response: dict[str, Any]) -> None:
        with self._lock:
            run = self._executions.get(params.get("PipelineExecutionArn", ""))
        if run is None:
            return
        with run.lock:
            run.stop_requested.set()
            if run.status not in EXECUTION_TERMINAL:
                run.status = "Stopping"
        self._progress(ProgressUpdate(run.arn, "Stopping"))
        stop = getattr(self.runner, "stop_job", None)
        if callable(stop):
            for step in list(run.steps.values()):
                job_name = step.properties.get("ProcessingJobName") or step.properties.get("TrainingJobName")
                if step.status == "Executing" and job_name:
                    stop(job_name)

    def _describe_execution(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params.get("PipelineExecutionArn", "")
        with self._lock:
            run = self._executions.get(arn)
        described = dict(self.aws.backend("sagemaker").describe_pipeline_execution(arn))
        if run is not None:
            mine = run.describe()
            described.update(mine)
            described["PipelineExecutionStatus"] = self.aws.sagemaker.find_pipeline_execution(
                arn
            ).pipeline_execution_status
            if "FailureReason" not in mine:
                described.pop("FailureReason", None)
        else:  # not ours (e.g. driven by another component): moto keeps the reason but never reports it
            reason = self.aws.sagemaker.find_pipeline_execution(arn).pipeline_execution_failure_reason
            described.pop("FailureReason", None)
            if reason:
                described["FailureReason"] = reason
        return described

    def _retry_execution(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        """RetryPipelineExecution: a Failed execution runs again from its failed steps, same ARN."""
        from localcloud.aws.protocol import AwsError

        arn = params.get("PipelineExecutionArn", "")
        with self._lock:
            run = self._executions.get(arn)
        if run is None:
            self.aws.sagemaker.find_pipeline_execution(arn)  # ResourceNotFound for an unknown ARN
            raise AwsError("ValidationException", f"Pipeline execution {arn} was not run by this engine.")
        with run.lock:
            if run.status != "Failed" or run.definition is None or not run.done.is_set():
                raise AwsError(
                    "ValidationException",
                    f"Pipeline execution {arn} is in status {run.status}; only a "
                    "Failed execution can be retried.",
                )
            run.done.clear()
            run.status, run.failure_reason, run.end_time = "Executing", None, None
        self.aws.sagemaker.set_pipeline_execution_status(arn, "Executing", "")
        threading.Thread(
            target=self._rerun, args=(run,), name=f"pipeline-retry-{run.id}", daemon=True
        ).start()
        return {"PipelineExecutionArn": arn}

    def _rerun(self, run: ExecutionRun) -> None:
        try:
            self._schedule(run)
        except Exception as error:
            logger.exception("pipeline retry crashed", extra={"execution_arn": run.arn})
            self._finish(run, "Failed", f"InternalError: {error}")
        finally:
            run.done.set()

    def _list_training_jobs_for_tuning_job(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        from localcloud.aws.protocol import AwsError

        name = params.get("HyperParameterTuningJobName", "")
        with self._lock:
            if name not in self._tuning_summaries:
                raise AwsError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job named {name}.")
            items = list(self._tuning_summaries[name])
        if params.get("StatusEquals"):
            items = [i for i in items if i["TrainingJobStatus"] == params["StatusEquals"]]
        sort_by = params.get("SortBy", "Name")
        descending = params.get("SortOrder", "Ascending") == "Descending"
        if sort_by == "FinalObjectiveMetricValue":
            scored = [i for i in items if "FinalHyperParameterTuningJobObjectiveMetric" in i]
            unscored = [i for i in items if "FinalHyperParameterTuningJobObjectiveMetric" not in i]
            scored.sort(
                key=lambda i: i["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], reverse=descending
            )
            items = scored + unscored
        else:
            member = {
                "Name": "TrainingJobName",
                "CreationTime": "CreationTime",
                "Status": "TrainingJobStatus",
            }.get(sort_by, "TrainingJobName")
            items.sort(key=lambda i: i[member], reverse=descending)
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults") or 10)
        page: dict[str, Any] = {"TrainingJobSummaries": items[start : start + size]}
        if start + size < len(items):
            page["NextToken"] = str(start + size)
        return page

    # execution ---------------------------------------------------------------------------------
    def _run_execution(self, run: ExecutionRun, definition_text: str) -> None:
        try:
            try:
                run.definition = PipelineDefinition.parse(definition_text)
                run.parameters = run.definition.resolve_parameters(run.given_parameters)
                experiment = run.definition.raw.get("PipelineExperimentConfig")
                if experiment:
                    run.experiment_config = resolve(experiment, self._context(run))
            except (DefinitionError, ExpressionError, ValueError) as error:
                self._finish(run, "Failed", str(error))
                return
            self._progress(ProgressUpdate(run.arn, "Executing", message=f"{len(run.definition.steps)} steps"))
            self._schedule(run)
        except Exception as error:  # the engine must never leave an execution Executing forever
            logger.exception("pipeline execution crashed", extra={"execution_arn": run.arn})
            self._finish(run, "Failed", f"InternalError: {error}")
        finally:
            run.done.set()

    def _schedule(self, run: ExecutionRun) -> None:
        assert run.definition is not None
        specs = run.definition.steps
        # a retried execution keeps what already succeeded and runs the rest again
        state: dict[str, str] = {
            name: "succeeded" if name in run.steps and run.steps[name].status == "Succeeded" else "pending"
            for name in specs
        }
        outcomes = run.outcomes
        finished: queue.Queue[tuple[str, bool]] = queue.Queue()
        running = 0
        fail_message: str | None = None
        any_failed = False
        while True:
            if not run.stop_requested.is_set() and not any_failed:
                progressed = True
                while progressed:  # skipping a step can make others decidable in the same pass
                    progressed = False
                    for name in [n for n, s in state.items() if s == "pending"]:
                        spec = specs[name]
                        if spec.branch_of is not None:
                            condition, branch = spec.branch_of
                            if state[condition] == "succeeded" and outcomes.get(condition) != branch:
                                state[name] = "skipped"
                                progressed = True
                                continue
                        upstream = [state[u] for u in spec.upstream]
                        if any(s in ("failed", "skipped") for s in upstream):
                            state[name] = "skipped"
                            progressed = True
                        elif all(s == "succeeded" for s in upstream) and running < run.parallelism:
                            state[name] = "running"
                            running += 1
                            threading.Thread(
                                target=self._step_thread,
                                args=(run, spec, outcomes, finished),
                                name=f"step-{run.id}-{name}",
                                daemon=True,
                            ).start()
            if running == 0:
                break
            name, succeeded = finished.get()
            running -= 1
            state[name] = "succeeded" if succeeded else "failed"
            if not succeeded:
                any_failed = True
                step = run.steps[name]
                if specs[name].type == "Fail" and fail_message is None:
                    fail_message = step.failure_reason or ""
        if run.stop_requested.is_set():
            self._finish(run, "Stopped", None)
        elif any_failed:
            self._finish(run, "Failed", fail_message if fail_message is not None else STEP_FAILURE_REASON)
        else:
            self._finish(run, "Succeeded", None)

    def _finish(self, run: ExecutionRun, status: str, failure_reason: str | None) -> None:
        with run.lock:
            run.status = status
            run.failure_reason = failure_reason
            run.end_time = run.last_modified_time = utcnow()
        self.aws.sagemaker.set_pipeline_execution_status(run.arn, status, failure_reason)
        self._progress(ProgressUpdate(run.arn, status, message=failure_reason or ""))

    def _progress(self, update: ProgressUpdate) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for fn in listeners:
            try:
                fn(update)
            except Exception:
                logger.exception("progress listener failed")

    def _context(self, run: ExecutionRun) -> ResolutionContext:
        def step_properties(name: str) -> dict[str, Any]:
            step = run.steps.get(name)
            if step is None or step.status != "Succeeded":
                raise ExpressionError(f"step {name!r} has not succeeded; its properties are not available")
            return step.properties

        def property_file(step_name: str, file_name: str) -> Any:
            step = run.steps.get(step_name)
            if step is None or file_name not in step.property_files:
                raise ExpressionError(f"step {step_name!r} has no property file {file_name!r}")
            return step.property_files[file_name]

        return ResolutionContext(
            parameters=run.parameters,
            execution={
                "PipelineExecutionId": run.id,
                "PipelineExecutionArn": run.arn,
                "PipelineName": run.pipeline_name,
                "PipelineArn": run.pipeline_arn,
                "StartDateTime": _iso(run.start_time),
                "CurrentDateTime": lambda: _iso(utcnow()),
            },
            step_properties=step_properties,
            property_file=property_file,
            read_s3_json=self._read_s3_json,
        )

    # steps -------------------------------------------------------------------------------------
    def _step_thread(
        self,
        run: ExecutionRun,
        spec: StepSpec,
        outcomes: dict[str, bool],
        finished: queue.Queue[tuple[str, bool]],
    ) -> None:
        succeeded = False
        try:
            succeeded = self._run_step(run, spec, outcomes)
        finally:
            finished.put((spec.name, succeeded))

    def _run_step(self, run: ExecutionRun, spec: StepSpec, outcomes: dict[str, bool]) -> bool:
        previous = run.steps.get(spec.name)
        step = StepRun(name=spec.name, type=spec.type)
        if previous is not None:  # a retry: AWS counts the attempts of a step
            step.attempt_count = previous.attempt_count + 1
            with run.lock:
                del run.steps[spec.name]  # re-inserted below, so the listing order stays start order
        with run.lock:
            run.steps[spec.name] = step
        self._publish_step(run, step, None)
        ctx = self._context(run)
        try:
            if spec.type == "Condition":
                self._set_status(run, step, "Executing")
                outcome = all(evaluate_condition(c, ctx) for c in spec.arguments.get("Conditions", []))
                outcomes[spec.name] = outcome
                step.properties = {"Outcome": str(outcome).lower()}
                step.metadata = {"Condition": {"Outcome": "True" if outcome else "False"}}
            elif spec.type == "Fail":
                self._set_status(run, step, "Executing")
                message = to_text(resolve(spec.arguments.get("ErrorMessage", ""), ctx))
                step.metadata = {"Fail": {"ErrorMessage": message}}
                raise StepFailure(message)
            else:
                arguments = resolve(spec.arguments, ctx)
                if spec.cache.enabled and spec.type in CACHEABLE_STEP_TYPES:
                    step.cache_key = cache_key(spec.type, arguments, self._etags)
                    hit = self.cache.lookup(
                        run.pipeline_name, spec.name, step.cache_key, spec.cache.expire_after
                    )
                    if hit is not None:
                        step.properties = copy.deepcopy(hit.properties)
                        step.property_files = copy.deepcopy(hit.property_files)
                        step.metadata = copy.deepcopy(hit.metadata)
                        step.cache_source_arn = hit.execution_arn
                        self._set_status(
                            run, step, "Succeeded", message=f"cache hit from {hit.execution_arn}"
                        )
                        return True
                self._set_status(run, step, "Executing")
                handler = {
                    "Processing": self._processing,
                    "Training": self._training,
                    "Tuning": self._tuning,
                    "RegisterModel": self._register_model,
                    "Model": self._model,
                    "Transform": self._transform,
                    "Lambda": self._lambda,
                }[spec.type]
                handler(run, spec, step, arguments)
                if step.cache_key is not None:
                    self.cache.store(
                        run.pipeline_name,
                        spec.name,
                        CacheEntry(
                            key=step.cache_key,
                            execution_arn=run.arn,
                            finished=utcnow(),
                            properties=copy.deepcopy(step.properties),
                            property_files=copy.deepcopy(step.property_files),
                            metadata=copy.deepcopy(step.metadata),
                        ),
                    )
            self._set_status(run, step, "Succeeded")
            return True
        except StepFailure as failure:
            step.failure_reason = failure.reason
        except (ExpressionError, DefinitionError, TuningConfigError) as error:
            step.failure_reason = f"ClientError: {error}"
        except ClientError as error:
            step.failure_reason = f"ClientError: {error.response.get('Error', {}).get('Message', error)}"
        except (BotoCoreError, OSError, KeyError, ValueError, TypeError) as error:
            logger.exception("step crashed", extra={"step": spec.name})
            step.failure_reason = f"InternalError: {type(error).__name__}: {error}"
        status = "Stopped" if run.stop_requested.is_set() and spec.type != "Fail" else "Failed"
        self._set_status(run, step, status)
        return False

    def _set_status(self, run: ExecutionRun, step: StepRun, status: str, message: str = "") -> None:
        previous = step.status
        step.status = status
        if status in ("Succeeded", "Failed", "Stopped"):
            step.end_time = utcnow()
        self._publish_step(run, step, previous, message)

    def _publish_step(
        self, run: ExecutionRun, step: StepRun, previous: str | None, message: str = ""
    ) -> None:
        self.aws.sagemaker.put_pipeline_execution_step(run.arn, step.summary())
        detail: dict[str, Any] = {
            "pipelineArn": run.pipeline_arn,
            "pipelineExecutionArn": run.arn,
            "executionStartTime": _iso(run.start_time),
            "stepName": step.name,
            "stepType": step.type,
            "currentStepStatus": step.status,
            "stepStartTime": _iso(step.start_time),
        }
        if previous is not None:
            detail["previousStepStatus"] = previous
        if step.end_time is not None:
            detail["stepEndTime"] = _iso(step.end_time)
        if step.metadata:
            detail["metadata"] = _camel_lower(step.metadata)
        if step.failure_reason:
            detail["failureReason"] = step.failure_reason
        if step.cache_source_arn:
            detail["cacheHitResult"] = {"sourcePipelineExecutionArn": step.cache_source_arn}
        self.aws.emit_event("aws.sagemaker", STEP_EVENT, detail, [run.pipeline_arn, run.arn])
        self._progress(
            ProgressUpdate(run.arn, step.status, step.name, step.type, message or step.failure_reason or "")
        )

    def _job_name(self, run: ExecutionRun, spec: StepSpec, arguments: dict[str, Any]) -> str:
        prefix = f"pipelines-{run.id}-"
        suffix = "-" + _digest(run.arn, spec.name, arguments)
        return prefix + spec.name[: 63 - len(prefix) - len(suffix)] + suffix

    def _experiment(self, run: ExecutionRun, job_name: str) -> dict[str, Any]:
        config = run.experiment_config
        if not config.get("ExperimentName"):
            return {}
        return {
            "ExperimentConfig": {
                "ExperimentName": config["ExperimentName"],
                "TrialName": config.get("TrialName", run.id),
                "TrialComponentDisplayName": job_name,
            }
        }

    def _processing(
        self, run: ExecutionRun, spec: StepSpec, step: StepRun, arguments: dict[str, Any]
    ) -> None:
        name = self._job_name(run, spec, arguments)
        request = {"ProcessingJobName": name, **arguments, **self._experiment(run, name)}
        arn = self._records.processing_started(request)
        step.metadata = {"ProcessingJob": {"Arn": arn}}
        step.properties = {**request, "ProcessingJobArn": arn, "ProcessingJobStatus": "InProgress"}
        self._publish_step(run, step, step.status, f"processing job {name}")
        result = self._call_runner(self.runner.run_processing, name, request)
        status = str(getattr(result, "status", "Failed"))
        reason = getattr(result, "failure_reason", None) or (None if status == "Completed" else "job failed")
        exit_message = getattr(result, "exit_message", None)
        self._records.processing_finished(name, status, reason, exit_message)
        step.properties.update({"ProcessingJobStatus": status, "ProcessingEndTime": utcnow()})
        if reason:
            step.properties["FailureReason"] = reason
        if exit_message is not None:
            step.properties["ExitMessage"] = exit_message
        if status != "Completed":
            raise StepFailure(
                f"ClientError: {reason}"
                if not str(reason).startswith(("ClientError", "Algorithm"))
                else str(reason)
            )
        for property_file in spec.property_files:
            outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
            output = next((o for o in outputs if o.get("OutputName") == property_file["OutputName"]), None)
            if output is None:
                raise StepFailure(
                    f"ClientError: property file {property_file['PropertyFileName']} names "
                    f"unknown output {property_file['OutputName']}"
                )
            uri = output["S3Output"]["S3Uri"].rstrip("/") + "/" + property_file["FilePath"].lstrip("/")
            try:
                step.property_files[property_file["PropertyFileName"]] = self._read_s3_json(uri)
            except (ExpressionError, ValueError) as error:
                raise StepFailure(f"ClientError: cannot read property file {uri}: {error}") from None

    @staticmethod
    def _call_runner(
        run_job: Callable[[str, dict[str, Any]], Any], name: str, request: dict[str, Any]
    ) -> Any:
        """Run a job; a job the runner cannot even start is a failed job (SageMaker's ClientError)."""
        try:
            return run_job(name, copy.deepcopy(request))
        except Exception as error:
            logger.warning("job could not start", extra={"job_name": name, "error": str(error)})
            return _FailedJob(f"ClientError: {error}")

    def _train(self, request: dict[str, Any], tuning_arn: str | None = None) -> tuple[Any, dict[str, Any]]:
        """Run one training job, recording it; returns the runner's result and the describe-shaped job."""
        name = request["TrainingJobName"]
        specification = request.get("AlgorithmSpecification", {})
        builtin = builtin_training(request)
        if builtin is not None and not specification.get("MetricDefinitions"):
            # a built-in algorithm's job shows the algorithm's own metric definitions, as on SageMaker
            specification = {**specification, "MetricDefinitions": builtin.metric_definitions}
            request = {**request, "AlgorithmSpecification": specification}
        arn = self._records.training_started(request, tuning_arn)
        started = utcnow()
        result = self._call_runner(self.runner.run_training, name, request)
        status = str(getattr(result, "status", "Failed"))
        reason = getattr(result, "failure_reason", None) or (None if status == "Completed" else "job failed")
        ended = utcnow()
        metrics = [
            {"MetricName": k, "Value": float(v), "Timestamp": ended}
            for k, v in (getattr(result, "final_metrics", None) or {}).items()
        ]
        artifacts = getattr(result, "model_artifacts", None) or (
            request.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
            + f"/{name}/output/model.tar.gz"
        )
        self._records.training_finished(
            name, status, reason, metrics, artifacts if status == "Completed" else None
        )
        described = {
            **request,
            "TrainingJobArn": arn,
            "TrainingJobStatus": status,
            "SecondaryStatus": status,
            "CreationTime": started,
            "TrainingStartTime": started,
            "TrainingEndTime": ended,
            "FinalMetricDataList": metrics,
            "ModelArtifacts": {"S3ModelArtifacts": artifacts},
        }
        if tuning_arn:
            described["TuningJobArn"] = tuning_arn
        if reason:
            described["FailureReason"] = reason
        return result, described

    def _training(self, run: ExecutionRun, spec: StepSpec, step: StepRun, arguments: dict[str, Any]) -> None:
        name = self._job_name(run, spec, arguments)
        request = {"TrainingJobName": name, **arguments, **self._experiment(run, name)}
        _, described = self._train(request)
        step.metadata = {"TrainingJob": {"Arn": described["TrainingJobArn"]}}
        step.properties = described
        if described["TrainingJobStatus"] != "Completed":
            raise StepFailure(str(described.get("FailureReason", "training job failed")))

    def _tuning(self, run: ExecutionRun, spec: StepSpec, step: StepRun, arguments: dict[str, Any]) -> None:
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
            seed=self.tuning_seed,
        )
        tuning_name = f"{run.id[:12]}-{_digest(run.arn, spec.name, arguments)}"[:32]
        tuning_arn = self._records.tuning_started(tuning_name, config, definition)
        step.metadata = {"TuningJob": {"Arn": tuning_arn}}
        self._publish_step(run, step, step.status, f"tuning job {tuning_name}")
        with self._lock:
            self._tuning_summaries[tuning_name] = []
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
                job_name = f"{tuning_name}-{index + 1:03d}-{_digest(tuning_name, index, length=8)}"
                hyper_parameters = {
                    **{k: to_text(v) for k, v in definition.get("StaticHyperParameters", {}).items()},
                    **trial.hyper_parameters,
                }
                request = {
                    "TrainingJobName": job_name,
                    **copy.deepcopy(template),
                    "HyperParameters": hyper_parameters,
                    "ResourceConfig": resources,
                    **self._experiment(run, job_name),
                }
                _, described = self._train(request, tuning_arn)
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
                    self._records.tuning_progress(tuning_name, counters, objectives, best[0])
                    with self._lock:
                        self._tuning_summaries[tuning_name] = list(summaries)
                    done = len(summaries)
                shown = (
                    f"{metric_name}={value:.4g}" if value is not None else summary.get("FailureReason", "")
                )
                self._progress(
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
        self._records.tuning_finished(tuning_name, status, reason)
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

    def _register_model(
        self, run: ExecutionRun, spec: StepSpec, step: StepRun, arguments: dict[str, Any]
    ) -> None:
        sagemaker = self.client("sagemaker")
        group = arguments.get("ModelPackageGroupName")
        if group:
            self._ensure_model_package_group(str(group))
        arn = sagemaker.create_model_package(**arguments)["ModelPackageArn"]
        step.metadata = {"RegisterModel": {"Arn": arn}}
        described = sagemaker.describe_model_package(ModelPackageName=arn)
        described.pop("ResponseMetadata", None)
        step.properties = described

    def _ensure_model_package_group(self, group: str) -> None:
        """A RegisterModel step into a group that does not exist yet creates it: "specify a
        ModelPackageGroup. SageMaker Pipelines creates this ModelPackageGroup for you" (SageMaker developer
        guide, "Define a pipeline", the RegisterModel step). A group name that is an ARN names a group that
        must exist (of this or another account), so it is never created."""
        if group.startswith("arn:"):
            return
        sagemaker = self.client("sagemaker")
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=group)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
        try:
            sagemaker.create_model_package_group(ModelPackageGroupName=group)
        except ClientError as error:  # another registration created it meanwhile
            if "already exists" not in str(error.response.get("Error", {}).get("Message", "")):
                raise

    def _model(self, run: ExecutionRun, spec: StepSpec, step: StepRun, arguments: dict[str, Any]) -> None:
        sagemaker = self.client("sagemaker")
        name = arguments.get("ModelName") or self._job_name(run, spec, arguments)
        arn = sagemaker.create_model(**{**arguments, "ModelName": name})["ModelArn"]
        step.metadata = {"Model": {"Arn": arn}}
        described = sagemaker.describe_model(ModelName=name)
        described.pop("ResponseMetadata", None)
        step.properties = described

    def _transform(self, run: ExecutionRun, spec: StepSpec, step: StepRun, arguments: dict[str, Any]) -> None:
        sagemaker = self.client("sagemaker")
        name = self._job_name(run, spec, arguments)
        arn = sagemaker.create_transform_job(TransformJobName=name, **arguments)["TransformJobArn"]
        step.metadata = {"TransformJob": {"Arn": arn}}
        self._publish_step(run, step, step.status, f"transform job {name}")
        while True:
            described = sagemaker.describe_transform_job(TransformJobName=name)
            if described["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
            if run.stop_requested.is_set():
                sagemaker.stop_transform_job(TransformJobName=name)
            time.sleep(self.poll_interval)
        described.pop("ResponseMetadata", None)
        step.properties = described
        if described["TransformJobStatus"] != "Completed":
            raise StepFailure(
                described.get("FailureReason") or f"transform job {described['TransformJobStatus']}"
            )

    def _lambda(self, run: ExecutionRun, spec: StepSpec, step: StepRun, arguments: dict[str, Any]) -> None:
        function_arn = arguments.pop("FunctionArn")
        reply = self.client("lambda").invoke(
            FunctionName=function_arn, Payload=json.dumps(arguments).encode()
        )
        payload = reply["Payload"].read()
        if reply.get("FunctionError"):
            raise StepFailure(f"Lambda function failed: {payload.decode(errors='replace')[:900]}")
        document = json.loads(payload or b"{}")
        outputs = []
        for declared in spec.raw.get("OutputParameters", []):
            output_name = declared["OutputName"]
            if output_name not in document:
                raise StepFailure(f"Lambda output {output_name!r} is missing from the function's response")
            outputs.append({"Name": output_name, "Value": to_text(document[output_name])})
        step.metadata = {"Lambda": {"Arn": function_arn, "OutputParameters": outputs}}
        step.properties = {"OutputParameters": outputs}

    # S3 ----------------------------------------------------------------------------------------
    def _read_s3_json(self, uri: str) -> Any:
        try:
            return read_json(self.client("s3"), uri)
        except ClientError as error:
            raise ExpressionError(
                f"cannot read {uri}: {error.response.get('Error', {}).get('Code')}"
            ) from None

    def _etags(self, uri: str) -> list[list[str]]:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        found: list[list[str]] = []
        try:
            for page in (
                self.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            ):
                for item in page.get("Contents", []):
                    found.append([item["Key"][len(prefix) :], item["ETag"]])
        except ClientError:
            return []
        return found


@dataclass(frozen=True)
class _FailedJob:
    """The result of a job that never ran."""

    failure_reason: str
    status: str = "Failed"


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
