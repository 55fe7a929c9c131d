"""The pipeline engine: runs executions started through StartPipelineExecution on the embedded AWS by
interpreting the pipeline's stored definition, step by step, as SageMaker Pipelines would.

Each execution runs on its own thread: a DAG scheduler starts every step whose upstream steps (DependsOn,
property references, property files, the gating condition) have succeeded, runs independent steps in
parallel, and records step, job and execution state where the SageMaker API reads it.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from localcloud.engine.caching import CacheEntry, StepCache, cache_key
from localcloud.engine.definition import DefinitionError, PipelineDefinition, StepSpec
from localcloud.engine.expressions import ExpressionError, ResolutionContext, resolve
from localcloud.engine.records import JobRecords
from localcloud.engine.state import EXECUTION_TERMINAL, ExecutionRun, ProgressUpdate, StepRun, utcnow
from localcloud.engine.steps import EXECUTORS, FailedJob, StepFailure, digest
from localcloud.engine.tuning import TuningConfigError
from localcloud.runtime.jobs import RunnerClosedError
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


ProgressListener = Callable[[ProgressUpdate], None]


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
        self.tuning_summaries: dict[str, list[dict[str, Any]]] = {}
        self._listeners: list[ProgressListener] = []
        self.lock = threading.RLock()
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
        with self.lock:
            if service not in self._clients:
                self._clients[service] = self.aws.new_client(service, max_pool_connections=32)
            return self._clients[service]

    @property
    def records(self) -> JobRecords:
        return JobRecords(self.aws.backend("sagemaker"))

    def add_progress_listener(self, fn: ProgressListener) -> Callable[[], None]:
        """Call ``fn(update)`` on every step and execution change and every tuning trial; returns remover."""
        with self.lock:
            self._listeners.append(fn)

        def remove() -> None:
            with self.lock:
                if fn in self._listeners:
                    self._listeners.remove(fn)

        return remove

    def execution(self, execution_arn: str) -> ExecutionRun:
        with self.lock:
            if execution_arn not in self._executions:
                raise KeyError(f"the engine has not run execution {execution_arn}")
            return self._executions[execution_arn]

    def wait(self, execution_arn: str, timeout: float = 600.0) -> str:
        """Block until the execution is Succeeded, Failed or Stopped; returns that status."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
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
        with self.lock:
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
        with self.lock:
            run = self._executions.get(params.get("PipelineExecutionArn", ""))
        if run is None:
            return
        with run.lock:
            run.stop_requested.set()
            if run.status not in EXECUTION_TERMINAL:
                run.status = "Stopping"
        self.progress(ProgressUpdate(run.arn, "Stopping"))
        stop = getattr(self.runner, "stop_job", None)
        if callable(stop):
            for step in list(run.steps.values()):
                job_name = step.properties.get("ProcessingJobName") or step.properties.get("TrainingJobName")
                if step.status == "Executing" and job_name:
                    stop(job_name)

    def _describe_execution(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params.get("PipelineExecutionArn", "")
        with self.lock:
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
        with self.lock:
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
        with self.lock:
            if name not in self.tuning_summaries:
                raise AwsError("ResourceNotFound", f"Amazon SageMaker can't find a tuning job named {name}.")
            items = list(self.tuning_summaries[name])
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
            self.progress(ProgressUpdate(run.arn, "Executing", message=f"{len(run.definition.steps)} steps"))
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
        self.progress(ProgressUpdate(run.arn, status, message=failure_reason or ""))

    def progress(self, update: ProgressUpdate) -> None:
        with self.lock:
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
            read_s3_json=self.read_s3_json,
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
        self.publish_step(run, step, None)
        ctx = self._context(run)
        executor = EXECUTORS[spec.type](self, run, spec, step)
        try:
            if not executor.takes_arguments:
                self._set_status(run, step, "Executing")
                executor.execute({}, ctx)
            else:
                arguments = resolve(spec.arguments, ctx)
                if spec.cache.enabled and executor.cacheable:
                    step.cache_key = cache_key(spec.type, arguments)
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
                executor.execute(arguments, ctx)
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
        self.publish_step(run, step, previous, message)

    def publish_step(self, run: ExecutionRun, step: StepRun, previous: str | None, message: str = "") -> None:
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
        self.progress(
            ProgressUpdate(run.arn, step.status, step.name, step.type, message or step.failure_reason or "")
        )

    def job_name(self, run: ExecutionRun, spec: StepSpec, arguments: dict[str, Any]) -> str:
        prefix = f"pipelines-{run.id}-"
        suffix = "-" + digest(run.arn, spec.name, arguments)
        return prefix + spec.name[: 63 - len(prefix) - len(suffix)] + suffix

    def experiment(self, run: ExecutionRun, job_name: str) -> dict[str, Any]:
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

    def call_runner(
        self, run_job: Callable[[str, dict[str, Any]], Any], name: str, request: dict[str, Any]
    ) -> Any:
        """Run a job; a job the runner cannot even start is a failed job (SageMaker's ClientError). While
        the local cloud stops under a running execution (the runner closed, or the interpreter finalizing
        around the engine's daemon threads), that is expected, and not a warning in the user's terminal."""
        try:
            return run_job(name, copy.deepcopy(request))
        except Exception as error:
            if isinstance(error, RunnerClosedError) or self._closed:
                logger.info("job not started: the local cloud is stopping", extra={"job_name": name})
            else:
                logger.warning("job could not start", extra={"job_name": name, "error": str(error)})
            return FailedJob(f"ClientError: {error}")

    # S3 ----------------------------------------------------------------------------------------
    def read_s3_json(self, uri: str) -> Any:
        try:
            return read_json(self.client("s3"), uri)
        except ClientError as error:
            raise ExpressionError(
                f"cannot read {uri}: {error.response.get('Error', {}).get('Code')}"
            ) from None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
