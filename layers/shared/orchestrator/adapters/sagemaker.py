"""SageMaker: pipelines and executions, model packages, models, endpoints, transform jobs, lineage."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from orchestrator.adapters import is_already_exists, is_not_found
from orchestrator.clients import aws_client


class SageMakerAdapter:
    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("sagemaker")
        return self._client

    def _describe(self, operation: str, **request: Any) -> dict[str, Any] | None:
        try:
            response: dict[str, Any] = getattr(self.client, operation)(**request)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        response.pop("ResponseMetadata", None)
        return response

    def _create(self, operation: str, **request: Any) -> bool:
        """Create; False when it already exists (a retry finding what the first try made)."""
        try:
            getattr(self.client, operation)(**request)
        except ClientError as exc:
            if is_already_exists(exc):
                return False
            raise
        return True

    # --- pipelines -------------------------------------------------------------------------------
    def describe_pipeline(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_pipeline", PipelineName=name)

    def create_pipeline(
        self, name: str, definition: str, role_arn: str, token: str, tags: dict[str, str]
    ) -> bool:
        return self._create(
            "create_pipeline",
            PipelineName=name,
            PipelineDefinition=definition,
            RoleArn=role_arn,
            ClientRequestToken=token,
            Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )

    def update_pipeline(self, name: str, definition: str, role_arn: str) -> str:
        return str(
            self.client.update_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=role_arn)[
                "PipelineArn"
            ]
        )

    def tag(self, arn: str, tags: dict[str, str]) -> None:
        self.client.add_tags(
            ResourceArn=arn, Tags=[{"Key": key, "Value": value} for key, value in tags.items()]
        )

    def start_execution(
        self, pipeline: str, display_name: str, description: str, parameters: dict[str, str], token: str
    ) -> str:
        response = self.client.start_pipeline_execution(
            PipelineName=pipeline,
            PipelineExecutionDisplayName=display_name,
            PipelineExecutionDescription=description,
            PipelineParameters=[{"Name": name, "Value": value} for name, value in parameters.items()],
            ClientRequestToken=token,
        )
        return str(response["PipelineExecutionArn"])

    def executing_executions(self, pipeline: str) -> list[dict[str, Any]]:
        summaries: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "PipelineName": pipeline,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
        }
        while True:
            page = self.client.list_pipeline_executions(**request)
            summaries.extend(
                summary
                for summary in page.get("PipelineExecutionSummaries", [])
                if summary.get("PipelineExecutionStatus") == "Executing"
            )
            if not page.get("NextToken"):
                return summaries
            request["NextToken"] = page["NextToken"]

    def execution_parameters(self, execution_arn: str) -> dict[str, str]:
        parameters: dict[str, str] = {}
        request: dict[str, Any] = {"PipelineExecutionArn": execution_arn}
        while True:
            page = self.client.list_pipeline_parameters_for_execution(**request)
            parameters.update({item["Name"]: item["Value"] for item in page.get("PipelineParameters", [])})
            if not page.get("NextToken"):
                return parameters
            request["NextToken"] = page["NextToken"]

    def execution_parameters_if_known(self, execution_arn: str) -> dict[str, str]:
        try:
            return self.execution_parameters(execution_arn)
        except ClientError as exc:
            if is_not_found(exc):
                return {}
            raise

    def stop_execution(self, execution_arn: str, token: str) -> None:
        self.client.stop_pipeline_execution(PipelineExecutionArn=execution_arn, ClientRequestToken=token)

    def describe_execution(self, execution_arn: str) -> dict[str, Any] | None:
        return self._describe("describe_pipeline_execution", PipelineExecutionArn=execution_arn)

    def execution_steps(self, execution_arn: str) -> list[dict[str, Any]]:
        steps: list[dict[str, Any]] = []
        request: dict[str, Any] = {"PipelineExecutionArn": execution_arn, "SortOrder": "Ascending"}
        while True:
            page = self.client.list_pipeline_execution_steps(**request)
            steps.extend(page.get("PipelineExecutionSteps", []))
            if not page.get("NextToken"):
                return steps
            request["NextToken"] = page["NextToken"]

    # --- model packages and models ---------------------------------------------------------------
    def describe_model_package(self, arn: str) -> dict[str, Any] | None:
        return self._describe("describe_model_package", ModelPackageName=arn)

    def approved_packages(self, group: str) -> list[dict[str, Any]]:
        """The group's Approved packages, newest first."""
        summaries: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "ModelPackageGroupName": group,
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
        }
        while True:
            page = self.client.list_model_packages(**request)
            summaries.extend(page.get("ModelPackageSummaryList", []))
            if not page.get("NextToken"):
                return summaries
            request["NextToken"] = page["NextToken"]

    def describe_processing_job(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_processing_job", ProcessingJobName=name)

    def describe_training_job(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_training_job", TrainingJobName=name)

    def describe_model(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_model", ModelName=name)

    def create_model_from_package(self, name: str, package_arn: str, role_arn: str) -> bool:
        return self._create(
            "create_model",
            ModelName=name,
            ExecutionRoleArn=role_arn,
            Containers=[{"ModelPackageName": package_arn}],
        )

    # --- endpoints -------------------------------------------------------------------------------
    def describe_endpoint_config(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_endpoint_config", EndpointConfigName=name)

    def create_endpoint_config(self, request: dict[str, Any]) -> bool:
        return self._create("create_endpoint_config", **request)

    def describe_endpoint(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_endpoint", EndpointName=name)

    def create_endpoint(self, name: str, config_name: str) -> bool:
        return self._create("create_endpoint", EndpointName=name, EndpointConfigName=config_name)

    def update_endpoint(self, name: str, config_name: str, deployment_config: dict[str, Any]) -> None:
        self.client.update_endpoint(
            EndpointName=name, EndpointConfigName=config_name, DeploymentConfig=deployment_config
        )

    # --- batch -----------------------------------------------------------------------------------
    def describe_transform_job(self, name: str) -> dict[str, Any] | None:
        return self._describe("describe_transform_job", TransformJobName=name)

    def create_transform_job(self, request: dict[str, Any]) -> bool:
        return self._create("create_transform_job", **request)

    # --- lineage (Contexts and Actions have unique names; Artifacts are found by source URI) --------
    def ensure_context(
        self, name: str, context_type: str, source_uri: str, properties: dict[str, str]
    ) -> str:
        return self._ensure_named("Context", name, context_type, source_uri, properties)

    def ensure_action(self, name: str, action_type: str, source_uri: str, properties: dict[str, str]) -> str:
        return self._ensure_named("Action", name, action_type, source_uri, properties)

    def _ensure_named(
        self, entity: str, name: str, entity_type: str, source_uri: str, properties: dict[str, str]
    ) -> str:
        """Create a Context or Action (`entity`), or return the ARN of the one already of that name."""
        lower = entity.lower()
        try:
            created = getattr(self.client, f"create_{lower}")(
                **{
                    f"{entity}Name": name,
                    f"{entity}Type": entity_type,
                    "Source": {"SourceUri": source_uri},
                    "Properties": properties,
                }
            )
            return str(created[f"{entity}Arn"])
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
            return str(getattr(self.client, f"describe_{lower}")(**{f"{entity}Name": name})[f"{entity}Arn"])

    def ensure_artifact(
        self, name: str, artifact_type: str, source_uri: str, properties: dict[str, str]
    ) -> str:
        existing = self.client.list_artifacts(SourceUri=source_uri, ArtifactType=artifact_type).get(
            "ArtifactSummaries", []
        )
        if existing:
            return str(existing[0]["ArtifactArn"])
        return str(
            self.client.create_artifact(
                ArtifactName=name,
                ArtifactType=artifact_type,
                Source={"SourceUri": source_uri},
                Properties=properties,
            )["ArtifactArn"]
        )

    def associate(self, source_arn: str, destination_arn: str, association_type: str) -> None:
        try:
            self.client.add_association(
                SourceArn=source_arn, DestinationArn=destination_arn, AssociationType=association_type
            )
        except ClientError as exc:
            if not is_already_exists(exc):
                raise
