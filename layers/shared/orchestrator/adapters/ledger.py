"""The ledger: a DynamoDB single table (keys pk/sk) holding lineage links and run/deployment state.

Items are grouped by partition so that each lineage question is one Query: everything about an endpoint
lives under ENDPOINT#<name>, everything a commit led to under COMMIT#<repository>#<commit>.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

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
