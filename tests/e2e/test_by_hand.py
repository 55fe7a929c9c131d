"""The README's by-hand section, as a user types it: the `localcloud` command from a clean shell.

A clean shell has no PYTHONPATH and none of the Makefile's variables: the command must still start handlers
that import the layer, and a `git push` must start a run (before, every push landed in the dead-letter
queue with "No module named 'orchestrator'"). TensorFlow's start-up lines stay out of the terminal.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCALCLOUD = ROOT / ".venv" / "bin" / "localcloud"
TENSORFLOW_START_UP = ("oneDNN custom operations", "cpu_feature_guard", "Unable to register cu", "TF-TRT")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_the_by_hand_commands_work_from_a_clean_shell(tmp_path: Path) -> None:
    # GIVEN a clean shell (PATH and HOME only) in a directory that is not the repository
    shell = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path))}
    assert LOCALCLOUD.exists(), "make installs the project into .venv, with its `localcloud` command"
    output = tmp_path / "up.log"
    with output.open("w") as sink:
        up = subprocess.Popen(
            [str(LOCALCLOUD), "up", "--port", str(free_port())],
            cwd=tmp_path,
            env=shell,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "Ctrl-C to stop." not in output.read_text():
            assert up.poll() is None, output.read_text()[-3000:]
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            time.sleep(0.5)
        # WHEN the user exports what `localcloud env` prints and pushes the training code
        exports = subprocess.run(
            [str(LOCALCLOUD), "env"], cwd=tmp_path, env=shell, capture_output=True, text=True, check=True
        ).stdout
        client = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in exports.splitlines()
        )
        assert Path(client["SAGEMAKER_USER_CONFIG_OVERRIDE"]).read_text().count("DefaultS3Bucket") == 1
        pushed = subprocess.run(
            [str(LOCALCLOUD), "push", str(ROOT / "training_code"), "-m", "by hand"],
            cwd=tmp_path,
            env=shell | client,
            capture_output=True,
            text=True,
            check=False,
        )
        assert pushed.returncode == 0, pushed.stderr[-3000:]
        commit = pushed.stdout.strip().splitlines()[-1]
        # THEN the push handler, which imports the layer, starts a run for that commit
        session = boto3.Session(
            aws_access_key_id=client["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=client["AWS_SECRET_ACCESS_KEY"],
            region_name=client["AWS_DEFAULT_REGION"],
        )
        sagemaker = session.client("sagemaker", endpoint_url=client["AWS_ENDPOINT_URL"])
        deadline = time.monotonic() + 120
        executions: list = []
        while not executions:
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            pipelines = sagemaker.list_pipelines()["PipelineSummaries"]
            for pipeline in pipelines:
                executions += sagemaker.list_pipeline_executions(PipelineName=pipeline["PipelineName"])[
                    "PipelineExecutionSummaries"
                ]
            time.sleep(1)
        assert commit[:7] in executions[0].get("PipelineExecutionDisplayName", "")
        push_log = (ROOT / ".localcloud" / "logs" / "lambda" / "StartPipelineFunction.log").read_text()
        assert "No module named" not in push_log
        assert '"level":"ERROR"' not in push_log.replace(" ", "")
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
    # and TensorFlow's start-up lines never reached the user's terminal
    shown = output.read_text()
    assert not [line for line in shown.splitlines() if any(s in line for s in TENSORFLOW_START_UP)], shown
