"""A Lambda execution environment on the local machine: one process per function, as Lambda gives each
function its own sandbox.

The process gets the environment Lambda defines for a function and nothing of the local cloud's own
(Lambda developer guide, "Defined runtime environment variables"): `_HANDLER`, `AWS_LAMBDA_FUNCTION_NAME`,
`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, `AWS_LAMBDA_LOG_GROUP_NAME`, `LAMBDA_TASK_ROOT`, the region and
credentials, plus the function's own variables from the template and `AWS_ENDPOINT_URL` pointing at the
local cloud. Its import path is the function's code, then its layers' content, as Lambda mounts a layer at
/opt/python (`lambda_bootstrap`). The process is started at the first invocation (a cold start, whose init
time is kept), handles one event at a time, and is replaced when it dies or times out, as Lambda replaces
a sandbox.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
# Lambda's init phase may take up to 10 s for on-demand functions (Lambda developer guide, "Lambda
# execution environment lifecycle"); here an init that long is almost always a hang, so it is an error.
INIT_TIMEOUT_S = 10.0
_CLIENT_VARIABLES = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)

log = logging.getLogger("localcloud.lambda")


@dataclass(frozen=True)
class Outcome:
    """One invocation's answer: the handler's JSON result, or Lambda's error document."""

    result: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class FunctionSetup:
    """What an execution environment is made from (a function of the template, resolved)."""

    name: str  # the physical function name
    handler: str  # module.function
    runtime: str  # python3.12
    task_root: Path  # the function's code (CodeUri)
    layers: tuple[Path, ...]  # each layer's content, in the template's order
    environment: dict[str, str]  # the function's own variables
    timeout_s: int
    memory_mb: int
    region: str
    account_id: str

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"


def runtime_environment(setup: FunctionSetup, client_env: dict[str, str]) -> dict[str, str]:
    """The variables the function's process starts with: Lambda's defined ones, the client's endpoint and
    credentials, then the function's own (which, as on Lambda, cannot replace the reserved ones)."""
    today = dt.datetime.now(dt.UTC).strftime("%Y/%m/%d")
    reserved = {
        "_HANDLER": setup.handler,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{setup.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": setup.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(setup.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{setup.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{today}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_REGION": setup.region,
        "AWS_DEFAULT_REGION": setup.region,
        "LAMBDA_TASK_ROOT": str(setup.task_root),
        "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
        "LANG": "en_US.UTF-8",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "TZ": ":UTC",
    }
    client = {k: v for k, v in client_env.items() if k in _CLIENT_VARIABLES}
    own = {k: v for k, v in setup.environment.items() if k not in reserved}
    return {**client, **own, **reserved, "PYTHONUNBUFFERED": "1"}


class ExecutionEnvironment:
    """One function's sandbox: a process running `lambda_bootstrap`, started on demand."""

    def __init__(
        self,
        setup: FunctionSetup,
        client_env: dict[str, str],
        log_path: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.setup = setup
        self.client_env = dict(client_env)
        self.log_path = log_path
        self.python = python
        self.init_seconds: float | None = None  # the last cold start's init phase
        self.cold_starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._requests: Connection | None = None
        self._responses: Connection | None = None
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------------
    def _start(self) -> dict[str, Any] | None:
        """Start the process and run its init phase; returns the init error, if any."""
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        try:
            self._process = subprocess.Popen(
                [
                    self.python,
                    str(BOOTSTRAP),
                    str(request_read),
                    str(response_write),
                    str(self.setup.task_root),
                    *map(str, self.setup.layers),
                ],
                env=runtime_environment(self.setup, self.client_env),
                cwd=self.setup.task_root,
                pass_fds=(request_read, response_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the user's terminal reaches the local cloud, not this
            )
        finally:
            os.close(request_read)
            os.close(response_write)
        self._requests = Connection(request_write, readable=False)
        self._responses = Connection(response_read, writable=False)
        threading.Thread(
            target=self._forward_logs,
            args=(self._process.stdout,),
            name=f"lambda-logs-{self.setup.name}",
            daemon=True,
        ).start()
        self.cold_starts += 1
        started = time.monotonic()
        if not self._responses.poll(INIT_TIMEOUT_S):
            self._stop()
            return _runtime_error(
                "Runtime.InitError", f"Init phase did not finish within {INIT_TIMEOUT_S:.0f} seconds"
            )
        try:
            first = json.loads(self._responses.recv_bytes())
        except (EOFError, OSError):
            return self._exited("")
        if "init_error" in first:
            self._stop()
            return dict(first["init_error"])
        self.init_seconds = time.monotonic() - started
        return None

    def _forward_logs(self, stream: IO[bytes] | None) -> None:
        """The function's stdout and stderr: its CloudWatch log stream, here a file and a logger."""
        if stream is None:
            return
        sink = self.log_path.open("ab") if self.log_path is not None else None
        try:
            for line in stream:
                if sink is not None:
                    sink.write(line)
                    sink.flush()
                log.debug("%s: %s", self.setup.name, line.decode(errors="replace").rstrip())
        finally:
            if sink is not None:
                sink.close()

    def _stop(self) -> None:
        process, self._process = self._process, None
        for connection in (self._requests, self._responses):
            if connection is not None:
                connection.close()
        self._requests = self._responses = None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _exited(self, request_id: str) -> dict[str, Any]:
        process = self._process
        code = process.wait() if process is not None else None
        self._stop()
        if code is not None and code < 0:
            status = f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}"
        else:
            status = f"exit status {code}"
        return _runtime_error(
            "Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with error: {status}"
        )

    # -- invocations -----------------------------------------------------------------------------------
    def invoke(self, event: Any, request_id: str | None = None) -> Outcome:
        """Run the handler on one event, in this environment's process, within the function's timeout."""
        request_id = request_id or str(uuid.uuid4())
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._stop()
                init_error = self._start()
                if init_error is not None:
                    return Outcome(error=init_error)
            assert self._requests is not None and self._responses is not None
            deadline = time.time() + self.setup.timeout_s
            request = {
                "event": event,
                "request_id": request_id,
                "deadline_ms": int(deadline * 1000),
                "invoked_function_arn": self.setup.arn,
            }
            try:
                self._requests.send_bytes(json.dumps(request).encode())
            except OSError:
                return Outcome(error=self._exited(request_id))
            if not self._responses.poll(max(0.0, deadline - time.time())):
                # Lambda stops the sandbox and answers with its timeout error
                self._stop()
                return Outcome(
                    error=_runtime_error(
                        "Sandbox.Timedout",
                        f"RequestId: {request_id} Error: Task timed out after "
                        f"{self.setup.timeout_s:.2f} seconds",
                    )
                )
            try:
                answer = json.loads(self._responses.recv_bytes())
            except (EOFError, OSError):
                return Outcome(error=self._exited(request_id))
            if "error" in answer:
                return Outcome(error=dict(answer["error"]))
            return Outcome(result=answer.get("result"))


def _runtime_error(error_type: str, message: str) -> dict[str, Any]:
    return {"errorType": error_type, "errorMessage": message}
