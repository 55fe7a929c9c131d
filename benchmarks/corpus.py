"""The corpus's overhead on the local cloud (part of `make bench`): for each SDK program of tests/corpus,
its executions' wall time (CreationTime → LastModifiedTime, as DescribePipelineExecution reports them, so
the SDK's own start-up is not counted) ÷ the summed run time of the same jobs' scripts called directly (each
job's saved spec rerun one after another in a fresh interpreter, as `bench.direct_run_seconds` does for the
demo). Transforms, model creation, registration and Lambda steps have no script: their time is all overhead.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = ROOT / "tests" / "corpus" / "pipelines"
SDK_PYTHON = ROOT / ".venv-synth" / "bin" / "python"
RUNS = [  # program, arguments (as tests/corpus/test_corpus.py runs them)
    ("keras_register_transform", []),
    ("builtin_xgboost_quality_gate", []),
    ("sklearn_tuning_cached", []),
    ("xgboost_script_lambda", []),
    ("batch_transforms", []),
    ("parameters_and_branches", []),
]


def _job_names(sagemaker: Any, execution_arn: str) -> list[str]:
    names = []
    steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn)[
        "PipelineExecutionSteps"
    ]
    for step in steps:
        if step.get("CacheHitResult"):
            continue  # a cached step ran nothing
        meta = step.get("Metadata", {})
        for kind in ("ProcessingJob", "TrainingJob"):
            if kind in meta:
                names.append(meta[kind]["Arn"].rsplit("/", 1)[-1])
        if "TuningJob" in meta:
            tuning = meta["TuningJob"]["Arn"].rsplit("/", 1)[-1]
            trials = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=tuning, MaxResults=100
            )["TrainingJobSummaries"]
            names += [t["TrainingJobName"] for t in trials]
    return names


def corpus_figures(cloud: Any, env: dict[str, str], direct_run_seconds: Any) -> dict[str, Any]:
    sagemaker = cloud.aws.new_client("sagemaker")
    shell = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": env.get("HOME", "/root")}
    programs: dict[str, Any] = {}
    total_wall = total_direct = 0.0
    for name, arguments in RUNS:
        before = {p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]}
        started = time.perf_counter()
        subprocess.run(
            [str(SDK_PYTHON), str(PROGRAMS / f"{name}.py"), *arguments],
            env=shell | cloud.aws.client_env() | {"SAGEMAKER_SUPPRESS_V2_WARNING": "1"},
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        program_s = time.perf_counter() - started
        pipelines = [p["PipelineName"] for p in sagemaker.list_pipelines()["PipelineSummaries"]]
        wall = 0.0
        jobs: list[str] = []
        for pipeline in pipelines:
            for summary in sagemaker.list_pipeline_executions(PipelineName=pipeline)[
                "PipelineExecutionSummaries"
            ]:
                described = sagemaker.describe_pipeline_execution(
                    PipelineExecutionArn=summary["PipelineExecutionArn"]
                )
                if described["CreationTime"].timestamp() < time.time() - program_s - 1 and pipeline in before:
                    continue  # an execution of an earlier program
                wall += (described["LastModifiedTime"] - described["CreationTime"]).total_seconds()
                jobs += _job_names(sagemaker, summary["PipelineExecutionArn"])
        direct = direct_run_seconds(cloud.runner.workdir / "jobs", jobs, env)
        programs[name] = {
            "program_s": round(program_s, 2),
            "executions_wall_s": round(wall, 2),
            "jobs": len(jobs),
            "summed_direct_script_run_s": round(direct, 2),
            "overhead_ratio": round(wall / direct, 3) if direct else None,
        }
        total_wall += wall
        total_direct += direct
    return {
        "programs": programs,
        "executions_wall_s": round(total_wall, 2),
        "summed_direct_script_run_s": round(total_direct, 2),
        "overhead_ratio": round(total_wall / total_direct, 3) if total_direct else None,
    }
