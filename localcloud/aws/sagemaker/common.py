"""What the SageMaker API families share: constants, time formats, paging and sorting."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable
from typing import Any

SOURCE = "aws.sagemaker"
ENDPOINT_EVENT_STATUS = {
    "OutOfService": "OUT_OF_SERVICE",
    "Creating": "CREATING",
    "Updating": "UPDATING",
    "SystemUpdating": "SYSTEM_UPDATING",
    "RollingBack": "ROLLING_BACK",
    "InService": "IN_SERVICE",
    "Deleting": "DELETING",
    "Failed": "FAILED",
    "UpdateRollbackFailed": "UPDATE_ROLLBACK_FAILED",
}
PIPELINE_TERMINAL = {"Succeeded", "Failed", "Stopped"}
# The detail of "SageMaker Model Package State Change" in AWS's documented example (SageMaker developer
# guide, "Events that Amazon SageMaker AI sends to Amazon EventBridge"): these fields, times in ISO 8601,
# and UpdatedModelPackageFields naming what an update changed.
MODEL_PACKAGE_EVENT_FIELDS = (
    "ModelPackageGroupName",
    "ModelPackageVersion",
    "ModelPackageArn",
    "CreationTime",
    "InferenceSpecification",
    "ModelPackageStatus",
    "ModelPackageStatusDetails",
    "CertifyForMarketplace",
    "ModelApprovalStatus",
    "MetadataProperties",
    "ModelMetrics",
    "ModelLifeCycle",
    "LastModifiedTime",
)
UPDATABLE_FIELDS = (
    "ModelApprovalStatus",
    "ApprovalDescription",
    "CustomerMetadataProperties",
    "InferenceSpecification",
    "ModelLifeCycle",
)
ASSOCIATION_TYPES = {"ContributedTo", "AssociatedWith", "DerivedFrom", "Produced", "SameAs"}

# fn(endpoint_name, body, content_type, accept[, target_variant=]) -> (status, body, content_type[, variant]):
# an invoker that serves variants also takes InvokeEndpoint's TargetVariant and names the variant that served
EndpointInvoker = Callable[..., "tuple[int, bytes, str] | tuple[int, bytes, str, str]"]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _epoch_ms(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1000)
    return value


def _iso(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _paginate(
    items: list[dict[str, Any]], params: dict[str, Any], key: str, default_max: int = 50
) -> dict[str, Any]:
    start = int(base64.b64decode(params["NextToken"]).decode()) if params.get("NextToken") else 0
    size = int(params.get("MaxResults") or default_max)
    page: dict[str, Any] = {key: items[start : start + size]}
    if start + size < len(items):
        page["NextToken"] = base64.b64encode(str(start + size).encode()).decode()
    return page


def _sort(items: list[dict[str, Any]], params: dict[str, Any], by_name: str) -> list[dict[str, Any]]:
    field = by_name if params.get("SortBy") == "Name" else "CreationTime"
    return sorted(
        items, key=lambda item: item.get(field) or "", reverse=params.get("SortOrder") != "Ascending"
    )


def _created_between(item: dict[str, Any], params: dict[str, Any]) -> bool:
    after, before = _as_datetime(params.get("CreatedAfter")), _as_datetime(params.get("CreatedBefore"))
    created = item["CreationTime"]
    return (after is None or created > after) and (before is None or created < before)
