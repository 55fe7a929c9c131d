"""Read template.yaml as the local cloud's single source of truth: parameters, functions, their rules.

Intrinsic functions are resolved against local values (account, region, parameter values and the physical
names the local cloud gives the stack's resources), the way CloudFormation would resolve them on deploy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cfnlint.decode import decode_str

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


class TemplateError(ValueError):
    """The template uses something the local cloud cannot resolve."""


@dataclass(frozen=True)
class EventRule:
    """One EventBridge rule that invokes a function, with its pattern resolved."""

    function: str
    name: str
    pattern: dict[str, Any]


@dataclass(frozen=True)
class FunctionSpec:
    """A Lambda function of the template: where its handler lives and what environment it gets."""

    logical_id: str
    code_uri: str
    handler: str
    environment: dict[str, str]
    timeout: int
    memory_mb: int
    rules: tuple[EventRule, ...] = field(default_factory=tuple)
    name: str = ""  # the physical function name (FunctionName, or the stack-derived one)
    # EventInvokeConfig: how often Lambda retries an asynchronous invocation, and where it then sends it
    maximum_retry_attempts: int = 2
    on_failure: str | None = None  # destination ARN
    runtime: str = "python3.12"
    layers: tuple[str, ...] = ()  # each layer's content directory (its ContentUri), in the template's order

    @property
    def module_path(self) -> str:
        """Relative path of the handler's module file (`functions/track/app.py`)."""
        module, _, _ = self.handler.rpartition(".")
        return f"{self.code_uri.rstrip('/')}/{module.replace('.', '/')}.py"

    @property
    def function_name(self) -> str:
        return self.handler.rpartition(".")[2]


@dataclass
class StackTemplate:
    """A parsed template with parameter values and physical resource names to resolve intrinsics with."""

    body: dict[str, Any]
    parameters: dict[str, str]
    physical_names: dict[str, str]
    attributes: dict[tuple[str, str], str]
    stack_name: str = "mlops-local"

    @classmethod
    def load(
        cls,
        path: Path,
        overrides: dict[str, str] | None = None,
        physical_names: dict[str, str] | None = None,
        attributes: dict[tuple[str, str], str] | None = None,
        stack_name: str = "mlops-local",
    ) -> StackTemplate:
        body, matches = decode_str(path.read_text())
        if body is None:
            raise TemplateError(f"{path}: {matches}")
        declared = body.get("Parameters", {})
        unknown = set(overrides or {}) - set(declared)
        if unknown:
            raise TemplateError(f"unknown template parameters: {sorted(unknown)}")
        parameters = {
            name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec
        } | dict(overrides or {})
        return cls(body, parameters, dict(physical_names or {}), dict(attributes or {}), stack_name)

    # -- intrinsic functions -------------------------------------------------------------------------

    def pseudo(self, name: str) -> str:
        values = {
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Region": REGION,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": "",
        }
        if name not in values:
            raise TemplateError(f"pseudo parameter {name} is not supported locally")
        return values[name]

    def ref(self, name: str) -> str:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.physical_names:
            return self.physical_names[name]
        if name in self.body.get("Resources", {}):
            return name
        raise TemplateError(f"!Ref {name}: no parameter or resource of that name")

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.body.get("Conditions", {})[name]))

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(item) for item in node if not _is_no_value(item)]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.ref(value)
            if key == "Fn::Sub":
                return self._sub(value)
            if key == "Fn::GetAtt":
                resource, attribute = value.split(".", 1) if isinstance(value, str) else value
                if (resource, attribute) not in self.attributes:
                    raise TemplateError(f"!GetAtt {resource}.{attribute} has no local value")
                return self.attributes[(resource, attribute)]
            if key == "Fn::Join":
                separator, items = value
                return separator.join(str(i) for i in self.resolve(items))
            if key == "Fn::Split":
                separator, text = value
                return str(self.resolve(text)).split(separator)
            if key == "Fn::Select":
                index, items = value
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::If":
                name, if_true, if_false = value
                return self.resolve(if_true if self.condition(name) else if_false)
            if key == "Fn::Equals":
                left, right = (self.resolve(v) for v in value)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(value[0])
            if key == "Fn::And":
                return all(self.resolve(v) for v in value)
            if key == "Fn::Or":
                return any(self.resolve(v) for v in value)
            if key == "Condition":
                return self.condition(value)
            if key == "Fn::FindInMap":
                mapping, top, second = (self.resolve(v) for v in value)
                return self.body["Mappings"][mapping][top][second]
        return {k: self.resolve(v) for k, v in node.items() if not _is_no_value(v)}

    def _sub(self, value: Any) -> str:
        text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
        resolved = {k: self.resolve(v) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in resolved:
                return str(resolved[name])
            if "." in name and not name.startswith("AWS::"):
                return str(self.resolve({"Fn::GetAtt": name}))
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    # -- what the local cloud needs ------------------------------------------------------------------

    def functions(self) -> list[FunctionSpec]:
        resources = self.body.get("Resources", {})
        globals_ = self.body.get("Globals", {}).get("Function", {})
        global_env = self.resolve(globals_.get("Environment", {}).get("Variables", {}))
        specs = []
        for logical_id, resource in resources.items():
            if resource.get("Type") != "AWS::Serverless::Function":
                continue
            if "Condition" in resource and not self.condition(resource["Condition"]):
                continue
            props = resource.get("Properties", {})
            env = global_env | self.resolve(props.get("Environment", {}).get("Variables", {}))
            rules = []
            for event_name, event in props.get("Events", {}).items():
                if event.get("Type") not in ("EventBridgeRule", "CloudWatchEvent"):
                    continue
                pattern = self.resolve(event.get("Properties", {}).get("Pattern", {}))
                rules.append(EventRule(function=logical_id, name=event_name, pattern=pattern))
            invoke_config = props.get("EventInvokeConfig") or {}
            on_failure = (invoke_config.get("DestinationConfig") or {}).get("OnFailure") or {}
            specs.append(
                FunctionSpec(
                    logical_id=logical_id,
                    code_uri=str(props.get("CodeUri", globals_.get("CodeUri", "."))),
                    handler=str(props.get("Handler", globals_.get("Handler"))),
                    environment={k: str(v) for k, v in env.items()},
                    timeout=int(props.get("Timeout", globals_.get("Timeout", 3))),
                    memory_mb=int(props.get("MemorySize", globals_.get("MemorySize", 128))),
                    rules=tuple(rules),
                    name=str(self.physical_names.get(logical_id) or logical_id),
                    # Lambda's default for asynchronous invocations is 2 retries (Lambda developer guide,
                    # "Configuring error handling for asynchronous invocation")
                    maximum_retry_attempts=int(invoke_config.get("MaximumRetryAttempts", 2)),
                    on_failure=str(self.resolve(on_failure["Destination"]))
                    if on_failure.get("Destination")
                    else None,
                    runtime=str(props.get("Runtime", globals_.get("Runtime", "python3.12"))),
                    layers=self._layer_contents(props.get("Layers", globals_.get("Layers", []))),
                )
            )
        return specs

    def _layer_contents(self, layers: list[Any]) -> tuple[str, ...]:
        """The content directories of a function's layers that this template builds
        (AWS::Serverless::LayerVersion's ContentUri); a layer given by ARN is not on this machine."""
        resources = self.body.get("Resources", {})
        found = []
        for layer in layers:
            target = resources.get(layer.get("Ref", "")) if isinstance(layer, dict) else None
            if target is None or target.get("Type") != "AWS::Serverless::LayerVersion":
                raise TemplateError(f"layer {layer!r} is not a layer of this template; it cannot run locally")
            found.append(str(target.get("Properties", {}).get("ContentUri", ".")))
        return tuple(found)


def _is_no_value(node: Any) -> bool:
    return node == {"Ref": "AWS::NoValue"}
