"""The ledger: a DynamoDB single table (keys pk/sk) holding lineage links and run/deployment state.

Items are grouped by partition so that each lineage question is one Query: everything about an endpoint
lives under ENDPOINT#<name>, everything a commit led to under COMMIT#<repository>#<commit>.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from orchestrator.clients import aws_client

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def commit_pk(repository: str, commit_id: str) -> str:
    return f"COMMIT#{repository}#{commit_id}"


def execution_pk(execution_arn: str) -> str:
    return f"EXECUTION#{execution_arn}"


def package_pk(package_arn: str) -> str:
    return f"PACKAGE#{package_arn}"


def endpoint_pk(endpoint_name: str) -> str:
    return f"ENDPOINT#{endpoint_name}"


def transform_pk(job_name: str) -> str:
    return f"TRANSFORM#{job_name}"


def _to_dynamo(value: dict[str, Any]) -> dict[str, Any]:
    # Floats must be Decimals for DynamoDB; a JSON round trip also drops tuples/datetimes to plain values.
    plain = json.loads(json.dumps(value, default=str), parse_float=Decimal)
    return {key: _serializer.serialize(item) for key, item in plain.items() if item is not None}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_plain(item) for item in value]
    return value


class Ledger:
    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("dynamodb")
        return self._client

    def put(self, pk: str, sk: str, **attributes: Any) -> None:
        """Write (or overwrite) one item; `recorded_at` is added unless given."""
        item = {"pk": pk, "sk": sk, "recorded_at": utc_now(), **attributes}
        self.client.put_item(TableName=self.table_name, Item=_to_dynamo(item))

    def update(self, pk: str, sk: str, **attributes: Any) -> None:
        """Set the given attributes on an item, creating it if absent (other attributes are kept)."""
        values = {"recorded_at": utc_now(), **{k: v for k, v in attributes.items() if v is not None}}
        names = {f"#a{i}": key for i, key in enumerate(values)}
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(values)))
        serialized = _to_dynamo({f":v{i}": value for i, value in enumerate(values.values())})
        self.client.update_item(
            TableName=self.table_name,
            Key=_to_dynamo({"pk": pk, "sk": sk}),
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=serialized,
        )

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name, Key=_to_dynamo({"pk": pk, "sk": sk}), ConsistentRead=True
        )
        item = response.get("Item")
        return None if item is None else _plain({k: _deserializer.deserialize(v) for k, v in item.items()})

    def partition(self, pk: str) -> list[dict[str, Any]]:
        """All items of one partition, in sort-key order (one Query, following pages if any)."""
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**request)
            items.extend(
                _plain({k: _deserializer.deserialize(v) for k, v in item.items()}) for item in page["Items"]
            )
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- conditional writes: a lease per endpoint, and the newest pending decision ---------------------
    def _conditional(self, operation: str, **request: Any) -> bool:
        """Run a conditional write; False when DynamoDB refuses the condition."""
        try:
            getattr(self.client, operation)(TableName=self.table_name, **request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def acquire_lease(self, pk: str, owner: str, seconds: int) -> bool:
        """Take the lease on `pk` unless another owner holds an unexpired one (DynamoDB conditional put)."""
        now = int(time.time())
        return self._conditional(
            "put_item",
            Item=_to_dynamo(
                {
                    "pk": pk,
                    "sk": "LEASE",
                    "owner": owner,
                    "expires_at": now + seconds,
                    "recorded_at": utc_now(),
                }
            ),
            ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR #owner = :owner",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues=_to_dynamo({":now": now, ":owner": owner}),
        )

    def release_lease(self, pk: str, owner: str) -> None:
        self._conditional(
            "delete_item",
            Key=_to_dynamo({"pk": pk, "sk": "LEASE"}),
            ConditionExpression="#owner = :owner",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues=_to_dynamo({":owner": owner}),
        )

    def put_if_not_older(self, pk: str, sk: str, order_field: str, **attributes: Any) -> bool:
        """Write the item unless the stored one has a later `order_field` (so the newest write wins)."""
        item = {"pk": pk, "sk": sk, "recorded_at": utc_now(), **attributes}
        return self._conditional(
            "put_item",
            Item=_to_dynamo(item),
            ConditionExpression="attribute_not_exists(pk) OR #order <= :order",
            ExpressionAttributeNames={"#order": order_field},
            ExpressionAttributeValues=_to_dynamo({":order": attributes[order_field]}),
        )

    def delete_if(self, pk: str, sk: str, field: str, value: Any) -> bool:
        """Delete the item only while `field` still equals `value` (nobody replaced it meanwhile)."""
        return self._conditional(
            "delete_item",
            Key=_to_dynamo({"pk": pk, "sk": sk}),
            ConditionExpression="#field = :value",
            ExpressionAttributeNames={"#field": field},
            ExpressionAttributeValues=_to_dynamo({":value": value}),
        )

    def delete(self, pk: str, sk: str) -> None:
        self.client.delete_item(TableName=self.table_name, Key=_to_dynamo({"pk": pk, "sk": sk}))

    def delete_if_not_newer(self, pk: str, sk: str, order_field: str, value: Any) -> bool:
        """Delete the item unless its `order_field` is later than `value`."""
        return self._conditional(
            "delete_item",
            Key=_to_dynamo({"pk": pk, "sk": sk}),
            ConditionExpression="#order <= :order",
            ExpressionAttributeNames={"#order": order_field},
            ExpressionAttributeValues=_to_dynamo({":order": value}),
        )
