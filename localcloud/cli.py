"""`python -m localcloud VERB`: start the local cloud and work with it the way a user works with AWS.

`up` serves the local cloud until interrupted and writes `.localcloud/state.json`; every other verb (but
`demo`) talks to that running cloud through the AWS APIs it serves, exactly as boto3 or the AWS CLI would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from localcloud.faults import FaultPlan

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".localcloud" / "state.json"


def _state() -> dict[str, Any]:
    if not STATE.exists():
        sys.exit("the local cloud is not running: start it with `python -m localcloud up`")
    state = json.loads(STATE.read_text())
    os.environ.update(state["client_env"])
    return state


def _client(service: str) -> Any:
    return boto3.client(service)


def use_layer() -> None:
    """Read the ledger with the stack's own code: the shared layer's content, put on this process's path
    (the handlers get it from their execution environment; this is for the verbs that read lineage)."""
    layer = str(ROOT / "layers" / "shared")
    if layer not in sys.path:
        sys.path.append(layer)


def cmd_up(args: argparse.Namespace) -> int:
    from localcloud.cloud import LocalCloud

    with LocalCloud(port=args.port, faults=args.faults, schedules=True) as cloud:
        if args.data:
            cloud.upload_data(Path(args.data))
        state = {
            "endpoint_url": cloud.aws.endpoint_url,
            "client_env": cloud.aws.client_env(),
            "env": cloud.env,
            "clone_url": cloud.aws.codecommit.clone_url_for(cloud.repository)
            if cloud.aws.codecommit
            else None,
            "pid": os.getpid(),
            "functions": {
                k: cloud.names[k] for k in ("StartPipelineFunction", "TrackFunction", "DeployFunction")
            },
        }
        STATE.write_text(json.dumps(state, indent=2))
        print(f"local cloud on {cloud.aws.endpoint_url}")
        print('  eval "$(localcloud env)"   # points boto3, the AWS CLI and the SageMaker SDK at it')
        print(f"  git remote: {state['clone_url']} (branch {cloud.branch})")
        if cloud.faults is not None:
            print(f"  fault mode: {cloud.faults.plan}")
        for schedule in cloud.scheduler.running if cloud.scheduler else []:
            print(f"  schedule {schedule.name}: {schedule.expression} → {schedule.function}")
        print("Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            STATE.unlink(missing_ok=True)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    """The running cloud's client environment as shell exports: `eval "$(localcloud env)"`."""
    state = _state()
    for name, value in state["client_env"].items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from localcloud.demo import main as demo_main

    return demo_main(args.rest)


def cmd_monitor(args: argparse.Namespace) -> int:
    """Invoke the deploy function with the MonitorSchedule's Input, scheduled now; print its answer."""
    state = _state()
    moment = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    reply = _client("lambda").invoke(
        FunctionName=state["functions"]["DeployFunction"],
        Payload=json.dumps({"monitoring": {"scheduledTime": moment}}).encode(),
    )
    print(json.dumps(json.loads(reply["Payload"].read()), indent=2))
    return 1 if reply.get("FunctionError") else 0


def cmd_push(args: argparse.Namespace) -> int:
    state = _state()
    env = state["env"]
    clone = ROOT / ".localcloud" / "checkout"
    if not (clone / ".git").exists():
        subprocess.run(["git", "clone", "-q", state["clone_url"], str(clone)], check=True)
    target = clone / env.get("TRAINING_CODE_PATH", "training_code")
    subprocess.run(["rm", "-rf", str(target)], check=True)
    subprocess.run(["cp", "-r", str(Path(args.source).resolve()), str(target)], check=True)
    git = ["git", "-C", str(clone), "-c", "user.name=Local User", "-c", "user.email=user@localhost"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", args.message], check=True)
    subprocess.run([*git, "push", "-q", "origin", f"HEAD:refs/heads/{env['BRANCH_NAME']}"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(commit)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Run the pipeline on a CSV: upload it, then start an execution with the latest run's parameters."""
    state = _state()
    env = state["env"]
    data = Path(args.csv).read_bytes()
    key = f"data/runs/{hashlib.sha256(data).hexdigest()[:16]}/{Path(args.csv).name}"
    _client("s3").put_object(Bucket=env["ARTIFACT_BUCKET"], Key=key, Body=data)
    sagemaker = _client("sagemaker")
    executions = sagemaker.list_pipeline_executions(PipelineName=env["PIPELINE_NAME"])[
        "PipelineExecutionSummaries"
    ]
    if not executions:
        sys.exit("no execution to take parameters from yet: `push` training code first")
    latest = executions[0]["PipelineExecutionArn"]
    params = {
        p["Name"]: p["Value"]
        for p in sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=latest)[
            "PipelineParameters"
        ]
    }
    params["InputDataUri"] = f"s3://{env['ARTIFACT_BUCKET']}/{key}"
    if args.target:
        params["TargetColumn"] = args.target
    response = sagemaker.start_pipeline_execution(
        PipelineName=env["PIPELINE_NAME"],
        PipelineParameters=[{"Name": k, "Value": v} for k, v in params.items()],
        PipelineExecutionDisplayName=f"csv-{Path(args.csv).stem}"[:82],
    )
    print(response["PipelineExecutionArn"])
    return cmd_watch(argparse.Namespace(execution=response["PipelineExecutionArn"])) if args.watch else 0


@dataclass(frozen=True)
class TuningProgress:
    """A tuning step's progress, from DescribeHyperParameterTuningJob: trials ended of the maximum, the best
    objective so far (the BestTrainingJob's), and the time since the step started."""

    done: int
    total: int
    metric: str
    best: float | None
    elapsed_s: float

    @classmethod
    def of(cls, described: dict[str, Any], started: dt.datetime, now: dt.datetime) -> TuningProgress:
        counters = described.get("TrainingJobStatusCounters", {})
        done = sum(int(counters.get(k, 0)) for k in ("Completed", "NonRetryableError", "Stopped"))
        config = described.get("HyperParameterTuningJobConfig", {})
        total = int(config.get("ResourceLimits", {}).get("MaxNumberOfTrainingJobs", 0)) or done
        objective = (described.get("BestTrainingJob") or {}).get(
            "FinalHyperParameterTuningJobObjectiveMetric"
        )
        metric = config.get("HyperParameterTuningJobObjective", {}).get("MetricName", "objective")
        best = float(objective["Value"]) if objective else None
        return cls(done, total, metric, best, max(0.0, (now - started).total_seconds()))

    def describe(self) -> str:
        best = f"best {self.metric} {self.best:.4g}" if self.best is not None else "no objective yet"
        return f"{self.done}/{self.total} trials, {best}"


def watch(sagemaker: Any, execution_arn: str, console: Console, poll_s: float = 0.5) -> int:
    """Print a line per step change; a running tuning step shows a progress bar (trials done of the
    maximum, the best objective so far, elapsed time). Returns 0 when the execution succeeds."""
    seen: dict[str, str] = {}
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[best]}"),
        TextColumn("{task.fields[elapsed]}"),
        console=console,
        transient=False,
    ) as progress:
        bars: dict[str, TaskID] = {}
        while True:
            steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)[
                "PipelineExecutionSteps"
            ]
            for step in reversed(steps):
                name = step["StepName"]
                if seen.get(name) != step["StepStatus"]:
                    seen[name] = step["StepStatus"]
                    cached = " (cache hit)" if step.get("CacheHitResult") else ""
                    reason = f" — {step['FailureReason']}" if step.get("FailureReason") else ""
                    stamp = time.strftime("%H:%M:%S")
                    progress.console.print(f"{stamp} {name:<28} {step['StepStatus']}{cached}{reason}")
                tuning = step.get("Metadata", {}).get("TuningJob")
                if tuning and (step["StepStatus"] == "Executing" or name in bars):
                    described = sagemaker.describe_hyper_parameter_tuning_job(
                        HyperParameterTuningJobName=tuning["Arn"].rsplit("/", 1)[-1]
                    )
                    now = dt.datetime.now(dt.UTC)
                    state = TuningProgress.of(described, step["StartTime"], now)
                    best = state.describe().split(", ", 1)[1]
                    elapsed = str(dt.timedelta(seconds=int(state.elapsed_s)))  # since the step started
                    if name not in bars:
                        bars[name] = progress.add_task(
                            f"  {name}", total=state.total, best=best, elapsed=elapsed
                        )
                    progress.update(
                        bars[name], completed=state.done, total=state.total, best=best, elapsed=elapsed
                    )
            described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
            if described["PipelineExecutionStatus"] in ("Succeeded", "Failed", "Stopped"):
                break
            time.sleep(poll_s)
    console.print(
        f"execution {described['PipelineExecutionStatus']}"
        + (f": {described['FailureReason']}" if described.get("FailureReason") else "")
    )
    return 0 if described["PipelineExecutionStatus"] == "Succeeded" else 1


def cmd_watch(args: argparse.Namespace) -> int:
    _state()
    return watch(_client("sagemaker"), args.execution, Console())


def _set_approval(package: str, status: str, note: str) -> int:
    _state()
    _client("sagemaker").update_model_package(
        ModelPackageArn=package, ModelApprovalStatus=status, ApprovalDescription=note
    )
    print(f"{package}: {status}")
    return 0


def cmd_approve(args: argparse.Namespace) -> int:
    return _set_approval(args.package, "Approved", args.note)


def cmd_reject(args: argparse.Namespace) -> int:
    return _set_approval(args.package, "Rejected", args.note)


def cmd_invoke(args: argparse.Namespace) -> int:
    state = _state()
    body = Path(args.csv).read_text() if args.csv else sys.stdin.read()
    lines = [line for line in body.splitlines() if line.strip()]
    if lines and any(c.isalpha() for c in lines[0]):
        lines = lines[1:]  # a header row
    response = _client("sagemaker-runtime").invoke_endpoint(
        EndpointName=args.endpoint or state["env"]["ENDPOINT_NAME"],
        ContentType="text/csv",
        Accept="application/json",
        Body="\n".join(lines),
    )
    print(response["Body"].read().decode())
    return 0


def cmd_transform(args: argparse.Namespace) -> int:
    state = _state()
    env = state["env"]
    data = Path(args.csv).read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:12]
    key = f"batch/cli/{digest}/{Path(args.csv).name}"
    _client("s3").put_object(Bucket=env["ARTIFACT_BUCKET"], Key=key, Body=data)
    sagemaker = _client("sagemaker")
    package = sagemaker.describe_model_package(ModelPackageName=args.package)
    model_name = f"cli-{package['ModelPackageGroupName']}-v{package.get('ModelPackageVersion', 0)}"[:63]
    try:
        sagemaker.create_model(
            ModelName=model_name,
            ExecutionRoleArn=env["SAGEMAKER_ROLE_ARN"],
            Containers=[{"ModelPackageName": args.package}],
        )
    except sagemaker.exceptions.ClientError as error:
        if "already" not in str(error).lower():
            raise
    job = f"{model_name}-{digest}"[:63]
    sagemaker.create_transform_job(
        TransformJobName=job,
        ModelName=model_name,
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{env['ARTIFACT_BUCKET']}/{key}"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{env['ARTIFACT_BUCKET']}/batch/cli-output/{job}",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        TransformResources={
            "InstanceType": env.get("TRANSFORM_INSTANCE_TYPE", "ml.m5.large"),
            "InstanceCount": 1,
        },
    )
    while True:
        described = sagemaker.describe_transform_job(TransformJobName=job)
        if described["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            break
        time.sleep(0.5)
    print(f"{job}: {described['TransformJobStatus']} {described.get('FailureReason', '')}")
    print(f"output: {described['TransformOutput']['S3OutputPath']}")
    return 0 if described["TransformJobStatus"] == "Completed" else 1


def cmd_send_event(args: argparse.Namespace) -> int:
    state = _state()
    event = json.loads(Path(args.file).read_text())
    request = urllib.request.Request(  # noqa: S310 - a loopback URL from our own state file
        f"{state['endpoint_url']}/_localcloud/route",
        data=json.dumps(event).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=600) as response:
        result = json.loads(response.read())
    if not result["invocations"]:
        print("no rule matched this event: no handler ran")
    for invocation in result["invocations"]:
        print(json.dumps(invocation, indent=2))
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    state = _state()
    os.environ.update(state["env"])
    use_layer()
    from orchestrator.adapters.ledger import Ledger
    from orchestrator.lineage import commit_lineage, endpoint_lineage

    ledger = Ledger(state["env"]["LEDGER_TABLE_NAME"])
    if args.endpoint:
        chain = endpoint_lineage(ledger, args.endpoint)
    else:
        chain = commit_lineage(ledger, state["env"]["REPOSITORY_NAME"], args.commit)
    print(json.dumps(chain, indent=2, default=str))
    if args.png:
        from localcloud.lineage_picture import draw, lineage_graph

        inputs = lineage_inputs(ledger, _client("sagemaker"), chain, state["env"]["REPOSITORY_NAME"])
        draw(lineage_graph(**inputs), Path(args.png))
        print(f"picture: {args.png}")
    return 0


def lineage_inputs(ledger: Any, sagemaker: Any, chain: dict[str, Any], repository: str) -> dict[str, Any]:
    """What `lineage_picture.lineage_graph` draws, for an endpoint's chain or a commit's: the ledger's
    records (the commit's executions, packages with their approval, deployments and transform jobs) and
    SageMaker's view of each execution (its steps and jobs, and the S3 data among its parameters)."""
    from orchestrator.adapters.ledger import package_pk
    from orchestrator.lineage import commit_lineage

    serving = chain.get("serving")
    commit_id = serving.get("commit_id") if "endpoint_name" in chain and serving else chain.get("commit_id")
    if not commit_id:
        sys.exit("nothing to draw: the ledger links no commit to this")
    commits = commit_lineage(
        ledger, serving.get("repository") or repository if serving else repository, commit_id
    )
    push = commits.get("push") or {}
    packages = []
    trials: dict[str, dict[str, Any]] = {}
    for listed in commits["packages"]:
        record = ledger.get(package_pk(listed["package_arn"]), "PACKAGE") or {}
        package = {**listed, **{k: v for k, v in record.items() if v is not None}}
        packages.append(package)
        if package.get("execution_arn"):
            trials[package["execution_arn"]] = package
    executions = []
    for listed in commits["executions"]:
        arn = listed["execution_arn"]
        try:
            steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)[
                "PipelineExecutionSteps"
            ]
            parameters = sagemaker.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn)[
                "PipelineParameters"
            ]
        except Exception:  # an execution SageMaker no longer knows: the ledger's record is what remains
            steps, parameters = [], []
        package = trials.get(arn, {})
        executions.append(
            {
                "execution_arn": arn,
                "status": listed.get("status"),
                "steps": list(reversed(steps)),  # in start order
                "data": [
                    p["Value"]
                    for p in parameters
                    if str(p.get("Value", "")).startswith("s3://")
                    and ("Data" in p["Name"] or "Input" in p["Name"])
                ],
                "trial": {k: package.get(k) for k in ("training_job", "hyperparameters", "training_metrics")}
                if package.get("training_job")
                else None,
                "evaluation": package.get("evaluation"),
            }
        )
    deployments = [
        {**d, "status": chain.get("status") if d.get("endpoint_name") == chain.get("endpoint_name") else None}
        for d in commits["deployments"]
    ]
    return {
        "commit": {
            "repository": commits["repository"],
            "branch": push.get("branch", ""),
            "commit_id": commit_id,
        },
        "executions": executions,
        "packages": packages,
        "deployments": deployments,
        "transforms": commits["transform_jobs"],
    }


def cmd_status(args: argparse.Namespace) -> int:
    state = _state()
    env = state["env"]
    sagemaker = _client("sagemaker")
    print(f"local cloud: {state['endpoint_url']}  repository: {env['REPOSITORY_NAME']}@{env['BRANCH_NAME']}")
    executions = sagemaker.list_pipeline_executions(PipelineName=env["PIPELINE_NAME"])[
        "PipelineExecutionSummaries"
    ]
    print(f"pipeline {env['PIPELINE_NAME']}: {len(executions)} execution(s)")
    for e in executions[:5]:
        print(
            f"  {e['PipelineExecutionArn'].rsplit('/', 1)[-1]}  {e['PipelineExecutionStatus']:<10} "
            f"{e.get('PipelineExecutionDisplayName', '')}"
        )
    packages = sagemaker.list_model_packages(ModelPackageGroupName=env["MODEL_PACKAGE_GROUP_NAME"])
    print(f"model packages in {env['MODEL_PACKAGE_GROUP_NAME']}:")
    for p in packages["ModelPackageSummaryList"]:
        print(f"  v{p.get('ModelPackageVersion')}  {p['ModelApprovalStatus']:<22} {p['ModelPackageArn']}")
    for e in sagemaker.list_endpoints()["Endpoints"]:
        print(f"endpoint {e['EndpointName']}: {e['EndpointStatus']}")
    return 0


def _fault_plan(text: str) -> FaultPlan:
    try:
        return FaultPlan.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="localcloud", description=__doc__)
    verbs = parser.add_subparsers(dest="verb", required=True)
    up = verbs.add_parser("up", help="start the local cloud and serve until Ctrl-C")
    up.add_argument("--port", type=int, default=4566)
    up.add_argument(
        "--faults",
        type=_fault_plan,
        metavar="SETTINGS",
        help="fault mode, e.g. seed=7,throttle=0.1,server_error=0.05,duplicate=0.1,delay=0.1,"
        "max_delay_s=2,job_failure=0.1 (rates are fractions; see localcloud/faults.py)",
    )
    up.add_argument(
        "--data", default=str(ROOT / "data" / "boston_housing.csv"), help="CSV to put at INPUT_DATA_URI"
    )
    up.set_defaults(fn=cmd_up)
    env = verbs.add_parser("env", help="shell exports that point AWS clients and the SageMaker SDK here")
    env.set_defaults(fn=cmd_env)
    demo = verbs.add_parser("demo", help="the whole loop, timed (what `make demo` runs)")
    demo.add_argument("rest", nargs=argparse.REMAINDER)
    demo.set_defaults(fn=cmd_demo)
    drift = verbs.add_parser("demo-drift", help="the monitoring loop: drift found, alarm, retraining")
    drift.add_argument("rest", nargs=argparse.REMAINDER)
    monitor = verbs.add_parser(
        "monitor", help="run the data-quality monitor now (as the stack's MonitorSchedule does)"
    )
    monitor.set_defaults(fn=cmd_monitor)
    push = verbs.add_parser("push", help="commit a training-code folder and git push it (starts a run)")
    push.add_argument("source", nargs="?", default=str(ROOT / "training_code"))
    push.add_argument("-m", "--message", default="Update training code")
    push.set_defaults(fn=cmd_push)
    run = verbs.add_parser("run", help="run the pipeline on a CSV")
    run.add_argument("csv")
    run.add_argument("--target", help="target column (default: the run's TargetColumn)")
    run.add_argument("--watch", action="store_true")
    run.set_defaults(fn=cmd_run)
    watch = verbs.add_parser("watch", help="live per-step progress of an execution")
    watch.add_argument("execution", help="pipeline execution ARN")
    watch.set_defaults(fn=cmd_watch)
    for name, fn in (("approve", cmd_approve), ("reject", cmd_reject)):
        verb = verbs.add_parser(name, help=f"{name} a model package")
        verb.add_argument("package", help="model package ARN")
        verb.add_argument("--note", default=f"{name}d from the local CLI")
        verb.set_defaults(fn=fn)
    invoke = verbs.add_parser("invoke", help="send CSV rows to an endpoint")
    invoke.add_argument("--csv", help="file of feature rows (default: stdin)")
    invoke.add_argument("--endpoint")
    invoke.set_defaults(fn=cmd_invoke)
    transform = verbs.add_parser("transform", help="batch-transform a CSV through a model package")
    transform.add_argument("package")
    transform.add_argument("csv")
    transform.set_defaults(fn=cmd_transform)
    send = verbs.add_parser("send-event", help="put an event file on the bus; show the handlers that ran")
    send.add_argument("file")
    send.set_defaults(fn=cmd_send_event)
    lineage = verbs.add_parser(
        "lineage", help="what produced what serves on an endpoint, or where a commit went"
    )
    group = lineage.add_mutually_exclusive_group(required=True)
    group.add_argument("--endpoint")
    group.add_argument("--commit")
    lineage.add_argument("--png", help="also draw the chain to this PNG file")
    lineage.set_defaults(fn=cmd_lineage)
    status = verbs.add_parser("status", help="executions, packages and endpoints")
    status.set_defaults(fn=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["demo"]:  # the demo has options of its own (see `python -m localcloud demo --help`)
        return cmd_demo(argparse.Namespace(rest=argv[1:]))
    if argv[:1] == ["demo-drift"]:
        from localcloud.drift_demo import main as drift_demo_main

        return drift_demo_main(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.fn(args))
