"""The fork server's first preload (`worker.PRELOAD_MODULES`): its own stdout and stderr go to a log file.

TensorFlow prints start-up lines while the fork server imports it (absl logging's oneDNN notice ignores
`TF_CPP_MIN_LOG_LEVEL`); they belong in `<workdir>/compute/fork-server.log`, not in the user's terminal. Each
job still writes to its own log (the worker redirects a forked child's streams).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

LOG_ENV = "LOCALCLOUD_FORK_SERVER_LOG"


def fork_server_log_value(log_path: Path) -> str:
    """The value of LOG_ENV for a fork server this process starts: the log, and this process's id."""
    return f"{os.getpid()}:{log_path}"


def fork_server_log(value: str | None, parent_pid: int) -> str | None:
    """The log this process's output goes to: only a direct child of the process that named it is its
    fork server. Any other process that inherited the variable (a grandchild, or a program started later
    by someone who copied the environment) keeps its own stdout and stderr."""
    pid, separator, path = (value or "").partition(":")
    if not separator or not path or not pid.isdigit() or int(pid) != parent_pid:
        return None
    return path


_path = fork_server_log(os.environ.pop(LOG_ENV, None), os.getppid())
if _path:
    _fd = os.open(_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(_fd, 1)
    os.dup2(_fd, 2)
    os.close(_fd)


_import_lock = threading.Lock()


def import_quietly(module: str, log_path: Path) -> ModuleType:
    """Import ``module`` (TensorFlow) in this process with its start-up lines sent to ``log_path``: the
    process's stderr is pointed there for the import only, so the user's terminal stays clean."""
    if module in sys.modules:
        return sys.modules[module]
    with _import_lock:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        saved = os.dup(2)
        target = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.dup2(target, 2)
            return importlib.import_module(module)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(target)
