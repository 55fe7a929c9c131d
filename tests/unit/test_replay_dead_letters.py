"""tools/replay_dead_letters.py: both kinds of dead letter are put back once; anything else stays.

The two kinds: Lambda's invocation record of an asynchronous invocation that ran out of retries (Lambda
developer guide, "Capturing records of Lambda asynchronous invocations"), and an event EventBridge could not
deliver, with its TARGET_ARN message attribute (EventBridge user guide, "Using dead-letter queues to process
undelivered events")."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from replay_dead_letters import read, replay

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:mlops-deploy"
EVENT = {"id": "e-1", "detail-type": "SageMaker Model Package State Change", "detail": {"x": 1}}


class Lambda:
    """Invoke as Lambda answers an asynchronous invocation it accepted: StatusCode 202."""

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **params: Any) -> dict[str, Any]:
        self.calls.append(params)
        return {"StatusCode": self.status}


def queue_with(*bodies: tuple[str, dict[str, Any]]) -> tuple[Any, str]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    for body, attributes in bodies:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)
    return sqs, url


RECORD = json.dumps(
    {
        "version": "1.0",
        "requestContext": {"functionArn": f"{FUNCTION}:$LATEST", "condition": "RetriesExhausted"},
        "requestPayload": EVENT,
        "responsePayload": {"errorType": "ClientError", "errorMessage": "Rate exceeded"},
    }
)
UNDELIVERED = (
    json.dumps(EVENT),
    {
        "TARGET_ARN": {"DataType": "String", "StringValue": FUNCTION},
        "ERROR_MESSAGE": {"DataType": "String", "StringValue": "x"},
    },
)


def test_each_kind_of_message_names_its_event_and_function() -> None:
    record = read({"ReceiptHandle": "r", "MessageId": "m", "Body": RECORD})
    assert (record.kind, record.event, record.function) == ("invocation-record", EVENT, f"{FUNCTION}:$LATEST")
    body, attributes = UNDELIVERED
    undelivered = read(
        {"ReceiptHandle": "r", "MessageId": "m", "Body": body, "MessageAttributes": attributes}
    )
    assert (undelivered.kind, undelivered.event, undelivered.function) == (
        "undelivered-event",
        EVENT,
        FUNCTION,
    )
    for junk in ("not json", "[1, 2]", json.dumps({"detail": {}}), json.dumps({"requestContext": {}})):
        assert read({"ReceiptHandle": "r", "MessageId": "m", "Body": junk}).kind == "unrecognized"


def test_both_kinds_are_invoked_again_and_deleted_and_junk_stays() -> None:
    with mock_aws():
        sqs, url = queue_with((RECORD, {}), UNDELIVERED, ("junk", {}))
        invoked = Lambda()
        report = replay(url, sqs=sqs, lambda_client=invoked)
        assert len(report.replayed) == 2 and [left["why"] for left in report.left] == ["unrecognized message"]
        assert [call["FunctionName"] for call in invoked.calls] == [FUNCTION, FUNCTION]  # unqualified
        assert all(
            call["InvocationType"] == "Event" and json.loads(call["Payload"]) == EVENT
            for call in invoked.calls
        )
        remaining = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in remaining] == ["junk"]  # and visible again at once


def test_a_dry_run_or_a_refused_invoke_deletes_nothing() -> None:
    with mock_aws():
        sqs, url = queue_with((RECORD, {}))
        assert replay(url, dry_run=True, sqs=sqs, lambda_client=Lambda()).replayed == []
        refused = replay(url, sqs=sqs, lambda_client=Lambda(status=500))
        assert refused.replayed == [] and refused.left[0]["why"] == "Invoke answered 500"
        assert len(sqs.receive_message(QueueUrl=url)["Messages"]) == 1
