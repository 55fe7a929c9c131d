"""On a model package decision: deploy an approved package (endpoint and/or batch), roll back a rejected one.

The event only says that something changed; what to do is decided from DescribeModelPackage.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from orchestrator.adapters import error_code, error_message, is_endpoint_busy
from orchestrator.adapters.autoscaling import AutoscalingAdapter
from orchestrator.adapters.ledger import Ledger, endpoint_pk, package_pk, utc_now
from orchestrator.adapters.notifier import Notifier
from orchestrator.adapters.s3 import S3Adapter
from orchestrator.adapters.sagemaker import SageMakerAdapter
from orchestrator.clients import own_account_id
from orchestrator.domain import Decision, EndpointDeployment, PackageLineage
from orchestrator.errors import EndpointBusyError
from orchestrator.events import AlarmStateEvent, EndpointStateEvent, ModelPackageStateEvent, canonical_status
from orchestrator.idempotency import run_once
from orchestrator.intake import alarm_refusal, ignore, refusing_permanent_errors
from orchestrator.lineage import LineageRecorder
from orchestrator.naming import endpoint_config_name, model_name, transform_job_name
from orchestrator.observability import logger, metrics
from orchestrator.promote import (
    AB_PROMOTED,
    AB_ROLLED_BACK,
    PRODUCTION,
    PRODUCTION_RECORD,
    PROMOTION_STATUS,
    STAGING_RECORD,
    Refusal,
    held_out_rows,
    held_out_uri,
    life_cycle,
    promotion_refusal,
    record_smoke_result,
    refused,
    smoke_test,
    variant_metrics,
)
from orchestrator.settings import DeploymentStrategy, DeploySettings, ProductionStrategy

VARIANT = "AllTraffic"
LIVE, CANDIDATE = "Live", "Candidate"  # the variants of an A/B test in production
BUSY = {"CREATING", "UPDATING", "SYSTEM_UPDATING", "ROLLING_BACK", "DELETING"}


@dataclass(frozen=True)
class DeployServices:
    sagemaker: SageMakerAdapter
    s3: S3Adapter
    ledger: Ledger
    notifier: Notifier
    project: str
    autoscaling: AutoscalingAdapter

    def lineage(self) -> LineageRecorder:
        return LineageRecorder(self.ledger, self.sagemaker, self.project)

    @classmethod
    def from_settings(cls, settings: DeploySettings) -> DeployServices:
        return cls(
            SageMakerAdapter(),
            S3Adapter(),
            Ledger(settings.ledger_table_name),
            Notifier(settings.notification_topic_arn),
            settings.project_name,
            AutoscalingAdapter(),
        )


# --- reading a package ------------------------------------------------------------------------------
def _approver(description: dict[str, Any]) -> str | None:
    who = description.get("LastModifiedBy") or {}
    identity = who.get("IamIdentity") or {}
    return identity.get("Arn") or who.get("UserProfileName") or who.get("UserProfileArn")


def _training_job_of(model_data_url: str | None) -> str | None:
    """pipelines/training/<training job name>/output/model.tar.gz (docs/architecture.md S3 layout)."""
    parts = (model_data_url or "").split("/")
    return parts[-3] if len(parts) >= 3 and parts[-2] == "output" else None


def read_package(
    description: dict[str, Any], decided_at: str | None, services: DeployServices
) -> PackageLineage:
    """The package and how it came to be: commit, run, training job, hyper-parameters, metrics, approver."""
    metadata = description.get("MetadataProperties") or {}
    custom = description.get("CustomerMetadataProperties") or {}
    containers = (description.get("InferenceSpecification") or {}).get("Containers") or [{}]
    model_data_url = containers[0].get("ModelDataUrl")
    training_job = _training_job_of(model_data_url)
    hyperparameters: dict[str, str] = {}
    training_metrics: dict[str, float] = {}
    if training_job:
        job = services.sagemaker.describe_training_job(training_job) or {}
        hyperparameters = {
            key: value
            for key, value in (job.get("HyperParameters") or {}).items()
            if not key.startswith("sagemaker_")
        }
        training_metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList") or []}
    evaluation: dict[str, Any] = {}
    statistics = ((description.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    if statistics.get("S3Uri"):
        try:
            evaluation = services.s3.read_json(statistics["S3Uri"])
        except (ClientError, ValueError) as exc:
            logger.warning("evaluation report unreadable", uri=statistics["S3Uri"], error=str(exc))
    return PackageLineage(
        package_arn=description["ModelPackageArn"],
        group=description["ModelPackageGroupName"],
        version=int(description["ModelPackageVersion"]),
        approval_status=description["ModelApprovalStatus"],
        package_status=description.get("ModelPackageStatus", ""),
        approver=_approver(description),
        approval_description=description.get("ApprovalDescription"),
        decided_at=decided_at,
        repository=metadata.get("Repository") or custom.get("RepositoryName"),
        commit_id=metadata.get("CommitId") or custom.get("CommitId"),
        execution_arn=metadata.get("GeneratedBy") or custom.get("PipelineExecutionArn"),
        model_data_url=model_data_url,
        training_job=training_job,
        hyperparameters=hyperparameters,
        training_metrics=training_metrics,
        evaluation=evaluation,
    )


# --- endpoint ---------------------------------------------------------------------------------------
def deployment_config(settings: DeploySettings) -> dict[str, Any]:
    """Blue/green update with the configured traffic shifting and alarm-driven automatic rollback."""
    routing: dict[str, Any] = {"WaitIntervalInSeconds": settings.traffic_wait_seconds}
    if settings.deployment_strategy is DeploymentStrategy.CANARY:
        routing |= {
            "Type": "CANARY",
            "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent},
        }
    elif settings.deployment_strategy is DeploymentStrategy.LINEAR:
        routing |= {
            "Type": "LINEAR",
            "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": settings.linear_step_percent},
        }
    else:
        routing |= {"Type": "ALL_AT_ONCE"}
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": settings.termination_wait_seconds,
        }
    }
    if settings.rollback_alarm_names:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": name} for name in settings.rollback_alarm_names]
        }
    return config


def plan_endpoint(
    package: PackageLineage, settings: DeploySettings, beside: PackageLineage | None = None
) -> EndpointDeployment:
    """One variant serving `package`; or, for an A/B test, `beside` as variant Live and `package` as variant
    Candidate with CANDIDATE_TRAFFIC_PERCENT of the traffic (production variant weights: developer guide,
    model-ab-testing)."""
    endpoint = str(settings.endpoint_name)
    model = model_name(package.group, package.version)
    variant = {
        "VariantName": VARIANT,
        "ModelName": model,
        "InstanceType": settings.endpoint_instance_type,
        "InitialInstanceCount": settings.endpoint_instance_count,
        "InitialVariantWeight": 1.0,
    }
    variants = [variant]
    if beside is not None:
        share = settings.candidate_traffic_percent / 100
        live = variant | {
            "VariantName": LIVE,
            "ModelName": model_name(beside.group, beside.version),
            "InitialVariantWeight": round(1 - share, 4),
        }
        variants = [live, variant | {"VariantName": CANDIDATE, "InitialVariantWeight": share}]
    capture = None
    if settings.data_capture_percent > 0:
        capture = {
            "EnableCapture": True,
            "InitialSamplingPercentage": settings.data_capture_percent,
            "DestinationS3Uri": f"s3://{settings.artifact_bucket}/data-capture/{endpoint}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        }
    fingerprint = repr(
        (package.package_arn, variant, capture)
        if beside is None
        else (package.package_arn, variants, capture)
    )
    config_name = endpoint_config_name(endpoint, package.version, fingerprint)
    request: dict[str, Any] = {"EndpointConfigName": config_name, "ProductionVariants": variants}
    if capture:
        request["DataCaptureConfig"] = capture
    return EndpointDeployment(endpoint, model, config_name, package, request, deployment_config(settings))


def ensure_model(package: PackageLineage, settings: DeploySettings, sagemaker: SageMakerAdapter) -> str:
    name = model_name(package.group, package.version)
    if sagemaker.describe_model(name) is None:
        sagemaker.create_model_from_package(name, package.package_arn, settings.sagemaker_role_arn)
        logger.info("model created", model_name=name, package_arn=package.package_arn)
    return name


def packages_of_config(sagemaker: SageMakerAdapter, config_name: str) -> list[str]:
    """The packages an endpoint config serves, one per variant in order (config -> model -> package)."""
    config = sagemaker.describe_endpoint_config(config_name) or {}
    found = []
    for variant in config.get("ProductionVariants") or [{}]:
        model = sagemaker.describe_model(str(variant.get("ModelName", ""))) or {}
        containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
        arn = containers[0].get("ModelPackageName") if containers else None
        if arn:
            found.append(str(arn))
    return found


def package_of_config(sagemaker: SageMakerAdapter, config_name: str) -> str | None:
    """The package an endpoint config serves (its first variant's: an A/B config's Live one)."""
    return next(iter(packages_of_config(sagemaker, config_name)), None)


def live_package_arn(sagemaker: SageMakerAdapter, endpoint: str) -> str | None:
    """The package behind the endpoint's current config (endpoint -> config -> model -> package)."""
    described = sagemaker.describe_endpoint(endpoint)
    if not described:
        return None
    return package_of_config(sagemaker, str(described["EndpointConfigName"]))


def rejection_is_moot(decision: Decision, settings: DeploySettings, services: DeployServices) -> bool:
    """A rejection of a package that is neither live, nor being rolled out (DescribeEndpoint's
    PendingDeploymentSummary), nor waiting to be: it asks nothing of the endpoint, so it must not outdate
    an earlier approval that arrives after it, nor replace a decision kept for later."""
    if decision.approval_status != "Rejected":
        return False
    endpoint = str(settings.endpoint_name)
    kept = services.ledger.get(endpoint_pk(endpoint), "PENDING")
    if kept is not None and str(kept.get("package_arn", "")).lower() == decision.package_arn.lower():
        return False
    described = services.sagemaker.describe_endpoint(endpoint) or {}
    configs = [
        described.get("EndpointConfigName"),
        (described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName"),
    ]
    return not any(
        arn.lower() == decision.package_arn.lower()
        for config in configs
        if config
        for arn in packages_of_config(services.sagemaker, str(config))
    )


def release_autoscaling_for_new_instance_type(
    endpoint: dict[str, Any], plan: EndpointDeployment, services: DeployServices
) -> bool:
    """Deregister the variant's autoscaling when the update changes its instance type: "you must
    deregister the endpoint as a scalable target" before changing it (SageMaker developer guide,
    endpoint-scaling-update). The track handler registers it again once the endpoint is InService."""
    live = services.sagemaker.describe_endpoint_config(str(endpoint.get("EndpointConfigName", ""))) or {}
    live_types = {v.get("VariantName"): v.get("InstanceType") for v in live.get("ProductionVariants") or []}
    new_variant = plan.config_request["ProductionVariants"][0]
    if live_types.get(new_variant["VariantName"]) in (None, new_variant["InstanceType"]):
        return False
    released = services.autoscaling.deregister_variant(plan.endpoint_name, new_variant["VariantName"])
    if released:
        logger.info(
            "autoscaling deregistered for an instance type change",
            endpoint_name=plan.endpoint_name,
            from_type=live_types.get(new_variant["VariantName"]),
            to_type=new_variant["InstanceType"],
        )
    return released


def ab_partner(
    package: PackageLineage, settings: DeploySettings, services: DeployServices
) -> PackageLineage | None:
    """With PRODUCTION_STRATEGY ab, the package production serves now (its Live variant's, during another
    A/B test), which the promoted package goes beside; None for blue/green, a first deployment, or when it
    already is the promoted package."""
    if settings.serving_stage != "production" or settings.production_strategy != ProductionStrategy.AB:
        return None
    live = live_package_arn(services.sagemaker, str(settings.endpoint_name))
    if live is None or live.lower() == package.package_arn.lower():
        return None
    description = services.sagemaker.describe_model_package(live)
    if description is None or description.get("ModelApprovalStatus") != "Approved":
        return None  # production's package was rejected meanwhile: the promoted one replaces it
    return read_package(description, None, services)


def record_ab(plan: EndpointDeployment, beside: PackageLineage | None, services: DeployServices) -> None:
    """The A/B test in progress on the endpoint (ENDPOINT#<name>/AB), or none once a config of one variant
    is deployed."""
    pk = endpoint_pk(plan.endpoint_name)
    if beside is None:
        services.ledger.delete(pk, "AB")
        return
    variants = plan.config_request["ProductionVariants"]
    services.ledger.put(
        pk,
        "AB",
        kind="ab-test",
        live_package_arn=beside.package_arn,
        candidate_package_arn=plan.package.package_arn,
        weights={v["VariantName"]: str(v["InitialVariantWeight"]) for v in variants},
        endpoint_config_name=plan.config_name,
        started_at=utc_now(),
    )
    logger.info(
        "A/B test started",
        endpoint_name=plan.endpoint_name,
        live_package_arn=beside.package_arn,
        candidate_package_arn=plan.package.package_arn,
        candidate_weight=variants[1]["InitialVariantWeight"],
    )


def deploy_to_endpoint(
    package: PackageLineage, settings: DeploySettings, services: DeployServices, reason: str
) -> dict[str, Any]:
    """Create the endpoint, or update it blue/green; a no-op when this package's config is already live. A
    package promoted to a production run as A/B goes beside the package production serves."""
    beside = ab_partner(package, settings, services) if reason == "promoted" else None
    plan = plan_endpoint(package, settings, beside)
    sagemaker = services.sagemaker
    endpoint = sagemaker.describe_endpoint(plan.endpoint_name)
    if endpoint is not None:
        status = canonical_status(str(endpoint.get("EndpointStatus", "")))
        if endpoint.get("EndpointConfigName") == plan.config_name:
            logger.info(
                "package already live: nothing to deploy",
                endpoint_name=plan.endpoint_name,
                endpoint_config=plan.config_name,
                package_arn=package.package_arn,
            )
            if services.ledger.get(endpoint_pk(plan.endpoint_name), f"CONFIG#{plan.config_name}") is None:
                # an invocation deployed it and died before recording it: record it now, once
                config = sagemaker.describe_endpoint_config(plan.config_name) or {}
                config_arn = config.get("EndpointConfigArn")
                services.lineage().deployed_to_endpoint(
                    package, plan.endpoint_name, plan.config_name, config_arn, reason
                )
                logger.warning("deployment recorded late", endpoint_config=plan.config_name, reason=reason)
            return {
                "action": "none",
                "reason": "already-live",
                "endpoint_name": plan.endpoint_name,
                "endpoint_config_name": plan.config_name,
            }
        if status in BUSY:
            logger.warning(
                "endpoint busy: deployment deferred", endpoint_name=plan.endpoint_name, endpoint_status=status
            )
            raise EndpointBusyError(f"endpoint {plan.endpoint_name} is {status}; retry later")
        if status == "FAILED":
            services.notifier.notify(
                f"Endpoint {plan.endpoint_name} is Failed",
                "A Failed endpoint cannot be updated; delete it and approve again.",
                endpoint_name=plan.endpoint_name,
                package_arn=package.package_arn,
            )
            return {"action": "none", "reason": "endpoint-failed", "endpoint_name": plan.endpoint_name}
    ensure_model(package, settings, sagemaker)
    if beside is not None:
        ensure_model(beside, settings, sagemaker)
    if sagemaker.describe_endpoint_config(plan.config_name) is None:
        sagemaker.create_endpoint_config(plan.config_request)
    config_arn = (sagemaker.describe_endpoint_config(plan.config_name) or {}).get("EndpointConfigArn")
    if endpoint is None:
        sagemaker.create_endpoint(plan.endpoint_name, plan.config_name)
        action = "created"
    else:
        release_autoscaling_for_new_instance_type(endpoint, plan, services)
        sagemaker.update_endpoint(plan.endpoint_name, plan.config_name, plan.deployment_config)
        action = "updated"
    services.lineage().deployed_to_endpoint(package, plan.endpoint_name, plan.config_name, config_arn, reason)
    if settings.serving_stage == "production":
        record_ab(plan, beside, services)
    metrics.add_metric(name="EndpointDeployments", unit="Count", value=1)
    logger.info(
        "endpoint deployment started",
        action=action,
        endpoint_name=plan.endpoint_name,
        endpoint_config=plan.config_name,
        package_arn=package.package_arn,
        reason=reason,
        strategy=settings.deployment_strategy.value,
    )
    return {
        "action": action,
        "endpoint_name": plan.endpoint_name,
        "endpoint_config_name": plan.config_name,
        "model_name": plan.model_name,
    }


# --- batch ------------------------------------------------------------------------------------------
def run_batch_transform(
    package: PackageLineage, settings: DeploySettings, services: DeployServices
) -> dict[str, Any]:
    input_uri, output_root = str(settings.batch_input_uri), str(settings.batch_output_uri).rstrip("/")
    job = transform_job_name(package.group, package.version, input_uri)
    if services.sagemaker.describe_transform_job(job) is not None:
        logger.info("transform job exists: nothing to do", transform_job=job)
        return {"action": "none", "reason": "transform-job-exists", "transform_job": job}
    model = ensure_model(package, settings, services.sagemaker)
    output_uri = f"{output_root}/{job}"
    services.sagemaker.create_transform_job(
        {
            "TransformJobName": job,
            "ModelName": model,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": input_uri}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": output_uri, "Accept": "text/csv", "AssembleWith": "Line"},
            "TransformResources": {"InstanceType": settings.transform_instance_type, "InstanceCount": 1},
        }
    )
    services.lineage().transform_started(package, job, input_uri, output_uri)
    metrics.add_metric(name="TransformJobsStarted", unit="Count", value=1)
    logger.info("transform job started", transform_job=job, package_arn=package.package_arn)
    return {"action": "created", "transform_job": job, "output_uri": output_uri}


# --- decisions ---------------------------------------------------------------------------------------
# The endpoint takes one decision at a time. A decision that finds it updating, or another invocation
# deploying, is kept in the ledger (ENDPOINT#<name>/PENDING, the newest decision wins) and carried out when
# the endpoint is InService again: on its "SageMaker Endpoint State Change" event, or at the end of the
# invocation that held the endpoint. Decisions are ordered by when SageMaker recorded them, so an event
# that arrives late never undoes a later decision.
LEASE_SECONDS = 330  # the function's 300 s timeout, and a margin


@dataclass(frozen=True)
class Holder:
    """Who may hold the endpoint's lease, and for how long: never past the invocation's own deadline. An
    invocation that dies keeps its idempotency record in progress until that deadline too (Powertools
    idempotency, "Lambda timeouts"), so the redelivered event that may run again also finds the lease free."""

    owner: str
    lease_seconds: int = LEASE_SECONDS


def holder(context: Any) -> Holder:
    """This invocation as a lease holder: its request id, and the time it has left (rounded up)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    seconds = LEASE_SECONDS if not callable(remaining) else min(LEASE_SECONDS, -(-int(remaining()) // 1000))
    return Holder(invocation_id(context), max(seconds, 1))


def rollback_target(
    package: PackageLineage, settings: DeploySettings, services: DeployServices
) -> dict[str, Any] | None:
    """The package a rejected live one gives way to, described. Staging (or the only endpoint): the newest
    other Approved package of the group. Production: the package it served most recently before, if still
    Approved, from the endpoint's deployment history in the ledger (production only ever served packages
    that were promoted)."""
    rejected = package.package_arn.lower()
    if settings.serving_stage != "production":
        newest = next(
            (
                item
                for item in services.sagemaker.approved_packages(package.group)
                if item["ModelPackageArn"].lower() != rejected
            ),
            None,
        )
        return (
            None if newest is None else services.sagemaker.describe_model_package(newest["ModelPackageArn"])
        )
    history = [
        item
        for item in services.ledger.partition(endpoint_pk(str(settings.endpoint_name)))
        if item.get("kind") == "deployment" and str(item.get("package_arn", "")).lower() != rejected
    ]
    history.sort(key=lambda item: str(item.get("deployed_at", "")), reverse=True)
    for item in history:
        description = services.sagemaker.describe_model_package(str(item["package_arn"]))
        if description is not None and description.get("ModelApprovalStatus") == "Approved":
            return description
    return None


def roll_back_rejected(
    package: PackageLineage, settings: DeploySettings, services: DeployServices
) -> dict[str, Any]:
    """A rejected package that is live is replaced by the package `rollback_target` names."""
    result: dict[str, Any] = {"status": "recorded", "package_arn": package.package_arn, "action": "none"}
    described = services.sagemaker.describe_endpoint(str(settings.endpoint_name))
    serving = (
        packages_of_config(services.sagemaker, str(described["EndpointConfigName"])) if described else []
    )
    live = serving[0] if serving else None
    if package.package_arn.lower() not in {arn.lower() for arn in serving}:
        logger.info(
            "rejected package is not live: nothing to roll back", package_arn=package.package_arn, live=live
        )
        return result | {"reason": "not-live", "live_package_arn": live}
    others = [arn for arn in serving if arn.lower() != package.package_arn.lower()]
    partner = services.sagemaker.describe_model_package(others[0]) if others else None
    if partner is not None and partner.get("ModelApprovalStatus") == "Approved":
        description: dict[str, Any] | None = partner  # an A/B test's other variant takes all the traffic
    else:
        description = rollback_target(package, settings, services)
    if description is None:
        services.notifier.notify(
            f"Live package {package.group} v{package.version} rejected; no approved package to roll back to",
            "The endpoint keeps serving the rejected package until another package is approved.",
            package_arn=package.package_arn,
            endpoint_name=settings.endpoint_name,
        )
        logger.error("no approved package to roll back to", package_arn=package.package_arn)
        return result | {"status": "stuck", "reason": "no-approved-package"}
    target = read_package(description, package.decided_at, services)
    deployment = deploy_to_endpoint(target, settings, services, reason=f"rollback-from-v{package.version}")
    services.notifier.notify(
        f"Endpoint rolled back to {target.group} v{target.version}",
        f"Live package v{package.version} was rejected; the endpoint is rolling back to v{target.version}.",
        rejected_package_arn=package.package_arn,
        rollback_package_arn=target.package_arn,
        endpoint_name=settings.endpoint_name,
    )
    metrics.add_metric(name="Rollbacks", unit="Count", value=1)
    return result | {
        "status": "rolled-back",
        "action": "rollback",
        "rollback_package_arn": target.package_arn,
        "endpoint": deployment,
    }


def _endpoint_work(
    package: PackageLineage, settings: DeploySettings, services: DeployServices, reason: str = "approved"
) -> dict[str, Any]:
    if package.approval_status == "Approved":
        return deploy_to_endpoint(package, settings, services, reason=reason)
    return roll_back_rejected(package, settings, services)


def superseded(
    endpoint: str, decision: Decision, message: str, warn: bool = False, **fields: Any
) -> dict[str, Any]:
    """A decision that a later one outdates: logged, counted, and answered without touching the endpoint."""
    log = logger.warning if warn else logger.info
    log(message, endpoint_name=endpoint, package_arn=decision.package_arn, **fields)
    metrics.add_metric(name="DecisionsSuperseded", unit="Count", value=1)
    return {"action": "none", "reason": "superseded-by-a-later-decision", "endpoint_name": endpoint}


def defer(decision: Decision, settings: DeploySettings, services: DeployServices, why: str) -> dict[str, Any]:
    """Keep the decision until the endpoint can take it; an older one than the kept decision is dropped."""
    endpoint = str(settings.endpoint_name)
    kept = services.ledger.put_if_not_older(
        endpoint_pk(endpoint),
        "PENDING",
        "decided_at",
        kind="pending-decision",
        reason=why,
        **asdict(decision),
    )
    if not kept:
        return superseded(endpoint, decision, "decision superseded by a later one", reason=why)
    logger.info(
        "decision deferred until the endpoint is in service",
        endpoint_name=endpoint,
        package_arn=decision.package_arn,
        approval_status=decision.approval_status,
        reason=why,
    )
    metrics.add_metric(name="DecisionsDeferred", unit="Count", value=1)
    return {"action": "deferred", "reason": why, "endpoint_name": endpoint}


def carry_out(
    decision: Decision,
    package: PackageLineage,
    settings: DeploySettings,
    services: DeployServices,
    holder: Holder,
    reason: str = "approved",
) -> dict[str, Any]:
    """Act on the endpoint for `decision` while holding its lease, or defer it."""
    endpoint = str(settings.endpoint_name)
    pk = endpoint_pk(endpoint)
    if rejection_is_moot(decision, settings, services):
        logger.info("rejected package is not live: nothing to roll back", package_arn=package.package_arn)
        return {
            "status": "recorded",
            "package_arn": package.package_arn,
            "action": "none",
            "reason": "not-live",
        }
    if not services.ledger.acquire_lease(pk, holder.owner, holder.lease_seconds):
        return defer(decision, settings, services, "another deployment holds the endpoint")
    try:
        described = services.sagemaker.describe_endpoint(endpoint)
        status = canonical_status(str((described or {}).get("EndpointStatus", "")))
        if status in BUSY:
            return defer(decision, settings, services, f"endpoint is {status}")
        kept = services.ledger.get(pk, "PENDING")
        if kept is not None and str(kept["decided_at"]) > decision.decided_at:
            # a later decision arrived while this one waited for the lease: it is the one to carry out
            # (resume_pending does, next), so two approvals at once deploy once, the later package
            return superseded(
                endpoint,
                decision,
                "decision superseded by a later one waiting",
                later_package_arn=kept.get("package_arn"),
            )
        if not services.ledger.put_if_not_older(
            pk, "LAST_DECISION", "decided_at", kind="last-decision", **asdict(decision)
        ):
            return superseded(
                endpoint,
                decision,
                "decision superseded by a later one already carried out",
                decided_at=decision.decided_at,
                warn=True,
            )
        # a pending decision older than this one is outdated by it
        services.ledger.delete_if_not_newer(pk, "PENDING", "decided_at", decision.decided_at)
        return _endpoint_work(package, settings, services, reason)
    except EndpointBusyError as busy:
        return defer(decision, settings, services, str(busy))
    except ClientError as exc:  # the endpoint started updating between DescribeEndpoint and our call
        if not is_endpoint_busy(exc):
            raise
        return defer(decision, settings, services, error_message(exc))
    finally:
        services.ledger.release_lease(pk, holder.owner)


def resume_pending(
    settings: DeploySettings, services: DeployServices, holder: Holder
) -> dict[str, Any] | None:
    """Carry out the decision kept for the endpoint, if any and if SageMaker still says the same."""
    endpoint = str(settings.endpoint_name)
    pending = services.ledger.get(endpoint_pk(endpoint), "PENDING")
    if pending is None:
        return None
    decision = Decision(
        str(pending["package_arn"]),
        str(pending["approval_status"]),
        str(pending["decided_at"]),
        str(pending["event_id"]),
    )
    description = services.sagemaker.describe_model_package(decision.package_arn)
    if description is None or description.get("ModelApprovalStatus") != decision.approval_status:
        services.ledger.delete_if(endpoint_pk(endpoint), "PENDING", "event_id", decision.event_id)
        logger.warning(
            "pending decision dropped: the package has changed since",
            package_arn=decision.package_arn,
            pending_status=decision.approval_status,
            actual_status=None if description is None else description.get("ModelApprovalStatus"),
        )
        return {"action": "none", "reason": "package-changed-since", "package_arn": decision.package_arn}
    package = read_package(description, decision.decided_at, services)
    reason = "promoted" if settings.serving_stage == "production" else "approved"
    result = carry_out(decision, package, settings, services, holder, reason)
    if result.get("action") != "deferred":
        services.ledger.delete_if(endpoint_pk(endpoint), "PENDING", "event_id", decision.event_id)
    logger.info("pending decision handled", package_arn=decision.package_arn, result=result)
    return {
        "package_arn": decision.package_arn,
        "approval_status": decision.approval_status,
        "result": result,
    }


def verification_failure(
    description: dict[str, Any] | None, event: ModelPackageStateEvent, settings: DeploySettings, account: str
) -> dict[str, Any] | None:
    """Why SageMaker's own view of the package does not support acting on the event, or None."""
    if description is None:
        return {"reason": "package-not-found"}
    if description.get("ModelPackageGroupName") != settings.model_package_group_name:
        return {"reason": "foreign-group", "group": description.get("ModelPackageGroupName")}
    if str(description.get("ModelPackageArn", "")).split(":")[4:5] != [account]:
        return {"reason": "foreign-account", "described_arn": description.get("ModelPackageArn")}
    actual = description.get("ModelApprovalStatus")
    if actual != event.detail.model_approval_status:
        return {
            "reason": "status-mismatch",
            "event_status": event.detail.model_approval_status,
            "actual_status": actual,
        }
    if actual == "Approved" and description.get("ModelPackageStatus") != "Completed":
        return {"reason": "package-not-completed", "package_status": description.get("ModelPackageStatus")}
    return None


def decided_at(description: dict[str, Any], fallback: datetime) -> str:
    """When SageMaker recorded the package's current status (LastModifiedTime), in UTC to the millisecond."""
    modified = description.get("LastModifiedTime")
    moment = modified if isinstance(modified, datetime) else fallback
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@refusing_permanent_errors
def handle_package_event(
    event: ModelPackageStateEvent,
    settings: DeploySettings,
    context: Any = None,
    services: DeployServices | None = None,
) -> dict[str, Any]:
    """Entry point of the deploy handler for a package decision."""
    detail, account = event.detail, own_account_id()
    if event.account != account or detail.account != account:
        return ignore(
            "foreign-account", account=event.account, package_arn=detail.model_package_arn
        ).as_response()
    if detail.model_package_group_name != settings.model_package_group_name:
        return ignore("foreign-group", group=detail.model_package_group_name).as_response()
    changed = detail.updated_fields
    stage_only = changed is not None and "ModelApprovalStatus" not in changed and "ModelLifeCycle" in changed
    if stage_only and settings.staged:  # a change of stage alone: a promotion, or our own smoke-test record
        return handle_promotion(event, settings, context, services)
    if detail.model_approval_status not in ("Approved", "Rejected"):
        return ignore("not-a-decision", approval_status=detail.model_approval_status).as_response()
    if changed is not None and "ModelApprovalStatus" not in changed:
        # e.g. metadata set on an approved package: no new decision to carry out
        return ignore("approval-unchanged", updated_fields=changed).as_response()
    active = services or DeployServices.from_settings(settings)
    description = active.sagemaker.describe_model_package(detail.model_package_arn)
    refusal = verification_failure(description, event, settings, account)
    if refusal or description is None:
        return ignore(
            package_arn=detail.model_package_arn, **(refusal or {"reason": "package-not-found"})
        ).as_response()
    decision = Decision(
        detail.model_package_arn, detail.model_approval_status, decided_at(description, event.time), event.id
    )
    lease_holder = holder(context)

    def decide(_: dict[str, Any]) -> dict[str, Any]:
        package = read_package(description, event.time.isoformat(), active)
        active.lineage().package_decided(package)
        result: dict[str, Any] = {"package_arn": package.package_arn}
        if package.approval_status == "Approved":
            result["status"] = "deployed"
            if settings.deploys_endpoint:
                result["endpoint"] = carry_out(decision, package, settings, active, lease_holder)
            if settings.deploys_batch:
                result["batch"] = run_batch_transform(package, settings, active)
            return result
        if not settings.deploys_endpoint:
            return result | {"status": "recorded", "action": "none", "reason": "no-endpoint-target"}
        outcome = carry_out(decision, package, settings, active, lease_holder)
        if "status" not in outcome:  # deferred or superseded: nothing happened to the endpoint yet
            outcome = result | {"status": "recorded", "endpoint": outcome}
        if settings.staged:  # a rejected package that production serves is rolled back there too
            outcome["production"] = carry_out(
                decision, package, settings.for_production(), active, lease_holder
            )
        return outcome

    try:
        result = run_once(
            settings.ledger_table_name,
            ("package_arn", "status", "modified"),
            decide,
            key={
                "package_arn": detail.model_package_arn,
                "status": detail.model_approval_status,
                "modified": decision.decided_at,
            },
            context=context,
        )
        deferred = (result.get("endpoint") or {}).get("action") == "deferred"
        if settings.deploys_endpoint and not deferred:  # a decision just deferred would be deferred again
            resumed = resume_pending(settings, active, lease_holder)
            if resumed is not None:
                result = result | {"resumed": resumed}
        if settings.staged and (result.get("production") or {}).get("action") != "deferred":
            resumed = resume_pending(settings.for_production(), active, lease_holder)
            if resumed is not None:
                result = result | {"production_resumed": resumed}
        return result
    except ClientError as exc:
        logger.error(
            "deployment failed", package_arn=detail.model_package_arn, error=error_code(exc), detail=str(exc)
        )
        raise


@refusing_permanent_errors
def handle_endpoint_event(
    event: EndpointStateEvent,
    settings: DeploySettings,
    context: Any = None,
    services: DeployServices | None = None,
) -> dict[str, Any]:
    """Entry point of the deploy handler for the endpoint's state: back InService, a kept decision runs."""
    detail = event.detail
    if event.account != own_account_id():
        return ignore("foreign-account", account=event.account).as_response()
    production = settings.staged and detail.endpoint_name == settings.production_endpoint_name
    if not settings.deploys_endpoint or (detail.endpoint_name != settings.endpoint_name and not production):
        return ignore("foreign-endpoint", endpoint=detail.endpoint_name).as_response()
    if detail.endpoint_status != "IN_SERVICE":
        return ignore("endpoint-not-in-service", endpoint_status=detail.endpoint_status).as_response()
    active = services or DeployServices.from_settings(settings)
    target = settings.for_production() if production else settings
    resumed = resume_pending(target, active, holder(context))
    answer: dict[str, Any] = (
        {"status": "nothing-pending", "endpoint_name": detail.endpoint_name}
        if resumed is None
        else {"status": "resumed", "endpoint_name": detail.endpoint_name, **resumed}
    )
    if settings.staged and not production:
        answer["smoke_test"] = smoke_test_if_due(settings, active, context)
    return answer


# --- staged promotion (orchestrator.promote) ---------------------------------------------------------
def smoke_test_if_due(
    settings: DeploySettings, services: DeployServices, context: Any = None
) -> dict[str, Any]:
    """Smoke-test what the staging endpoint serves, once per endpoint config, when it is InService."""
    endpoint = str(settings.endpoint_name)
    described = services.sagemaker.describe_endpoint(endpoint) or {}
    status = canonical_status(str(described.get("EndpointStatus", "")))
    if status != "IN_SERVICE":
        return {"action": "none", "reason": "endpoint-not-in-service", "endpoint_status": status}
    config = str(described["EndpointConfigName"])
    package_arn = package_of_config(services.sagemaker, config)
    if package_arn is None:
        return {"action": "none", "reason": "no-package-behind-config", "endpoint_config_name": config}
    record = services.ledger.get(package_pk(package_arn), STAGING_RECORD)
    if record is not None and record.get("endpoint_config_name") == config:
        return {"action": "none", "reason": "already-tested", "passed": bool(record.get("passed"))}
    description = services.sagemaker.describe_model_package(package_arn)
    if description is None or description.get("ModelApprovalStatus") != "Approved":
        logger.info("staging serves a package that is not approved: no smoke test", package_arn=package_arn)
        return {"action": "none", "reason": "not-approved", "package_arn": package_arn}

    def test(_: dict[str, Any]) -> dict[str, Any]:
        package = read_package(description, None, services)
        prefix = held_out_uri(package.execution_arn, services.sagemaker)
        rows = held_out_rows(prefix, settings.smoke_test_rows) if prefix else []
        result = smoke_test(package, endpoint, config, rows, settings)
        record_smoke_result(result, services.ledger, services.sagemaker, services.notifier)
        return {
            "action": "smoke-tested",
            "package_arn": package_arn,
            "endpoint_config_name": config,
            "passed": result.passed,
            "failures": list(result.failures),
        }

    return run_once(
        settings.ledger_table_name,
        ("endpoint", "config"),
        test,
        key={"endpoint": endpoint, "config": config},
        context=context,
    )


def handle_promotion(
    event: ModelPackageStateEvent,
    settings: DeploySettings,
    context: Any = None,
    services: DeployServices | None = None,
) -> dict[str, Any]:
    """A package's ModelLifeCycle changed: if it now says Production / Approved, deploy the same package to
    production, unless it skipped staging, failed its smoke test, was rejected or was superseded there."""
    detail, account = event.detail, own_account_id()
    active = services or DeployServices.from_settings(settings)
    description = active.sagemaker.describe_model_package(detail.model_package_arn)
    failure = verification_failure(description, event, settings, account)
    if failure or description is None:
        return ignore(
            package_arn=detail.model_package_arn, **(failure or {"reason": "package-not-found"})
        ).as_response()
    stage, stage_status = life_cycle(description)
    if stage == PRODUCTION and stage_status in (AB_PROMOTED, AB_ROLLED_BACK):
        return end_ab_test(event, description, str(stage_status), settings, context, active)
    if (stage, stage_status) != (PRODUCTION, PROMOTION_STATUS):
        return ignore("not-a-promotion", stage=stage, stage_status=stage_status).as_response()
    arn = str(description["ModelPackageArn"])
    decision = Decision(arn, "Approved", decided_at(description, event.time), event.id)
    production = settings.for_production()
    lease_holder = holder(context)

    def promote(_: dict[str, Any]) -> dict[str, Any]:
        staging = active.sagemaker.describe_endpoint(str(settings.endpoint_name))
        record = active.ledger.get(package_pk(arn), STAGING_RECORD)
        refusal = promotion_refusal(description, staging, record)
        if refusal is not None:
            return refused(refusal, arn, active.notifier)
        package = read_package(description, decision.decided_at, active)
        promoted_by = _approver(description)
        active.ledger.put(
            package_pk(arn),
            PRODUCTION_RECORD,
            kind="stage",
            stage=PRODUCTION,
            promoted_by=promoted_by,
            promoted_at=decision.decided_at,
            stage_description=(description.get("ModelLifeCycle") or {}).get("StageDescription"),
            tested_config=(record or {}).get("endpoint_config_name"),
            event_id=event.id,
        )
        logger.info(
            "promotion to production accepted",
            package_arn=arn,
            promoted_by=promoted_by,
            promoted_at=decision.decided_at,
            endpoint_name=production.endpoint_name,
        )
        metrics.add_metric(name="Promotions", unit="Count", value=1)
        endpoint = carry_out(decision, package, production, active, lease_holder, reason="promoted")
        return {"status": "promoted", "package_arn": arn, "promoted_by": promoted_by, "endpoint": endpoint}

    result = run_once(
        settings.ledger_table_name,
        ("package_arn", "stage", "modified"),
        promote,
        key={"package_arn": arn, "stage": PRODUCTION, "modified": decision.decided_at},
        context=context,
    )
    if (result.get("endpoint") or {}).get("action") != "deferred":
        resumed = resume_pending(production, active, lease_holder)
        if resumed is not None:
            result = result | {"resumed": resumed}
    return result


def end_ab_test(
    event: ModelPackageStateEvent,
    description: dict[str, Any],
    command: str,
    settings: DeploySettings,
    context: Any,
    services: DeployServices,
) -> dict[str, Any]:
    """The candidate of production's A/B test set to Production / Promoted (it takes all the traffic, the
    Live variant is removed) or Production / RolledBack (it is removed): one UpdateEndpoint to a config of
    one variant, recorded with who decided and the variants' metrics it was decided on. Refused (logged,
    notified) when the package is not the candidate under test or production is busy: run it again then."""
    arn = str(description["ModelPackageArn"])
    decision = Decision(arn, "Approved", decided_at(description, event.time), event.id)
    return _end_ab_test(description, command, decision, _approver(description), settings, context, services)


def _end_ab_test(
    description: dict[str, Any],
    command: str,
    decision: Decision,
    decided_by: str | None,
    settings: DeploySettings,
    context: Any,
    services: DeployServices,
    retry_when_busy: bool = False,
) -> dict[str, Any]:
    """With ``retry_when_busy`` (an alarm's decision, which no person will make again), production busy
    raises EndpointBusyError, so that Lambda retries the event, instead of refusing it."""
    arn = str(description["ModelPackageArn"])
    production = settings.for_production()
    endpoint = str(production.endpoint_name)
    pk = endpoint_pk(endpoint)
    lease_holder = holder(context)
    promoted = command == AB_PROMOTED

    def busy(state: str, details: dict[str, Any]) -> dict[str, Any]:
        if retry_when_busy:
            raise EndpointBusyError(f"production {endpoint} is {state}; retry later")
        return refused(Refusal("production-busy", details), arn, services.notifier)

    def act(_: dict[str, Any]) -> dict[str, Any]:
        test = services.ledger.get(pk, "AB")
        if test is None or str(test.get("candidate_package_arn", "")).lower() != arn.lower():
            candidate = None if test is None else test.get("candidate_package_arn")
            return refused(
                Refusal("not-the-ab-candidate", {"ab_candidate": candidate}), arn, services.notifier
            )
        keep = arn if promoted else str(test["live_package_arn"])
        kept = services.sagemaker.describe_model_package(keep)
        if kept is None or kept.get("ModelApprovalStatus") != "Approved":
            return refused(Refusal("not-approved", {"package_to_keep": keep}), arn, services.notifier)
        since = datetime.fromisoformat(str(test["started_at"]))
        evidence = variant_metrics(endpoint, [LIVE, CANDIDATE], since)
        if not services.ledger.acquire_lease(pk, lease_holder.owner, lease_holder.lease_seconds):
            return busy("held by another deployment", {})
        try:
            status = canonical_status(
                str((services.sagemaker.describe_endpoint(endpoint) or {}).get("EndpointStatus", ""))
            )
            if status != "IN_SERVICE":
                return busy(status or "gone", {"endpoint_status": status})
            if not services.ledger.put_if_not_older(
                pk, "LAST_DECISION", "decided_at", kind="last-decision", **asdict(decision)
            ):
                return superseded(endpoint, decision, "A/B decision superseded by a later one", warn=True)
            reason = "ab-promoted" if promoted else "ab-rolled-back"
            deployment = deploy_to_endpoint(
                read_package(kept, decision.decided_at, services), production, services, reason
            )
        finally:
            services.ledger.release_lease(pk, lease_holder.owner)
        record = {
            "action": reason,
            "candidate_package_arn": arn,
            "live_package_arn": test["live_package_arn"],
            "kept_package_arn": keep,
            "decided_by": decided_by,
            "decided_at": decision.decided_at,
            "variant_metrics": evidence,
        }
        services.ledger.put(pk, f"EVENT#{utc_now()}", kind="event", **record)
        services.ledger.put(
            package_pk(arn), f"{PRODUCTION_RECORD}#{command}", kind="stage", stage=PRODUCTION, **record
        )
        logger.info("A/B test ended", endpoint_name=endpoint, **record)
        metrics.add_metric(name="ABTestsEnded", unit="Count", value=1)
        return {
            "status": reason,
            "package_arn": arn,
            "decided_by": decided_by,
            "variant_metrics": evidence,
            "endpoint": deployment,
        }

    return run_once(
        settings.ledger_table_name,
        ("package_arn", "stage", "modified"),
        act,
        key={"package_arn": arn, "stage": f"{PRODUCTION}/{command}", "modified": decision.decided_at},
        context=context,
    )


@refusing_permanent_errors
def handle_candidate_alarm(
    event: AlarmStateEvent,
    settings: DeploySettings,
    context: Any = None,
    services: DeployServices | None = None,
) -> dict[str, Any]:
    """An alarm on the Candidate variant of production (its 5XX errors or its latency) went to ALARM during
    an A/B test: the candidate is rolled back as the RolledBack command does, decided by the alarm (its ARN
    in the record) at its state change's time. A change of another alarm, account or state, with no A/B
    test, or from before the test began (a late event about an earlier candidate) rolls nothing back. With
    production busy (updating, or held by another deployment) the event is retried, not refused: the alarm
    stays in ALARM and will not say it again."""
    detail = event.detail
    refusal = alarm_refusal(event, settings.candidate_alarm_names, own_account_id())
    if refusal is not None:
        return refusal.as_response()
    if not settings.production_endpoint_name:
        return ignore("no-production-endpoint", alarm=detail.alarm_name).as_response()
    active = services or DeployServices.from_settings(settings)
    endpoint = settings.production_endpoint_name
    when = detail.state.timestamp.astimezone(UTC)
    at = when.isoformat(timespec="milliseconds")

    def act(_: dict[str, Any]) -> dict[str, Any]:
        test = active.ledger.get(endpoint_pk(endpoint), "AB")
        if test is None:
            return ignore("no-ab-test", alarm=detail.alarm_name, endpoint_name=endpoint).as_response()
        if when <= datetime.fromisoformat(str(test["started_at"])):
            return ignore(
                "alarm-before-ab-test", alarm=detail.alarm_name, alarm_at=at, ab_started_at=test["started_at"]
            ).as_response()
        candidate = str(test["candidate_package_arn"])
        description = active.sagemaker.describe_model_package(candidate)
        if description is None:
            return ignore("package-not-found", package_arn=candidate).as_response()
        decided_by = event.resources[0] if event.resources else detail.alarm_name
        logger.warning(
            "candidate alarm: rolling the A/B candidate back", alarm=detail.alarm_name, package_arn=candidate
        )
        decision = Decision(candidate, "Approved", at, event.id)
        return _end_ab_test(
            description, AB_ROLLED_BACK, decision, decided_by, settings, context, active, retry_when_busy=True
        )

    # one state change (the alarm's name and time) is one answer, however often it is delivered
    return run_once(
        settings.ledger_table_name,
        ("alarm", "at"),
        act,
        key={"alarm": detail.alarm_name, "at": at},
        context=context,
    )


def invocation_id(context: Any) -> str:
    """Who holds a lease: this invocation's request id (a fresh id outside Lambda)."""
    return str(getattr(context, "aws_request_id", None) or uuid.uuid4())
