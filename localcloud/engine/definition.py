"""The parsed pipeline definition: steps and their dependencies, parameters, and condition evaluation."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from localcloud.engine.expressions import ExpressionError, ResolutionContext, referenced_steps, resolve

SUPPORTED_STEP_TYPES = frozenset(
    {"Processing", "Training", "Tuning", "Condition", "Fail", "RegisterModel", "Model", "Transform", "Lambda"}
)


class DefinitionError(Exception):
    """A definition or a set of parameters that this engine (like SageMaker) cannot run."""


@dataclass(frozen=True)
class CacheConfig:
    """A step's ``CacheConfig``: on or off, and how long a cached result stays usable."""

    enabled: bool
    expire_after: dt.timedelta | None

    @classmethod
    def parse(cls, raw: dict[str, Any] | None) -> CacheConfig:
        if not raw or not raw.get("Enabled"):
            return cls(False, None)
        expire = raw.get("ExpireAfter")
        return cls(True, parse_iso8601_duration(expire) if expire else None)


@dataclass(frozen=True)
class StepSpec:
    """One step of the definition; ``branch_of`` names the condition (and branch) that gates it."""

    name: str
    type: str
    arguments: dict[str, Any]
    depends_on: tuple[str, ...]
    cache: CacheConfig
    property_files: tuple[dict[str, Any], ...]
    raw: dict[str, Any]
    branch_of: tuple[str, bool] | None = None

    @property
    def upstream(self) -> frozenset[str]:
        """Every step this one needs to have succeeded: DependsOn and referenced properties/files."""
        names = set(self.depends_on) | referenced_steps(self.arguments)
        if self.branch_of is not None:
            names.add(self.branch_of[0])
        names.discard(self.name)
        return frozenset(names)


@dataclass
class PipelineDefinition:
    """A definition as CreatePipeline stored it."""

    parameters: list[dict[str, Any]]
    steps: dict[str, StepSpec]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def parse(cls, text: str | dict[str, Any]) -> PipelineDefinition:
        raw = json.loads(text) if isinstance(text, str) else text
        steps: dict[str, StepSpec] = {}
        for step in raw.get("Steps", []):
            _collect(step, None, steps)
        for spec in steps.values():
            unknown = spec.upstream - steps.keys()
            if unknown:
                raise DefinitionError(f"step {spec.name!r} depends on unknown step(s) {sorted(unknown)}")
        _check_acyclic(steps)
        return cls(parameters=list(raw.get("Parameters", [])), steps=steps, raw=raw)

    def resolve_parameters(self, given: list[dict[str, Any]] | None) -> dict[str, Any]:
        """Given values over defaults, typed as declared; a missing required one is an error."""
        declared = {p["Name"]: p for p in self.parameters}
        supplied = {p["Name"]: p.get("Value") for p in (given or [])}
        for name in supplied:
            if name not in declared:
                raise DefinitionError(f"Unknown parameter '{name}'")
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in supplied:
                values[name] = _typed(name, spec.get("Type", "String"), supplied[name])
            elif "DefaultValue" in spec:
                values[name] = _typed(name, spec.get("Type", "String"), spec["DefaultValue"])
            else:
                raise DefinitionError(f"Parameter '{name}' is undefined.")
            if values[name] == "":
                raise DefinitionError(
                    f'Parameter {name} value "" is too short (length: 0, required minimum: 1).'
                )
        return values


def _collect(step: dict[str, Any], branch_of: tuple[str, bool] | None, out: dict[str, StepSpec]) -> None:
    name, kind = step.get("Name"), step.get("Type")
    if not name or not kind:
        raise DefinitionError(f"a step needs Name and Type: {json.dumps(step)[:200]}")
    if kind not in SUPPORTED_STEP_TYPES:
        raise DefinitionError(f"Step type {kind} is not supported by the local engine (step {name!r})")
    if name in out:
        raise DefinitionError(f"duplicate step name {name!r}")
    arguments = step.get("Arguments", {})
    if kind == "Lambda":
        arguments = {"FunctionArn": step.get("FunctionArn"), **step.get("Arguments", {})}
    out[name] = StepSpec(
        name=name,
        type=kind,
        arguments=arguments if kind != "Condition" else {"Conditions": arguments.get("Conditions", [])},
        depends_on=tuple(step.get("DependsOn", [])),
        cache=CacheConfig.parse(step.get("CacheConfig")),
        property_files=tuple(step.get("PropertyFiles", [])),
        raw=step,
        branch_of=branch_of,
    )
    if kind == "Condition":
        for child in arguments.get("IfSteps", []):
            _collect(child, (name, True), out)
        for child in arguments.get("ElseSteps", []):
            _collect(child, (name, False), out)


def _check_acyclic(steps: dict[str, StepSpec]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise DefinitionError(f"cycle between steps: {' -> '.join([*trail, name])}")
        state[name] = 1
        for upstream in steps[name].upstream:
            visit(upstream, [*trail, name])
        state[name] = 2

    for name in steps:
        visit(name, [])


def _typed(name: str, kind: str, value: Any) -> Any:
    try:
        if kind == "Integer":
            return int(value)
        if kind == "Float":
            return float(value)
        if kind == "Boolean":
            return value if isinstance(value, bool) else str(value).lower() == "true"
        return str(value)
    except (TypeError, ValueError):
        raise DefinitionError(f"Unexpected type for parameter '{name}': {value!r} is not a {kind}") from None


_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_iso8601_duration(text: str) -> dt.timedelta:
    """``P30D``, ``PT1H``, ``P1W``... as a timedelta (months and years are not allowed by SageMaker)."""
    match = _DURATION.match(text)
    if match is None or text in ("P", "PT"):
        raise DefinitionError(f"ExpireAfter {text!r} is not an ISO 8601 duration")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    return dt.timedelta(**parts)


_COMPARE = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Numbers compare as numbers even when one side came from JSON or a parameter as text."""
    if (isinstance(left, (int, float)) and isinstance(right, str)) or (
        isinstance(right, (int, float)) and isinstance(left, str)
    ):
        try:
            return float(left), float(right)
        except ValueError:
            return str(left), str(right)
    return left, right


def evaluate_condition(condition: dict[str, Any], ctx: ResolutionContext) -> bool:
    """One condition of a ConditionStep, in the shapes the SDK emits (comparisons, In, Not, Or)."""
    kind = condition.get("Type")
    if kind in _COMPARE:
        left, right = _comparable(resolve(condition["LeftValue"], ctx), resolve(condition["RightValue"], ctx))
        try:
            return bool(_COMPARE[kind](left, right))
        except TypeError:
            raise ExpressionError(f"cannot compare {left!r} with {right!r} ({kind})") from None
    if kind == "In":
        query = resolve(condition["QueryValue"], ctx)
        return any(
            _comparable(query, resolve(v, ctx))[0] == _comparable(query, resolve(v, ctx))[1]
            for v in condition.get("Values", [])
        )
    if kind == "Not":
        return not evaluate_condition(condition["Condition"], ctx)
    if kind == "Or":
        return any(evaluate_condition(c, ctx) for c in condition.get("Conditions", []))
    raise ExpressionError(f"unknown condition type {kind!r}")
