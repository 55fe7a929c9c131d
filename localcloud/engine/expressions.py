"""Evaluation of the expression language of SageMaker pipeline definitions.

Covers what the SDK emits: ``{"Get": "Parameters.X"}``, ``{"Get": "Execution.X"}``,
``{"Get": "Steps.S.<property path>"}``, ``{"Std:Join": {"On", "Values"}}`` and
``{"Std:JsonGet": {"PropertyFile" | "S3Uri", "Path"}}``, anywhere inside a step's arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ExpressionError(Exception):
    """An expression that cannot be evaluated (unknown parameter, missing property, bad path)."""


PathPart = str | int

_PATH_TOKEN = re.compile(r"""\.?([A-Za-z_][A-Za-z0-9_:\-]*)|\[(\d+)\]|\[['"]([^'"]*)['"]\]""")


def parse_path(path: str) -> list[PathPart]:
    """Split a property path such as ``Outputs['train'].S3Output.S3Uri`` or ``a[0].b`` into parts.

    Integers index lists; strings select a dict member, or (on a list) the element whose ``*Name``
    member equals the string, as SageMaker's named property lists (``Outputs['train']``) do.
    """
    parts: list[PathPart] = []
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None or match.end() == position:
            raise ExpressionError(f"cannot parse property path {path!r} at {path[position:]!r}")
        name, index, key = match.groups()
        if name is not None:
            parts.append(name)
        elif index is not None:
            parts.append(int(index))
        else:
            parts.append(key)
        position = match.end()
    return parts


def _select_named(items: list[Any], key: str) -> Any:
    for item in items:
        if isinstance(item, dict) and any(
            member.endswith("Name") and value == key for member, value in item.items()
        ):
            # a Lambda or callback step's OutputParameters ([{Name, Value}]) name their values: the SDK's
            # `step.properties.Outputs["x"]` is `OutputParameters['x']`, and it stands for the value
            return item["Value"] if set(item) == {"Name", "Value"} else item
    raise KeyError(key)


def walk(document: Any, parts: list[PathPart], where: str) -> Any:
    """Follow ``parts`` into ``document``; ``where`` names the document in errors."""
    value = document
    for part in parts:
        try:
            if isinstance(part, int):
                value = value[part]
            elif isinstance(value, list):
                value = _select_named(value, part)
            else:
                value = value[part]
        except (KeyError, IndexError, TypeError):
            raise ExpressionError(f"{where} has no property {_render(parts)}") from None
    return value


def _render(parts: list[PathPart]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


@dataclass
class ResolutionContext:
    """What expressions can see while one execution runs.

    ``step_properties(name)`` returns the describe-shaped properties of a finished step;
    ``property_file(step, name)`` returns the parsed JSON of a step's property file;
    ``read_s3_json(uri)`` reads a JSON document (for ``Std:JsonGet`` with ``S3Uri``).
    """

    parameters: dict[str, Any]
    execution: dict[str, Any]
    step_properties: Callable[[str], dict[str, Any]]
    property_file: Callable[[str, str], Any]
    read_s3_json: Callable[[str], Any] = field(default=lambda uri: _no_s3(uri))


def _no_s3(uri: str) -> Any:
    raise ExpressionError(f"no S3 reader to evaluate JsonGet on {uri}")


def resolve(value: Any, ctx: ResolutionContext) -> Any:
    """Evaluate every expression inside ``value`` (dicts and lists are walked; the input is not changed)."""
    if isinstance(value, list):
        return [resolve(item, ctx) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((key, argument),) = value.items()
        if key == "Get" and isinstance(argument, str):
            return _get(argument, ctx)
        if key == "Std:Join" and isinstance(argument, dict):
            separator = resolve(argument.get("On", ""), ctx)
            items = resolve(argument.get("Values", []), ctx)
            return str(separator).join(to_text(item) for item in items)
        if key == "Std:JsonGet" and isinstance(argument, dict):
            return _json_get(argument, ctx)
    return {key: resolve(item, ctx) for key, item in value.items()}


def to_text(value: Any) -> str:
    """How a value prints inside ``Std:Join`` and as a request string: JSON literals for bools and None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _get(reference: str, ctx: ResolutionContext) -> Any:
    kind, _, rest = reference.partition(".")
    if kind == "Parameters":
        if rest not in ctx.parameters:
            raise ExpressionError(f"Parameter '{rest}' is undefined.")
        return ctx.parameters[rest]
    if kind == "Execution":
        if rest not in ctx.execution:
            raise ExpressionError(f"unknown execution variable {rest!r}")
        value = ctx.execution[rest]
        return value() if callable(value) else value
    if kind == "Steps":
        step, _, path = rest.partition(".")
        if path.startswith("PropertyFiles."):
            # A bare PropertyFile reference only makes sense inside JsonGet; return a handle for it.
            return {"__property_file__": [step, path.split(".", 1)[1]]}
        return walk(ctx.step_properties(step), parse_path(path), f"step {step!r}")
    raise ExpressionError(f"unknown reference {reference!r}")


def _json_get(argument: dict[str, Any], ctx: ResolutionContext) -> Any:
    json_path = str(resolve(argument.get("Path", ""), ctx))
    if "PropertyFile" in argument:
        handle = resolve(argument["PropertyFile"], ctx)
        if not (isinstance(handle, dict) and "__property_file__" in handle):
            raise ExpressionError(
                f"JsonGet PropertyFile must reference Steps.X.PropertyFiles.Y, got {handle!r}"
            )
        step, name = handle["__property_file__"]
        document = ctx.property_file(step, name)
        where = f"property file {name!r} of step {step!r}"
    elif "S3Uri" in argument:
        uri = str(resolve(argument["S3Uri"], ctx))
        document = ctx.read_s3_json(uri)
        where = uri
    else:
        raise ExpressionError("Std:JsonGet needs PropertyFile or S3Uri")
    return walk(document, parse_path(json_path), where)


def referenced_steps(value: Any) -> set[str]:
    """Names of the steps whose properties or property files ``value`` reads."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= referenced_steps(item)
    elif isinstance(value, dict):
        get = value.get("Get")
        if len(value) == 1 and isinstance(get, str) and get.startswith("Steps."):
            found.add(get.split(".")[1])
        else:
            for item in value.values():
                found |= referenced_steps(item)
    return found
