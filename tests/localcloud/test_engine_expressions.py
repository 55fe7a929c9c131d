"""The engine's pure parts: expression evaluation, definition parsing and parameters, caching keys, search."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from localcloud.engine.caching import CacheEntry, StepCache, cache_key
from localcloud.engine.definition import DefinitionError, PipelineDefinition, parse_iso8601_duration
from localcloud.engine.expressions import (
    ExpressionError,
    ResolutionContext,
    parse_path,
    referenced_steps,
    resolve,
)
from localcloud.engine.tuning import HyperParameterSearch, TuningConfigError
from tests.pipeline.test_definition import REQUIRED_AT_START

DEFINITION = json.loads(
    (Path(__file__).resolve().parents[2] / "layers/shared/orchestrator/pipeline_definition.json").read_text()
)

PREPROCESS = {
    "ProcessingJobName": "pipelines-abc-PreprocessData-1",
    "ProcessingOutputConfig": {
        "Outputs": [
            {"OutputName": "train", "S3Output": {"S3Uri": "s3://b/pipelines/abc/PreprocessData/train"}},
            {"OutputName": "test", "S3Output": {"S3Uri": "s3://b/pipelines/abc/PreprocessData/test"}},
        ]
    },
}
TUNE = {"TrainingJobSummaries": [{"TrainingJobName": "best-job"}, {"TrainingJobName": "worse-job"}]}
CHECK = {"OutputParameters": [{"Name": "decision", "Value": "keep"}, {"Name": "size", "Value": "12050"}]}


def context(**parameters: Any) -> ResolutionContext:
    steps = {"PreprocessData": PREPROCESS, "TuneModel": TUNE, "CheckModel": CHECK}
    files = {("EvaluateModel", "EvaluationReport"): {"regression_metrics": {"rmse": {"value": 3.25}}}}

    def step_properties(name: str) -> dict[str, Any]:
        if name not in steps:
            raise ExpressionError(f"step {name!r} has not succeeded")
        return steps[name]

    def property_file(step: str, name: str) -> Any:
        if (step, name) not in files:
            raise ExpressionError(f"no property file {name}")
        return files[(step, name)]

    return ResolutionContext(
        parameters={"ArtifactBucket": "b", "RmseThreshold": 6.0, "TargetColumn": "MEDV", **parameters},
        execution={"PipelineExecutionId": "abc", "PipelineExecutionArn": "arn:x/execution/abc"},
        step_properties=step_properties,
        property_file=property_file,
        read_s3_json=lambda uri: {"uri": uri, "items": [{"v": 1}, {"v": 2}]},
    )


def test_join_of_parameters_and_execution_variables() -> None:
    # GIVEN the output URI expression the SDK synthesizes / WHEN resolved / THEN one S3 URI
    expression = {
        "Std:Join": {
            "On": "/",
            "Values": [
                "s3:/",
                {"Get": "Parameters.ArtifactBucket"},
                "pipelines",
                {"Get": "Execution.PipelineExecutionId"},
                "PreprocessData",
                "train",
            ],
        }
    }
    assert resolve(expression, context()) == "s3://b/pipelines/abc/PreprocessData/train"


def test_named_and_indexed_property_paths() -> None:
    # GIVEN properties of finished steps / WHEN read by named list key and by index / THEN the right member
    ctx = context()
    named = {"Get": "Steps.PreprocessData.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}
    indexed = {"Get": "Steps.TuneModel.TrainingJobSummaries[0].TrainingJobName"}
    assert resolve(named, ctx) == "s3://b/pipelines/abc/PreprocessData/test"
    assert resolve(indexed, ctx) == "best-job"
    assert parse_path("Outputs['train'].S3Output.S3Uri") == ["Outputs", "train", "S3Output", "S3Uri"]
    assert parse_path("TrainingJobSummaries[1].TrainingJobName") == [
        "TrainingJobSummaries",
        1,
        "TrainingJobName",
    ]


def test_a_lambda_steps_named_output_is_its_value() -> None:
    # GIVEN a LambdaStep's outputs, as ListPipelineExecutionSteps shows them ([{Name, Value}])
    # WHEN the SDK's `step.properties.Outputs["decision"]` (OutputParameters['decision']) is read
    # THEN it is the value a condition compares, while other named lists still yield their member
    ctx = context()
    assert resolve({"Get": "Steps.CheckModel.OutputParameters['decision']"}, ctx) == "keep"
    assert resolve({"Get": "Steps.CheckModel.OutputParameters['size']"}, ctx) == "12050"
    named = {"Get": "Steps.PreprocessData.ProcessingOutputConfig.Outputs['train']"}
    assert resolve(named, ctx)["OutputName"] == "train"


def test_missing_property_names_the_step_and_path() -> None:
    # GIVEN a path that does not exist / WHEN resolved / THEN the error says which step and property
    with pytest.raises(ExpressionError, match=r"step 'TuneModel' has no property TrainingJobSummaries\[5\]"):
        resolve({"Get": "Steps.TuneModel.TrainingJobSummaries[5].TrainingJobName"}, context())


def test_json_get_on_property_file_and_on_s3_uri() -> None:
    # GIVEN the quality gate's JsonGet, and a JsonGet on an S3 URI / WHEN resolved / THEN the JSON values
    ctx = context()
    gate = {
        "Std:JsonGet": {
            "PropertyFile": {"Get": "Steps.EvaluateModel.PropertyFiles.EvaluationReport"},
            "Path": "regression_metrics.rmse.value",
        }
    }
    assert resolve(gate, ctx) == 3.25
    on_s3 = {
        "Std:JsonGet": {
            "S3Uri": {"Std:Join": {"On": "/", "Values": ["s3://b", "x.json"]}},
            "Path": "items[1].v",
        }
    }
    assert resolve(on_s3, ctx) == 2


def test_fail_message_joins_numbers_like_sagemaker() -> None:
    # GIVEN the FailStep message of our definition / WHEN resolved / THEN numbers print plainly
    condition = next(s for s in DEFINITION["Steps"] if s["Type"] == "Condition")
    message = condition["Arguments"]["ElseSteps"][0]["Arguments"]["ErrorMessage"]
    assert resolve(message, context()) == "Test RMSE 3.25 is above the quality threshold 6.0"


def test_unknown_parameter_reference_is_an_error() -> None:
    with pytest.raises(ExpressionError, match="Parameter 'Nope' is undefined"):
        resolve({"Get": "Parameters.Nope"}, context())


def test_dependencies_come_from_references_depends_on_and_condition_branches() -> None:
    # GIVEN the synthesized definition / WHEN parsed / THEN each step's upstream steps are what it reads
    definition = PipelineDefinition.parse(DEFINITION)
    upstream = {name: set(step.upstream) for name, step in definition.steps.items()}
    assert upstream == {
        "PreprocessData": set(),
        "BaselineData": {"PreprocessData"},
        "TuneModel": {"PreprocessData"},
        "EvaluateModel": {"TuneModel", "PreprocessData"},
        "CheckQuality": {"EvaluateModel"},
        "RegisterModel-RegisterModel": {"CheckQuality", "TuneModel", "EvaluateModel", "BaselineData"},
        "FailQualityGate": {"CheckQuality", "EvaluateModel"},
    }
    assert definition.steps["RegisterModel-RegisterModel"].branch_of == ("CheckQuality", True)
    assert definition.steps["FailQualityGate"].branch_of == ("CheckQuality", False)
    assert referenced_steps({"a": [{"Get": "Steps.X.Y"}, {"Get": "Parameters.Z"}]}) == {"X"}


def test_parameters_take_given_values_over_typed_defaults() -> None:
    # GIVEN some parameters given (as strings, the way the API carries them)
    definition = PipelineDefinition.parse(DEFINITION)
    given = [{"Name": n, "Value": "v"} for n in sorted(REQUIRED_AT_START)] + [
        {"Name": "MaxTuningJobs", "Value": "12"}
    ]
    # WHEN resolved / THEN given values win, defaults fill the rest, each typed as declared
    values = definition.resolve_parameters(given)
    assert values["MaxTuningJobs"] == 12 and values["MaxParallelTuningJobs"] == 2
    assert values["RmseThreshold"] == 6.0 and isinstance(values["RmseThreshold"], float)
    assert values["TargetColumn"] == "MEDV"


def test_missing_required_unknown_and_mistyped_parameters_are_rejected() -> None:
    definition = PipelineDefinition.parse(DEFINITION)
    with pytest.raises(DefinitionError, match=r"Parameter 'InputDataUri' is undefined\."):
        definition.resolve_parameters([])
    with pytest.raises(DefinitionError, match="Unknown parameter 'Bogus'"):
        definition.resolve_parameters([{"Name": "Bogus", "Value": "1"}])
    small = PipelineDefinition.parse(
        {"Parameters": [{"Name": "N", "Type": "Integer", "DefaultValue": 1}], "Steps": []}
    )
    with pytest.raises(DefinitionError, match="'N'"):
        small.resolve_parameters([{"Name": "N", "Value": "many"}])


def test_cycles_unknown_steps_and_unsupported_types_are_rejected() -> None:
    fail = {"Type": "Fail", "Arguments": {"ErrorMessage": "x"}}
    with pytest.raises(DefinitionError, match="cycle"):
        PipelineDefinition.parse(
            {"Steps": [{"Name": "A", "DependsOn": ["B"], **fail}, {"Name": "B", "DependsOn": ["A"], **fail}]}
        )
    with pytest.raises(DefinitionError, match="unknown step"):
        PipelineDefinition.parse({"Steps": [{"Name": "A", "DependsOn": ["Z"], **fail}]})
    with pytest.raises(DefinitionError, match="EMR is not supported"):
        PipelineDefinition.parse({"Steps": [{"Name": "A", "Type": "EMR", "Arguments": {}}]})


def test_expire_after_durations() -> None:
    assert parse_iso8601_duration("P30D") == dt.timedelta(days=30)
    assert parse_iso8601_duration("PT1H30M") == dt.timedelta(hours=1, minutes=30)
    assert parse_iso8601_duration("P1W") == dt.timedelta(weeks=1)
    with pytest.raises(DefinitionError):
        parse_iso8601_duration("30 days")


def test_cache_key_is_the_attributes_aws_lists_not_what_the_uris_hold() -> None:
    # AWS: SageMaker developer guide, pipelines-default-keys. Processing reruns on a change of
    # AppSpecification, Environment or ProcessingInputs; nothing else, and never on S3 contents.
    def arguments(output: str = "s3://b/run1/o", code: str = "s3://b/code/1", **extra: Any) -> dict[str, Any]:
        return {
            "AppSpecification": {"ImageUri": "sklearn", "ContainerEntrypoint": ["python3", "p.py"]},
            "Environment": {"DATA_VERSION": ""},
            "ProcessingInputs": [{"InputName": "code", "S3Input": {"S3Uri": code}}],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "o", "S3Output": {"S3Uri": output}}]},
            "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}},
            **extra,
        }

    key = cache_key("Processing", arguments())
    # outputs, resources and role are not key attributes
    assert cache_key("Processing", arguments(output="s3://b/run2/o")) == key
    resized = arguments()
    resized["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.m5.xlarge"
    assert cache_key("Processing", resized) == key
    assert cache_key("Processing", arguments(RoleArn="arn:aws:iam::1:role/other")) == key
    # each key attribute is
    assert cache_key("Processing", arguments(code="s3://b/code/2")) != key
    assert cache_key("Processing", arguments(Environment={"DATA_VERSION": "schedule:2026"})) != key
    assert cache_key("Processing", arguments(AppSpecification={"ImageUri": "other"})) != key
    # the type is part of the key
    assert cache_key("Transform", arguments()) != key


def test_a_tuning_steps_key_takes_only_the_training_definitions_listed_children() -> None:
    definition = {
        "AlgorithmSpecification": {"TrainingImage": "tf"},
        "StaticHyperParameters": {"epochs": "5"},
        "InputDataConfig": [{"ChannelName": "train"}],
        "OutputDataConfig": {"S3OutputPath": "s3://b/run1"},
        "ResourceConfig": {"InstanceType": "ml.m5.large"},
    }
    arguments = {
        "HyperParameterTuningJobConfig": {"Strategy": "Bayesian"},
        "TrainingJobDefinition": definition,
    }
    key = cache_key("Tuning", arguments)
    moved = {**definition, "OutputDataConfig": {"S3OutputPath": "s3://b/run2"}, "ResourceConfig": {}}
    assert cache_key("Tuning", {**arguments, "TrainingJobDefinition": moved}) == key
    retuned = {**definition, "StaticHyperParameters": {"epochs": "6"}}
    assert cache_key("Tuning", {**arguments, "TrainingJobDefinition": retuned}) != key
    assert cache_key("Tuning", {**arguments, "HyperParameterTuningJobConfig": {"Strategy": "Random"}}) != key


def test_cache_entries_expire() -> None:
    cache = StepCache()
    finished = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    cache.store("p", "S", CacheEntry("k", "arn:1", finished, {}, {}, {}))
    assert cache.lookup("p", "S", "k", dt.timedelta(days=30), now=finished + dt.timedelta(days=1)) is not None
    assert cache.lookup("p", "S", "k", dt.timedelta(days=30), now=finished + dt.timedelta(days=31)) is None
    assert cache.lookup("p", "S", "other", None) is None


def test_search_samples_every_range_type_within_bounds() -> None:
    # GIVEN continuous (log, linear, reverse-log), integer and categorical ranges
    ranges = {
        "ContinuousParameterRanges": [
            {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.2", "ScalingType": "Logarithmic"},
            {"Name": "dropout", "MinValue": "0.0", "MaxValue": "0.5", "ScalingType": "Linear"},
            {"Name": "momentum", "MinValue": "0.9", "MaxValue": "0.999", "ScalingType": "ReverseLogarithmic"},
        ],
        "IntegerParameterRanges": [
            {"Name": "epochs", "MinValue": "5", "MaxValue": "30", "ScalingType": "Auto"}
        ],
        "CategoricalParameterRanges": [{"Name": "act", "Values": ["relu", "tanh"]}],
    }
    search = HyperParameterSearch(ranges, "Minimize", max_trials=12, seed=3)
    # WHEN asked for trials / THEN every value is a string inside its range
    for _ in range(12):
        trial = search.ask()
        values = trial.hyper_parameters
        assert 0.001 <= float(values["lr"]) <= 0.2
        assert 0.0 <= float(values["dropout"]) <= 0.5
        assert 0.9 <= float(values["momentum"]) <= 0.999
        assert 5 <= int(values["epochs"]) <= 30 and values["act"] in ("relu", "tanh")
        search.tell(trial, float(values["lr"]))


def test_search_is_reproducible_for_a_seed() -> None:
    ranges = {"IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "1000"}]}

    def draws(seed: int) -> list[str]:
        search = HyperParameterSearch(ranges, "Maximize", max_trials=6, seed=seed)
        out = []
        for _ in range(6):
            trial = search.ask()
            out.append(trial.hyper_parameters["n"])
            search.tell(trial, float(trial.hyper_parameters["n"]))
        return out

    assert draws(1) == draws(1) and draws(1) != draws(2)


def test_bad_ranges_are_rejected() -> None:
    with pytest.raises(TuningConfigError, match="Logarithmic"):
        HyperParameterSearch(
            {
                "ContinuousParameterRanges": [
                    {"Name": "x", "MinValue": "0", "MaxValue": "1", "ScalingType": "Logarithmic"}
                ]
            },
            "Minimize",
            4,
        )
    with pytest.raises(TuningConfigError, match="no hyper-parameter"):
        HyperParameterSearch({}, "Minimize", 4)
    with pytest.raises(TuningConfigError, match="Grid"):
        HyperParameterSearch(
            {"IntegerParameterRanges": [{"Name": "n", "MinValue": "1", "MaxValue": "2"}]},
            "Minimize",
            4,
            strategy="Grid",
        )
