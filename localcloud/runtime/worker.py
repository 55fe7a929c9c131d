"""What runs inside a job's process: the forked child of the fork server that preloaded TensorFlow.

The child owns its environment, working directory, argv and standard streams, so jobs that run side by
side never see each other's state; the script itself runs through `runpy` as `__main__`, exactly as
`python3 script.py ...` would, but without paying the interpreter start and the TensorFlow import again.
"""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from dataclasses import dataclass, field

#: Modules the fork server imports once; every job forked from it finds them already in `sys.modules`.
#: Import failures are ignored by multiprocessing, so a missing optional library only costs its import.
PRELOAD_MODULES: tuple[str, ...] = (
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


@dataclass(frozen=True)
class ChildSpec:
    """One container process: the command the container would run and the world it would see."""

    command: list[str]
    env: dict[str, str]
    cwd: str
    log_path: str
    python_path: list[str] = field(default_factory=list)


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
    code = _run_script(script)
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown (atexit hooks inherited from the fork server, TF thread joins): the
    # job's output is flushed and its files are closed by the kernel.
    os._exit(code)


def _run_script(script: str) -> int:
    try:
        runpy.run_path(script, run_name="__main__")
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
