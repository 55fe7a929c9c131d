"""Model packages: UpdateModelPackage keeping what the request does not change, and the Model Package
State Change events."""

from __future__ import annotations

from typing import Any

from localcloud.aws.protocol import RequestInfo
from localcloud.aws.sagemaker.base import SageMakerFamily
from localcloud.aws.sagemaker.common import (
    MODEL_PACKAGE_EVENT_FIELDS,
    SOURCE,
    UPDATABLE_FIELDS,
    _iso,
)


class ModelPackageApis(SageMakerFamily):
    OVERRIDES = {
        "UpdateModelPackage": "_update_model_package",
    }
    LISTENERS = (("sagemaker", "CreateModelPackage", "_on_create_model_package"),)

    def _update_model_package(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params["ModelPackageArn"]
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
        # Every update emits the state change, with UpdatedModelPackageFields naming what it set among the
        # values AWS documents (SageMaker developer guide, automating-sagemaker-with-eventbridge).
        updated = tuple(field for field in UPDATABLE_FIELDS if field in params)
        if updated:
            self.emit_model_package_event(arn, updated)
        return {"ModelPackageArn": package.arn}

    def _on_create_model_package(self, _: dict[str, Any], response: dict[str, Any]) -> None:
        self.emit_model_package_event(response["ModelPackageArn"])

    def emit_model_package_event(
        self, model_package_arn: str, updated_fields: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Emit "SageMaker Model Package State Change" with the package as it is now."""
        document = self.backend.describe_model_package(model_package_arn).gen_response_object()
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
