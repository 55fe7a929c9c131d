"""SageMaker on the embedded AWS: the APIs moto 5.2.5 lacks or gets wrong, and the hooks the engine drives.

Added: StopPipelineExecution, ListPipelineExecutionSteps, UpdateEndpoint, the lineage APIs (artifacts,
contexts, actions, associations), SageMaker Runtime InvokeEndpoint routed to registered invokers, and the
EventBridge events SageMaker emits (model package, endpoint, transform job, pipeline execution).
Fixed: StartPipelineExecution is idempotent on ClientRequestToken and starts in ``Executing``;
UpdateModelPackage keeps what the request does not change; a transform job starts ``InProgress``.

The engine owns execution, step and job state through ``set_pipeline_execution_status``,
``put_pipeline_execution_step``, ``set_transform_job_status``, ``set_endpoint_status`` and
``complete_endpoint_update``; it learns of new work with ``EmbeddedAws.add_listener``.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from localcloud.aws.protocol import AwsError, RawResponse, RequestInfo

if TYPE_CHECKING:
    from localcloud.aws.server import EmbeddedAws

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

# fn(endpoint_name, body, content_type, accept) -> (status, body, content_type)
EndpointInvoker = Callable[[str, bytes, "str | None", "str | None"], "tuple[int, bytes, str]"]


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


class LineageStore:
    """Artifacts, contexts, actions and their associations, as SageMaker ML Lineage Tracking keeps them."""

    KINDS = {"artifact": "Artifact", "context": "Context", "action": "Action"}

    def __init__(self, account_id: str, region: str):
        self.account_id = account_id
        self.region = region
        self.entities: dict[str, dict[str, Any]] = {}  # by ARN
        self.associations: dict[tuple[str, str], dict[str, Any]] = {}
        self.lock = threading.RLock()

    def arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:{kind}/{name}"

    def create(self, kind: str, name: str | None, fields: dict[str, Any]) -> str:
        with self.lock:
            if kind == "artifact":
                # artifacts are addressed by a generated id; their name is optional
                arn = self.arn(kind, uuid.uuid4().hex)
            else:
                arn = self.arn(kind, str(name).lower())
                if arn in self.entities:
                    raise AwsError(
                        "ValidationException",
                        f"{self.KINDS[kind]} with name {name} already exists in the account.",
                    )
            moment = _now()
            self.entities[arn] = {
                "Kind": kind,
                "Arn": arn,
                "Name": name,
                "CreationTime": moment,
                "LastModifiedTime": moment,
                **fields,
            }
            return arn

    def get(self, arn: str) -> dict[str, Any]:
        entity = self.entities.get(arn)
        if entity is None:
            raise AwsError("ResourceNotFound", f"Lineage entity {arn} does not exist.")
        return entity

    def get_by_name(self, kind: str, name: str) -> dict[str, Any]:
        entity = (
            self.entities.get(self.arn(kind, name.lower()))
            if name and not name.startswith("arn:")
            else self.entities.get(name)
        )
        if entity is None or entity["Kind"] != kind:
            raise AwsError("ResourceNotFound", f"{self.KINDS[kind]} {name} does not exist.")
        return entity

    def delete(self, arn: str) -> None:
        with self.lock:
            self.get(arn)
            del self.entities[arn]
            for key in [k for k in self.associations if arn in k]:
                del self.associations[key]

    def entity_type(self, entity: dict[str, Any]) -> str:
        return {
            "artifact": entity.get("ArtifactType"),
            "context": entity.get("ContextType"),
            "action": entity.get("ActionType"),
        }[entity["Kind"]] or self.KINDS[entity["Kind"]]


class SageMakerExtensions:
    """Registers SageMaker's missing and corrected APIs on an ``EmbeddedAws``; helpers for the engine."""

    def __init__(self, aws: EmbeddedAws):
        self.aws = aws
        self.lineage = LineageStore(aws.account_id, aws.region)
        self.lock = threading.RLock()
        # with no hosting attached, CreateEndpoint/UpdateEndpoint complete at once (Creating -> InService)
        self.auto_complete_endpoints = True
        self._steps: dict[str, dict[str, dict[str, Any]]] = {}  # execution ARN -> step name -> step
        self._endpoint_extra: dict[str, dict[str, Any]] = {}  # endpoint name -> fields moto lacks
        self._invokers: dict[str | None, EndpointInvoker] = {}
        overrides: dict[str, Callable[[dict[str, Any], RequestInfo], Any]] = {
            "StartPipelineExecution": self._start_pipeline_execution,
            "StopPipelineExecution": self._stop_pipeline_execution,
            "ListPipelineExecutionSteps": self._list_pipeline_execution_steps,
            "ListPipelineExecutions": self._list_pipeline_executions,
            "UpdateModelPackage": self._update_model_package,
            "UpdateEndpoint": self._update_endpoint,
            "DescribeEndpoint": self._describe_endpoint,
            "CreateArtifact": self._create_artifact,
            "DescribeArtifact": self._describe_artifact,
            "ListArtifacts": self._list_artifacts,
            "DeleteArtifact": self._delete_artifact,
            "CreateContext": self._create_context,
            "DescribeContext": self._describe_context,
            "ListContexts": self._list_contexts,
            "DeleteContext": self._delete_context,
            "CreateAction": self._create_action,
            "DescribeAction": self._describe_action,
            "ListActions": self._list_actions,
            "DeleteAction": self._delete_action,
            "AddAssociation": self._add_association,
            "DeleteAssociation": self._delete_association,
            "ListAssociations": self._list_associations,
        }
        for action, fn in overrides.items():
            aws.register_override("sagemaker", action, fn)
        aws.register_override("sagemaker-runtime", "InvokeEndpoint", self._invoke_endpoint)
        aws.add_listener("sagemaker", "CreateModelPackage", self._on_create_model_package)
        aws.add_listener("sagemaker", "CreateEndpoint", self._on_create_endpoint)
        aws.add_listener("sagemaker", "CreateTransformJob", self._on_create_transform_job)

    @property
    def backend(self) -> Any:
        return self.aws.backend("sagemaker")

    # pipeline executions -------------------------------------------------------------------------
    def find_pipeline_execution(self, execution_arn: str) -> Any:
        """Moto's execution object for an ARN (raises ResourceNotFound as SageMaker does)."""
        pipeline_name = execution_arn.split(":pipeline/", 1)[-1].split("/execution/", 1)[0]
        pipeline = self.backend.pipelines.get(pipeline_name)
        if pipeline is None or execution_arn not in pipeline.pipeline_executions:
            raise AwsError("ResourceNotFound", f"Pipeline execution {execution_arn} does not exist.")
        return pipeline.pipeline_executions[execution_arn]

    def _start_pipeline_execution(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["PipelineName"].split(":pipeline/")[-1]
        token = params.get("ClientRequestToken")
        with self.lock:
            pipeline = self.backend.pipelines.get(name)
            if pipeline is None:
                raise AwsError("ResourceNotFound", f"Pipeline {params['PipelineName']} does not exist.")
            if token:
                for arn, execution in pipeline.pipeline_executions.items():
                    if execution.client_request_token == token:
                        return {"PipelineExecutionArn": arn}
            result = self.backend.start_pipeline_execution(
                name,
                params.get("PipelineExecutionDisplayName"),
                params.get("PipelineParameters", []),
                params.get("PipelineExecutionDescription"),
                params.get("ParallelismConfiguration"),
                token,
            )
            execution = pipeline.pipeline_executions[result["PipelineExecutionArn"]]
            execution.pipeline_execution_status = "Executing"
            execution.pipeline_execution_display_name = (
                execution.pipeline_execution_display_name or result["PipelineExecutionArn"].rsplit("/", 1)[-1]
            )
            return {"PipelineExecutionArn": result["PipelineExecutionArn"]}

    def _list_pipeline_executions(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["PipelineName"].split(":pipeline/")[-1]
        pipeline = self.backend.pipelines.get(name)
        if pipeline is None:
            raise AwsError("ResourceNotFound", f"Pipeline {params['PipelineName']} does not exist.")
        after, before = _as_datetime(params.get("CreatedAfter")), _as_datetime(params.get("CreatedBefore"))
        summaries = []
        for arn, execution in pipeline.pipeline_executions.items():
            start = execution.start_time
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.UTC)
            if (after and start <= after) or (before and start >= before):
                continue
            summary = {
                "PipelineExecutionArn": arn,
                "StartTime": start,
                "PipelineExecutionStatus": execution.pipeline_execution_status,
                "PipelineExecutionDisplayName": execution.pipeline_execution_display_name,
            }
            if execution.pipeline_execution_description:
                summary["PipelineExecutionDescription"] = execution.pipeline_execution_description
            if execution.pipeline_execution_failure_reason:
                summary["PipelineExecutionFailureReason"] = execution.pipeline_execution_failure_reason
            summaries.append(summary)
        summaries.sort(key=lambda s: s["StartTime"], reverse=params.get("SortOrder") != "Ascending")
        return _paginate(summaries, params, "PipelineExecutionSummaries")

    def _stop_pipeline_execution(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params["PipelineExecutionArn"]
        with self.lock:
            execution = self.find_pipeline_execution(arn)
            status = execution.pipeline_execution_status
            if status in PIPELINE_TERMINAL:
                raise AwsError(
                    "ValidationException",
                    f"Pipeline execution {arn} is in status {status} and cannot be stopped.",
                )
            if status != "Stopping":
                self.set_pipeline_execution_status(arn, "Stopping")
        return {"PipelineExecutionArn": arn}

    def set_pipeline_execution_status(
        self, execution_arn: str, status: str, failure_reason: str | None = None
    ) -> None:
        """Set an execution's status and emit the pipeline execution status change event if it changed."""
        with self.lock:
            execution = self.find_pipeline_execution(execution_arn)
            previous = execution.pipeline_execution_status
            execution.pipeline_execution_status = status
            execution.last_modified_time = _now()
            if failure_reason is not None:
                execution.pipeline_execution_failure_reason = failure_reason
        if previous == status:
            return
        pipeline_arn = execution_arn.split("/execution/")[0]
        detail: dict[str, Any] = {
            "pipelineExecutionDisplayName": execution.pipeline_execution_display_name,
            "currentPipelineExecutionStatus": status,
            "previousPipelineExecutionStatus": previous,
            "executionStartTime": _iso(execution.start_time),
            "pipelineArn": pipeline_arn,
            "pipelineExecutionArn": execution_arn,
        }
        if status in PIPELINE_TERMINAL:
            detail["executionEndTime"] = _iso(_now())
        if execution.pipeline_execution_description:
            detail["pipelineExecutionDescription"] = execution.pipeline_execution_description
        self.aws.emit_event(
            SOURCE,
            "SageMaker Model Building Pipeline Execution Status Change",
            detail,
            [pipeline_arn, execution_arn],
        )

    def put_pipeline_execution_step(self, execution_arn: str, step: dict[str, Any]) -> None:
        """Insert or replace (by StepName) a step as ListPipelineExecutionSteps returns it."""
        self.find_pipeline_execution(execution_arn)
        with self.lock:
            self._steps.setdefault(execution_arn, {})[step["StepName"]] = dict(step)

    def _list_pipeline_execution_steps(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params["PipelineExecutionArn"]
        self.find_pipeline_execution(arn)
        with self.lock:
            steps = list(self._steps.get(arn, {}).values())
        epoch = dt.datetime.fromtimestamp(0, dt.UTC)
        steps.sort(
            key=lambda s: _as_datetime(s.get("StartTime")) or epoch,
            reverse=params.get("SortOrder") != "Ascending",
        )
        return _paginate(steps, params, "PipelineExecutionSteps")

    # model packages ------------------------------------------------------------------------------
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

    # endpoints -----------------------------------------------------------------------------------
    def _endpoint(self, name: str) -> Any:
        endpoint = self.backend.endpoints.get(name)
        if endpoint is None:
            raise AwsError("ValidationException", f'Could not find endpoint "{name}".')
        return endpoint

    def _config(self, name: str) -> dict[str, Any]:
        try:
            return dict(self.backend.describe_endpoint_config(name))
        except Exception as error:
            raise AwsError(
                "ValidationException", f'Could not find endpoint configuration "{name}".'
            ) from error

    def _on_create_endpoint(self, params: dict[str, Any], _: dict[str, Any]) -> None:
        name = params["EndpointName"]
        with self.lock:
            self._endpoint_extra[name] = {}
            if params.get("DeploymentConfig"):
                self._endpoint_extra[name]["DeploymentConfig"] = params["DeploymentConfig"]
        self.set_endpoint_status(name, "Creating")
        if self.auto_complete_endpoints:
            self.set_endpoint_status(name, "InService")

    def _update_endpoint(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name, config_name = params["EndpointName"], params["EndpointConfigName"]
        with self.lock:
            endpoint = self._endpoint(name)
            config = self._config(config_name)
            if endpoint.endpoint_status != "InService":
                raise AwsError("ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".')
            self._refuse_instance_type_change_of_scaled_variant(endpoint, config)
            validate_deployment_config(params.get("DeploymentConfig"))
            extra = self._endpoint_extra.setdefault(name, {})
            deployment = params.get("DeploymentConfig")
            if deployment is None and params.get("RetainDeploymentConfig"):
                deployment = extra.get("DeploymentConfig")
            extra.update(
                {
                    "PendingConfigName": config_name,
                    "PendingConfig": config,
                    "PreviousConfigName": endpoint.endpoint_config_name,
                }
            )
            extra.pop("FailureReason", None)
            if deployment is not None:
                extra["DeploymentConfig"] = deployment
        self.set_endpoint_status(name, "Updating")
        if self.auto_complete_endpoints:
            self.complete_endpoint_update(name)
        return {"EndpointArn": endpoint.arn}

    def _refuse_instance_type_change_of_scaled_variant(self, endpoint: Any, config: dict[str, Any]) -> None:
        """SageMaker refuses to change the instance type of a variant registered for automatic scaling:
        "you must deregister the endpoint as a scalable target" first (developer guide,
        endpoint-scaling-update)."""
        current = self._config(endpoint.endpoint_config_name).get("ProductionVariants") or []
        live = {v["VariantName"]: v.get("InstanceType") for v in current}
        scaled = {
            t.resource_id
            for t in self.aws.backend("applicationautoscaling")._flatten_scalable_targets("sagemaker")
        }
        for variant in config.get("ProductionVariants", []):
            changed = live.get(variant["VariantName"]) not in (None, variant.get("InstanceType"))
            if changed and f"endpoint/{endpoint.endpoint_name}/variant/{variant['VariantName']}" in scaled:
                raise AwsError(
                    "ValidationException",
                    f"The variant {variant['VariantName']} is registered for automatic scaling; deregister "
                    "it before changing its instance type.",
                )

    def complete_endpoint_update(
        self, endpoint_name: str, succeeded: bool = True, failure_reason: str | None = None
    ) -> None:
        """Finish an UpdateEndpoint: switch to the new config, or roll back to the old one (succeeded=False).

        Either way the endpoint ends InService; a rollback keeps the old config and records the reason.
        """
        with self.lock:
            endpoint = self._endpoint(endpoint_name)
            extra = self._endpoint_extra.setdefault(endpoint_name, {})
            config_name, config = extra.pop("PendingConfigName", None), extra.pop("PendingConfig", None)
            if config_name is None:
                raise AwsError("ValidationException", f"Endpoint {endpoint_name} has no update in progress.")
            if succeeded:
                endpoint.endpoint_config_name = config_name
                endpoint.production_variants = endpoint._process_production_variants(
                    config["ProductionVariants"]
                )
                endpoint.data_capture_config = config.get("DataCaptureConfig")
                if "DeploymentConfig" in extra:
                    extra["LastDeploymentConfig"] = extra["DeploymentConfig"]
            else:
                extra["FailureReason"] = failure_reason or "Update rolled back."
        self.set_endpoint_status(endpoint_name, "InService")

    def set_endpoint_status(self, endpoint_name: str, status: str, failure_reason: str | None = None) -> None:
        """Set an endpoint's status (as DescribeEndpoint shows it) and emit the endpoint state change."""
        with self.lock:
            endpoint = self._endpoint(endpoint_name)
            endpoint.endpoint_status = status
            endpoint.last_modified_time = _now()
            if failure_reason is not None:
                endpoint.failure_reason = failure_reason
                self._endpoint_extra.setdefault(endpoint_name, {})["FailureReason"] = failure_reason
            tags = {tag["Key"]: tag["Value"] for tag in (endpoint.tags or [])}
            # The fields and formats of AWS's documented example (SageMaker developer guide, "Events that
            # Amazon SageMaker AI sends to Amazon EventBridge", endpoint state change): variants carry only
            # their desired weight and count, times are epoch milliseconds as floats, and no FailureReason
            # (DescribeEndpoint has it).
            detail = {
                "EndpointName": endpoint.endpoint_name,
                "EndpointArn": endpoint.arn,
                "EndpointConfigName": endpoint.endpoint_config_name,
                "ProductionVariants": [
                    {
                        "DesiredWeight": float(variant.get("DesiredWeight", 1.0)),
                        "DesiredInstanceCount": float(variant.get("DesiredInstanceCount", 1)),
                    }
                    for variant in endpoint.production_variants or []
                ],
                "EndpointStatus": ENDPOINT_EVENT_STATUS.get(status, status),
                "CreationTime": float(_epoch_ms(endpoint.creation_time)),
                "LastModifiedTime": float(_epoch_ms(endpoint.last_modified_time)),
                "Tags": tags,
            }
        self.aws.emit_event(SOURCE, "SageMaker Endpoint State Change", detail, [endpoint.arn])

    def _describe_endpoint(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        name = params["EndpointName"]
        with self.lock:
            endpoint = self._endpoint(name)
            document = dict(self.backend.describe_endpoint(name))
            extra = self._endpoint_extra.get(name, {})
            for key in ("LastDeploymentConfig", "FailureReason"):
                if extra.get(key):
                    document[key] = extra[key]
            if extra.get("PendingConfigName"):
                document["PendingDeploymentSummary"] = {
                    "EndpointConfigName": extra["PendingConfigName"],
                    "ProductionVariants": [
                        {
                            "VariantName": v["VariantName"],
                            "VariantStatus": [
                                {"Status": "Creating", "StartTime": endpoint.last_modified_time}
                            ],
                        }
                        for v in extra["PendingConfig"]["ProductionVariants"]
                    ],
                    "StartTime": endpoint.last_modified_time,
                }
        document.pop("Tags", None)
        return {k: v for k, v in document.items() if v not in (None, "", [None])}

    def register_endpoint_invoker(self, fn: EndpointInvoker, endpoint_name: str | None = None) -> None:
        """Route InvokeEndpoint for ``endpoint_name`` (or, with None, for any endpoint) to ``fn``.

        ``fn(endpoint_name, body, content_type, accept)`` returns ``(status, body, content_type)``; a
        status >= 400 reaches the caller as SageMaker's ModelError (the container's error), as on AWS.
        """
        with self.lock:
            self._invokers[endpoint_name] = fn

    def unregister_endpoint_invoker(self, endpoint_name: str | None = None) -> None:
        with self.lock:
            self._invokers.pop(endpoint_name, None)

    def _invoke_endpoint(self, params: dict[str, Any], info: RequestInfo) -> RawResponse:
        name = params["EndpointName"]
        with self.lock:
            endpoint = self.backend.endpoints.get(name)
            invoker = self._invokers.get(name) or self._invokers.get(None)
        if endpoint is None or invoker is None:
            raise AwsError("ValidationError", f"Endpoint {name} of account {self.aws.account_id} not found.")
        if endpoint.endpoint_status not in ("InService", "Updating", "SystemUpdating", "RollingBack"):
            raise AwsError(
                "ValidationError",
                f"Endpoint {name} of account {self.aws.account_id} is not in service "
                f"({endpoint.endpoint_status}).",
            )
        status, body, content_type = invoker(
            name, params["Body"], params.get("ContentType"), params.get("Accept")
        )
        if status >= 400:
            original = body.decode("utf-8", "replace")
            raise AwsError(
                "ModelError",
                f'Received client error ({status}) from primary with message "{original}".',
                424,
                {"OriginalStatusCode": status, "OriginalMessage": original},
            )
        variant = (
            endpoint.production_variants[0]["VariantName"] if endpoint.production_variants else "AllTraffic"
        )
        return RawResponse(
            200, body, {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": variant}
        )

    # transform jobs ------------------------------------------------------------------------------
    def _on_create_transform_job(self, params: dict[str, Any], _: dict[str, Any]) -> None:
        self.set_transform_job_status(params["TransformJobName"], "InProgress")

    def set_transform_job_status(self, job_name: str, status: str, failure_reason: str | None = None) -> None:
        """Set a transform job's status (DescribeTransformJob) and emit the transform job state change."""
        with self.lock:
            job = self.backend.transform_jobs.get(job_name)
            if job is None:
                raise AwsError("ValidationException", f"Could not find transform job '{job_name}'.")
            moment = _now()
            job.transform_job_status = status
            job.last_modified_time = moment
            if status == "InProgress":
                job.transform_start_time, job.transform_end_time = moment, None
            elif status in ("Completed", "Failed", "Stopped"):
                job.transform_end_time = moment
            if failure_reason is not None:
                job.failure_reason = failure_reason
            detail = {
                "TransformJobName": job.transform_job_name,
                "TransformJobArn": job.arn,
                "TransformJobStatus": status,
                "ModelName": job.model_name,
                "MaxConcurrentTransforms": job.max_concurrent_transforms,
                "MaxPayloadInMB": job.max_payload_in_mb,
                "BatchStrategy": job.batch_strategy,
                "Environment": job.environment or {},
                "TransformInput": job.transform_input,
                "TransformOutput": job.transform_output,
                "TransformResources": job.transform_resources,
                # times as AWS's documented example writes them: ISO 8601 strings
                "CreationTime": _iso(job.creation_time),
                "TransformStartTime": _iso(job.transform_start_time),
                "Tags": {tag["Key"]: tag["Value"] for tag in (job.tags or [])},
            }
            if job.transform_end_time is not None:
                detail["TransformEndTime"] = _iso(job.transform_end_time)
            if job.failure_reason:
                detail["FailureReason"] = job.failure_reason
        detail = {k: v for k, v in detail.items() if v is not None}
        self.aws.emit_event(SOURCE, "SageMaker Transform Job State Change", detail, [job.arn])

    # lineage -------------------------------------------------------------------------------------
    def _create_artifact(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        if not params.get("Source", {}).get("SourceUri") or not params.get("ArtifactType"):
            raise AwsError("ValidationException", "Source.SourceUri and ArtifactType are required.")
        fields: dict[str, Any] = {
            k: params[k]
            for k in ("Source", "ArtifactType", "Properties", "MetadataProperties", "Tags")
            if k in params
        }
        return {"ArtifactArn": self.lineage.create("artifact", params.get("ArtifactName"), fields)}

    def _create_context(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        for key in ("ContextName", "Source", "ContextType"):
            if not params.get(key):
                raise AwsError("ValidationException", f"{key} is required.")
        fields: dict[str, Any] = {
            k: params[k]
            for k in ("Source", "ContextType", "Description", "Properties", "Tags")
            if k in params
        }
        return {"ContextArn": self.lineage.create("context", params["ContextName"], fields)}

    def _create_action(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        for key in ("ActionName", "Source", "ActionType"):
            if not params.get(key):
                raise AwsError("ValidationException", f"{key} is required.")
        fields: dict[str, Any] = {
            k: params[k]
            for k in (
                "Source",
                "ActionType",
                "Description",
                "Status",
                "Properties",
                "MetadataProperties",
                "Tags",
            )
            if k in params
        }
        fields.setdefault("Status", "Unknown")
        return {"ActionArn": self.lineage.create("action", params["ActionName"], fields)}

    @staticmethod
    def _public(entity: dict[str, Any], kind: str) -> dict[str, Any]:
        prefix = kind.capitalize()
        document = {f"{prefix}Name": entity["Name"], f"{prefix}Arn": entity["Arn"]}
        document.update({k: v for k, v in entity.items() if k not in ("Kind", "Arn", "Name", "Tags")})
        return {k: v for k, v in document.items() if v is not None}

    def _describe_artifact(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        entity = self.lineage.get(params["ArtifactArn"])
        if entity["Kind"] != "artifact":
            raise AwsError("ResourceNotFound", f"Artifact {params['ArtifactArn']} does not exist.")
        return self._public(entity, "artifact")

    def _describe_context(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        return self._public(self.lineage.get_by_name("context", params["ContextName"]), "context")

    def _describe_action(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        return self._public(self.lineage.get_by_name("action", params["ActionName"]), "action")

    def _list(
        self, kind: str, params: dict[str, Any], type_key: str, summary_keys: tuple[str, ...], list_key: str
    ) -> dict[str, Any]:
        with self.lineage.lock:
            entities = [e for e in self.lineage.entities.values() if e["Kind"] == kind]
        if params.get("SourceUri"):
            entities = [e for e in entities if e.get("Source", {}).get("SourceUri") == params["SourceUri"]]
        if params.get(type_key):
            entities = [e for e in entities if e.get(type_key) == params[type_key]]
        entities = [e for e in entities if _created_between(e, params)]
        summaries = []
        for entity in entities:
            public = self._public(entity, kind)
            summaries.append({k: public[k] for k in summary_keys if k in public})
        return _paginate(_sort(summaries, params, f"{kind.capitalize()}Name"), params, list_key)

    def _list_artifacts(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        keys = ("ArtifactArn", "ArtifactName", "Source", "ArtifactType", "CreationTime", "LastModifiedTime")
        return self._list("artifact", params, "ArtifactType", keys, "ArtifactSummaries")

    def _list_contexts(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        keys = ("ContextArn", "ContextName", "Source", "ContextType", "CreationTime", "LastModifiedTime")
        return self._list("context", params, "ContextType", keys, "ContextSummaries")

    def _list_actions(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        keys = (
            "ActionArn",
            "ActionName",
            "Source",
            "ActionType",
            "Status",
            "CreationTime",
            "LastModifiedTime",
        )
        return self._list("action", params, "ActionType", keys, "ActionSummaries")

    def _delete_artifact(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        arn = params.get("ArtifactArn")
        if not arn:
            uri = params.get("Source", {}).get("SourceUri")
            matches = [
                a
                for a, e in self.lineage.entities.items()
                if e["Kind"] == "artifact" and e.get("Source", {}).get("SourceUri") == uri
            ]
            if not matches:
                raise AwsError("ResourceNotFound", f"Artifact with source {uri} does not exist.")
            arn = matches[0]
        self.lineage.delete(arn)
        return {"ArtifactArn": arn}

    def _delete_context(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        entity = self.lineage.get_by_name("context", params["ContextName"])
        self.lineage.delete(entity["Arn"])
        return {"ContextArn": entity["Arn"]}

    def _delete_action(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        entity = self.lineage.get_by_name("action", params["ActionName"])
        self.lineage.delete(entity["Arn"])
        return {"ActionArn": entity["Arn"]}

    def _add_association(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        source_arn, destination_arn = params["SourceArn"], params["DestinationArn"]
        association_type = params.get("AssociationType")
        if association_type is not None and association_type not in ASSOCIATION_TYPES:
            raise AwsError("ValidationException", f"Invalid AssociationType {association_type}.")
        with self.lineage.lock:
            source, destination = self.lineage.get(source_arn), self.lineage.get(destination_arn)
            self.lineage.associations[(source_arn, destination_arn)] = {
                "SourceArn": source_arn,
                "DestinationArn": destination_arn,
                "SourceType": self.lineage.entity_type(source),
                "DestinationType": self.lineage.entity_type(destination),
                "AssociationType": association_type or "AssociatedWith",
                "CreationTime": _now(),
                **({"SourceName": source["Name"]} if source.get("Name") else {}),
                **({"DestinationName": destination["Name"]} if destination.get("Name") else {}),
            }
        return {"SourceArn": source_arn, "DestinationArn": destination_arn}

    def _delete_association(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        key = (params["SourceArn"], params["DestinationArn"])
        with self.lineage.lock:
            if self.lineage.associations.pop(key, None) is None:
                raise AwsError("ResourceNotFound", f"Association {key[0]} -> {key[1]} does not exist.")
        return {"SourceArn": key[0], "DestinationArn": key[1]}

    def _list_associations(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        with self.lineage.lock:
            associations = list(self.lineage.associations.values())
        for key in ("SourceArn", "DestinationArn", "SourceType", "DestinationType", "AssociationType"):
            if params.get(key):
                associations = [a for a in associations if a.get(key) == params[key]]
        associations = [a for a in associations if _created_between(a, params)]
        field = {
            "SourceArn": "SourceArn",
            "DestinationArn": "DestinationArn",
            "SourceType": "SourceType",
            "DestinationType": "DestinationType",
        }.get(params.get("SortBy", ""), "CreationTime")
        associations.sort(key=lambda a: a[field], reverse=params.get("SortOrder") != "Ascending")
        return _paginate(associations, params, "AssociationSummaries")


def validate_deployment_config(deployment: dict[str, Any] | None) -> None:
    """UpdateEndpoint's traffic steps as botocore's TrafficRoutingConfig documents them: CanarySize "must be
    less than or equal to 50%" and LinearStepSize "must be 10-50%" of the variant's total instance count."""
    routing = ((deployment or {}).get("BlueGreenUpdatePolicy") or {}).get("TrafficRoutingConfiguration") or {}
    limits = {"CanarySize": (0, 50), "LinearStepSize": (10, 50)}
    for field, (low, high) in limits.items():
        size = routing.get(field)
        if size and size.get("Type") == "CAPACITY_PERCENT" and not low <= float(size["Value"]) <= high:
            bound = f"at most {high}%" if low == 0 else f"{low}-{high}%"
            raise AwsError(
                "ValidationException",
                f"{field} must be {bound} of the variant's instance count, not {size['Value']}%.",
            )
