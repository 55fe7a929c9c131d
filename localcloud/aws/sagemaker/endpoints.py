"""Endpoints: UpdateEndpoint, DescribeEndpoint with what moto lacks, endpoint events, and SageMaker
Runtime's InvokeEndpoint routed to registered invokers."""

from __future__ import annotations

import time
from typing import Any

from localcloud.aws.protocol import AwsError, RawResponse, RequestInfo
from localcloud.aws.sagemaker.base import SageMakerFamily
from localcloud.aws.sagemaker.common import (
    ENDPOINT_EVENT_STATUS,
    SOURCE,
    EndpointInvoker,
    _epoch_ms,
    _now,
)


class EndpointApis(SageMakerFamily):
    OVERRIDES = {
        "UpdateEndpoint": "_update_endpoint",
        "DescribeEndpoint": "_describe_endpoint",
        "UpdateEndpointWeightsAndCapacities": "_update_weights",
    }
    # called with (endpoint name, {variant: weight}) once new weights are in place (hosting listens)
    weight_listeners: list[Any]
    LISTENERS = (("sagemaker", "CreateEndpoint", "_on_create_endpoint"),)

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
        variants = [v["VariantName"] for v in endpoint.production_variants or []]
        target = params.get("TargetVariant")
        if target is not None and target not in variants:
            raise AwsError(
                "ValidationError",
                f"Variant {target} of endpoint {name} does not exist (variants: {variants}).",
            )
        started = time.perf_counter()
        answer = (
            invoker(
                name, params["Body"], params.get("ContentType"), params.get("Accept"), target_variant=target
            )
            if target is not None
            else invoker(name, params["Body"], params.get("ContentType"), params.get("Accept"))
        )
        model_seconds = time.perf_counter() - started
        status, body, content_type = answer[0], answer[1], answer[2]
        variant = answer[3] if len(answer) > 3 else (variants[0] if variants else "AllTraffic")
        self._record_invocation(name, str(variant), status, model_seconds)
        if status >= 400:
            original = body.decode("utf-8", "replace")
            raise AwsError(
                "ModelError",
                f'Received client error ({status}) from primary with message "{original}".',
                424,
                {"OriginalStatusCode": status, "OriginalMessage": original},
            )
        return RawResponse(
            200, body, {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": str(variant)}
        )

    def _record_invocation(self, endpoint: str, variant: str, status: int, model_seconds: float) -> None:
        """The invocation metrics SageMaker publishes per endpoint and variant (AWS/SageMaker, dimensions
        EndpointName and VariantName; developer guide, monitoring-cloudwatch): Invocations, 1 per request;
        Invocation4XXErrors / Invocation5XXErrors, 1 for a 4xx / 5xx response of the model and 0 otherwise;
        ModelLatency and OverheadLatency in microseconds."""
        dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
        data = [
            ("Invocations", 1.0, "None"),
            ("Invocation4XXErrors", 1.0 if 400 <= status < 500 else 0.0, "None"),
            ("Invocation5XXErrors", 1.0 if status >= 500 else 0.0, "None"),
            ("ModelLatency", round(model_seconds * 1_000_000, 1), "Microseconds"),
            ("OverheadLatency", 0.0, "Microseconds"),
        ]
        self.aws.alarms.ensure_attached()  # these bypass the API, whose requests re-attach the evaluator
        self.aws.backend("cloudwatch").put_metric_data(
            "AWS/SageMaker",
            # no Timestamp: moto stamps each datum with its own (naive UTC) clock, which its queries expect
            [
                {"MetricName": metric, "Value": value, "Unit": unit, "Dimensions": dimensions}
                for metric, value, unit in data
            ],
        )

    def _update_weights(self, params: dict[str, Any], _: RequestInfo) -> dict[str, Any]:
        """UpdateEndpointWeightsAndCapacities (botocore): the endpoint goes Updating, its variants take the
        desired weights and counts, then InService. Every variant named must exist; the endpoint must be
        InService."""
        name = params["EndpointName"]
        desired = params.get("DesiredWeightsAndCapacities") or []
        if not desired:
            raise AwsError(
                "ValidationException", "DesiredWeightsAndCapacities must name at least one variant."
            )
        with self.lock:
            endpoint = self._endpoint(name)
            if endpoint.endpoint_status != "InService":
                raise AwsError("ValidationException", f'Cannot update in-progress endpoint "{endpoint.arn}".')
            variants = {v["VariantName"]: v for v in endpoint.production_variants or []}
            for wanted in desired:
                if wanted["VariantName"] not in variants:
                    raise AwsError(
                        "ValidationException",
                        f"The variant name(s) [{wanted['VariantName']}] is/are not present in the endpoint.",
                    )
                weight = wanted.get("DesiredWeight")
                if weight is not None and float(weight) < 0:
                    raise AwsError("ValidationException", "DesiredWeight must be greater than or equal to 0.")
        self.set_endpoint_status(name, "Updating")
        with self.lock:
            for wanted in desired:
                variant = variants[wanted["VariantName"]]
                if wanted.get("DesiredWeight") is not None:
                    variant["DesiredWeight"] = variant["CurrentWeight"] = float(wanted["DesiredWeight"])
                if wanted.get("DesiredInstanceCount") is not None:
                    count = int(wanted["DesiredInstanceCount"])
                    variant["DesiredInstanceCount"] = variant["CurrentInstanceCount"] = count
            weights = {v: float(variants[v].get("CurrentWeight", 1.0)) for v in variants}
        for listener in list(getattr(self, "weight_listeners", [])):
            listener(name, weights)
        self.set_endpoint_status(name, "InService")
        return {"EndpointArn": endpoint.arn}


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
