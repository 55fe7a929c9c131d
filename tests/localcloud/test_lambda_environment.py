"""Each function runs as Lambda runs it: its own process, environment, import path and log stream.

AWS: Lambda developer guide, "Defined runtime environment variables" (_HANDLER, AWS_LAMBDA_FUNCTION_NAME,
AWS_LAMBDA_FUNCTION_MEMORY_SIZE, AWS_LAMBDA_LOG_GROUP_NAME, LAMBDA_TASK_ROOT), "Packaging your layer
content" (a Python layer's content is on the path as /opt/python), and the Python runtime's error documents
(Runtime.ImportModuleError, Runtime.ExitError, Runtime.MarshalError, and Sandbox.Timedout for a timeout).
"""

from __future__ import annotations

import io
import json
import os
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.backends import get_backend

from localcloud.provision import plan_names
from localcloud.router import EventRouter
from localcloud.runtime.user_functions import UnsupportedFunction, UserFunctions
from localcloud.template import StackTemplate

TEMPLATE = textwrap.dedent(
    """
    AWSTemplateFormatVersion: "2010-09-09"
    Transform: AWS::Serverless-2016-10-31
    Globals:
      Function:
        Runtime: python3.12
        Timeout: 30
        MemorySize: 256
        Layers: [!Ref Shared]
        Environment:
          Variables:
            POWERTOOLS_SERVICE_NAME: probe
    Resources:
      Shared:
        Type: AWS::Serverless::LayerVersion
        Properties: {ContentUri: layers/shared}
      AlphaFunction:
        Type: AWS::Serverless::Function
        Properties:
          FunctionName: stack-alpha
          CodeUri: functions/alpha
          Handler: app.lambda_handler
          Environment: {Variables: {ONLY_ALPHA: "a", SHARED_NAME: "alpha's value"}}
          Events:
            Any: {Type: EventBridgeRule, Properties: {Pattern: {source: [test.probe]}}}
      BetaFunction:
        Type: AWS::Serverless::Function
        Properties:
          FunctionName: stack-beta
          CodeUri: functions/beta
          Handler: app.lambda_handler
          Environment: {Variables: {SHARED_NAME: "beta's value"}}
          Events:
            Any: {Type: EventBridgeRule, Properties: {Pattern: {source: [test.probe]}}}
      SlowFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/slow
          Handler: app.lambda_handler
          Timeout: 1
          Events:
            Any: {Type: EventBridgeRule, Properties: {Pattern: {source: [test.slow]}}}
      LayerlessFunction:
        Type: AWS::Serverless::Function
        Properties:
          CodeUri: functions/alpha
          Handler: app.lambda_handler
          Layers: []
          Events:
            Any: {Type: EventBridgeRule, Properties: {Pattern: {source: [test.layerless]}}}
    """
)

# The layer's module: imported by the handlers from the layer's content, as from /opt/python.
SHARED = textwrap.dedent(
    """
    import importlib.util, os, sys
    from aws_lambda_powertools import Logger
    logger = Logger()

    def probe(event, context):
        logger.info("probing")
        if event["detail"].get("crash"):
            os._exit(3)
        if event["detail"].get("unmarshallable"):
            return {"value": object()}
        return {
            "pid": os.getpid(),
            "env": {k: os.environ.get(k) for k in (
                "ONLY_ALPHA", "SHARED_NAME", "_HANDLER", "AWS_LAMBDA_FUNCTION_NAME",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_LOG_GROUP_NAME", "LAMBDA_TASK_ROOT",
                "AWS_ENDPOINT_URL", "PYTHONPATH", "MARKER_OF_THE_TEST_PROCESS")},
            "cwd": os.getcwd(),
            "context": [context.function_name, context.memory_limit_in_mb, context.invoked_function_arn,
                        context.get_remaining_time_in_millis() > 0],
            "importable": {name: importlib.util.find_spec(name) is not None
                           for name in ("shared", "tests", "functions", "orchestrator")},
            "calls": CALLS.append(1) or len(CALLS),
        }
    CALLS = []
    """
)
HANDLER = (
    "from shared import probe\n\n\ndef lambda_handler(event, context):\n    return probe(event, context)\n"
)
SLOW = "import time\n\ndef lambda_handler(event, context):\n    time.sleep(float(event['detail']['sleep']))\n"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "layers" / "shared").mkdir(parents=True)
    (tmp_path / "layers" / "shared" / "shared.py").write_text(SHARED)
    for name, code in (("alpha", HANDLER), ("beta", HANDLER), ("slow", SLOW)):
        (tmp_path / "functions" / name).mkdir(parents=True)
        (tmp_path / "functions" / name / "app.py").write_text(code)
    return tmp_path


@pytest.fixture()
def router(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MARKER_OF_THE_TEST_PROCESS", "leaked")
    template = StackTemplate.load(project / "template.yaml")
    template.physical_names, template.attributes = plan_names(template)  # as the local cloud names them
    client_env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "k", "PYTHONPATH": "/x"}
    router = EventRouter(template, project, retry_delay=0.01, client_env=client_env, log_dir=project / "logs")
    yield router
    router.close()


def probe(router: EventRouter, source: str = "test.probe", **detail: object) -> dict:
    event = {
        "id": f"e-{source}-{sorted(detail.items())}",
        "source": source,
        "detail-type": "Probe",
        "detail": detail,
    }
    return {i.function: i for i in router.route(event, wait=True)}


def test_each_function_has_its_own_process_environment_and_context(
    router: EventRouter, project: Path
) -> None:
    # WHEN one event reaches two functions that share a layer
    invocations = probe(router)
    alpha, beta = invocations["AlphaFunction"].result, invocations["BetaFunction"].result
    # THEN each ran in its own process, with its own variables only, and Lambda's defined ones
    assert alpha["pid"] != beta["pid"] != os.getpid()
    assert alpha["env"] == {
        "ONLY_ALPHA": "a",
        "SHARED_NAME": "alpha's value",
        "_HANDLER": "app.lambda_handler",
        "AWS_LAMBDA_FUNCTION_NAME": "stack-alpha",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/stack-alpha",
        "LAMBDA_TASK_ROOT": str(project / "functions" / "alpha"),
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "PYTHONPATH": None,  # neither the caller's path nor the local cloud's own process leaks in
        "MARKER_OF_THE_TEST_PROCESS": None,
    }
    assert beta["env"]["ONLY_ALPHA"] is None
    assert beta["env"]["SHARED_NAME"] == "beta's value"
    assert beta["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "stack-beta"
    # the working directory is the function's code, as /var/task
    assert alpha["cwd"] == str(project / "functions" / "alpha")
    assert alpha["context"] == [
        "stack-alpha",
        "256",
        "arn:aws:lambda:us-east-1:123456789012:function:stack-alpha",
        True,
    ]
    # the import path is the function's code, then its layer: nothing of the repository or the tests
    assert alpha["importable"] == {"shared": True, "tests": False, "functions": False, "orchestrator": False}


def test_a_warm_environment_keeps_module_state_and_its_process(router: EventRouter) -> None:
    first = probe(router)["AlphaFunction"].result
    second = probe(router, again=True)["AlphaFunction"].result
    assert second["pid"] == first["pid"]
    assert (first["calls"], second["calls"]) == (1, 2)
    assert router.cold_starts()["AlphaFunction"] is not None


def test_each_function_logs_to_its_own_stream_with_its_own_name(router: EventRouter, project: Path) -> None:
    probe(router)
    for logical_id, name in (("AlphaFunction", "stack-alpha"), ("BetaFunction", "stack-beta")):
        log = project / "logs" / f"{logical_id}.log"
        deadline = time.monotonic() + 10  # the stream is forwarded by a thread, as CloudWatch gets it: later
        while (not log.exists() or not log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert [line["message"] for line in lines] == ["probing"]
        # Powertools takes function_name from its own process's environment: never the other function's
        assert {line.get("function_name", name) for line in lines} == {name}


def test_a_function_without_the_layer_cannot_import_it(router: EventRouter) -> None:
    (invocation,) = probe(router, source="test.layerless").values()
    assert invocation.error == (
        "Runtime.ImportModuleError: Unable to import module 'app': No module named 'shared'"
    )
    assert invocation.attempt == 3  # an init error is an invocation error, retried as any other


def test_a_timeout_stops_the_sandbox_and_the_next_invocation_starts_a_new_one(router: EventRouter) -> None:
    (timed_out,) = probe(router, source="test.slow", sleep=5).values()
    assert timed_out.error is not None
    assert timed_out.error.startswith("Sandbox.Timedout: RequestId: ")
    assert timed_out.error.endswith("Error: Task timed out after 1.00 seconds")
    assert timed_out.seconds < 2.5
    (quick,) = probe(router, source="test.slow", sleep=0).values()
    assert quick.error is None
    assert router._workers["SlowFunction"].environment.cold_starts == 4  # one per attempt, then the quick one


def test_a_runtime_that_exits_is_reported_and_replaced(router: EventRouter) -> None:
    first = probe(router, crash=True)["AlphaFunction"]
    assert first.error is not None
    assert first.error.startswith("Runtime.ExitError: RequestId: ")
    assert first.error.endswith("Runtime exited with error: exit status 3")
    after = probe(router)["AlphaFunction"]
    assert after.error is None


def test_a_result_that_is_not_json_is_lambdas_marshal_error(router: EventRouter) -> None:
    invocation = probe(router, unmarshallable=True)["AlphaFunction"]
    assert invocation.error is not None
    assert invocation.error.startswith("Runtime.MarshalError: Unable to marshal response: ")
    assert "not JSON serializable" in invocation.error


def zipped(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return buffer.getvalue()


@pytest.fixture()
def lambda_api(tmp_path: Path) -> Iterator[tuple[Any, UserFunctions]]:
    """The Lambda API (moto) and the functions it holds, run here as the local cloud runs them."""
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        client = boto3.client("lambda", region_name="us-east-1")
        client.role_for_tests = role  # type: ignore[attr-defined]
        backend = get_backend("lambda")["123456789012"]["us-east-1"]
        functions = UserFunctions(
            backend,
            tmp_path / "lambda",
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
            "us-east-1",
            "123456789012",
        )
        yield client, functions
        functions.close()


USER_HANDLER = (
    "import os\n\n"
    "def handler(event, context):\n"
    "    return {'pid': os.getpid(), 'version': VERSION, 'env': os.environ.get('STAGE')}\n"
)


def test_a_function_created_through_the_api_runs_its_current_code(
    lambda_api: tuple[Any, UserFunctions],
) -> None:
    client, functions = lambda_api
    client.create_function(
        FunctionName="checker",
        Runtime="python3.12",
        Role=client.role_for_tests,
        Handler="app.handler",
        Code={"ZipFile": zipped({"app.py": "VERSION = 1\n" + USER_HANDLER})},
        Environment={"Variables": {"STAGE": "test"}},
    )
    first = functions.invoke("checker", {})
    assert first.error is None and first.result is not None
    assert (first.result["version"], first.result["env"]) == (1, "test")
    assert functions.invoke("checker", {}).result["pid"] == first.result["pid"]  # warm
    # new code: a new execution environment runs it
    client.update_function_code(
        FunctionName="checker", ZipFile=zipped({"app.py": "VERSION = 2\n" + USER_HANDLER})
    )
    second = functions.invoke("arn:aws:lambda:us-east-1:123456789012:function:checker", {})
    assert second.result is not None
    assert second.result["version"] == 2 and second.result["pid"] != first.result["pid"]


@pytest.mark.parametrize(
    ("runtime", "files", "refusal"),
    [
        (
            "nodejs20.x",
            {"index.js": "exports.handler = async () => 1;"},
            "runtime nodejs20.x does not run here",
        ),
        ("python3.12", {"../escape.py": "x = 1"}, "unsafe path: ../escape.py"),
    ],
)
def test_functions_that_cannot_run_here_are_refused(
    lambda_api: tuple[Any, UserFunctions], runtime: str, files: dict[str, str], refusal: str, tmp_path: Path
) -> None:
    client, functions = lambda_api
    client.create_function(
        FunctionName="refused",
        Runtime=runtime,
        Role=client.role_for_tests,
        Handler="app.handler",
        Code={"ZipFile": zipped(files)},
    )
    with pytest.raises(UnsupportedFunction, match=refusal):
        functions.invoke("refused", {})
    assert not (tmp_path / "escape.py").exists() and not (tmp_path / "lambda" / "escape.py").exists()
    assert not functions.exists("no-such-function")
