"""The embedded AWS itself: moto behind it, overrides, listeners, errors and the default event bus."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from localcloud.aws import AwsError, EmbeddedAws, RawResponse
from tests.localcloud.conftest import EVENTBRIDGE_ENVELOPE


def test_server_starts_fast_on_an_ephemeral_loopback_port(aws_session):
    started = time.perf_counter()
    with EmbeddedAws() as aws:
        elapsed = time.perf_counter() - started
        url = aws.endpoint_url
        buckets = aws_session.client("s3", endpoint_url=aws.endpoint_url).list_buckets()

    assert elapsed < 1.0
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    assert "Buckets" in buckets


def test_apis_moto_has_pass_through_unchanged(client, unique):
    bucket = unique("bucket")
    client("s3").create_bucket(Bucket=bucket)
    client("s3").put_object(Bucket=bucket, Key="a/b.csv", Body=b"x,y\n")

    assert client("s3").get_object(Bucket=bucket, Key="a/b.csv")["Body"].read() == b"x,y\n"


def test_override_errors_render_as_client_errors_in_each_protocol(aws_session):
    # GIVEN overrides on a JSON service and a query service that fail as AWS would
    with EmbeddedAws() as aws:

        def throttled(params, info):
            raise AwsError("ThrottlingException", f"slow down {params['PipelineName']}", 400)

        def not_found(params, info):
            raise AwsError("NotFound", "Topic does not exist", 404)

        aws.register_override("sagemaker", "DescribePipeline", throttled)
        aws.register_override("sns", "GetTopicAttributes", not_found)
        sagemaker = aws_session.client(
            "sagemaker",
            endpoint_url=aws.endpoint_url,
            config=boto3.session.Config(retries={"max_attempts": 1}),
        )
        sns = aws_session.client("sns", endpoint_url=aws.endpoint_url)

        # WHEN they are called through boto3
        with pytest.raises(ClientError) as json_error:
            sagemaker.describe_pipeline(PipelineName="p")
        with pytest.raises(ClientError) as query_error:
            sns.get_topic_attributes(TopicArn="arn:aws:sns:us-east-1:123456789012:t")

    # THEN botocore raises ClientError with the code, message and status
    assert json_error.value.response["Error"] == {"Code": "ThrottlingException", "Message": "slow down p"}
    assert query_error.value.response["Error"]["Code"] == "NotFound"
    assert query_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_override_replies_render_in_the_services_protocol(aws_session):
    with EmbeddedAws() as aws:
        aws.register_override(
            "sagemaker",
            "DescribePipeline",
            lambda params, info: {
                "PipelineName": params["PipelineName"],
                "PipelineStatus": "Active",
                "CreationTime": 1_700_000_000,
            },
        )
        aws.register_override(
            "sns",
            "ListTopics",
            lambda params, info: RawResponse(
                200,
                (
                    b"<ListTopicsResponse><ListTopicsResult><Topics><member><TopicArn>arn:t</TopicArn></member>"
                    b"</Topics></ListTopicsResult></ListTopicsResponse>"
                ),
                {"Content-Type": "text/xml"},
            ),
        )

        described = aws_session.client("sagemaker", endpoint_url=aws.endpoint_url).describe_pipeline(
            PipelineName="p"
        )
        topics = aws_session.client("sns", endpoint_url=aws.endpoint_url).list_topics()

    assert described["PipelineName"] == "p" and described["PipelineStatus"] == "Active"
    assert described["CreationTime"].timestamp() == 1_700_000_000
    assert topics["Topics"] == [{"TopicArn": "arn:t"}]


def test_listener_sees_params_and_response_of_successful_calls_only(client, embedded_aws, unique):
    seen = []
    embedded_aws.add_listener(
        "dynamodb", "CreateTable", lambda params, response: seen.append((params, response))
    )
    table = unique("ledger")
    spec = {
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }

    client("dynamodb").create_table(TableName=table, **spec)
    with pytest.raises(ClientError):
        client("dynamodb").create_table(TableName=table, **spec)  # already exists

    mine = [(p, r) for p, r in seen if p["TableName"] == table]
    assert len(mine) == 1
    assert mine[0][1]["TableDescription"]["TableName"] == table


def test_emitted_events_reach_subscribers_and_moto_rules(client, embedded_aws, unique, events):
    # GIVEN an EventBridge rule on the default bus that targets an SQS queue
    queue_url = client("sqs").create_queue(QueueName=unique("q"))["QueueUrl"]
    queue_arn = client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    source = unique("test.source")
    rule = unique("rule")
    client("events").put_rule(Name=rule, EventPattern=json.dumps({"source": [source]}))
    client("events").put_targets(Rule=rule, Targets=[{"Id": "q", "Arn": queue_arn}])

    # WHEN the local cloud emits an event
    event = embedded_aws.emit_event(
        source, "Thing Happened", {"n": 1}, ["arn:aws:x:us-east-1:123456789012:y"]
    )

    # THEN local subscribers get it in EventBridge's shape, and moto routed it to the rule's target
    [delivered] = events.of("Thing Happened", n=1)
    assert delivered == event
    assert set(event) == EVENTBRIDGE_ENVELOPE
    assert event["source"] == source and event["resources"] == ["arn:aws:x:us-east-1:123456789012:y"]
    messages = client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert json.loads(messages[0]["Body"])["id"] == event["id"]


def test_put_events_through_the_api_reaches_subscribers(client, unique, events):
    source = unique("custom")

    client("events").put_events(Entries=[{"Source": source, "DetailType": "Sample", "Detail": '{"k": "v"}'}])

    [event] = events.of("Sample", k="v")
    assert event["source"] == source and event["account"] == "123456789012"


def test_a_failing_subscriber_does_not_stop_delivery(embedded_aws, events):
    def broken(event):
        raise RuntimeError("target failed")

    unsubscribe = embedded_aws.subscribe_events(broken)
    try:
        embedded_aws.emit_event("test.delivery", "Still Delivered", {"ok": True})
        assert [e["detail"] for e in events.of("Still Delivered")] == [{"ok": True}]
    finally:
        unsubscribe()


def test_backend_gives_the_engine_motos_state(client, embedded_aws, unique):
    name = unique("group")
    client("sagemaker").create_model_package_group(ModelPackageGroupName=name)

    assert name in embedded_aws.backend("sagemaker").model_package_groups
