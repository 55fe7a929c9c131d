"""Lambda steps: Invoke (RequestResponse) of the step's function; its OutputParameters from the answer."""

from __future__ import annotations

import json
from typing import Any

from localcloud.engine.expressions import ResolutionContext, to_text
from localcloud.engine.steps.base import StepExecutor, StepFailure, register


@register
class LambdaStepExecutor(StepExecutor):
    step_type = "Lambda"

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        engine, spec, step = self.engine, self.spec, self.step
        function_arn = arguments.pop("FunctionArn")
        reply = engine.client("lambda").invoke(
            FunctionName=function_arn, Payload=json.dumps(arguments).encode()
        )
        payload = reply["Payload"].read()
        if reply.get("FunctionError"):
            raise StepFailure(f"Lambda function failed: {payload.decode(errors='replace')[:900]}")
        document = json.loads(payload or b"{}")
        outputs = []
        for declared in spec.raw.get("OutputParameters", []):
            output_name = declared["OutputName"]
            if output_name not in document:
                raise StepFailure(f"Lambda output {output_name!r} is missing from the function's response")
            outputs.append({"Name": output_name, "Value": to_text(document[output_name])})
        step.metadata = {"Lambda": {"Arn": function_arn, "OutputParameters": outputs}}
        step.properties = {"OutputParameters": outputs}
