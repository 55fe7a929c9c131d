"""RegisterModel steps: CreateModelPackage, into a group SageMaker Pipelines creates when it is missing."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from localcloud.engine.expressions import ResolutionContext
from localcloud.engine.steps.base import StepExecutor, register


@register
class RegisterModelStepExecutor(StepExecutor):
    step_type = "RegisterModel"

    def execute(self, arguments: dict[str, Any], ctx: ResolutionContext) -> None:
        engine, step = self.engine, self.step
        sagemaker = engine.client("sagemaker")
        group = arguments.get("ModelPackageGroupName")
        if group:
            self._ensure_model_package_group(str(group))
        arn = sagemaker.create_model_package(**arguments)["ModelPackageArn"]
        step.metadata = {"RegisterModel": {"Arn": arn}}
        described = sagemaker.describe_model_package(ModelPackageName=arn)
        described.pop("ResponseMetadata", None)
        step.properties = described

    def _ensure_model_package_group(self, group: str) -> None:
        """A RegisterModel step into a group that does not exist yet creates it: "specify a
        ModelPackageGroup. SageMaker Pipelines creates this ModelPackageGroup for you" (SageMaker developer
        guide, "Define a pipeline", the RegisterModel step). A group name that is an ARN names a group that
        must exist (of this or another account), so it is never created."""
        if group.startswith("arn:"):
            return
        sagemaker = self.engine.client("sagemaker")
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=group)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("ValidationException", "ResourceNotFound"):
                raise
        try:
            sagemaker.create_model_package_group(ModelPackageGroupName=group)
        except ClientError as error:  # another registration created it meanwhile
            if "already exists" not in str(error.response.get("Error", {}).get("Message", "")):
                raise
