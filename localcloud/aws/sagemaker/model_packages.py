"""Model packages: UpdateModelPackage keeping what the request does not change, ModelLifeCycle (which moto
5.2.5 drops) on Create/Update/Describe/List, and the Model Package State Change events."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import botocore.session

from localcloud.aws.protocol import AwsError, RequestInfo
from localcloud.aws.sagemaker.base import SageMakerFamily
from localcloud.aws.sagemaker.common import (
    MODEL_PACKAGE_EVENT_FIELDS,
    SOURCE,
    UPDATABLE_FIELDS,
    _iso,
)

# botocore's ModelLifeCycle: Stage and StageStatus are EntityNames (1-63 characters of this pattern),
# StageDescription at most 1,024 characters (API reference, API_ModelLifeCycle).
_ENTITY_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


def validate_life_cycle(life_cycle: Any) -> dict[str, str]:
    if not isinstance(life_cycle, dict):
        raise AwsError("ValidationException", "ModelLifeCycle must be a structure.")
    for field in ("Stage", "StageStatus"):
        value = life_cycle.get(field)
        if not isinstance(value, str) or not _ENTITY_NAME.match(value):
            raise AwsError(
                "ValidationException",
                f"1 validation error detected: Value '{value}' at 'modelLifeCycle.{field[0].lower()}"
                f"{field[1:]}' failed to satisfy constraint: Member must satisfy regular expression pattern: "
                "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
            )
    description = life_cycle.get("StageDescription")
    if description is not None and (not isinstance(description, str) or len(description) > 1024):
        raise AwsError(
            "ValidationException",
            "1 validation error detected: Value at 'modelLifeCycle.stageDescription' failed to satisfy "
            "constraint: Member must have length less than or equal to 1024",
        )
    return {key: str(value) for key, value in life_cycle.items() if value is not None}


@cache
def _summary_members() -> frozenset[str]:
    """The members of botocore's ModelPackageSummary: what a ListModelPackages summary carries."""
    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for("ModelPackageSummary").members)


def _with_life_cycle(package: Any) -> dict[str, Any]:
    document = package.gen_response_object()
    life_cycle = getattr(package, "localcloud_life_cycle", None)
    if life_cycle:
        document["ModelLifeCycle"] = dict(life_cycle)
    return document


class ModelPackageApis(SageMakerFamily):
    OVERRIDES = {
        "UpdateModelPackage": "_update_model_package",
        "DescribeModelPackage": "_describe_model_package",
        "ListModelPackages": "_list_model_packages",
    }
    LISTENERS = (("sagemaker", "CreateModelPackage", "_on_create_model_package"),)

    def _describe_model_package(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        with self.lock:
            return _with_life_cycle(self.backend.describe_model_package(params["ModelPackageName"]))

    def _list_model_packages(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        """ListModelPackages with each summary's ModelLifeCycle (botocore's ModelPackageSummary has it)."""
        with self.lock:
            packages, next_token = self.backend.list_model_packages(
                creation_time_after=params.get("CreationTimeAfter"),
                creation_time_before=params.get("CreationTimeBefore"),
                max_results=params.get("MaxResults"),
                name_contains=params.get("NameContains"),
                model_approval_status=params.get("ModelApprovalStatus"),
                model_package_group_name=params.get("ModelPackageGroupName"),
                model_package_type=params.get("ModelPackageType", "Unversioned"),
                next_token=params.get("NextToken"),
                sort_by=params.get("SortBy"),
                sort_order=params.get("SortOrder"),
            )
            summary_fields = _summary_members()
            summaries = [
                {key: value for key, value in _with_life_cycle(package).items() if key in summary_fields}
                for package in packages
            ]
        answer: dict[str, Any] = {"ModelPackageSummaryList": summaries}
        if next_token:
            answer["NextToken"] = next_token
        return answer

    def _update_model_package(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params["ModelPackageArn"]
        life_cycle = validate_life_cycle(params["ModelLifeCycle"]) if "ModelLifeCycle" in params else None
        with self.lock:
            package = self.backend.describe_model_package(arn)
            before = package.model_approval_status
            metadata = dict(package.customer_metadata_properties or {})
            metadata.update(params.get("CustomerMetadataProperties") or {})
            self.backend.update_model_package(
                arn,
                params.get("ModelApprovalStatus") or before,
                params.get("ApprovalDescription", package.approval_description),
                metadata,
                params.get("CustomerMetadataPropertiesToRemove"),
                params.get("AdditionalInferenceSpecificationsToAdd"),
            )
            if package.customer_metadata_properties is None:
                package.customer_metadata_properties = {}
            if life_cycle is not None:
                package.localcloud_life_cycle = life_cycle
        # Every update emits the state change, with UpdatedModelPackageFields naming what it set among the
        # values AWS documents (SageMaker developer guide, automating-sagemaker-with-eventbridge).
        updated = tuple(field for field in UPDATABLE_FIELDS if field in params)
        if updated:
            self.emit_model_package_event(arn, updated)
        return {"ModelPackageArn": package.arn}

    def _on_create_model_package(self, params: dict[str, Any], response: dict[str, Any]) -> None:
        if params.get("ModelLifeCycle"):
            with self.lock:
                package = self.backend.describe_model_package(response["ModelPackageArn"])
                package.localcloud_life_cycle = validate_life_cycle(params["ModelLifeCycle"])
        self.emit_model_package_event(response["ModelPackageArn"])

    def emit_model_package_event(
        self, model_package_arn: str, updated_fields: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Emit "SageMaker Model Package State Change" with the package as it is now."""
        document = _with_life_cycle(self.backend.describe_model_package(model_package_arn))
        detail = {
            key: _iso(document[key])
            for key in MODEL_PACKAGE_EVENT_FIELDS
            if document.get(key) not in (None, [], {})
        }
        detail.setdefault("ModelPackageStatus", "Completed")
        detail.setdefault("CertifyForMarketplace", False)
        if updated_fields:
            detail["UpdatedModelPackageFields"] = list(updated_fields)
        return self.aws.emit_event(
            SOURCE, "SageMaker Model Package State Change", detail, [document["ModelPackageArn"]]
        )
