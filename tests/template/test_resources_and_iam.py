"""Least-privilege IAM and the resource settings the design requires (encryption, privacy, DLQs, alarms)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import pytest

from tests.template.cfn import ROOT, Resolver, functions, load_template

# Actions for which IAM accepts no resource but "*" (the template says so beside each use).
UNSCOPABLE_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricStatistics",  # no resource types (Service Authorization Reference, CloudWatch)
    "sagemaker:ListArtifacts",
    "sagemaker:ListContexts",
    "sagemaker:ListActions",
    "sagemaker:ListAssociations",
    "sagemaker:ListModelPackages",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:DeregisterScalableTarget",
}
# SAM policy templates that expand to statements scoped to the one named resource.
SCOPED_POLICY_TEMPLATES = {"DynamoDBCrudPolicy", "SNSPublishMessagePolicy"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allow_statements(template: dict[str, Any], resolver: Resolver) -> list[tuple[str, dict[str, Any]]]:
    """(owner, statement) of every Allow statement a role or function has, where its condition holds; a
    role's separate AWS::IAM::RolePolicy counts as the role's."""
    found: list[tuple[str, dict[str, Any]]] = []
    for logical_id, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        if "Condition" in resource and not resolver.conditions[resource["Condition"]]:
            continue
        documents: list[Any] = []
        if resource["Type"] == "AWS::IAM::Role":
            documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif resource["Type"] == "AWS::IAM::RolePolicy":
            logical_id = props["RoleName"].value  # !Ref <role>: the statements are that role's
            documents = [props["PolicyDocument"]]
        elif resource["Type"] == "AWS::Serverless::Function":
            documents = [p for p in props.get("Policies", []) if isinstance(p, dict) and "Statement" in p]
        for document in documents:
            for statement in resolver.resolve(document)["Statement"]:
                if statement["Effect"] == "Allow":
                    found.append((logical_id, statement))
    return found


TEMPLATE = load_template()
RESOLVER = Resolver(TEMPLATE)
ALLOWS = _allow_statements(TEMPLATE, RESOLVER)


def test_there_are_statements_to_check() -> None:
    assert len(ALLOWS) >= 15


@pytest.mark.parametrize(
    ("owner", "statement"), ALLOWS, ids=[f"{o}:{s.get('Sid', i)}" for i, (o, s) in enumerate(ALLOWS)]
)
def test_no_allow_statement_uses_a_wildcard_action_or_an_unscoped_resource(
    owner: str, statement: dict
) -> None:
    # GIVEN an Allow statement of one of the stack's roles or functions, resolved for a real account
    actions = _as_list(statement["Action"])
    resources = _as_list(statement["Resource"])
    # THEN no action is a wildcard
    assert not [a for a in actions if "*" in a], actions
    # AND "*" stands only for actions that IAM cannot scope to a resource
    if "*" in resources:
        assert resources == ["*"] and set(actions) <= UNSCOPABLE_ACTIONS, (actions, resources)
        return
    # AND every other resource names this account and region (or the AWS image account) and a resource type
    stack_buckets = {RESOLVER.resolve({"Ref": "ArtifactBucket"})}
    for arn in resources:
        if arn.startswith("arn:aws:s3:::"):  # S3 ARNs carry no region or account: the bucket says whose
            assert arn.removeprefix("arn:aws:s3:::").split("/", 1)[0] in stack_buckets, arn
            continue
        assert re.match(
            r"^arn:aws:[a-z0-9-]+:(us-east-1)?:(123456789012|683313688378|763104351884):.+", arn
        ), arn
        assert not arn.endswith(":*"), arn


def test_functions_use_only_scoped_policy_templates_and_no_managed_policies() -> None:
    for function_id, function in functions(TEMPLATE).items():
        for policy in function["Properties"]["Policies"]:
            # THEN each entry is either an inline document (checked above) or a resource-scoped SAM template
            assert isinstance(policy, dict), (function_id, policy)
            assert "Statement" in policy or set(policy) <= SCOPED_POLICY_TEMPLATES, (function_id, policy)


def test_pass_role_only_hands_the_sagemaker_role_to_sagemaker() -> None:
    passes = [s for _, s in ALLOWS if "iam:PassRole" in _as_list(s["Action"])]
    assert passes
    for statement in passes:
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def _props(logical_id: str) -> dict[str, Any]:
    return RESOLVER.resolve(TEMPLATE["Resources"][logical_id]["Properties"])


def test_artifact_bucket_is_encrypted_versioned_private_and_tls_only() -> None:
    bucket = _props("ArtifactBucket")
    sse = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in {"aws:kms", "AES256"}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["LoggingConfiguration"]["DestinationBucketName"]
    deny = _props("ArtifactBucketPolicy")["PolicyDocument"]["Statement"][0]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert len(deny["Resource"]) == 2 and any(r.endswith("/*") for r in deny["Resource"])


def test_ledger_table_fits_powertools_idempotency_and_is_protected() -> None:
    table = _props("LedgerTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


def test_queues_and_topic_are_encrypted() -> None:
    queues = [k for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::SQS::Queue"]
    assert len(queues) == 3
    assert all(_props(q).get("SqsManagedSseEnabled") or _props(q).get("KmsMasterKeyId") for q in queues)
    assert _props("NotificationTopic")["KmsMasterKeyId"]


def _documented_environment_variables() -> set[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("Environment variables", 1)[1].split("\n\n", 1)[0]
    section = section.split(":", 1)[1]
    return set(re.findall(r"\b[A-Z][A-Z0-9_]{2,}\b", section))


def test_every_function_gets_the_documented_environment() -> None:
    documented = _documented_environment_variables()
    assert {"LEDGER_TABLE_NAME", "ROLLBACK_ALARM_NAMES", "TRANSFORM_INSTANCE_TYPE"} <= documented
    environment = RESOLVER.resolve(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    assert documented <= set(environment), documented - set(environment)
    assert environment["INPUT_DATA_URI"] == "s3://mlops-demo-ArtifactBucket-ABC123/data/"
    assert environment["ROLLBACK_ALARM_NAMES"] == "mlops-demo-endpoint-5xx,mlops-demo-endpoint-latency"


def test_every_setting_a_handler_reads_is_set_by_the_template() -> None:
    from orchestrator import settings

    read = {
        field.alias
        for kind in (settings.PushSettings, settings.TrackSettings, settings.DeploySettings)
        for field in kind.model_fields.values()
    }
    environment = RESOLVER.resolve(TEMPLATE["Globals"]["Function"]["Environment"]["Variables"])
    assert read - set(environment) == set()
    assert environment["POWERTOOLS_TRACE_DISABLED"] == "false"


@pytest.mark.parametrize("function_id", ["StartPipelineFunction", "TrackFunction", "DeployFunction"])
def test_function_runs_on_python312_traced_with_dead_letters_for_both_async_paths(function_id: str) -> None:
    function = TEMPLATE["Resources"][function_id]
    globals_ = TEMPLATE["Globals"]["Function"]
    props = function["Properties"]
    assert globals_["Runtime"] == "python3.12" and globals_["Architectures"] == ["x86_64"]
    assert RESOLVER.resolve(globals_["Tracing"]) == "Active"  # by default; TracingMode can pass through
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert props["Handler"] == "app.lambda_handler"
    assert (ROOT / props["CodeUri"] / "Makefile").is_file()
    assert props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    for event in props["Events"].values():
        assert event["Properties"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
        assert event["Properties"]["DeadLetterConfig"]["Arn"]


def test_deployment_guard_alarms_watch_the_endpoint() -> None:
    alarms = {_props(k)["MetricName"]: _props(k) for k in ("EndpointErrorsAlarm", "EndpointLatencyAlarm")}
    assert set(alarms) == {"Invocation5XXErrors", "ModelLatency"}
    for alarm in alarms.values():
        assert {"Name": "EndpointName", "Value": "mlops-demo-endpoint"} in alarm["Dimensions"]
        assert alarm["Namespace"] == "AWS/SageMaker"


def _grants(owner: str, action: str, resource: str, statements: list[tuple[str, dict[str, Any]]]) -> bool:
    return any(
        who == owner
        and any(fnmatch.fnmatchcase(action, a) for a in _as_list(s["Action"]))
        and any(fnmatch.fnmatchcase(resource, r) for r in _as_list(s["Resource"]))
        for who, s in statements
    )


def test_every_alarm_can_publish_to_the_encrypted_topic() -> None:
    # CloudWatch needs kms:Decrypt and kms:GenerateDataKey* on the topic's key, granted by the key policy;
    # the AWS-managed alias/aws/sns key's policy can't grant it (SNS developer guide, "Configure AWS KMS
    # permissions for AWS services"; re:Post: "CloudWatch Alarms does not have authorization to access the
    # SNS topic encryption key").
    topic_arn = RESOLVER.resolve({"Ref": "NotificationTopic"})
    key_id = TEMPLATE["Resources"]["NotificationTopic"]["Properties"]["KmsMasterKeyId"]
    assert not str(RESOLVER.resolve(key_id)).startswith("alias/aws/")
    key = TEMPLATE["Resources"][key_id.value]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    key_policy = RESOLVER.resolve(key["Properties"]["KeyPolicy"])["Statement"]

    def key_allows(service: str, action: str) -> bool:
        return any(
            s["Effect"] == "Allow"
            and service in _as_list(s["Principal"].get("Service", []))
            and any(fnmatch.fnmatchcase(action, a) for a in _as_list(s["Action"]))
            for s in key_policy
        )

    alarms = [k for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"]
    # 5XX and latency of the staging and production endpoints and of production's A/B candidate, dead
    # letters, data drift
    assert len(alarms) == 8
    for alarm in alarms:
        assert _props(alarm)["AlarmActions"] == [topic_arn], alarm
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        assert key_allows("cloudwatch.amazonaws.com", action)
        assert key_allows("events.amazonaws.com", action)


@pytest.mark.parametrize("function_id", ["StartPipelineFunction", "TrackFunction", "DeployFunction"])
def test_every_publisher_may_use_the_topic_key(function_id: str) -> None:
    # "the publisher must have kms:GenerateDataKey* and kms:Decrypt permissions on the key"
    # (SNS developer guide, sns-key-management)
    key_arn = RESOLVER.resolve({"Fn::GetAtt": ["NotificationKey", "Arn"]})
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        assert _grants(function_id, action, key_arn, ALLOWS), (function_id, action)


def test_no_function_reserves_concurrency() -> None:
    # Lambda keeps a minimum of unreserved concurrency ("at least 100", less on new accounts with a reduced
    # quota: PutFunctionConcurrency), so a reservation fails stack creation there; deployments are
    # serialized by a lease on the ledger instead (orchestrator.deploy).
    for function_id, function in functions(TEMPLATE).items():
        assert "ReservedConcurrentExecutions" not in function["Properties"], function_id


def test_the_execution_role_passes_itself_by_arn_only() -> None:
    role_arn = RESOLVER.resolve({"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]})
    passes = [
        s
        for owner, s in ALLOWS
        if owner == "SageMakerExecutionRole" and "iam:PassRole" in _as_list(s["Action"])
    ]
    assert [s["Resource"] for s in passes] == [role_arn]


def test_buckets_named_by_the_data_parameters_are_granted_to_the_execution_role() -> None:
    # GIVEN the stack deployed with data and batch URIs outside the artifact bucket
    resolver = Resolver(
        TEMPLATE,
        overrides={
            "InputDataUri": "s3://shared-datasets/housing/",
            "BatchInputUri": "s3://scoring-in/daily/",
            "BatchOutputUri": "s3://scoring-out/results/",
        },
    )
    statements = _allow_statements(TEMPLATE, resolver)
    role = "SageMakerExecutionRole"
    # THEN the role reads the input and batch prefixes, lists their buckets and writes the output prefix
    assert _grants(role, "s3:GetObject", "arn:aws:s3:::shared-datasets/housing/part-1.csv", statements)
    assert _grants(role, "s3:ListBucket", "arn:aws:s3:::shared-datasets", statements)
    assert _grants(role, "s3:GetObject", "arn:aws:s3:::scoring-in/daily/rows.csv", statements)
    assert _grants(role, "s3:PutObject", "arn:aws:s3:::scoring-out/results/job/rows.csv.out", statements)
    # AND nothing beyond them: another prefix, or a bucket whose name only starts the same
    assert not _grants(role, "s3:GetObject", "arn:aws:s3:::shared-datasets/secrets/x.csv", statements)
    assert not _grants(role, "s3:GetObject", "arn:aws:s3:::shared-datasets-2/housing/x.csv", statements)
    assert not _grants(role, "s3:PutObject", "arn:aws:s3:::scoring-in/daily/rows.csv", statements)
    # AND with the defaults (the artifact bucket) no such policy exists
    assert not any(s.get("Sid") == "ReadInputData" for _, s in ALLOWS)


@pytest.mark.parametrize("name", ["InputDataUri", "BatchInputUri", "BatchOutputUri"])
def test_data_uri_parameters_name_a_bucket_and_a_prefix(name: str) -> None:
    pattern = TEMPLATE["Parameters"][name]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "s3://shared-datasets/housing/")
    # a bare bucket would turn the policy's "<bucket>*" into a grant on every bucket named alike
    assert not re.fullmatch(pattern, "s3://shared-datasets")
    assert not re.fullmatch(pattern, "https://shared-datasets/housing/")


def _rule_holds(region: str, overrides: dict[str, str] | None = None) -> bool:
    """The template's Rules evaluated as CloudFormation does before creating anything (Fn::Contains,
    Fn::Equals, Fn::Or; RuleCondition gates the assertions)."""
    resolver = Resolver(TEMPLATE, overrides=overrides or {}, region=region)
    for rule in TEMPLATE["Rules"].values():
        if not resolver.resolve(rule.get("RuleCondition", True)):
            continue
        for assertion in rule["Assertions"]:
            listed, value = (resolver.resolve(v) for v in assertion["Assert"].value)
            if value not in listed:
                return False
    return True


def test_a_region_without_the_default_images_is_refused_before_anything_is_created() -> None:
    # The SDK's image data (sagemaker/image_uri_config/tensorflow.json) puts TensorFlow in eu-south-1 and
    # ap-northeast-3 under accounts other than 763104351884; ImageRegistry carries them.
    registry = TEMPLATE["Mappings"]["ImageRegistry"]
    assert registry["eu-south-1"]["TensorflowTraining"] == "692866216735"
    assert registry["ap-northeast-3"]["TensorflowInference"] == "364406365360"
    assert _rule_holds("us-east-1") and _rule_holds("eu-south-1")
    # a region SageMaker has no default images in (the SDK lists none for ap-southeast-7)
    assert "ap-southeast-7" not in registry
    assert not _rule_holds("ap-southeast-7")
    # images of the user's own make any region acceptable
    own = {
        "ProcessingImageUri": "111122223333.dkr.ecr.ap-southeast-7.amazonaws.com/prep:1",
        "TrainingImageUri": "111122223333.dkr.ecr.ap-southeast-7.amazonaws.com/train:1",
        "InferenceImageUri": "111122223333.dkr.ecr.ap-southeast-7.amazonaws.com/serve:1",
    }
    assert _rule_holds("ap-southeast-7", own)
    assert not _rule_holds("ap-southeast-7", {**own, "InferenceImageUri": ""})
    # AND the rule lists exactly the regions the mapping holds
    [assertion] = TEMPLATE["Rules"]["DefaultImagesExistInThisRegion"]["Assertions"]
    assert sorted(assertion["Assert"].value[0]) == sorted(registry)


def test_default_image_uris_use_the_regions_own_registry() -> None:
    env = Resolver(TEMPLATE, region="eu-south-1").resolve(TEMPLATE["Globals"]["Function"]["Environment"])
    variables = env["Variables"]
    assert variables["TRAINING_IMAGE_URI"].startswith("692866216735.dkr.ecr.eu-south-1.")
    assert variables["INFERENCE_IMAGE_URI"].startswith("692866216735.dkr.ecr.eu-south-1.")
    assert variables["PROCESSING_IMAGE_URI"].startswith("978288397137.dkr.ecr.eu-south-1.")
