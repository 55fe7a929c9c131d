"""Lambda functions created through the Lambda API (CreateFunction with a .zip), run like the stack's own.

The SDK's `LambdaStep` creates its function with `CreateFunction` (a zipped script) when the pipeline is
built, and the pipeline then invokes it. moto keeps the function's configuration and code; this runs it:
its code is unpacked once per code version (`CodeSha256`) and served by an `ExecutionEnvironment`, a process
with the function's own variables, timeout and memory setting, as for the stack's functions. Python runtimes
only: the local cloud has no other language runtime.
"""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from localcloud.runtime.lambda_environment import ExecutionEnvironment, FunctionSetup, Outcome


class UnsupportedFunction(Exception):
    """A function that exists but cannot run here (not a Python runtime, or unreadable code)."""


class UserFunctions:
    """The functions of the embedded Lambda (moto's backend), each in its own execution environment."""

    def __init__(self, backend: Any, workdir: Path, client_env: dict[str, str], region: str, account_id: str):
        self.backend = backend
        self.workdir = Path(workdir)
        self.client_env = dict(client_env)
        self.region = region
        self.account_id = account_id
        self._environments: dict[str, tuple[str, ExecutionEnvironment]] = {}
        self._lock = threading.Lock()

    def exists(self, name_or_arn: str) -> bool:
        try:
            self.backend.get_function(name_or_arn)
        except Exception:  # moto's UnknownFunctionException: the function does not exist
            return False
        return True

    def invoke(self, name_or_arn: str, event: Any) -> Outcome:
        """One synchronous invocation of the function's current code."""
        return self._environment(name_or_arn).invoke(event)

    def _environment(self, name_or_arn: str) -> ExecutionEnvironment:
        function = self.backend.get_function(name_or_arn)
        runtime = str(function.run_time or "")
        if not runtime.startswith("python"):
            raise UnsupportedFunction(f"runtime {runtime or '(none)'} does not run here; Python runtimes do")
        with self._lock:
            known = self._environments.get(function.function_name)
            if known is not None and known[0] == function.code_sha_256:
                return known[1]
            if known is not None:  # new code: Lambda starts new execution environments for it
                known[1].close()
            code = self._unpack(function)
            environment = ExecutionEnvironment(
                FunctionSetup(
                    name=function.function_name,
                    handler=str(function.handler),
                    runtime=runtime,
                    task_root=code,
                    layers=(),
                    environment={k: str(v) for k, v in (function.environment_vars or {}).items()},
                    timeout_s=int(function.timeout),
                    memory_mb=int(function.memory_size),
                    region=self.region,
                    account_id=self.account_id,
                ),
                self.client_env,
                self.workdir / "logs" / f"{function.function_name}.log",
            )
            self._environments[function.function_name] = (function.code_sha_256, environment)
            return environment

    def _unpack(self, function: Any) -> Path:
        target = self.workdir / "code" / function.function_name / str(function.code_sha_256).replace("/", "_")
        if target.is_dir():
            return target
        target.mkdir(parents=True)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        try:
            with zipfile.ZipFile(io.BytesIO(function.code_bytes)) as archive:
                for member in archive.infolist():
                    path = PurePosixPath(member.filename)
                    if path.is_absolute() or ".." in path.parts:
                        raise UnsupportedFunction(f"the code's archive has an unsafe path: {member.filename}")
                archive.extractall(target)  # every member's path was checked above
        except zipfile.BadZipFile as error:
            raise UnsupportedFunction(f"the function's code is not a .zip archive: {error}") from None
        return target

    def close(self) -> None:
        with self._lock:
            for _, environment in self._environments.values():
                environment.close()
            self._environments.clear()
