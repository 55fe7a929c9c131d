"""`make bench`: the local loop's performance figures, written to benchmarks/results/bench.json.

- demo wall time per phase (push → prediction) with a tuning budget of 8 trials, 2 in parallel;
- orchestration overhead: the pipeline run's wall time ÷ the summed run time of the same scripts called
  directly (each job's saved spec rerun one after another, `python -m localcloud.runtime.worker spec.json`,
  a fresh interpreter each, as a user running `python train.py ...` would); and, stricter, ÷ the summed
  in-job run time (job start → end inside the engine, where TensorFlow is already imported);
- tuning throughput: trials per minute of the TuneModel step at its max parallel jobs;
- the corpus of SDK pipelines (tests/corpus): their executions' wall time ÷ the summed direct run time of
  their jobs' scripts, per program and overall (`benchmarks/corpus.py`);
- handler cold start: import + init of each handler in a fresh interpreter ÷ `import boto3` alone;
  measured with tracing off (local, `sam local`, TracingMode=PassThrough) and as on Lambda with
  TracingMode=Active (LAMBDA_TASK_ROOT set, so Powertools' Tracer loads the X-Ray SDK).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "bench.json"
HANDLERS = {
    "StartPipelineFunction": "functions/start_pipeline/app.py",
    "TrackFunction": "functions/track/app.py",
    "DeployFunction": "functions/deploy/app.py",
}


def _fresh_import_seconds(code: str, env: dict[str, str], repeats: int = 9) -> float:
    """Median seconds a fresh interpreter spends running `code` (imports measured inside the process)."""
    timings = []
    for _ in range(repeats):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t=time.perf_counter(); {code}; print(time.perf_counter()-t)",
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            check=True,
        )
        timings.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(timings)


def cold_starts(env: dict[str, str]) -> dict[str, Any]:
    boto3_s = _fresh_import_seconds("import boto3", env)
    figures: dict[str, Any] = {"boto3_import_s": round(boto3_s, 4)}
    for mode, extra in (("tracing_off", {}), ("tracing_active", {"LAMBDA_TASK_ROOT": str(ROOT)})):
        figures[mode] = _handler_cold_starts({**env, **extra}, boto3_s)
    return figures


def _handler_cold_starts(env: dict[str, str], boto3_s: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, path in HANDLERS.items():
        code = (
            "import importlib.util as u; "
            f"s=u.spec_from_file_location('h', {str(ROOT / path)!r}); m=u.module_from_spec(s); "
            "s.loader.exec_module(m)"
        )
        seconds = _fresh_import_seconds(code, env)
        figures[name] = {
            "import_and_init_s": round(seconds, 4),
            "ratio_to_boto3": round(seconds / boto3_s, 2),
        }
    return figures


def direct_run_seconds(jobs_dir: Path, job_names: list[str], env: dict[str, str]) -> float:
    """Rerun each job's script directly, one after another, each in a fresh interpreter; summed seconds."""
    total = 0.0
    for name in job_names:
        for spec in sorted((jobs_dir / name).rglob("*.spec.json")):
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "localcloud.runtime.worker", str(spec)],
                env=env,
                cwd=ROOT,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            total += time.perf_counter() - started
    return total


def pipeline_figures(cloud: Any, execution_arn: str, wall_s: float, env: dict[str, str]) -> dict[str, Any]:
    sagemaker = cloud.client("sagemaker")
    steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)[
        "PipelineExecutionSteps"
    ]
    job_seconds = 0.0
    job_names: list[str] = []
    tuning: dict[str, Any] = {}
    step_seconds = {
        step["StepName"]: round((step["EndTime"] - step["StartTime"]).total_seconds(), 2)
        for step in steps
        if step.get("EndTime")
    }
    for step in steps:
        meta = step.get("Metadata", {})
        if "ProcessingJob" in meta:
            name = meta["ProcessingJob"]["Arn"].rsplit("/", 1)[-1]
            job = sagemaker.describe_processing_job(ProcessingJobName=name)
            job_seconds += (job["ProcessingEndTime"] - job["ProcessingStartTime"]).total_seconds()
            job_names.append(name)
        if "TuningJob" in meta:
            name = meta["TuningJob"]["Arn"].rsplit("/", 1)[-1]
            trials = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name, MaxResults=100
            )["TrainingJobSummaries"]
            for trial in trials:
                job = sagemaker.describe_training_job(TrainingJobName=trial["TrainingJobName"])
                job_seconds += (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()
                job_names.append(trial["TrainingJobName"])
            step_s = (step["EndTime"] - step["StartTime"]).total_seconds()
            tuning = {
                "trials": len(trials),
                "step_seconds": round(step_s, 2),
                "trials_per_minute": round(len(trials) / (step_s / 60), 2),
            }
    direct_s = direct_run_seconds(cloud.runner.workdir / "jobs", job_names, env)
    return {
        "pipeline_wall_s": round(wall_s, 2),
        "step_seconds": step_seconds,
        "jobs": len(job_names),
        "summed_direct_script_run_s": round(direct_s, 2),
        "overhead_ratio": round(wall_s / direct_s, 3) if direct_s else None,
        "summed_in_job_run_s": round(job_seconds, 2),
        "overhead_ratio_vs_in_job_time": round(wall_s / job_seconds, 3) if job_seconds else None,
        "tuning": tuning,
    }


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path[:0] = [str(ROOT / "layers" / "shared"), str(ROOT)]
    from localcloud.cloud import LocalCloud
    from localcloud.demo import run_demo

    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'layers' / 'shared'}:{ROOT}"}
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "tuning_budget": {"max_jobs": 8, "max_parallel_jobs": 2},
    }
    started = time.perf_counter()
    with LocalCloud(workdir=ROOT / ".localcloud" / "bench", parameters={"MaxTuningJobs": "8"}) as cloud:
        results["start_local_cloud_s"] = round(time.perf_counter() - started, 2)
        summary = run_demo(cloud, ROOT / "data" / "boston_housing.csv", ROOT / "training_code")
        results["demo_seconds"] = summary["seconds"]
        push_to_prediction = sum(
            summary["seconds"][k]
            for k in ("push training code", "pipeline run", "approve and deploy", "predict")
        )
        results["push_to_prediction_s"] = round(push_to_prediction, 2)
        results["test_rmse"] = summary["test_rmse"]
        results["pipeline"] = pipeline_figures(
            cloud, summary["pipeline_execution_arn"], summary["seconds"]["pipeline run"], env
        )
    from moto.core.base_backend import BackendDict

    from benchmarks.corpus import corpus_figures

    BackendDict.reset()  # a second stack in this process: moto's backends are process-wide
    with LocalCloud(workdir=ROOT / ".localcloud" / "bench-corpus") as cloud:
        results["corpus"] = corpus_figures(cloud, env, direct_run_seconds)
    results["handler_cold_start"] = cold_starts(env)
    results["goals"] = {
        "push_to_prediction_under_60s": results["push_to_prediction_s"] < 60,
        "overhead_ratio_under_1_5": (results["pipeline"]["overhead_ratio"] or 99) < 1.5,
        "corpus_overhead_ratio_under_1_5": (results["corpus"]["overhead_ratio"] or 99) < 1.5,
        "cold_start_under_1_3x_boto3": {
            mode: all(v["ratio_to_boto3"] < 1.3 for v in results["handler_cold_start"][mode].values())
            for mode in ("tracing_off", "tracing_active")
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
