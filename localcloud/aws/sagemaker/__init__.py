"""SageMaker on the embedded AWS: the APIs moto 5.2.5 lacks or gets wrong, and the hooks the engine drives.

Added: StopPipelineExecution, ListPipelineExecutionSteps, UpdateEndpoint, UpdateEndpointWeightsAndCapacities,
ModelLifeCycle on model packages, per-variant invocation metrics in CloudWatch, the lineage APIs (artifacts,
contexts, actions, associations), SageMaker Runtime InvokeEndpoint routed to registered invokers, and the
EventBridge events SageMaker emits (model package, endpoint, transform job, pipeline execution).
Fixed: StartPipelineExecution is idempotent on ClientRequestToken and starts in ``Executing``;
UpdateModelPackage keeps what the request does not change; a transform job starts ``InProgress``.

One module per family of APIs (pipelines, model_packages, endpoints, transforms, lineage), each a class
naming the actions it answers; a new API is a method and a line in its family's ``OVERRIDES``, a new family
one new module added to ``SageMakerExtensions``'s bases, as moto keeps a module per service.

The engine owns execution, step and job state through ``set_pipeline_execution_status``,
``put_pipeline_execution_step``, ``set_transform_job_status``, ``set_endpoint_status`` and
``complete_endpoint_update``; it learns of new work with ``EmbeddedAws.add_listener``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from localcloud.aws.sagemaker.common import EndpointInvoker
from localcloud.aws.sagemaker.endpoints import EndpointApis
from localcloud.aws.sagemaker.lineage import LineageApis, LineageStore
from localcloud.aws.sagemaker.model_packages import ModelPackageApis
from localcloud.aws.sagemaker.pipelines import PipelineApis
from localcloud.aws.sagemaker.transforms import TransformApis

if TYPE_CHECKING:
    from localcloud.aws.server import EmbeddedAws

FAMILIES = (PipelineApis, ModelPackageApis, EndpointApis, TransformApis, LineageApis)


class SageMakerExtensions(PipelineApis, ModelPackageApis, EndpointApis, TransformApis, LineageApis):
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
        self.weight_listeners: list[Any] = []
        for family in FAMILIES:
            for action, method in family.OVERRIDES.items():
                aws.register_override("sagemaker", action, getattr(self, method))
            for service, action, method in family.LISTENERS:
                aws.add_listener(service, action, getattr(self, method))
        aws.register_override("sagemaker-runtime", "InvokeEndpoint", self._invoke_endpoint)


__all__ = ["FAMILIES", "LineageStore", "SageMakerExtensions"]
