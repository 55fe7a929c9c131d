"""Lambda's Invoke on the embedded AWS (Lambda API reference, "Invoke"), for the functions that run here:
the stack's own (the event router's execution environments, with the template's retries and OnFailure
destination for asynchronous invocations) and those created through the Lambda API (`UserFunctions`).

InvocationType Event answers 202 and runs later; RequestResponse answers 200 with the function's result, or
its error document with `X-Amz-Function-Error: Unhandled`; DryRun answers 204; any other function is
ResourceNotFoundException.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

from localcloud.aws.protocol import AwsError, RawResponse, RequestInfo
from localcloud.runtime.user_functions import UnsupportedFunction, UserFunctions

if TYPE_CHECKING:
    from localcloud.aws.server import EmbeddedAws
    from localcloud.router import EventRouter


class LambdaInvoke:
    """Answers Invoke for the stack's functions and the functions created through the API."""

    def __init__(self, aws: EmbeddedAws, router: EventRouter, user_functions: UserFunctions | None) -> None:
        self.aws = aws
        self.router = router
        self.user_functions = user_functions

    def attach(self) -> LambdaInvoke:
        self.aws.register_override("lambda", "Invoke", self._invoke_function)
        return self

    def _invoke_function(self, params: dict[str, Any], info: RequestInfo) -> RawResponse:
        """Lambda's Invoke: for the stack's functions, Event runs as EventBridge invokes them (the same
        retries and destination) and RequestResponse once, not retried; for functions created through the
        API, Event runs once in the background. Any other function does not exist here."""
        name = str(params.get("FunctionName", ""))
        spec = self.router.function(name)
        user_function = spec is None and self.user_functions is not None and self.user_functions.exists(name)
        if spec is None and not user_function:
            raise AwsError(
                "ResourceNotFoundException",
                f"Function not found: arn:aws:lambda:{self.aws.region}:{self.aws.account_id}:function:{name}",
                404,
            )
        try:
            event = json.loads(params.get("Payload") or b"{}")
        except ValueError as error:
            message = "Could not parse request body into json"
            raise AwsError("InvalidRequestContentException", message) from error
        kind = params.get("InvocationType", "RequestResponse")
        if kind == "DryRun":
            return RawResponse(204, b"")
        if kind not in ("Event", "RequestResponse"):
            raise AwsError("InvalidParameterValueException", f"Unsupported InvocationType {kind!r}")
        if spec is not None:
            if kind == "Event":
                self.router.invoke_async(spec, event)
                return RawResponse(202, b"")
            invocation = self.router.invoke_sync(spec, event)
            failure = invocation.error_payload() if invocation.error is not None else None
            return _answer(invocation.result, failure)
        assert self.user_functions is not None
        if kind == "Event":
            threading.Thread(
                target=self.user_functions.invoke, args=(name, event), name=f"lambda-{name}", daemon=True
            ).start()
            return RawResponse(202, b"")
        try:
            outcome = self.user_functions.invoke(name, event)
        except UnsupportedFunction as error:
            raise AwsError("InvalidRuntimeException", str(error)) from error
        return _answer(outcome.result, outcome.error)


def _answer(result: Any, error: dict[str, Any] | None) -> RawResponse:
    """RequestResponse's answer: the result, or the function's error document flagged as unhandled."""
    headers = {"X-Amz-Executed-Version": "$LATEST"}
    if error is not None:
        return RawResponse(200, json.dumps(error).encode(), headers | {"X-Amz-Function-Error": "Unhandled"})
    return RawResponse(200, json.dumps(result).encode(), headers)
