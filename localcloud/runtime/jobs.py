"""Local SageMaker processing and training jobs: each job is a forked child of a fork server that imported
TensorFlow once, running under the container contract in its own `<workdir>/jobs/<job name>/opt/ml` tree.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import re
import shutil
import sys
import tarfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from localcloud.runtime.algorithms import builtin_training
from localcloud.runtime.quiet_start import LOG_ENV, fork_server_log_value
from localcloud.runtime.s3io import S3Location, download, extract_archive, list_keys, upload_tree
from localcloud.runtime.worker import PRELOAD_MODULES, ChildSpec, JobProcess, run_child

COMPLETED = "Completed"
FAILED = "Failed"
_FAILURE_REASON_LIMIT = 1024
_LOG_TAIL_LINES = 8
_CONTAINER_ROOT = re.compile(r"/opt/ml(?=/|$)")


class RunnerClosedError(RuntimeError):
    """The runner was closed (the local cloud is stopping): no new job starts."""


@dataclass(frozen=True)
class JobResult:
    """How a job ended, in the terms DescribeProcessingJob / DescribeTrainingJob report."""

    job_name: str
    status: str
    start_time: datetime
    end_time: datetime
    log_path: Path
    failure_reason: str | None = None
    exit_code: int | None = None
    final_metrics: dict[str, float] = field(default_factory=dict)
    metric_series: dict[str, list[float]] = field(default_factory=dict)
    model_artifacts: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    exit_message: str | None = None  # processing jobs: DescribeProcessingJob's ExitMessage

    @property
    def succeeded(self) -> bool:
        return self.status == COMPLETED


class JobSetupError(Exception):
    """The job could not start (bad request, missing input); SageMaker reports these as ClientError."""


@dataclass(frozen=True)
class _Instance:
    host: str
    root: Path  # this instance's stand-in for /opt/ml
    log_path: Path

    def rewrite(self, value: str) -> str:
        return _CONTAINER_ROOT.sub(str(self.root), value)


class JobRunner:
    """Runs processing and training jobs as forked workers; `run_*` block and may be called from threads."""

    def __init__(self, workdir: Path, s3_client: Any, max_workers: int = 2) -> None:
        self.workdir = Path(workdir)
        self.s3 = s3_client
        self.max_workers = max_workers
        self._slots = threading.BoundedSemaphore(max_workers)
        self._context = multiprocessing.get_context("forkserver")
        self._warm_lock = threading.Lock()
        self._warm = False
        self._closed = False
        self._live: set[Any] = set()  # the job processes running now
        self._live_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------------

    def warm_up(self, wait: bool = True) -> None:
        """Start the fork server, which imports TensorFlow and friends once for every later job.

        With `wait=False` the import happens in the background while the caller goes on.
        """
        with self._warm_lock:
            if not self._warm:
                self.workdir.mkdir(parents=True, exist_ok=True)
                self._context.set_forkserver_preload(list(PRELOAD_MODULES))
                # The fork server inherits this environment when it starts: TensorFlow's start-up lines
                # (oneDNN, CPU features, CUDA probing) stay out of the user's terminal unless asked for.
                os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
                # The log's name only while it starts: a process this one runs later (a test's `python -m
                # localcloud demo`) would otherwise send all its own output to this log (quiet_start).
                log_value = fork_server_log_value(self.workdir / "fork-server.log")
                with _environment({LOG_ENV: log_value}):
                    multiprocessing.forkserver.ensure_running()
                self._warm = True
        if wait:
            self._ping()
        else:
            threading.Thread(target=self._ping, name="forkserver-warm-up", daemon=True).start()

    def _ping(self) -> None:
        # A no-op child: returns once the fork server has finished its preload and can fork.
        process = JobProcess(target=_noop, name="forkserver-ping")
        process.start()
        process.join()
        process.close()

    @property
    def fork_server_pid(self) -> int | None:
        """Pid of the process every job is forked from (None before the first job or warm-up)."""
        server = multiprocessing.forkserver._forkserver
        return getattr(server, "_forkserver_pid", None)

    def close(self) -> None:
        """Stop accepting jobs and stop the running ones: at exit, multiprocessing would otherwise wait for
        each (a tuning trial can take minutes). The fork server exits with this process."""
        with self._live_lock:
            self._closed = True
            running = list(self._live)
        for process in running:
            process.kill()

    def __enter__(self) -> JobRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- processing ------------------------------------------------------------------------------------

    def run_processing(self, job_name: str, request: dict[str, Any]) -> JobResult:
        """Run a CreateProcessingJob request (fully resolved) to completion."""
        start = _now()
        job_dir = self._fresh_job_dir(job_name)
        count = int(request.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1))
        hosts = [f"algo-{i + 1}" for i in range(max(count, 1))]
        instances = [
            _Instance(
                host=host,
                root=(job_dir / "opt" / "ml") if len(hosts) == 1 else (job_dir / host / "opt" / "ml"),
                log_path=job_dir / "logs" / f"{host}.log",
            )
            for host in hosts
        ]
        log_path = instances[0].log_path if len(hosts) == 1 else job_dir / "job.log"
        try:
            specs = [
                self._processing_instance(job_name, request, inst, index, hosts)
                for index, inst in enumerate(instances)
            ]
        except (JobSetupError, ValueError, KeyError) as error:
            return self._setup_failure(job_name, start, instances[0].log_path, error)
        codes = self._run_instances(specs, request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"))
        if len(hosts) > 1:
            _combine_logs([i.log_path for i in instances], hosts, log_path)

        def failed(reason: str, **fields: Any) -> JobResult:
            return JobResult(job_name, FAILED, start, _now(), log_path, failure_reason=reason, **fields)

        try:
            exit_message = _exit_message(instances)
        except UnicodeDecodeError:
            return failed("ClientError: /opt/ml/output/message is not UTF-8 encoded")
        failure = _first_failure(instances, codes, failure_file=None)
        if failure is not None:
            return failed(failure[1], exit_code=failure[0], exit_message=exit_message)
        outputs: dict[str, str] = {}
        try:
            for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
                s3_output = output.get("S3Output")
                if not s3_output:
                    continue
                destination = S3Location.parse(s3_output["S3Uri"])
                for inst in instances:
                    upload_tree(self.s3, Path(inst.rewrite(s3_output["LocalPath"])), destination)
                outputs[output["OutputName"]] = s3_output["S3Uri"]
        except Exception as error:  # any upload error fails the job, as on SageMaker
            return failed(f"ClientError: uploading outputs failed: {error}", exit_code=0)
        return JobResult(
            job_name,
            COMPLETED,
            start,
            _now(),
            log_path,
            exit_code=0,
            outputs=outputs,
            exit_message=exit_message,
        )

    def _processing_instance(
        self, job_name: str, request: dict[str, Any], inst: _Instance, index: int, hosts: list[str]
    ) -> ChildSpec:
        _make_container_tree(inst, hosts)
        for item in request.get("ProcessingInputs", []):
            s3_input = item.get("S3Input")
            if s3_input is None:
                raise JobSetupError(f"input {item.get('InputName')!r}: only S3Input is supported locally")
            if s3_input.get("S3DataType", "S3Prefix") != "S3Prefix":
                raise JobSetupError(
                    f"input {item.get('InputName')!r}: S3DataType "
                    f"{s3_input['S3DataType']} is not supported locally"
                )
            source = S3Location.parse(s3_input["S3Uri"])
            keys = list_keys(self.s3, source)
            if not keys:
                raise JobSetupError(
                    f'No S3 objects found under S3 URL "{source.uri}" given in input data '
                    f"source. Please ensure that the bucket exists in the selected region, "
                    f"that objects exist under that S3 prefix, and that the role has access."
                )
            if s3_input.get("S3DataDistributionType") == "ShardedByS3Key":
                keys = keys[index :: len(hosts)]
            download(self.s3, source, keys, Path(inst.rewrite(s3_input["LocalPath"])))
        for output in request.get("ProcessingOutputConfig", {}).get("Outputs", []):
            if output.get("S3Output"):
                Path(inst.rewrite(output["S3Output"]["LocalPath"])).mkdir(parents=True, exist_ok=True)
        app = request["AppSpecification"]
        command = [
            inst.rewrite(part)
            for part in [*app.get("ContainerEntrypoint", []), *app.get("ContainerArguments", [])]
        ]
        if not command:
            raise JobSetupError("AppSpecification has no ContainerEntrypoint to run locally")
        env = _base_env()
        env.update({k: inst.rewrite(v) for k, v in (request.get("Environment") or {}).items()})
        env["PROCESSING_JOB_NAME"] = job_name
        if os.path.basename(command[0]) in _SHELLS and len(command) > 1:
            _container_view_of_shell_script(Path(command[1]), inst)
            env["PATH"] = f"{_container_commands(inst)}{os.pathsep}{env.get('PATH', os.defpath)}"
        return ChildSpec(
            command=command,
            env=env,
            cwd=str(inst.root.parent.parent),
            log_path=str(inst.log_path),
            container_root=str(inst.root),
        )

    # -- training --------------------------------------------------------------------------------------

    def run_training(self, job_name: str, request: dict[str, Any]) -> JobResult:
        """Run a CreateTrainingJob request the way the SageMaker training toolkit runs a script."""
        start = _now()
        job_dir = self._fresh_job_dir(job_name)
        inst = _Instance("algo-1", job_dir / "opt" / "ml", job_dir / "logs" / "algo-1.log")
        output_path = request.get("OutputDataConfig", {}).get("S3OutputPath", "").rstrip("/")
        try:
            spec = self._training_instance(job_name, request, inst)
        except (JobSetupError, ValueError, KeyError, tarfile.TarError) as error:
            return self._setup_failure(job_name, start, inst.log_path, error)
        codes = self._run_instances([spec], request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds"))
        builtin = builtin_training(request)
        final, series = parse_metrics(
            inst.log_path.read_text(errors="replace") if inst.log_path.exists() else "",
            request.get("AlgorithmSpecification", {}).get("MetricDefinitions")
            or (builtin.metric_definitions if builtin is not None else []),
        )
        failure = _first_failure([inst], codes)
        if failure is not None:
            return JobResult(
                job_name,
                FAILED,
                start,
                _now(),
                inst.log_path,
                failure_reason=failure[1],
                exit_code=failure[0],
                final_metrics=final,
                metric_series=series,
            )
        artifacts = None
        if output_path:
            try:
                destination = S3Location.parse(f"{output_path}/{job_name}/output")
                artifacts = self._upload_training_output(inst, destination)
            except Exception as error:  # any upload error fails the job, as on SageMaker
                return JobResult(
                    job_name,
                    FAILED,
                    start,
                    _now(),
                    inst.log_path,
                    exit_code=0,
                    failure_reason=f"ClientError: uploading the model failed: {error}",
                    final_metrics=final,
                    metric_series=series,
                )
        return JobResult(
            job_name,
            COMPLETED,
            start,
            _now(),
            inst.log_path,
            exit_code=0,
            final_metrics=final,
            metric_series=series,
            model_artifacts=artifacts,
        )

    def _training_instance(self, job_name: str, request: dict[str, Any], inst: _Instance) -> ChildSpec:
        hosts = [inst.host]
        _make_container_tree(inst, hosts)
        root = inst.root
        raw_hps: dict[str, str] = {k: str(v) for k, v in (request.get("HyperParameters") or {}).items()}
        decoded = {k: _decode_hyperparameter(v) for k, v in raw_hps.items()}
        program = decoded.get("sagemaker_program")
        submit_dir = decoded.get("sagemaker_submit_directory")
        builtin = builtin_training(request)
        if builtin is None and (not program or not submit_dir):
            raise JobSetupError(
                "the training toolkit needs the sagemaker_program and sagemaker_submit_directory "
                "hyper-parameters (script mode); built-in algorithms here: XGBoost"
            )
        code_dir = root / "code"
        if builtin is None:
            self._fetch_submit_directory(str(submit_dir), code_dir)
            script = code_dir / str(program)
            if not script.is_file():
                raise JobSetupError(f"sagemaker_program {program!r} is not in {submit_dir}")

        channels: dict[str, dict[str, Any]] = {}
        for channel in request.get("InputDataConfig", []):
            name = channel["ChannelName"]
            source_spec = channel["DataSource"]["S3DataSource"]
            source = S3Location.parse(source_spec["S3Uri"])
            keys = list_keys(self.s3, source)
            if not keys:
                raise JobSetupError(
                    f'No S3 objects found under S3 URL "{source.uri}" given in input data '
                    f"source for channel {name}."
                )
            download(self.s3, source, keys, root / "input" / "data" / name)
            channels[name] = {
                "ContentType": channel.get("ContentType", ""),
                "TrainingInputMode": channel.get(
                    "InputMode", request.get("AlgorithmSpecification", {}).get("TrainingInputMode", "File")
                ),
                "S3DistributionType": source_spec.get("S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
        config_dir = root / "input" / "config"
        (config_dir / "hyperparameters.json").write_text(json.dumps(raw_hps, indent=2))
        (config_dir / "inputdataconfig.json").write_text(json.dumps(channels, indent=2))

        if builtin is not None:  # the algorithm's own program reads its config files, as its container does
            env = _base_env()
            env.update({k: inst.rewrite(str(v)) for k, v in (request.get("Environment") or {}).items()})
            env["TRAINING_JOB_NAME"] = job_name
            return ChildSpec(
                command=builtin.command,
                env=env,
                cwd=str(root),
                log_path=str(inst.log_path),
                container_root=str(root),
            )
        user_hps = {k: v for k, v in decoded.items() if not k.startswith("sagemaker_")}
        user_args = _to_cmd_args(user_hps)
        env = _base_env()
        env.update({k: inst.rewrite(str(v)) for k, v in (request.get("Environment") or {}).items()})
        env.update(
            _training_env(
                job_name, inst, hosts, channels, user_hps, user_args, str(program), str(submit_dir), code_dir
            )
        )
        return ChildSpec(
            command=["python3", str(script), *user_args],
            env=env,
            cwd=str(code_dir),
            log_path=str(inst.log_path),
            python_path=[str(code_dir)],
            container_root=str(root),
        )

    def _fetch_submit_directory(self, submit_dir: str, code_dir: Path) -> None:
        code_dir.mkdir(parents=True, exist_ok=True)
        if submit_dir.startswith("s3://"):
            location = S3Location.parse(submit_dir)
            archive = code_dir.parent / "sourcedir.tar.gz"
            self.s3.download_file(location.bucket, location.key, str(archive))
        else:
            local = Path(submit_dir.removeprefix("file://"))
            if local.is_dir():
                shutil.copytree(local, code_dir, dirs_exist_ok=True)
                return
            archive = local
        extract_archive(archive, code_dir)

    def _upload_training_output(self, inst: _Instance, output: S3Location) -> str:
        model_archive = inst.root.parent / "model.tar.gz"
        _tar_directory(inst.root / "model", model_archive)
        target = output.child("model.tar.gz")
        self.s3.upload_file(str(model_archive), target.bucket, target.key)
        data_dir = inst.root / "output" / "data"
        if data_dir.is_dir() and any(data_dir.iterdir()):
            data_archive = inst.root.parent / "output.tar.gz"
            _tar_directory(data_dir, data_archive)
            data_target = output.child("output.tar.gz")
            self.s3.upload_file(str(data_archive), data_target.bucket, data_target.key)
        return target.uri

    # -- shared ----------------------------------------------------------------------------------------

    def _fresh_job_dir(self, job_name: str) -> Path:
        if self._closed:
            raise RunnerClosedError("JobRunner is closed")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", job_name):
            raise ValueError(f"invalid SageMaker job name: {job_name!r}")
        self.warm_up(wait=False)
        job_dir = self.workdir / "jobs" / job_name
        if job_dir.exists():
            shutil.rmtree(job_dir)
        (job_dir / "logs").mkdir(parents=True)
        return job_dir

    def _run_instances(self, specs: list[ChildSpec], max_runtime: int | None) -> list[int]:
        if len(specs) == 1:
            return [self._run_child(specs[0], max_runtime)]
        with ThreadPoolExecutor(len(specs), thread_name_prefix="job-instance") as pool:
            return list(pool.map(lambda spec: self._run_child(spec, max_runtime), specs))

    def _run_child(self, spec: ChildSpec, max_runtime: int | None) -> int:
        spec.save(str(Path(spec.log_path).with_suffix(".spec.json")))
        with self._slots:
            with self._live_lock:
                if self._closed:
                    return _EXIT_STOPPED
                process = JobProcess(target=run_child, args=(spec,), name="sagemaker-job")
                process.start()
                self._live.add(process)
            try:
                process.join(max_runtime)
            finally:
                with self._live_lock:
                    self._live.discard(process)
            if process.is_alive():
                process.kill()
                process.join()
                with open(spec.log_path, "a") as log:
                    log.write(f"\nMaxRuntimeInSeconds ({max_runtime}) exceeded: the job was stopped\n")
                process.close()
                return _EXIT_TIMED_OUT
            code = process.exitcode
            process.close()
            return code if code is not None else 1

    def _setup_failure(self, job_name: str, start: datetime, log_path: Path, error: Exception) -> JobResult:
        message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
        if isinstance(error, KeyError):
            message = f"the request lacks {message}"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"ClientError: {message}\n")
        return JobResult(
            job_name,
            FAILED,
            start,
            _now(),
            log_path,
            failure_reason=f"ClientError: {message}"[:_FAILURE_REASON_LIMIT],
        )


_EXIT_TIMED_OUT = 124
_EXIT_STOPPED = 137  # SIGKILL's: the local cloud stopped


def _noop() -> None:
    return None


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ for the block only; what was there before is put back."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _base_env() -> dict[str, str]:
    # The job sees the local cloud's environment (AWS_ENDPOINT_URL, credentials), as a container sees its
    # role; the fork server's own environment, frozen when it started, is never used.
    env = dict(os.environ)
    env.pop(LOG_ENV, None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    return env


_SHELLS = {"bash", "sh"}
_SHELL_CONTAINER_PATH = re.compile(r"/opt/ml(?=/|\s|$|[\'\"])")


def _container_view_of_shell_script(script: Path, inst: _Instance) -> None:
    """A shell entrypoint that the job downloaded into its own tree (the SDK's runproc.sh) sees /opt/ml as
    the job's tree, as an entry script's string literals do (`worker.container_view`)."""
    if not script.is_file() or not script.resolve().is_relative_to(inst.root.resolve()):
        return
    text = script.read_text(errors="replace")
    script.write_text(_SHELL_CONTAINER_PATH.sub(lambda _: str(inst.root), text))


def _container_commands(inst: _Instance) -> Path:
    """The `python`, `python3` and `pip` a shell entrypoint finds first on its PATH (`container_python`)."""
    folder = inst.root.parent.parent / ".container-bin"
    folder.mkdir(parents=True, exist_ok=True)
    run = f'exec "{sys.executable}" -m localcloud.runtime.container_python "{inst.root}"'
    for name, tail in (("python", '"$@"'), ("python3", '"$@"'), ("pip", '-m pip "$@"')):
        shim = folder / name
        shim.write_text(f"#!/bin/sh\n{run} {tail}\n")
        shim.chmod(0o755)
    return folder


def _make_container_tree(inst: _Instance, hosts: list[str]) -> None:
    for sub in ("config", "input/config", "input/data", "model", "output/data", "code"):
        (inst.root / sub).mkdir(parents=True, exist_ok=True)
    inst.log_path.parent.mkdir(parents=True, exist_ok=True)
    resource = {"current_host": inst.host, "hosts": hosts, "network_interface_name": "eth0"}
    (inst.root / "config" / "resourceconfig.json").write_text(json.dumps(resource))
    (inst.root / "input" / "config" / "resourceconfig.json").write_text(json.dumps(resource))


def _decode_hyperparameter(value: str) -> Any:
    # The toolkit json-decodes each value and keeps the raw string when that fails.
    try:
        return json.loads(value)
    except ValueError:
        return value


def _to_cmd_args(hyperparameters: dict[str, Any]) -> list[str]:
    args: list[str] = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return args


def _training_env(
    job_name: str,
    inst: _Instance,
    hosts: list[str],
    channels: dict[str, dict[str, Any]],
    user_hps: dict[str, Any],
    user_args: list[str],
    program: str,
    submit_dir: str,
    code_dir: Path,
) -> dict[str, str]:
    root = inst.root
    channel_dirs = {name: str(root / "input" / "data" / name) for name in channels}
    resource = {"current_host": inst.host, "hosts": hosts, "network_interface_name": "eth0"}
    num_cpus = os.cpu_count() or 1
    training_env = {
        "additional_framework_parameters": {},
        "channel_input_dirs": channel_dirs,
        "current_host": inst.host,
        "framework_module": "sagemaker_tensorflow_container.training:main",
        "hosts": hosts,
        "hyperparameters": user_hps,
        "input_config_dir": str(root / "input" / "config"),
        "input_data_config": channels,
        "input_dir": str(root / "input"),
        "is_master": True,
        "job_name": job_name,
        "log_level": 20,
        "master_hostname": hosts[0],
        "model_dir": str(root / "model"),
        "module_dir": submit_dir,
        "module_name": program.removesuffix(".py"),
        "network_interface_name": "eth0",
        "num_cpus": num_cpus,
        "num_gpus": 0,
        "output_data_dir": str(root / "output" / "data"),
        "output_dir": str(root / "output"),
        "output_intermediate_dir": str(root / "output" / "intermediate"),
        "resource_config": resource,
        "user_entry_point": program,
    }
    env = {
        "TRAINING_JOB_NAME": job_name,
        "SM_TRAINING_ENV": json.dumps(training_env),
        "SM_HPS": json.dumps(user_hps),
        "SM_USER_ARGS": json.dumps(user_args),
        "SM_HOSTS": json.dumps(hosts),
        "SM_CURRENT_HOST": inst.host,
        "SM_NUM_CPUS": str(num_cpus),
        "SM_NUM_GPUS": "0",
        "SM_MODEL_DIR": str(root / "model"),
        "SM_CHANNELS": json.dumps(sorted(channels)),
        "SM_OUTPUT_DATA_DIR": str(root / "output" / "data"),
        "SM_OUTPUT_DIR": str(root / "output"),
        "SM_OUTPUT_INTERMEDIATE_DIR": str(root / "output" / "intermediate"),
        "SM_INPUT_DIR": str(root / "input"),
        "SM_INPUT_CONFIG_DIR": str(root / "input" / "config"),
        "SM_INPUT_DATA_CONFIG": json.dumps(channels),
        "SM_RESOURCE_CONFIG": json.dumps(resource),
        "SM_MODULE_DIR": submit_dir,
        "SM_MODULE_NAME": program.removesuffix(".py"),
        "SM_USER_ENTRY_POINT": program,
        "SM_FRAMEWORK_MODULE": "sagemaker_tensorflow_container.training:main",
        "SM_LOG_LEVEL": "20",
        "SM_NETWORK_INTERFACE_NAME": "eth0",
        "SM_IS_MASTER": "true",
    }
    for name, directory in channel_dirs.items():
        env[f"SM_CHANNEL_{name.upper()}"] = directory
    for name, value in user_hps.items():
        env[f"SM_HP_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def parse_metrics(
    log_text: str, definitions: list[dict[str, str]]
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Apply each MetricDefinitions regex to the job's log: every match in order, and the last one."""
    series: dict[str, list[float]] = {}
    for definition in definitions:
        pattern = re.compile(definition["Regex"])
        values: list[float] = []
        for match in pattern.finditer(log_text):
            try:
                values.append(float(match.group(1)))
            except (ValueError, IndexError):
                continue  # SageMaker drops values that are not numbers
        if values:
            series[definition["Name"]] = values
    final = {name: values[-1] for name, values in series.items()}
    return final, series


def _exit_message(instances: list[_Instance]) -> str | None:
    """A processing container's /opt/ml/output/message, as ExitMessage reports it: "the first 1 KB of this
    file"; several containers' messages are "concatenated, then truncated to 1 KB"; text that is not UTF-8
    fails the job (docs.aws.amazon.com/sagemaker/latest/dg/byoc-metadata.html)."""
    messages = [
        (inst.root / "output" / "message").read_bytes().decode("utf-8")
        for inst in instances
        if (inst.root / "output" / "message").is_file()
    ]
    return "".join(messages)[:_FAILURE_REASON_LIMIT] if messages else None


def _first_failure(
    instances: list[_Instance], codes: list[int], failure_file: str | None = "failure"
) -> tuple[int, str] | None:
    """Why the first failed container failed. Training reads /opt/ml/output/failure into FailureReason
    (your-algorithms-training-algo-output.html); processing has no such file (`failure_file=None`): its
    message file becomes ExitMessage, and the job's FailureReason is the generic algorithm error."""
    for inst, code in zip(instances, codes, strict=True):
        if code == 0:
            continue
        if code == _EXIT_TIMED_OUT and _tail(inst.log_path, 1).startswith("MaxRuntimeInSeconds"):
            return code, "MaxRuntimeInSeconds exceeded: the job was stopped"
        message = ""
        if failure_file is not None:
            path = inst.root / "output" / failure_file
            message = path.read_text(errors="replace").strip() if path.is_file() else ""
        if not message:
            message = f"ExecuteUserScriptError: exit code {code}: {_tail(inst.log_path, _LOG_TAIL_LINES)}"
        if not message.startswith(("ClientError:", "AlgorithmError:")):  # a built-in algorithm's own kind
            message = f"AlgorithmError: {message}"
        return code, message[:_FAILURE_REASON_LIMIT]
    return None


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return ""
    text = path.read_text(errors="replace").strip().splitlines()
    return "\n".join(text[-lines:])


def _combine_logs(paths: list[Path], hosts: list[str], target: Path) -> None:
    with open(target, "w") as combined:
        for host, path in zip(hosts, paths, strict=True):
            combined.write(f"==> {host} <==\n")
            if path.exists():
                combined.write(path.read_text(errors="replace"))
            combined.write("\n")


def _tar_directory(directory: Path, archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            tar.add(entry, arcname=entry.name)
