"""What runs inside a job's process: the forked child of the fork server that preloaded TensorFlow.

The child owns its environment, working directory, argv and standard streams, so jobs that run side by
side never see each other's state; the script itself runs through `runpy` as `__main__`, exactly as
`python3 script.py ...` would, but without paying the interpreter start and the TensorFlow import again.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import tokenize
import traceback
import types
from dataclasses import asdict, dataclass, field
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from typing import Any

#: Modules the fork server imports once; every job forked from it finds them already in `sys.modules`.
#: Import failures are ignored by multiprocessing, so a missing optional library only costs its import.
PRELOAD_MODULES: tuple[str, ...] = (
    "localcloud.runtime.quiet_start",  # first: the fork server's own output goes to its log file
    "numpy",
    "pandas",
    "sklearn",
    "sklearn.model_selection",
    "sklearn.preprocessing",
    "matplotlib",
    "tensorflow",
    "keras",
    "localcloud.runtime.worker",
)


_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSW|CREDENTIAL|SESSION|PRIVATE|_KEY", re.IGNORECASE)


@dataclass(frozen=True)
class ChildSpec:
    """One container process: the command the container would run and the world it would see."""

    command: list[str]
    env: dict[str, str]
    cwd: str
    log_path: str
    python_path: list[str] = field(default_factory=list)
    #: The job's stand-in for `/opt/ml`: string literals naming `/opt/ml/...` in the entry script are read
    #: as paths below it, the way the container's filesystem would resolve them (see `container_view`).
    container_root: str | None = None

    def save(self, path: str) -> None:
        """Write the spec beside the job's log, so the job can be rerun by hand: `python -m
        localcloud.runtime.worker <spec.json>` runs it in a fresh interpreter (TensorFlow imported anew).

        Variables that look like credentials are left out (the job sees the caller's environment, which
        may hold real ones); the scripts read their inputs from local files and do not need them.
        """
        record = asdict(self)
        record["env"] = {k: v for k, v in self.env.items() if not _SECRET_NAME.search(k)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)

    @classmethod
    def load(cls, path: str) -> ChildSpec:
        with open(path, encoding="utf-8") as handle:
            return cls(**json.load(handle))


class _JobPopen(popen_forkserver.Popen):
    """The fork server's launcher, minus one step: the stdlib makes every child re-import the parent's
    `__main__` (the CLI, or pytest) before running the target; a job needs nothing from it, so that import
    (and its cost per job) is skipped. Otherwise the same as `popen_forkserver.Popen._launch` (3.11).
    """

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        prep_data.pop("init_main_from_path", None)
        prep_data.pop("init_main_from_name", None)
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)  # type: ignore[attr-defined]
        _parent_w = os.dup(w)  # the child watches this to notice that its parent went away
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))  # type: ignore[attr-defined]
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class JobProcess(ForkServerProcess):
    """A process forked by the fork server that does not re-import the parent's `__main__`."""

    @staticmethod
    def _Popen(process_obj: Any) -> _JobPopen:
        return _JobPopen(process_obj)


def is_python_command(command: list[str]) -> bool:
    """True when the entrypoint is `python[3] script.py ...` and can run inside a preloaded worker."""
    return (
        len(command) >= 2
        and os.path.basename(command[0]) in {"python", "python3"}
        and not command[1].startswith("-")
    )


def run_child(spec: ChildSpec) -> None:
    """Entry point of a forked job process; exits with the script's exit status."""
    sys.stdout.flush()
    sys.stderr.flush()
    log_fd = os.open(spec.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.close(devnull)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # live logs for watchers, as CloudWatch streams them
    os.environ.clear()
    os.environ.update(spec.env)
    os.chdir(spec.cwd)
    if not is_python_command(spec.command):
        # Not a Python script (e.g. a shell entrypoint): replace the child with the real program.
        os.execvpe(spec.command[0], spec.command, spec.env)  # noqa: S606 - the job's own command
    script = spec.command[1]
    sys.argv = [script, *spec.command[2:]]
    sys.path[:0] = [os.path.dirname(os.path.abspath(script)), *spec.python_path]
    code = run_script(script, spec.container_root)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown (atexit hooks inherited from the fork server, TF thread joins): the
    # job's output is flushed and its files are closed by the kernel.
    os._exit(code)


def run_script(script: str, container_root: str | None) -> int:
    """Run ``script`` as `__main__` with the job's view of /opt/ml; returns its exit status."""
    try:
        with open(script, "rb") as handle:
            source = _read_source(handle)
        if container_root:
            source = container_view(source, container_root)
        module = types.ModuleType("__main__")
        module.__file__ = script
        module.__builtins__ = __builtins__  # type: ignore[attr-defined]
        sys.modules["__main__"] = module
        exec(compile(source, script, "exec"), module.__dict__)  # noqa: S102 - this IS the job's script
    except SystemExit as exit_request:
        return _exit_status(exit_request.code)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


_CONTAINER_PATH = re.compile(r"/opt/ml(?=[/'\"])")


def _read_source(handle: io.BufferedReader) -> str:
    encoding, _ = tokenize.detect_encoding(handle.readline)
    handle.seek(0)
    return handle.read().decode(encoding)


def container_view(source: str, container_root: str) -> str:
    """The script's source with `/opt/ml` in its string literals mapped to the job's own tree.

    Scripts take their paths from arguments whose defaults are the real container paths; arguments and
    environment are rewritten by the runner, and this covers the defaults, so parallel jobs never share
    `/opt/ml`. Only string literals of the entry script change; code and comments are left alone.
    """
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    spans: list[tuple[int, int]] = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING and "/opt/ml" in token.string:
            start = offsets[token.start[0] - 1] + token.start[1]
            end = offsets[token.end[0] - 1] + token.end[1]
            spans.append((start, end))
    for start, end in reversed(spans):
        literal = _CONTAINER_PATH.sub(lambda _: container_root, source[start:end])
        source = source[:start] + literal + source[end:]
    return source


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m localcloud.runtime.worker <job spec.json>")
    run_child(ChildSpec.load(sys.argv[1]))
