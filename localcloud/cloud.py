"""The local cloud: embedded AWS, the stack from template.yaml, event router, pipeline engine and hosting.

One process on loopback. The handlers under functions/ run unchanged: they reach the embedded AWS through
AWS_ENDPOINT_URL, and events reach them through the template's own EventBridge rules.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from localcloud.aws.lambda_invoke import LambdaInvoke
from localcloud.aws.server import EmbeddedAws
from localcloud.faults import FaultPlan, Faults, FaultyJobRunner
from localcloud.provision import plan_names, provision
from localcloud.router import EventRouter, Invocation
from localcloud.runtime import JobRunner
from localcloud.runtime.s3io import S3Location
from localcloud.runtime.user_functions import UserFunctions
from localcloud.template import StackTemplate

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
STACK_NAME = "mlops-local"

# What a laptop run changes from the template's defaults: nothing that alters the flow, only its size.
LOCAL_PARAMETERS = {
    "MaxTuningJobs": "8",
    "MaxParallelTuningJobs": "2",
    "DeployTarget": "endpoint",
    "StopSupersededExecutions": "true",
}


class LocalCloud:
    """Everything the loop needs, started together; use as a context manager."""

    def __init__(
        self,
        workdir: Path | None = None,
        parameters: dict[str, str] | None = None,
        root: Path = ROOT,
        port: int = 0,
        max_workers: int = 2,
        fresh: bool = True,
        faults: FaultPlan | None = None,
        hosting: bool = True,
        schedules: bool = False,
    ) -> None:
        self.root = root
        self.workdir = (workdir or root / ".localcloud").resolve()
        if fresh and self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.parameters = LOCAL_PARAMETERS | dict(parameters or {})
        self.port = port
        self.max_workers = max_workers
        self.aws = EmbeddedAws(work_dir=self.workdir / "aws", port=port)
        self.template: StackTemplate | None = None
        self.router: EventRouter | None = None
        self.user_functions: UserFunctions | None = None
        self.runner: JobRunner | None = None
        self.engine: Any = None
        self.hosting: Any = None
        self.names: dict[str, str] = {}
        self.fault_plan = faults
        self.with_hosting = hosting  # False: endpoints go InService at once, serving nothing (load tests)
        self.with_schedules = schedules  # True: the template's rate() schedules fire (localcloud up)
        self.scheduler: Any = None
        self.faults: Faults | None = None
        self._destinations: dict[str, tuple[Any, str]] = {}  # OnFailure ARN -> (SQS client, queue URL)
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> LocalCloud:
        self.aws.start()
        os.environ.update(self.aws.client_env())
        self.session = boto3.Session(region_name=self.aws.region)
        s3 = self.aws.new_client("s3", max_pool_connections=32)  # the jobs' S3 access: SageMaker's own
        self.runner = JobRunner(self.workdir / "compute", s3, max_workers=self.max_workers)
        # TensorFlow's import happens in the fork server while the stack is being created.
        self.runner.warm_up(wait=False)

        template = StackTemplate.load(
            self.root / "template.yaml", overrides=self.parameters, stack_name=STACK_NAME
        )
        template.physical_names, template.attributes = plan_names(template)
        self.template = template
        provision(template, self.session)
        self.names = {k: template.attributes[(k, "Name")] for k in template.body.get("Resources", {})}

        from localcloud.engine import PipelineEngine

        self._jobs = FaultyJobRunner(self.runner)
        self.engine = PipelineEngine(self.aws, self._jobs, self.workdir / "engine")
        self.engine.attach()
        self.hosting = self._attach_hosting() if self.with_hosting else None

        self.router = EventRouter(
            template,
            self.root,
            dead_letter_sink=self._send_invocation_record,
            client_env=self.aws.client_env(),
            log_dir=self.workdir / "logs" / "lambda",  # each function's log stream
        )
        self.user_functions = UserFunctions(
            self.aws.backend("lambda"),
            self.workdir / "lambda",
            self.aws.client_env(),
            self.aws.region,
            self.aws.account_id,
        )
        LambdaInvoke(self.aws, self.router, self.user_functions).attach()
        self._unsubscribe = self.aws.subscribe_events(self.router.route)
        if self.with_schedules:
            from localcloud.scheduler import LocalScheduler, schedules_of

            router = self.router
            specs = {spec.logical_id: spec for spec in template.functions()}
            self.scheduler = LocalScheduler(
                schedules_of(template),
                lambda function, payload: router.invoke_async(specs[function], payload),
                self.aws.region,
                self.aws.account_id,
            ).start()
        self.aws.add_internal_route("route", self._route_for_cli)
        if self.fault_plan is not None and self.fault_plan.active:
            self.inject_faults(Faults(self.fault_plan))
            log.warning("fault mode: %s", self.fault_plan)
        return self

    def inject_faults(self, faults: Faults | None) -> None:
        """Fault mode on (API calls, events, jobs: see localcloud.faults), or off with None."""
        self.faults = faults
        self.aws.inject_faults(faults)
        self._jobs.faults = faults

    def _attach_hosting(self) -> Any:
        from localcloud.runtime.hosting import attach_hosting
        from localcloud.runtime.serving import ModelHost

        return attach_hosting(self.aws, ModelHost(self.aws.new_client("s3"), self.workdir / "hosting"))

    def _send_invocation_record(self, destination_arn: str, record: dict[str, Any]) -> None:
        """Lambda's delivery to an SQS OnFailure destination (Lambda's own call: never faulted)."""
        if destination_arn not in self._destinations:
            sqs = self.aws.new_client("sqs")
            url = sqs.get_queue_url(QueueName=destination_arn.rsplit(":", 1)[-1])["QueueUrl"]
            self._destinations[destination_arn] = (sqs, url)
        sqs, url = self._destinations[destination_arn]
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(record, default=str))

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.router is not None:
            self.router.close()
        if self.user_functions is not None:
            self.user_functions.close()
        for part in (self.hosting, self.engine):
            close = getattr(part, "close", None)
            if close is not None:
                close()
        if self.runner is not None:
            self.runner.close()
        self.aws.stop()

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the stack is called here ----------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """The functions' environment, as the template resolves it locally."""
        assert self.template is not None
        merged: dict[str, str] = {}
        for spec in self.template.functions():
            merged |= spec.environment
        return merged

    @property
    def bucket(self) -> str:
        return self.env["ARTIFACT_BUCKET"]

    @property
    def repository(self) -> str:
        return self.env["REPOSITORY_NAME"]

    @property
    def branch(self) -> str:
        return self.env["BRANCH_NAME"]

    def client(self, service: str) -> Any:
        return self.session.client(service)

    # -- verbs ----------------------------------------------------------------------------------------

    def upload_data(self, csv_path: Path) -> str:
        """Put a CSV where the pipeline reads its input (INPUT_DATA_URI)."""
        target = S3Location.parse(self.env["INPUT_DATA_URI"]).child(csv_path.name)
        self.client("s3").upload_file(str(csv_path), target.bucket, target.key)
        return target.uri

    def checkout(self) -> Path:
        """A working clone of the stack's repository (created on first use)."""
        assert self.aws.codecommit is not None
        clone = self.workdir / "checkout"
        if not (clone / ".git").exists():
            url = self.aws.codecommit.clone_url_for(self.repository)
            _git(self.workdir, "clone", "-q", url, str(clone))
            _git(clone, "checkout", "-q", "-B", self.branch)
        return clone

    def push(self, source: Path, message: str, folder: str | None = None) -> str:
        """Copy `source` into the training-code folder, commit and `git push`; returns the commit id."""
        clone = self.checkout()
        target = clone / (folder or self.env.get("TRAINING_CODE_PATH", "training_code"))
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _git(clone, "add", "-A")
        _git(
            clone,
            "-c",
            "user.name=Local Demo",
            "-c",
            "user.email=demo@localhost",
            "commit",
            "-q",
            "-m",
            message,
        )
        _git(clone, "push", "-q", "origin", f"HEAD:refs/heads/{self.branch}")
        return _git(clone, "rev-parse", "HEAD").strip()

    def route(self, event: dict[str, Any]) -> list[Invocation]:
        assert self.router is not None
        return self.router.route(event, wait=True)

    def _route_for_cli(self, event: dict[str, Any]) -> dict[str, Any]:
        return {"invocations": [i.as_dict() for i in self.route(event)]}

    def wait_for_execution(
        self, commit: str, timeout: float = 600.0, on_step: Callable[[dict], None] | None = None
    ) -> dict[str, Any]:
        """Wait for the execution a commit started, reporting step changes; returns its description."""
        sagemaker = self.client("sagemaker")
        pipeline = self.env["PIPELINE_NAME"]
        deadline = time.monotonic() + timeout
        arn = None
        seen: dict[str, str] = {}
        while time.monotonic() < deadline:
            if arn is None:
                arn = self.execution_for_commit(commit)
            if arn is not None:
                steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)[
                    "PipelineExecutionSteps"
                ]
                for step in reversed(steps):
                    if seen.get(step["StepName"]) != step["StepStatus"]:
                        seen[step["StepName"]] = step["StepStatus"]
                        if on_step is not None:
                            on_step(step)
                described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)
                if described["PipelineExecutionStatus"] in ("Succeeded", "Failed", "Stopped"):
                    return described
            time.sleep(0.25)
        raise TimeoutError(f"no finished execution of {pipeline} for commit {commit} within {timeout:.0f}s")

    def execution_for_commit(self, commit: str) -> str | None:
        sagemaker = self.client("sagemaker")
        try:
            summaries = sagemaker.list_pipeline_executions(PipelineName=self.env["PIPELINE_NAME"])
        except sagemaker.exceptions.ResourceNotFound:
            return None  # the push handler has not created the pipeline yet
        for summary in summaries["PipelineExecutionSummaries"]:
            arn = summary["PipelineExecutionArn"]
            params = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)[
                "PipelineParameters"
            ]
            if {"Name": "CommitId", "Value": commit} in params:
                return arn
        return None

    def wait_for_endpoint(
        self, name: str, timeout: float = 120.0, config: str | None = None
    ) -> dict[str, Any]:
        sagemaker = self.client("sagemaker")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                described = sagemaker.describe_endpoint(EndpointName=name)
            except sagemaker.exceptions.ClientError:
                described = None
            if described is not None:
                status = described["EndpointStatus"]
                if status == "Failed":
                    raise RuntimeError(f"endpoint {name} failed: {described.get('FailureReason')}")
                if status == "InService" and (config is None or described["EndpointConfigName"] == config):
                    return described
            time.sleep(0.2)
        raise TimeoutError(f"endpoint {name} not InService within {timeout:.0f}s")


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout
