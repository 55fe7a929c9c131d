"""The constraints botocore's service models declare but its client does not check (string length and
pattern, number range, list and map size): every request a handler makes in a test must satisfy them, as
AWS's API would require (an AWS endpoint rejects such a request with a ValidationException)."""

from __future__ import annotations

from functools import cache
from typing import Any

import regex
from botocore.model import Shape


@cache
def _pattern(expression: str) -> regex.Pattern[str]:
    """botocore's patterns are Java regular expressions: `regex` reads their \\p{...} classes; Java writes a
    character above U+FFFF as a surrogate pair, which a Python range spells as the code points."""
    return regex.compile(expression.replace(r"\uD800\uDC00-\uDBFF\uDFFF", r"\U00010000-\U0010FFFF"))


def violations(shape: Shape | None, value: Any, path: str = "") -> list[str]:
    """What in `value` breaks the constraints of `shape` (and of its members), each with its path."""
    if shape is None:
        return []
    found: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():  # type: ignore[attr-defined]
            if name in value:
                found += violations(member, value[name], f"{path}.{name}" if path else name)
    elif kind == "list" and isinstance(value, list):
        found += _size(meta, len(value), path)
        for index, item in enumerate(value):
            found += violations(shape.member, item, f"{path}[{index}]")  # type: ignore[attr-defined]
    elif kind == "map" and isinstance(value, dict):
        found += _size(meta, len(value), path)
        for key, item in value.items():
            found += violations(shape.key, key, f"{path}.<key>")  # type: ignore[attr-defined]
            found += violations(shape.value, item, f"{path}.{key}")  # type: ignore[attr-defined]
    elif kind == "string" and isinstance(value, str):
        found += _size(meta, len(value), path)
        if "pattern" in meta and not _pattern(meta["pattern"]).fullmatch(value):
            found.append(f"{path}: {value!r} does not match {meta['pattern']!r}")
        if shape.enum and value not in shape.enum:
            found.append(f"{path}: {value!r} is not one of {shape.enum}")
    elif kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        if "min" in meta and value < meta["min"]:
            found.append(f"{path}: {value} < {meta['min']}")
        if "max" in meta and value > meta["max"]:
            found.append(f"{path}: {value} > {meta['max']}")
    return found


def _size(meta: dict[str, Any], size: int, path: str) -> list[str]:
    found = []
    if "min" in meta and size < meta["min"]:
        found.append(f"{path}: size {size} < {meta['min']}")
    if "max" in meta and size > meta["max"]:
        found.append(f"{path}: size {size} > {meta['max']}")
    return found


def request_violations(client: Any, operation: str, params: dict[str, Any]) -> list[str]:
    model = client.meta.service_model.operation_model(operation)
    return [
        f"{model.service_model.service_name}:{operation} {problem}"
        for problem in violations(model.input_shape, params)
    ]
