"""Reads template.yaml and resolves the intrinsics the tests need (Ref, Sub, GetAtt, If, FindInMap, ...)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK_NAME = "mlops-demo"


@dataclass(frozen=True)
class Intrinsic:
    """A short-form tag such as !Sub, kept as its long-form name and argument."""

    name: str
    value: Any


class _TemplateLoader(yaml.SafeLoader):
    pass


def _make_constructor(name: str):  # type: ignore[no-untyped-def]
    def construct(loader: yaml.Loader, node: yaml.Node) -> Intrinsic:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        return Intrinsic(name, value)

    return construct


for _tag in ("Ref", "Condition"):
    _TemplateLoader.add_constructor(f"!{_tag}", _make_constructor(_tag))
for _tag in (
    "Sub",
    "GetAtt",
    "If",
    "Equals",
    "Not",
    "And",
    "Or",
    "FindInMap",
    "Join",
    "Select",
    "Split",
    "ImportValue",
    "GetAZs",
    "Base64",
    "Contains",
):
    _TemplateLoader.add_constructor(f"!{_tag}", _make_constructor(f"Fn::{_tag}"))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_TemplateLoader)  # noqa: S506
    return data


def _as_intrinsic(node: Any) -> Intrinsic | None:
    """Long-form ({"Fn::Sub": ...}) and short-form (!Sub) intrinsics alike."""
    if isinstance(node, Intrinsic):
        return node
    if isinstance(node, Mapping) and len(node) == 1:
        ((key, value),) = node.items()
        if key == "Ref" or key == "Condition" or (isinstance(key, str) and key.startswith("Fn::")):
            if key == "Fn::GetAtt" and isinstance(value, str):
                value = value.split(".", 1)
            return Intrinsic(key, value)
    return None


@dataclass
class Resolver:
    """Evaluates a template fragment as CloudFormation would for one set of parameter values.

    Resource attributes are given the values AWS would produce for them, derived from the parameters, so an
    event pattern resolves to exactly what a deployed rule would hold.
    """

    template: dict[str, Any]
    overrides: Mapping[str, str] = field(default_factory=dict)
    account: str = ACCOUNT
    region: str = REGION
    stack_name: str = STACK_NAME
    # logical id -> the physical name (what Ref returns) a test gave that resource, e.g. a moto bucket
    physical: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = self.template.get("Parameters", {})
        unknown = set(self.overrides) - set(params)
        if unknown:
            raise KeyError(f"unknown parameters: {sorted(unknown)}")
        self.parameters: dict[str, Any] = {k: str(v.get("Default", "")) for k, v in params.items()}
        self.parameters.update(self.overrides)
        self.pseudo = {
            "AWS::AccountId": self.account,
            "AWS::Region": self.region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack_name,
            "AWS::NoValue": None,
        }
        self.conditions: dict[str, Any] = {}
        for name in self.template.get("Conditions", {}):
            self._condition(name)

    def _condition(self, name: str) -> Any:
        """A condition's value; one may name another (!Condition), so each is evaluated on first use."""
        if name not in self.conditions:
            self.conditions[name] = self.resolve(self.template["Conditions"][name])
        return self.conditions[name]

    # -- what AWS would return for Ref / GetAtt of our resources
    def _ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        resources = self.template["Resources"]
        if name not in resources:
            raise KeyError(f"Ref to unknown name {name!r}")
        kind = resources[name]["Type"]
        project = self.parameters["ProjectName"]
        arn = f"arn:aws:{{}}:{self.region}:{self.account}:{{}}"
        if name in self.physical:
            physical = self.physical[name]
            return arn.format("sns", physical) if kind == "AWS::SNS::Topic" else physical
        refs = {
            "AWS::CodeCommit::Repository": lambda: f"{self.parameters['RepositoryName']}-id",
            "AWS::SageMaker::ModelPackageGroup": lambda: arn.format(
                "sagemaker", f"model-package-group/{project}-models"
            ),
            "AWS::SNS::Topic": lambda: arn.format("sns", f"{self.stack_name}-{name}-ABC123"),
            "AWS::SQS::Queue": lambda: f"https://sqs.{self.region}.amazonaws.com/{self.account}/{name}",
            "AWS::CloudWatch::Alarm": lambda: self.resolve(resources[name]["Properties"]["AlarmName"]),
        }
        return refs.get(kind, lambda: f"{self.stack_name}-{name}-ABC123")()

    def _get_att(self, name: str, attribute: str) -> Any:
        project = self.parameters["ProjectName"]
        repo = self.parameters["RepositoryName"]
        values = {
            ("Repository", "Arn"): f"arn:aws:codecommit:{self.region}:{self.account}:{repo}",
            ("Repository", "Name"): repo,
            (
                "Repository",
                "CloneUrlHttp",
            ): f"https://git-codecommit.{self.region}.amazonaws.com/v1/repos/{repo}",
            (
                "ModelPackageGroup",
                "ModelPackageGroupArn",
            ): f"arn:aws:sagemaker:{self.region}:{self.account}:model-package-group/{project}-models",
        }
        if (name, attribute) in values:
            return values[(name, attribute)]
        kind = self.template["Resources"][name]["Type"]
        ref = str(self._ref(name))
        regional = f"arn:aws:{{}}:{self.region}:{self.account}:{{}}"
        # The ARN formats of the service authorization reference, built from the resource's Ref value.
        arns = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{ref}",
            "AWS::IAM::Role": f"arn:aws:iam::{self.account}:role/{ref}",
            "AWS::DynamoDB::Table": regional.format("dynamodb", f"table/{ref}"),
            "AWS::SQS::Queue": regional.format("sqs", ref.rsplit("/", 1)[-1]),
            "AWS::CloudWatch::Alarm": regional.format("cloudwatch", f"alarm:{ref}"),
            "AWS::KMS::Key": regional.format("kms", f"key/{ref}"),
        }
        if attribute == "Arn":
            return arns.get(kind, f"arn:aws:generic:{self.region}:{self.account}:{name}")
        if (kind, attribute) == ("AWS::SNS::Topic", "TopicName"):
            return ref.rsplit(":", 1)[-1]
        if (kind, attribute) == ("AWS::SQS::Queue", "QueueName"):
            return ref.rsplit("/", 1)[-1]
        return f"{self.stack_name}-{name}-{attribute}"

    def _sub(self, text: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            token = match.group(1)
            if token.startswith("!"):
                return "${" + token[1:] + "}"
            if token in variables:
                return str(variables[token])
            if "." in token and token.split(".", 1)[0] in self.template["Resources"]:
                return str(self._get_att(*token.split(".", 1)))
            return str(self._ref(token))

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        fn = _as_intrinsic(node)
        if fn is None:
            if isinstance(node, Mapping):
                return {k: self.resolve(v) for k, v in node.items()}
            if isinstance(
                node, list
            ):  # an item that resolves to AWS::NoValue is removed, as CloudFormation does
                return [value for value in (self.resolve(v) for v in node) if value is not None]
            return node
        name, value = fn.name, fn.value
        if name == "Ref":
            return self._ref(value)
        if name == "Condition":
            return self._condition(value)
        if name == "Fn::GetAtt":
            return self._get_att(value[0], value[1])
        if name == "Fn::Sub":
            if isinstance(value, str):
                return self._sub(value, {})
            text, variables = value
            return self._sub(text, {k: self.resolve(v) for k, v in variables.items()})
        if name == "Fn::If":
            condition, if_true, if_false = value
            return self.resolve(if_true if self._condition(condition) else if_false)
        if name == "Fn::Equals":
            left, right = (self.resolve(v) for v in value)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not self.resolve(value[0])
        if name == "Fn::And":
            return all(self.resolve(v) for v in value)
        if name == "Fn::Or":
            return any(self.resolve(v) for v in value)
        if name == "Fn::FindInMap":
            mapping, key, attribute = (self.resolve(v) for v in value)
            return self.template["Mappings"][mapping][key][attribute]
        if name == "Fn::Join":
            separator, items = value
            return separator.join(str(self.resolve(v)) for v in self.resolve(items))
        if name == "Fn::Select":
            index, items = value
            return self.resolve(items)[int(self.resolve(index))]
        if name == "Fn::Split":
            separator, text = value
            return str(self.resolve(text)).split(separator)
        raise NotImplementedError(f"intrinsic {name} is not resolved by the tests")


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def eventbridge_rules(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(function logical id, event name) -> the EventBridgeRule event's Properties, unresolved."""
    rules = {}
    for function_id, function in functions(template).items():
        for event_name, event in function["Properties"].get("Events", {}).items():
            if event["Type"] == "EventBridgeRule":
                rules[(function_id, event_name)] = event["Properties"]
    return rules
