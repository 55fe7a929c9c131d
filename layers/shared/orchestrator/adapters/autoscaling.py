"""Application Auto Scaling of an endpoint variant's instance count."""

from __future__ import annotations

from typing import Any

from orchestrator.clients import aws_client


class AutoscalingAdapter:
    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("application-autoscaling")
        return self._client

    def scale_variant_on_invocations(
        self,
        endpoint_name: str,
        variant: str,
        min_capacity: int,
        max_capacity: int,
        target_invocations: float,
    ) -> str:
        """Register the variant and put a target-tracking policy; both calls are upserts."""
        resource_id = f"endpoint/{endpoint_name}/variant/{variant}"
        self.client.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=min_capacity,
            MaxCapacity=max_capacity,
        )
        self.client.put_scaling_policy(
            PolicyName=f"{endpoint_name}-invocations-per-instance"[:256],
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": target_invocations,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
            },
        )
        return resource_id

    def deregister_variant(self, endpoint_name: str, variant: str) -> bool:
        """Remove the variant's scalable target (and with it its policies); False when none was registered.

        SageMaker refuses an UpdateEndpoint that changes the instance type of an autoscaled variant until it
        is deregistered (SageMaker developer guide, "Update an endpoint that uses automatic scaling").
        """
        resource_id = f"endpoint/{endpoint_name}/variant/{variant}"
        targets = self.client.describe_scalable_targets(
            ServiceNamespace="sagemaker",
            ResourceIds=[resource_id],
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        ).get("ScalableTargets", [])
        if not targets:
            return False
        self.client.deregister_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource_id,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        )
        return True
