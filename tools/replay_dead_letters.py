"""Put the events of a dead-letter queue back through the function that failed them.

    python tools/replay_dead_letters.py --queue-url URL [--function NAME] [--dry-run] [--max N]

The stack's three dead-letter queues (outputs ``*DeadLetterQueueUrl``) receive two kinds of message:
- Lambda's invocation record, when an asynchronous invocation ran out of retries (an OnFailure
  destination): the event is ``requestPayload`` and the function is ``requestContext.functionArn``
  (Lambda developer guide, "Capturing records of Lambda asynchronous invocations");
- the event itself, when EventBridge could not deliver it to its target (a rule's DeadLetterConfig): the
  function is the ``TARGET_ARN`` message attribute (EventBridge user guide, "Using dead-letter queues to
  process undelivered events").

Each event is invoked again asynchronously (``lambda:InvokeFunction``, InvocationType ``Event``: the same
retries and destination as EventBridge's invocation), and its message is deleted only once Lambda has
accepted it (202). A message that is neither kind is left in the queue and reported. The handlers are
idempotent, so an event whose work was done after all is acknowledged, not done twice.

It reaches AWS with your credentials, or the local cloud when ``AWS_ENDPOINT_URL`` points at it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 5})


@dataclass(frozen=True)
class DeadLetter:
    """One message of a dead-letter queue, read."""

    receipt_handle: str
    message_id: str
    event: dict[str, Any] | None
    function: str | None
    kind: str  # "invocation-record" | "undelivered-event" | "unrecognized"
    error: str | None = None


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)  # message ids
    left: list[dict[str, Any]] = field(default_factory=list)  # messages not replayed, and why

    def as_dict(self) -> dict[str, Any]:
        return {"replayed": len(self.replayed), "left_in_queue": self.left}


def read(message: dict[str, Any]) -> DeadLetter:
    """The event and the function of a dead-letter message, whichever of the two kinds it is."""
    receipt, message_id = message["ReceiptHandle"], message["MessageId"]
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        return DeadLetter(receipt, message_id, None, None, "unrecognized")
    if not isinstance(body, dict):
        return DeadLetter(receipt, message_id, None, None, "unrecognized")
    context = body.get("requestContext")
    if isinstance(context, dict) and isinstance(body.get("requestPayload"), dict):
        payload = body.get("responsePayload")
        error = json.dumps(payload)[:500] if payload is not None else None
        event, function = body["requestPayload"], context.get("functionArn")
        return DeadLetter(receipt, message_id, event, function, "invocation-record", error)
    if "detail-type" in body and "detail" in body:
        attributes = message.get("MessageAttributes") or {}
        target = (attributes.get("TARGET_ARN") or {}).get("StringValue")
        error = (attributes.get("ERROR_MESSAGE") or {}).get("StringValue")
        return DeadLetter(receipt, message_id, body, target, "undelivered-event", error)
    return DeadLetter(receipt, message_id, None, None, "unrecognized")


def unqualified(function_arn: str) -> str:
    """arn:aws:lambda:r:a:function:name:$LATEST -> arn:aws:lambda:r:a:function:name (for Invoke)."""
    parts = function_arn.split(":")
    return ":".join(parts[:7]) if len(parts) > 7 and parts[5] == "function" else function_arn


def replay(
    queue_url: str,
    function: str | None = None,
    dry_run: bool = False,
    max_messages: int | None = None,
    sqs: Any = None,
    lambda_client: Any = None,
) -> ReplayReport:
    """Replay every message of the queue (or the first `max_messages`); see the module's docstring."""
    sqs = sqs or boto3.client("sqs", config=RETRIES)
    lambda_client = lambda_client or boto3.client("lambda", config=RETRIES)
    report = ReplayReport()
    seen: set[str] = set()
    kept: list[str] = []  # receipt handles of messages left in the queue
    while max_messages is None or len(seen) < max_messages:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            VisibilityTimeout=60,  # hidden while we replay it; back in the queue if we stop half-way
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh[: None if max_messages is None else max_messages - len(seen)]:
            seen.add(message["MessageId"])
            letter = read(message)
            target = function or letter.function
            if letter.event is None or not target:
                report.left.append({"message_id": letter.message_id, "why": f"{letter.kind} message"})
                kept.append(letter.receipt_handle)
                continue
            if dry_run:
                listed = {"why": "dry run", "function": target, "error": letter.error}
                report.left.append({"message_id": letter.message_id, **listed})
                kept.append(letter.receipt_handle)
                continue
            reply = lambda_client.invoke(
                FunctionName=unqualified(target), InvocationType="Event", Payload=json.dumps(letter.event)
            )
            if reply.get("StatusCode") != 202:
                why = f"Invoke answered {reply.get('StatusCode')}"
                report.left.append({"message_id": letter.message_id, "why": why})
                kept.append(letter.receipt_handle)
                continue
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt_handle)
            report.replayed.append(letter.message_id)
    for receipt in kept:  # visible again at once, for the next replay or a person
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queue-url", required=True, help="the dead-letter queue (a stack output)")
    parser.add_argument("--function", help="invoke this function instead of the one each message names")
    parser.add_argument("--dry-run", action="store_true", help="list what would be replayed; change nothing")
    parser.add_argument("--max", type=int, dest="max_messages", help="replay at most this many messages")
    args = parser.parse_args(argv)
    report = replay(args.queue_url, args.function, args.dry_run, args.max_messages)
    print(json.dumps(report.as_dict(), indent=2))
    return 0 if args.dry_run or not report.left else 1


if __name__ == "__main__":
    sys.exit(main())
