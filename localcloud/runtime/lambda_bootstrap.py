"""The Python runtime of a local Lambda execution environment: run as a script in its own process.

It does what Lambda's Python runtime (awslambdaric) does in a function's sandbox: builds the import path the
way Lambda does (the function's code, then each layer's content, as /var/task and /opt/python; nothing of
the local cloud), imports the handler module once (the init phase), then handles one event at a time and
answers with the JSON result or an error document of Lambda's shape ({"errorMessage", "errorType",
"stackTrace"}). Standard library only: nothing of the local cloud is importable from here.

    python lambda_bootstrap.py REQUEST_FD RESPONSE_FD TASK_ROOT [LAYER_DIR ...]

Handler and function come from `_HANDLER` (`module.function`), as Lambda sets it.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any


class LambdaContext:
    """The context object of Lambda's Python runtime (awslambdaric's LambdaContext): the same attribute
    names, with values from the environment Lambda sets and from the invocation."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_function_arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(error: BaseException, error_type: str | None = None) -> dict[str, Any]:
    return {
        "errorMessage": str(error),
        "errorType": error_type or type(error).__name__,
        "stackTrace": traceback.format_list(traceback.extract_tb(error.__traceback__)),
    }


def main(argv: list[str]) -> int:
    request_fd, response_fd, task_root, *layers = argv
    requests = Connection(int(request_fd), writable=False)
    responses = Connection(int(response_fd), readable=False)
    # Lambda's search path for Python: the function's code first, then the layers' content (/opt/python),
    # then the runtime's own site-packages; this script's directory is not on it.
    sys.path[:] = [task_root, *layers, *sys.path[1:]]
    os.chdir(task_root)
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    started = time.perf_counter()
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except ImportError as error:
        init_error = _error(error, "Runtime.ImportModuleError")
        init_error["errorMessage"] = f"Unable to import module '{module_name}': {error}"
        responses.send_bytes(json.dumps({"init_error": init_error}).encode())
        return 1
    except AttributeError as error:
        init_error = _error(error, "Runtime.HandlerNotFound")
        init_error["errorMessage"] = f"Handler '{function_name}' missing on module '{module_name}'"
        responses.send_bytes(json.dumps({"init_error": init_error}).encode())
        return 1
    except Exception as error:  # an exception at import time is the function's init error
        responses.send_bytes(json.dumps({"init_error": _error(error)}).encode())
        return 1
    responses.send_bytes(json.dumps({"ready": round(time.perf_counter() - started, 4)}).encode())
    while True:
        try:
            request = json.loads(requests.recv_bytes())
        except EOFError:  # the environment is being shut down
            return 0
        context = LambdaContext(
            request["request_id"], request["deadline_ms"], request["invoked_function_arn"]
        )
        try:
            result = handler(request["event"], context)
        except Exception as error:  # an unhandled error is the invocation's answer, not the runtime's end
            traceback.print_exc()
            sys.stdout.flush()
            responses.send_bytes(json.dumps({"error": _error(error)}).encode())
            continue
        sys.stdout.flush()
        try:
            answer = json.dumps({"result": result})
        except (TypeError, ValueError) as error:
            marshal = _error(error, "Runtime.MarshalError")
            marshal["errorMessage"] = f"Unable to marshal response: {error}"
            answer = json.dumps({"error": marshal})
        responses.send_bytes(answer.encode())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
