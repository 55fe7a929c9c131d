"""Create the stack's resources in the embedded AWS from template.yaml, as `sam deploy` would in AWS.

Only the resource types the handlers talk to are created (repository, buckets, table, topic, queues,
role, model package group, alarms); functions, layers and log groups are served by the local cloud itself.
Physical names are derived deterministically from the stack name, so every start finds the same names.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from localcloud.template import ACCOUNT_ID, REGION, StackTemplate

log = logging.getLogger(__name__)

CREATED_TYPES = {
    "AWS::CodeCommit::Repository",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::DynamoDB::Table",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
    "AWS::IAM::Role",
    "AWS::SageMaker::ModelPackageGroup",
    "AWS::CloudWatch::Alarm",
}


def _explicit_name(resource_type: str, props: dict[str, Any]) -> Any:
    key = {
        "AWS::CodeCommit::Repository": "RepositoryName",
        "AWS::S3::Bucket": "BucketName",
        "AWS::DynamoDB::Table": "TableName",
        "AWS::SNS::Topic": "TopicName",
        "AWS::SQS::Queue": "QueueName",
        "AWS::IAM::Role": "RoleName",
        "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
        "AWS::CloudWatch::Alarm": "AlarmName",
        "AWS::Lambda::Function": "FunctionName",
        "AWS::Serverless::Function": "FunctionName",
    }.get(resource_type)
    return props.get(key) if key else None


def plan_names(template: StackTemplate) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Ref values and GetAtt values of every resource, before anything is created."""
    refs: dict[str, str] = {}
    attributes: dict[tuple[str, str], str] = {}
    stack = template.stack_name
    for logical_id, resource in template.body.get("Resources", {}).items():
        rtype = resource.get("Type", "")
        explicit = _explicit_name(rtype, resource.get("Properties", {}))
        try:
            name = str(template.resolve(explicit)) if explicit is not None else None
        except Exception:  # names that depend on other resources fall back to a derived one
            name = None
        name = name or f"{stack}-{logical_id}".lower()[:63]
        arn_of = {
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::DynamoDB::Table": f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}",
            "AWS::SNS::Topic": f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{name}",
            "AWS::SQS::Queue": f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}",
            "AWS::CodeCommit::Repository": f"arn:aws:codecommit:{REGION}:{ACCOUNT_ID}:{name}",
            "AWS::SageMaker::ModelPackageGroup": (
                f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:model-package-group/{name}"
            ),
            "AWS::CloudWatch::Alarm": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT_ID}:alarm:{name}",
            "AWS::Lambda::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
            "AWS::Serverless::Function": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}",
            "AWS::Serverless::LayerVersion": f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:layer:{name}:1",
            "AWS::Logs::LogGroup": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}",
        }
        arn = arn_of.get(rtype, f"arn:aws:local:{REGION}:{ACCOUNT_ID}:{logical_id}/{name}")
        ref = {
            "AWS::SNS::Topic": arn,
            "AWS::SQS::Queue": f"http://127.0.0.1/{ACCOUNT_ID}/{name}",
            "AWS::CodeCommit::Repository": str(uuid.uuid5(uuid.NAMESPACE_URL, arn)),
            "AWS::Serverless::LayerVersion": arn,
        }.get(rtype, name)
        refs[logical_id] = ref
        attributes[(logical_id, "Arn")] = arn
        attributes[(logical_id, "Name")] = name
        attributes[(logical_id, "QueueName")] = name
        attributes[(logical_id, "TopicName")] = name
        attributes[(logical_id, "RoleId")] = name
        attributes[(logical_id, "ModelPackageGroupArn")] = arn
    return refs, attributes


def provision(
    template: StackTemplate, session: boto3.Session, repository_dir: Path | None = None
) -> dict[str, str]:
    """Create every supported resource (idempotently); returns logical id → physical name."""
    created: dict[str, str] = {}
    for logical_id, resource in template.body.get("Resources", {}).items():
        rtype = resource.get("Type", "")
        if rtype not in CREATED_TYPES:
            continue
        if "Condition" in resource and not template.condition(resource["Condition"]):
            continue
        props = template.resolve(resource.get("Properties", {}))
        name = template.attributes[(logical_id, "Name")]
        try:
            _create(rtype, name, props, session)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if (
                "AlreadyExists" in code
                or "InUse" in code
                or code in ("EntityAlreadyExists", "BucketAlreadyOwnedByYou")
            ):
                continue
            raise
        created[logical_id] = name
    return created


def _create(rtype: str, name: str, props: dict[str, Any], session: boto3.Session) -> None:
    if rtype == "AWS::S3::Bucket":
        s3 = session.client("s3")
        s3.create_bucket(Bucket=name)
        if "BucketEncryption" in props:
            # CloudFormation's property names differ from the S3 API's by one word.
            rules = [
                {
                    "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                    **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {}),
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
    elif rtype == "AWS::S3::BucketPolicy":
        policy = dict(props["PolicyDocument"])
        # The embedded AWS speaks plain HTTP on loopback; moto enforces bucket policies, so a TLS-only
        # statement would deny every local request. Everything else in the policy is applied as written.
        policy["Statement"] = [st for st in policy["Statement"] if not _requires_tls(st)]
        if policy["Statement"]:
            session.client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(policy))
    elif rtype == "AWS::DynamoDB::Table":
        ddb = session.client("dynamodb")
        ddb.create_table(
            TableName=name,
            AttributeDefinitions=props["AttributeDefinitions"],
            KeySchema=props["KeySchema"],
            BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
        )
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    elif rtype == "AWS::SNS::Topic":
        session.client("sns").create_topic(Name=name)
    elif rtype == "AWS::SQS::Queue":
        session.client("sqs").create_queue(QueueName=name)
    elif rtype == "AWS::IAM::Role":
        session.client("iam").create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"])
        )
    elif rtype == "AWS::CodeCommit::Repository":
        session.client("codecommit").create_repository(
            repositoryName=name, repositoryDescription=props.get("RepositoryDescription", "")
        )
    elif rtype == "AWS::SageMaker::ModelPackageGroup":
        session.client("sagemaker").create_model_package_group(
            ModelPackageGroupName=name,
            ModelPackageGroupDescription=props.get("ModelPackageGroupDescription", ""),
        )
    elif rtype == "AWS::CloudWatch::Alarm":
        keys = (
            "AlarmDescription",
            "MetricName",
            "Namespace",
            "Statistic",
            "Period",
            "EvaluationPeriods",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "Dimensions",
            "DatapointsToAlarm",
        )
        args = {k: props[k] for k in keys if k in props}
        for numeric in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if numeric in args:
                args[numeric] = int(args[numeric])
        if "Threshold" in args:
            args["Threshold"] = float(args["Threshold"])
        session.client("cloudwatch").put_metric_alarm(AlarmName=name, **args)


def _requires_tls(statement: dict[str, Any]) -> bool:
    return "aws:SecureTransport" in json.dumps(statement.get("Condition", {}))
