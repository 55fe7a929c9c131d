"""`make bench-load`: a burst of 1,000 mixed events through the router and the handlers, fault mode on.

The local cloud runs the stack from template.yaml on loopback with fault mode on (seeded throttling, 5xx,
duplicated and late events, and every job failing, so that each run ends at once, Failed, and must be
reported). Endpoints go InService at once (no model is served: the handlers' work is what is measured).
The burst, 1,000 events in all, is injected as fast as the bus takes them:

- pushes of distinct commits to the configured branch (each must start exactly one run, which fails,
  which must be notified exactly once);
- approvals of distinct model packages (each must be deployed once, or superseded by a later approval:
  never deployed twice, and the last one approved is live at the end);
- rejections of packages that never went live (nothing to do);
- near misses and hostile input: pushes naming other branches (main-old, mainline, Main), other
  repositories, tags, deleted branches, malformed fields, an oversized event, pipeline and package events
  of other pipelines and groups, unsupported states;
- and 10% duplicates of the above (the same event id, delivered again, as EventBridge may).

Results: benchmarks/results/load.json (throughput, p50/p99 handler latency per function, the faults
injected, and the exactly-once tally).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "shared")]

from moto.backends import get_backend  # noqa: E402

from localcloud.cloud import LocalCloud  # noqa: E402
from localcloud.faults import FaultPlan, Faults  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "load.json"
CODECOMMIT = ("aws.codecommit", "CodeCommit Repository State Change")
PIPELINE_EVENT = ("aws.sagemaker", "SageMaker Model Building Pipeline Execution Status Change")
PACKAGE_EVENT = ("aws.sagemaker", "SageMaker Model Package State Change")
Event = tuple[str, str, dict[str, Any], list[str]]  # source, detail-type, detail, resources


def _git(cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Load",
        "GIT_AUTHOR_EMAIL": "load@localhost",
        "GIT_COMMITTER_NAME": "Load",
        "GIT_COMMITTER_EMAIL": "load@localhost",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


class Burst:
    """Builds the burst's events against a started local cloud."""

    def __init__(self, cloud: LocalCloud, rng: random.Random, commits: int, approvals: int) -> None:
        self.cloud = cloud
        self.rng = rng
        self.env = cloud.env
        self.account = cloud.aws.account_id
        self.region = cloud.aws.region
        self.sagemaker = cloud.aws.new_client("sagemaker")
        self.repository = cloud.repository
        assert cloud.aws.codecommit is not None
        self.repository_arn = f"arn:aws:codecommit:{self.region}:{self.account}:{self.repository}"
        self.repository_id = cloud.aws.codecommit._metadata(self.repository)["repositoryId"]
        self.commits = self._commits(commits)
        self.packages = self._packages(approvals + 10)
        self.approved = self.packages[:approvals]
        self.rejected = self.packages[approvals:]

    # -- what exists before the burst ---------------------------------------------------------------
    def _commits(self, count: int) -> list[tuple[str, str | None]]:
        """`count` commits of the training code on the branch, in the repository, without push events."""
        clone = self.cloud.checkout()
        target = clone / self.env.get("TRAINING_CODE_PATH", "training_code")
        if not target.exists():
            import shutil

            shutil.copytree(ROOT / "training_code", target, ignore=shutil.ignore_patterns("__pycache__"))
        made: list[tuple[str, str | None]] = []
        parent: str | None = None
        for n in range(count):
            (target / "VARIANT").write_text(f"load {n}\n")
            _git(clone, "add", "-A")
            _git(clone, "commit", "-q", "-m", f"load variant {n}")
            commit = _git(clone, "rev-parse", "HEAD").strip()
            made.append((commit, parent))
            parent = commit
        # into the repository without its push hook (the burst delivers the push events itself)
        assert self.cloud.aws.codecommit is not None
        bare = self.cloud.aws.codecommit.git_dir(self.repository)
        _git(Path(bare), "fetch", "-q", str(clone), f"+HEAD:refs/heads/{self.cloud.branch}")
        return made

    def _packages(self, count: int) -> list[str]:
        group = self.env["MODEL_PACKAGE_GROUP_NAME"]
        arns = []
        for n in range(count):
            job = f"load-train-{n:04d}"
            arns.append(
                self.sagemaker.create_model_package(
                    ModelPackageGroupName=group,
                    ModelApprovalStatus="PendingManualApproval",
                    InferenceSpecification={
                        "Containers": [
                            {
                                "Image": self.env["INFERENCE_IMAGE_URI"],
                                "ModelDataUrl": (
                                    f"s3://{self.env['ARTIFACT_BUCKET']}/pipelines/training/{job}/output/model.tar.gz"
                                ),
                            }
                        ],
                        "SupportedContentTypes": ["text/csv"],
                        "SupportedResponseMIMETypes": ["text/csv"],
                    },
                )["ModelPackageArn"]
            )
        return arns

    # -- the burst's events ------------------------------------------------------------------------
    def push(
        self, commit: str, old: str | None, **overrides: Any
    ) -> tuple[str, str, dict[str, Any], list[str]]:
        branch = overrides.pop("branch", self.cloud.branch)
        detail: dict[str, Any] = {
            "callerUserArn": f"arn:aws:iam::{self.account}:root",
            "referenceFullName": f"refs/heads/{branch}",
            "referenceName": branch,
            "referenceType": "branch",
            "repositoryId": self.repository_id,
            "repositoryName": self.repository,
            "event": "referenceUpdated" if old else "referenceCreated",
            "commitId": commit,
        }
        if old:
            detail["oldCommitId"] = old
        detail.update(overrides)
        return (*CODECOMMIT, detail, [self.repository_arn])

    def hostile(self, n: int) -> Event:
        """A near miss or hostile event, of one of several kinds."""
        sha = f"{self.rng.getrandbits(160):040x}"
        kind = n % 12
        if kind == 0:
            return self.push(sha, None, branch="main-old")
        if kind == 1:
            return self.push(sha, None, branch="mainline")
        if kind == 2:
            return self.push(sha, None, referenceFullName="refs/heads/main-old")  # inconsistent reference
        if kind == 3:
            return self.push(sha, None, repositoryName="someone-elses")
        if kind == 4:
            return self.push(sha, None, referenceType="tag", referenceFullName="refs/tags/main")
        if kind == 5:
            return self.push("", sha, event="referenceDeleted")
        if kind == 6:
            return self.push(sha, None, commitId={"$where": "1"})
        if kind == 7:
            return self.push(sha, None, referenceName="main", callerUserArn="x" * 300_000)  # oversized
        if kind == 8:
            arn = (
                f"arn:aws:sagemaker:{self.region}:{self.account}:pipeline/other-pipeline/execution/{sha[:12]}"
            )
            return (
                *PIPELINE_EVENT,
                {"pipelineExecutionArn": arn, "currentPipelineExecutionStatus": "Failed"},
                [arn],
            )
        if kind == 9:
            arn = f"arn:aws:sagemaker:{self.region}:{self.account}:model-package/other-models/{n}"
            detail = {
                "ModelPackageGroupName": "other-models",
                "ModelPackageArn": arn,
                "ModelApprovalStatus": "Approved",
                "ModelPackageVersion": n,
            }
            return (*PACKAGE_EVENT, detail, [arn])
        if kind == 10:
            arn = self.rng.choice(self.approved)
            detail = {
                "ModelPackageGroupName": self.env["MODEL_PACKAGE_GROUP_NAME"],
                "ModelPackageArn": arn,
                "ModelApprovalStatus": "Approved",  # says Approved; SageMaker's record may not
                "ModelPackageVersion": "\u0000\u001b[31m",
            }
            return (*PACKAGE_EVENT, detail, [arn])
        return self.push(sha, None, commitId=sha.upper() + "\n")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def run(total: int, seed: int, commits: int, approvals: int, workdir: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    plan = FaultPlan(
        seed=seed,
        throttle=0.05,
        server_error=0.02,
        duplicate=0.05,
        delay=0.1,
        max_delay_s=1.0,
        job_failure=1.0,
    )
    parameters = {"StopSupersededExecutions": "false", "MaxTuningJobs": "1", "MaxParallelTuningJobs": "1"}
    deployments: list[str] = []
    lock = threading.Lock()
    with LocalCloud(workdir=workdir, parameters=parameters, hosting=False) as cloud:
        assert cloud.router is not None
        burst = Burst(cloud, rng, commits, approvals)
        cloud.aws.wait_for_events(30)
        cloud.router.wait_until_idle(120)

        def count_deployment(params: dict[str, Any], _: dict[str, Any]) -> None:
            with lock:
                deployments.append(params["EndpointConfigName"])

        cloud.aws.add_listener("sagemaker", "CreateEndpoint", count_deployment)
        cloud.aws.add_listener("sagemaker", "UpdateEndpoint", count_deployment)
        before = len(cloud.router.invocations)
        cloud.inject_faults(Faults(plan))

        # the burst: distinct events first decided, then shuffled, then 10% of them again
        duplicates = total // 10
        distinct = total - duplicates
        kinds: list[tuple[str, Any]] = [("push", c) for c in burst.commits]
        kinds += [("approve", arn) for arn in burst.approved]
        kinds += [("reject", arn) for arn in burst.rejected]
        kinds += [("hostile", n) for n in range(distinct - len(kinds))]
        rng.shuffle(kinds)
        api = cloud.aws.new_client("sagemaker")
        sent: list[dict[str, Any]] = []
        started = time.perf_counter()
        for kind, item in kinds:
            if kind == "push":
                source, detail_type, detail, resources = burst.push(*item)
                sent.append(cloud.aws.events.emit(source, detail_type, detail, resources))
            elif kind == "hostile":
                source, detail_type, detail, resources = burst.hostile(item)
                sent.append(cloud.aws.events.emit(source, detail_type, detail, resources))
            else:  # an approval or rejection, made as a reviewer makes it: SageMaker emits the event
                mark = len(cloud.aws.events.history)
                api.update_model_package(
                    ModelPackageArn=item,
                    ModelApprovalStatus="Approved" if kind == "approve" else "Rejected",
                    ApprovalDescription="load test",
                )
                sent.extend(
                    e
                    for e in list(cloud.aws.events.history)[mark:]
                    if e["detail-type"] == PACKAGE_EVENT[1] and e["detail"].get("ModelPackageArn") == item
                )
        for event in rng.sample(sent, min(duplicates, len(sent))):
            cloud.aws.events.deliver(event)  # the same event, again
        injected = len(sent) + min(duplicates, len(sent))
        emitted = time.perf_counter() - started

        # settle: every event delivered (late ones too), every handler done, every run finished
        deadline = time.monotonic() + 900
        quiet = 0
        while quiet < 3 and time.monotonic() < deadline:
            busy = not cloud.aws.wait_for_events(1) or not cloud.router.wait_until_idle(1)
            quiet = 0 if busy else quiet + 1
            time.sleep(0.3)
        elapsed = time.perf_counter() - started
        faults = cloud.faults
        cloud.inject_faults(None)
        invocations = cloud.router.invocations[before:]
        tally = exactly_once(cloud, burst, deployments)
        injected_faults = faults.summary() if faults else {}
    by_function: dict[str, list[float]] = defaultdict(list)
    working: dict[str, list[float]] = defaultdict(list)  # invocations that acted (not refusals)
    for invocation in invocations:
        by_function[invocation.function].append(invocation.seconds)
        result = invocation.result if isinstance(invocation.result, dict) else {}
        if invocation.error is None and result.get("status") != "ignored":
            working[invocation.function].append(invocation.seconds)

    def figures(seconds: list[float]) -> dict[str, float]:
        return {
            "invocations": len(seconds),
            "p50_ms": round(percentile(seconds, 0.50) * 1000, 1),
            "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
            "max_ms": round(max(seconds, default=0.0) * 1000, 1),
        }

    latency = {
        name: {"all": figures(seconds), "acting": figures(working[name])}
        for name, seconds in sorted(by_function.items())
    }
    errors = Counter(i.error.split(":", 1)[0] for i in invocations if i.error)
    return {
        "seed": seed,
        "fault_plan": plan.__dict__,
        "events": {
            "injected": injected,
            "distinct": len(sent),
            "duplicates_injected": min(duplicates, len(sent)),
            "pushes_to_the_branch": len(burst.commits),
            "approvals": len(burst.approved),
            "rejections": len(burst.rejected),
            "near_misses_and_hostile": len(sent)
            - len(burst.commits)
            - len(burst.approved)
            - len(burst.rejected),
        },
        "faults_injected": injected_faults,
        "seconds": {"to_inject": round(emitted, 2), "to_settle": round(elapsed, 2)},
        "throughput_events_per_s": round(injected / elapsed, 1),
        "handler_invocations": len(invocations),
        "handler_latency": latency,
        "handler_errors_retried_by_lambda": dict(errors),
        "exactly_once": tally,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }


def exactly_once(cloud: LocalCloud, burst: Burst, deployments: list[str]) -> dict[str, Any]:
    """Side effects counted from what AWS holds, against what the events asked for."""
    sagemaker = cloud.aws.new_client("sagemaker")
    runs: dict[str, list[str]] = defaultdict(list)
    for page in sagemaker.get_paginator("list_pipeline_executions").paginate(
        PipelineName=cloud.env["PIPELINE_NAME"]
    ):
        for summary in page["PipelineExecutionSummaries"]:
            parameters = sagemaker.list_pipeline_parameters_for_execution(
                PipelineExecutionArn=summary["PipelineExecutionArn"]
            )["PipelineParameters"]
            commit = next(p["Value"] for p in parameters if p["Name"] == "CommitId")
            runs[commit].append(summary["PipelineExecutionStatus"])
    ours = {commit for commit, _ in burst.commits}
    topic = cloud.env["NOTIFICATION_TOPIC_ARN"]
    sent = get_backend("sns")[cloud.aws.account_id][cloud.aws.region].topics[topic].sent_notifications
    failure_notices = Counter(
        message.split(" failed at step ")[0].removeprefix("Pipeline execution ")
        for _, message, subject, _, _ in sent
        if (subject or "").startswith("Pipeline run failed")
    )
    failed_runs = sum(status == "Failed" for statuses in runs.values() for status in statuses)
    by_version: Counter[str] = Counter()
    for config in deployments:
        by_version[config.rsplit("-", 1)[0]] += 1
    endpoint = sagemaker.describe_endpoint(EndpointName=cloud.env["ENDPOINT_NAME"])
    live_config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    live_model = sagemaker.describe_model(ModelName=live_config["ProductionVariants"][0]["ModelName"])
    live_package = live_model["Containers"][0]["ModelPackageName"]
    decided = {
        arn: sagemaker.describe_model_package(ModelPackageName=arn)["LastModifiedTime"]
        for arn in burst.approved
    }
    last_approved = max(decided, key=lambda arn: decided[arn])
    deployed_versions = {int(config.rsplit("-v", 1)[1].split("-", 1)[0]) for config in deployments}
    deployed = {arn for arn in burst.approved if int(arn.rsplit("/", 1)[1]) in deployed_versions}
    # an approval not deployed must have been outdated by a later approval that was
    lost = [
        arn for arn in set(burst.approved) - deployed if not any(decided[d] > decided[arn] for d in deployed)
    ]
    return {
        "distinct_commits_pushed": len(ours),
        "runs_started": sum(len(v) for v in runs.values()),
        "commits_with_one_run": sum(len(runs.get(c, [])) == 1 for c in ours),
        "runs_of_other_commits": sum(len(v) for c, v in runs.items() if c not in ours),
        "failed_runs": failed_runs,
        "failure_notifications": sum(failure_notices.values()),
        "runs_notified_more_than_once": sum(n > 1 for n in failure_notices.values()),
        "distinct_approvals": len(burst.approved),
        "deployments": len(deployments),
        "approvals_deployed": len(deployed),
        "approvals_outdated_by_a_later_one": len(set(burst.approved) - deployed) - len(lost),
        "approvals_lost": len(lost),
        "configs_deployed_more_than_once": sum(n > 1 for n in by_version.values()),
        "last_approved_is_live": live_package == last_approved,
        "all_notifications": len(sent),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--commits", type=int, default=60)
    parser.add_argument("--approvals", type=int, default=20)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("BENCH_SEED", "42")))
    parser.add_argument("--workdir", type=Path, default=ROOT / ".localcloud" / "load")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = args.workdir.parent / f"{args.workdir.name}-handlers.log"
    with log.open("w") as handler_output, contextlib.redirect_stdout(handler_output):
        # the handlers' log lines (Powertools writes JSON to stdout, as on Lambda) go to a file
        result = run(args.events, args.seed, args.commits, args.approvals, args.workdir)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"handler logs: {log}", file=sys.stderr)
    tally = result["exactly_once"]
    ok = (
        tally["runs_started"] == tally["distinct_commits_pushed"] == tally["commits_with_one_run"]
        and tally["runs_of_other_commits"] == 0
        and tally["failure_notifications"] == tally["failed_runs"]
        and tally["runs_notified_more_than_once"] == 0
        and tally["configs_deployed_more_than_once"] == 0
        and tally["deployments"] == tally["approvals_deployed"]
        and tally["approvals_lost"] == 0
        and tally["last_approved_is_live"]
    )
    print("exactly-once: " + ("held" if ok else "BROKEN"), file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
