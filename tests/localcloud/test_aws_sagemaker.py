"""SageMaker on the embedded AWS: the APIs moto lacks or gets wrong, and the events SageMaker emits."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::123456789012:role/sagemaker"
AWS_EXAMPLES = Path(__file__).resolve().parents[1] / "aws_examples"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tfs:latest"
DEFINITION = json.dumps({"Version": "2020-12-01", "Parameters": [], "Steps": []})


@pytest.fixture
def pipeline(client, unique):
    name = unique("pipeline")
    client("sagemaker").create_pipeline(PipelineName=name, PipelineDefinition=DEFINITION, RoleArn=ROLE)
    return name


def test_repeated_client_request_token_returns_the_same_execution(client, pipeline):
    # GIVEN a pipeline and a start request with a token
    sagemaker = client("sagemaker")
    token = str(uuid.uuid4())

    # WHEN the same request is sent twice (a retried or redelivered start)
    first = sagemaker.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=token)
    second = sagemaker.start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=token)

    # THEN SageMaker answers with the same execution, and only one exists, executing
    assert first["PipelineExecutionArn"] == second["PipelineExecutionArn"]
    summaries = sagemaker.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]
    assert [s["PipelineExecutionArn"] for s in summaries] == [first["PipelineExecutionArn"]]
    assert summaries[0]["PipelineExecutionStatus"] == "Executing"


def test_different_tokens_start_different_executions_newest_first(client, pipeline):
    sagemaker = client("sagemaker")

    first = sagemaker.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    second = sagemaker.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]

    summaries = sagemaker.list_pipeline_executions(PipelineName=pipeline)["PipelineExecutionSummaries"]
    assert first != second
    assert [s["PipelineExecutionArn"] for s in summaries] == [second, first]


def test_engine_listener_is_told_of_each_new_execution_once(client, embedded_aws, pipeline):
    started: list[str] = []
    embedded_aws.add_listener(
        "sagemaker",
        "StartPipelineExecution",
        lambda params, response: (
            started.append(response["PipelineExecutionArn"]) if params["PipelineName"] == pipeline else None
        ),
    )
    token = str(uuid.uuid4())

    arn = client("sagemaker").start_pipeline_execution(PipelineName=pipeline, ClientRequestToken=token)[
        "PipelineExecutionArn"
    ]

    assert started == [arn]


def test_stop_moves_a_running_execution_to_stopping_and_status_changes_emit_events(
    client, embedded_aws, pipeline, events
):
    sagemaker = client("sagemaker")
    arn = sagemaker.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]

    sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=str(uuid.uuid4()))
    embedded_aws.sagemaker.set_pipeline_execution_status(arn, "Stopped")

    assert (
        sagemaker.describe_pipeline_execution(PipelineExecutionArn=arn)["PipelineExecutionStatus"]
        == "Stopped"
    )
    changes = events.of("SageMaker Model Building Pipeline Execution Status Change", pipelineExecutionArn=arn)
    assert [
        (e["detail"]["previousPipelineExecutionStatus"], e["detail"]["currentPipelineExecutionStatus"])
        for e in changes
    ] == [("Executing", "Stopping"), ("Stopping", "Stopped")]
    assert "executionEndTime" in changes[-1]["detail"]
    with pytest.raises(ClientError) as raised:
        sagemaker.stop_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken=str(uuid.uuid4()))
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_list_pipeline_execution_steps_shows_the_steps_the_engine_recorded(client, embedded_aws, pipeline):
    sagemaker = client("sagemaker")
    arn = sagemaker.start_pipeline_execution(PipelineName=pipeline)["PipelineExecutionArn"]
    embedded_aws.sagemaker.put_pipeline_execution_step(
        arn,
        {
            "StepName": "PreprocessData",
            "StepStatus": "Succeeded",
            "StartTime": 1_700_000_000,
            "Metadata": {
                "ProcessingJob": {"Arn": "arn:aws:sagemaker:us-east-1:123456789012:processing-job/p"}
            },
        },
    )
    embedded_aws.sagemaker.put_pipeline_execution_step(
        arn, {"StepName": "TuneModel", "StepStatus": "Executing", "StartTime": 1_700_000_100}
    )

    steps = sagemaker.list_pipeline_execution_steps(PipelineExecutionArn=arn)["PipelineExecutionSteps"]

    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [
        ("TuneModel", "Executing"),
        ("PreprocessData", "Succeeded"),
    ]
    assert steps[1]["Metadata"]["ProcessingJob"]["Arn"].endswith("processing-job/p")


def test_lineage_entities_and_associations_round_trip(client):
    # GIVEN an artifact for a commit, a context for an endpoint and an action for an approval
    sagemaker = client("sagemaker")
    suffix = uuid.uuid4().hex[:8]
    artifact = sagemaker.create_artifact(
        ArtifactName=f"commit-{suffix}",
        ArtifactType="Commit",
        Source={"SourceUri": f"codecommit://repo/{suffix}"},
        Properties={"branch": "main"},
    )["ArtifactArn"]
    context = sagemaker.create_context(
        ContextName=f"endpoint-{suffix}",
        ContextType="Endpoint",
        Source={"SourceUri": f"arn:endpoint/{suffix}"},
    )["ContextArn"]
    action = sagemaker.create_action(
        ActionName=f"approval-{suffix}",
        ActionType="ModelApproval",
        Source={"SourceUri": f"arn:model-package/{suffix}"},
        Status="Completed",
    )["ActionArn"]

    # WHEN they are associated
    sagemaker.add_association(SourceArn=artifact, DestinationArn=action, AssociationType="ContributedTo")
    sagemaker.add_association(SourceArn=action, DestinationArn=context, AssociationType="Produced")

    # THEN lists and describes show them, and associations can be followed both ways
    assert sagemaker.describe_artifact(ArtifactArn=artifact)["Properties"] == {"branch": "main"}
    assert sagemaker.describe_context(ContextName=f"endpoint-{suffix}")["ContextArn"] == context
    assert sagemaker.describe_action(ActionName=f"approval-{suffix}")["Status"] == "Completed"
    by_uri = sagemaker.list_artifacts(SourceUri=f"codecommit://repo/{suffix}")["ArtifactSummaries"]
    assert [a["ArtifactArn"] for a in by_uri] == [artifact]
    assert context in [
        c["ContextArn"] for c in sagemaker.list_contexts(ContextType="Endpoint")["ContextSummaries"]
    ]
    assert action in [
        a["ActionArn"] for a in sagemaker.list_actions(ActionType="ModelApproval")["ActionSummaries"]
    ]
    downstream = sagemaker.list_associations(SourceArn=action)["AssociationSummaries"]
    assert [(a["DestinationArn"], a["AssociationType"], a["DestinationType"]) for a in downstream] == [
        (context, "Produced", "Endpoint")
    ]
    upstream = sagemaker.list_associations(DestinationArn=action)["AssociationSummaries"]
    assert [(a["SourceArn"], a["SourceType"]) for a in upstream] == [(artifact, "Commit")]


def test_lineage_errors_match_sagemaker(client):
    sagemaker = client("sagemaker")
    name = f"ctx-{uuid.uuid4().hex[:8]}"
    context = sagemaker.create_context(ContextName=name, ContextType="T", Source={"SourceUri": "u"})[
        "ContextArn"
    ]

    with pytest.raises(ClientError) as duplicate:
        sagemaker.create_context(ContextName=name, ContextType="T", Source={"SourceUri": "u"})
    with pytest.raises(ClientError) as dangling:
        sagemaker.add_association(SourceArn=context, DestinationArn=context.replace(name, "missing"))
    with pytest.raises(ClientError) as missing:
        sagemaker.describe_context(ContextName="missing-context")

    assert duplicate.value.response["Error"]["Code"] == "ValidationException"
    assert dangling.value.response["Error"]["Code"] == "ResourceNotFound"
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"


@pytest.fixture
def package_group(client, unique):
    name = unique("group")
    client("sagemaker").create_model_package_group(ModelPackageGroupName=name)
    return name


def _create_package(client, group):
    return client("sagemaker").create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="PendingManualApproval",
        CustomerMetadataProperties={"commit": "abc"},
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )["ModelPackageArn"]


def test_creating_and_approving_a_package_emit_model_package_state_changes(client, package_group, events):
    # GIVEN a registered package, pending approval
    arn = _create_package(client, package_group)

    # WHEN a reviewer approves it through the API
    client("sagemaker").update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="looks good"
    )

    # THEN EventBridge gets the creation and the approval, shaped as AWS's documented example
    # (tests/aws_examples/sagemaker_model_package_state_change.json): its fields only, ISO times, and
    # UpdatedModelPackageFields naming what the update set
    changes = events.of("SageMaker Model Package State Change", ModelPackageGroupName=package_group)
    assert [e["detail"]["ModelApprovalStatus"] for e in changes] == ["PendingManualApproval", "Approved"]
    approved = changes[-1]
    assert approved["source"] == "aws.sagemaker" and approved["resources"] == [arn]
    assert approved["detail"]["ModelPackageArn"] == arn
    assert approved["detail"]["ModelPackageVersion"] == 1
    assert approved["detail"]["ModelPackageStatus"] == "Completed"
    assert approved["detail"]["UpdatedModelPackageFields"] == ["ModelApprovalStatus", "ApprovalDescription"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", approved["detail"]["CreationTime"])
    assert approved["detail"]["InferenceSpecification"]["Containers"][0]["Image"] == IMAGE
    documented = json.loads((AWS_EXAMPLES / "sagemaker_model_package_state_change.json").read_text())
    assert set(approved["detail"]) <= set(documented["detail"])


def test_updating_only_metadata_keeps_the_approval_and_says_what_changed(client, package_group, events):
    arn = _create_package(client, package_group)
    sagemaker = client("sagemaker")
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")

    sagemaker.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"deployed": "yes"})

    package = sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"] == {"commit": "abc", "deployed": "yes"}
    changes = events.of("SageMaker Model Package State Change", ModelPackageArn=arn)
    assert [e["detail"]["ModelApprovalStatus"] for e in changes] == [
        "PendingManualApproval",
        "Approved",
        "Approved",
    ]
    # "CustomerMetadataProperties" is one of UpdatedModelPackageFields' documented values
    assert changes[-1]["detail"]["UpdatedModelPackageFields"] == ["CustomerMetadataProperties"]


def test_a_life_cycle_stage_is_kept_described_listed_and_announced(client, package_group, events):
    # Model Registry's stage construct: ModelLifeCycle on UpdateModelPackage, returned by
    # DescribeModelPackage and in ListModelPackages' ModelPackageSummary (botocore), announced as a
    # "SageMaker Model Package State Change" (model-registry-staging-construct-event-bridge)
    arn = _create_package(client, package_group)
    sagemaker = client("sagemaker")
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    stage = {"Stage": "Production", "StageStatus": "Approved", "StageDescription": "smoke test passed"}

    sagemaker.update_model_package(ModelPackageArn=arn, ModelLifeCycle=stage)

    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelLifeCycle"] == stage
    assert described["ModelApprovalStatus"] == "Approved"  # what the update left out is kept
    [summary] = sagemaker.list_model_packages(ModelPackageGroupName=package_group)["ModelPackageSummaryList"]
    assert summary["ModelLifeCycle"] == stage
    assert "InferenceSpecification" not in summary  # a summary carries ModelPackageSummary's members only
    changes = events.of("SageMaker Model Package State Change", ModelPackageArn=arn)
    assert changes[-1]["detail"]["UpdatedModelPackageFields"] == ["ModelLifeCycle"]
    assert changes[-1]["detail"]["ModelLifeCycle"] == stage
    assert changes[-1]["detail"]["ModelApprovalStatus"] == "Approved"


def test_a_package_may_be_created_in_a_stage(client, package_group):
    sagemaker = client("sagemaker")
    arn = sagemaker.create_model_package(
        ModelPackageGroupName=package_group,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        ModelLifeCycle={"Stage": "Development", "StageStatus": "InProgress"},
    )["ModelPackageArn"]
    described = sagemaker.describe_model_package(ModelPackageName=arn)
    assert described["ModelLifeCycle"] == {"Stage": "Development", "StageStatus": "InProgress"}


@pytest.mark.parametrize(
    "stage",
    [
        {"Stage": "Pre Production", "StageStatus": "Approved"},  # a space: not an EntityName
        {"Stage": "Production", "StageStatus": "-Approved"},  # must start with a letter or digit
        {"Stage": "P" * 64, "StageStatus": "Approved"},  # 63 characters at most
        {"Stage": "Production", "StageStatus": "Approved", "StageDescription": "x" * 1025},
    ],
)
def test_a_stage_that_is_not_an_entity_name_is_refused_and_changes_nothing(client, package_group, stage):
    # botocore's ModelLifeCycle: Stage and StageStatus match [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62};
    # StageDescription is at most 1,024 characters (API reference, API_ModelLifeCycle)
    arn = _create_package(client, package_group)
    sagemaker = client("sagemaker")
    with pytest.raises(ClientError) as refused:
        sagemaker.update_model_package(ModelPackageArn=arn, ModelLifeCycle=stage)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "ModelLifeCycle" not in sagemaker.describe_model_package(ModelPackageName=arn)


@pytest.fixture
def endpoint_configs(client, unique):
    sagemaker = client("sagemaker")
    names = []
    for _ in range(2):
        model = unique("model")
        sagemaker.create_model(
            ModelName=model,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/m.tar.gz"},
        )
        config = unique("config")
        sagemaker.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": model,
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
        names.append(config)
    return names


def test_create_endpoint_emits_creating_then_in_service(client, endpoint_configs, unique, events):
    name = unique("endpoint")

    client("sagemaker").create_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[0])

    statuses = [
        e["detail"]["EndpointStatus"] for e in events.of("SageMaker Endpoint State Change", EndpointName=name)
    ]
    assert statuses == ["CREATING", "IN_SERVICE"]
    assert client("sagemaker").describe_endpoint(EndpointName=name)["EndpointStatus"] == "InService"


def test_update_endpoint_switches_the_config_and_records_the_deployment(
    client, endpoint_configs, unique, events
):
    # GIVEN an endpoint in service on the first config
    sagemaker = client("sagemaker")
    name = unique("endpoint")
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[0])
    deployment = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 60,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            }
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "errors"}]},
    }

    # WHEN it is updated to the second config with a canary deployment
    arn = sagemaker.update_endpoint(
        EndpointName=name, EndpointConfigName=endpoint_configs[1], DeploymentConfig=deployment
    )["EndpointArn"]

    # THEN it serves the second config, shows the deployment it went through, and emitted the transitions
    described = sagemaker.describe_endpoint(EndpointName=name)
    assert described["EndpointArn"] == arn
    assert described["EndpointConfigName"] == endpoint_configs[1]
    assert described["EndpointStatus"] == "InService"
    assert described["LastDeploymentConfig"] == deployment
    statuses = [
        e["detail"]["EndpointStatus"] for e in events.of("SageMaker Endpoint State Change", EndpointName=name)
    ]
    assert statuses == ["CREATING", "IN_SERVICE", "UPDATING", "IN_SERVICE"]


def test_hosting_driven_update_shows_pending_then_can_roll_back(
    client, embedded_aws, endpoint_configs, unique
):
    sagemaker = client("sagemaker")
    name = unique("endpoint")
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[0])
    embedded_aws.sagemaker.auto_complete_endpoints = False
    try:
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[1])
        during = sagemaker.describe_endpoint(EndpointName=name)
        with pytest.raises(ClientError) as busy:
            sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[1])
        embedded_aws.sagemaker.complete_endpoint_update(name, succeeded=False, failure_reason="alarm errors")
    finally:
        embedded_aws.sagemaker.auto_complete_endpoints = True

    after = sagemaker.describe_endpoint(EndpointName=name)
    assert during["EndpointStatus"] == "Updating"
    assert during["EndpointConfigName"] == endpoint_configs[0]
    assert during["PendingDeploymentSummary"]["EndpointConfigName"] == endpoint_configs[1]
    assert busy.value.response["Error"]["Code"] == "ValidationException"
    assert after["EndpointStatus"] == "InService"
    assert after["EndpointConfigName"] == endpoint_configs[0]
    assert "PendingDeploymentSummary" not in after


def test_update_of_unknown_endpoint_or_config_is_a_validation_error(client, endpoint_configs, unique):
    sagemaker = client("sagemaker")
    name = unique("endpoint")
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[0])

    for kwargs in (
        {"EndpointName": "missing", "EndpointConfigName": endpoint_configs[1]},
        {"EndpointName": name, "EndpointConfigName": "missing"},
    ):
        with pytest.raises(ClientError) as raised:
            sagemaker.update_endpoint(**kwargs)
        assert raised.value.response["Error"]["Code"] == "ValidationException"


@pytest.mark.parametrize(
    ("field", "value"), [("LinearStepSize", 9), ("LinearStepSize", 51), ("CanarySize", 60)]
)
def test_update_refuses_traffic_steps_sagemaker_refuses(client, endpoint_configs, unique, field, value):
    # botocore TrafficRoutingConfig: CanarySize "must be less than or equal to 50%", LinearStepSize "must be
    # 10-50% of the variant's total instance count"
    sagemaker = client("sagemaker")
    name = unique("endpoint")
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[0])
    routing = {
        "Type": "LINEAR" if field == "LinearStepSize" else "CANARY",
        "WaitIntervalInSeconds": 0,
        field: {"Type": "CAPACITY_PERCENT", "Value": value},
    }
    with pytest.raises(ClientError) as raised:
        sagemaker.update_endpoint(
            EndpointName=name,
            EndpointConfigName=endpoint_configs[1],
            DeploymentConfig={"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": routing}},
        )
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"] == endpoint_configs[0]


def test_update_refuses_a_new_instance_type_for_an_autoscaled_variant(client, endpoint_configs, unique):
    # SageMaker developer guide, endpoint-scaling-update: deregister the scalable target before changing
    # the instance type of an autoscaled variant
    sagemaker = client("sagemaker")
    name = unique("endpoint")
    sagemaker.create_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[0])
    model = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint_configs[1])["ProductionVariants"][
        0
    ]
    bigger = unique("config")
    sagemaker.create_endpoint_config(
        EndpointConfigName=bigger,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": model["ModelName"],
                "InitialInstanceCount": 1,
                "InstanceType": "ml.c5.xlarge",
            }
        ],
    )
    autoscaling = client("application-autoscaling")
    target = {
        "ServiceNamespace": "sagemaker",
        "ResourceId": f"endpoint/{name}/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
    }
    autoscaling.register_scalable_target(**target, MinCapacity=1, MaxCapacity=4)
    # the same instance type is fine (near miss)
    sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[1])
    with pytest.raises(ClientError) as raised:
        sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=bigger)
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    autoscaling.deregister_scalable_target(**target)
    sagemaker.update_endpoint(EndpointName=name, EndpointConfigName=bigger)
    assert sagemaker.describe_endpoint(EndpointName=name)["EndpointConfigName"] == bigger


def test_invoke_endpoint_reaches_the_registered_invoker(client, embedded_aws, endpoint_configs, unique):
    # GIVEN an endpoint in service and the model server registered for it
    name = unique("endpoint")
    client("sagemaker").create_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[0])
    calls = []

    def model_server(endpoint, body, content_type, accept):
        calls.append((endpoint, body, content_type, accept))
        rows = body.decode().splitlines()
        return (
            200,
            json.dumps({"predictions": [float(len(r.split(","))) for r in rows]}).encode(),
            "application/json",
        )

    embedded_aws.sagemaker.register_endpoint_invoker(model_server, name)

    # WHEN a client invokes it with CSV rows
    reply = client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, Body=b"1,2,3\n4,5", ContentType="text/csv", Accept="application/json"
    )

    # THEN the model server answered, through the runtime API's shape
    assert json.loads(reply["Body"].read()) == {"predictions": [3.0, 2.0]}
    assert reply["ContentType"] == "application/json"
    assert reply["InvokedProductionVariant"] == "AllTraffic"
    assert calls == [(name, b"1,2,3\n4,5", "text/csv", "application/json")]


def test_model_errors_reach_the_caller_as_model_error(client, embedded_aws, endpoint_configs, unique):
    name = unique("endpoint")
    client("sagemaker").create_endpoint(EndpointName=name, EndpointConfigName=endpoint_configs[0])
    embedded_aws.sagemaker.register_endpoint_invoker(
        lambda *_: (400, b"row 1: expected 13 features, got 2", "text/plain"), name
    )

    with pytest.raises(ClientError) as raised:
        client("sagemaker-runtime").invoke_endpoint(EndpointName=name, Body=b"1,2", ContentType="text/csv")

    assert raised.value.response["Error"]["Code"] == "ModelError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert raised.value.response["OriginalStatusCode"] == 400
    assert "expected 13 features" in raised.value.response["OriginalMessage"]


def test_invoking_an_unknown_endpoint_is_a_validation_error(client):
    with pytest.raises(ClientError) as raised:
        client("sagemaker-runtime").invoke_endpoint(EndpointName="no-such-endpoint", Body=b"1")

    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "no-such-endpoint" in raised.value.response["Error"]["Message"]


def test_transform_job_starts_in_progress_and_completion_emits_event(
    client, embedded_aws, endpoint_configs, unique, events
):
    sagemaker = client("sagemaker")
    model = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint_configs[0])["ProductionVariants"][
        0
    ]["ModelName"]
    job = unique("transform")

    sagemaker.create_transform_job(
        TransformJobName=job,
        ModelName=model,
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
            "ContentType": "text/csv",
        },
        TransformOutput={"S3OutputPath": "s3://b/out/"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    started = sagemaker.describe_transform_job(TransformJobName=job)["TransformJobStatus"]
    embedded_aws.sagemaker.set_transform_job_status(job, "Completed")

    assert started == "InProgress"
    assert sagemaker.describe_transform_job(TransformJobName=job)["TransformJobStatus"] == "Completed"
    changes = events.of("SageMaker Transform Job State Change", TransformJobName=job)
    assert [e["detail"]["TransformJobStatus"] for e in changes] == ["InProgress", "Completed"]
    assert changes[-1]["detail"]["TransformOutput"] == {"S3OutputPath": "s3://b/out/"}
