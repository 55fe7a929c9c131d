"""Job state written into moto's SageMaker backend, so DescribeProcessingJob, DescribeTrainingJob,
DescribeHyperParameterTuningJob and the List* calls answer what the engine ran, as AWS would."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobRecords:
    """Creates and updates job objects in moto's SageMaker backend (one account and region)."""

    def __init__(self, backend: Any):
        self.backend = backend

    # processing --------------------------------------------------------------------------------
    def processing_started(self, request: dict[str, Any]) -> str:
        name = request["ProcessingJobName"]
        job = self.backend.create_processing_job(
            app_specification=copy.deepcopy(request.get("AppSpecification", {})),
            experiment_config=request.get("ExperimentConfig"),
            network_config=request.get("NetworkConfig"),
            processing_inputs=copy.deepcopy(request.get("ProcessingInputs", [])),
            processing_job_name=name,
            processing_output_config=copy.deepcopy(request.get("ProcessingOutputConfig", {})),
            role_arn=request.get("RoleArn"),
            tags=request.get("Tags", []),
            stopping_condition=request.get("StoppingCondition"),
        )
        job.processing_resources = copy.deepcopy(request.get("ProcessingResources"))
        job.environment = request.get("Environment")
        job.processing_job_status = "InProgress"
        job.processing_start_time = _now()
        job.processing_end_time = None
        return str(job.arn)

    def processing_finished(
        self, name: str, status: str, failure_reason: str | None, exit_message: str | None
    ) -> None:
        job = self.backend.processing_jobs[name]
        job.processing_job_status = status
        job.processing_end_time = job.last_modified_time = _now()
        if failure_reason:
            job.failure_reason = failure_reason[:1024]
        job.exit_message = None if exit_message is None else exit_message[:1024]

    # training ----------------------------------------------------------------------------------
    def training_started(self, request: dict[str, Any], tuning_job_arn: str | None = None) -> str:
        name = request["TrainingJobName"]
        algorithm = copy.deepcopy(request.get("AlgorithmSpecification", {}))
        job = self.backend.create_training_job(
            training_job_name=name,
            hyper_parameters=dict(request.get("HyperParameters", {})),
            algorithm_specification=copy.deepcopy(algorithm),
            role_arn=request.get("RoleArn"),
            input_data_config=copy.deepcopy(request.get("InputDataConfig", [])),
            output_data_config=copy.deepcopy(request.get("OutputDataConfig", {"S3OutputPath": ""})),
            resource_config=copy.deepcopy(request.get("ResourceConfig", {})),
            vpc_config=request.get("VpcConfig"),
            stopping_condition=request.get("StoppingCondition"),
            tags=request.get("Tags", []),
            enable_network_isolation=request.get("EnableNetworkIsolation", False),
            enable_inter_container_traffic_encryption=request.get(
                "EnableInterContainerTrafficEncryption", False
            ),
            enable_managed_spot_training=request.get("EnableManagedSpotTraining", False),
            checkpoint_config=request.get("CheckpointConfig"),
            debug_hook_config=request.get("DebugHookConfig"),
            debug_rule_configurations=request.get("DebugRuleConfigurations"),
            tensor_board_output_config=request.get("TensorBoardOutputConfig"),
            experiment_config=request.get("ExperimentConfig"),
        )
        # moto replaces the metric definitions and invents a final metric; put back what was asked for.
        job.algorithm_specification = algorithm
        job.final_metric_data_list = []
        job.training_job_status = "InProgress"
        job.secondary_status = "Training"
        job.training_start_time = _now()
        job.training_end_time = None
        job.secondary_status_transitions = [
            {
                "Status": "Starting",
                "StartTime": job.creation_time,
                "EndTime": job.training_start_time,
                "StatusMessage": "Preparing the instances for training",
            },
            {
                "Status": "Training",
                "StartTime": job.training_start_time,
                "StatusMessage": "Training image download completed. Training in progress.",
            },
        ]
        if tuning_job_arn:
            job.tuning_job_arn = tuning_job_arn
        return str(job.arn)

    def training_finished(
        self,
        name: str,
        status: str,
        failure_reason: str | None,
        final_metrics: list[dict[str, Any]],
        model_artifacts: str | None,
    ) -> None:
        job = self.backend.training_jobs[name]
        end = _now()
        job.training_job_status = status
        job.secondary_status = status
        job.training_end_time = job.last_modified_time = end
        job.final_metric_data_list = final_metrics
        job.training_time_in_seconds = job.billable_time_in_seconds = max(
            1, int((end - job.training_start_time).total_seconds())
        )
        job.secondary_status_transitions[-1]["EndTime"] = end
        job.secondary_status_transitions.append(
            {
                "Status": status,
                "StartTime": end,
                "EndTime": end,
                "StatusMessage": failure_reason or "Training job completed",
            }
        )
        if model_artifacts:
            job.model_artifacts = {"S3ModelArtifacts": model_artifacts}
        if failure_reason:
            job.failure_reason = failure_reason[:1024]

    # tuning ------------------------------------------------------------------------------------
    def tuning_started(self, name: str, config: dict[str, Any], definition: dict[str, Any]) -> str:
        arn = self.backend.create_hyper_parameter_tuning_job(
            hyper_parameter_tuning_job_name=name,
            hyper_parameter_tuning_job_config=copy.deepcopy(config),
            training_job_definition=copy.deepcopy(definition),
            training_job_definitions=None,
            warm_start_config=None,
            tags=None,
            autotune=None,
        )
        job = self.backend.hyper_parameter_tuning_jobs[name]
        job.hyper_parameter_tuning_job_status = "InProgress"
        job.hyper_parameter_tuning_end_time = None
        job.best_training_job = None
        job.OverallBestTrainingJob = None
        job.tuning_job_completion_details = None
        job.consumed_resources = {"RuntimeInSeconds": 0}
        self.tuning_progress(
            name,
            {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0},
            {"Succeeded": 0, "Pending": 0, "Failed": 0},
            None,
        )
        return str(arn)

    def tuning_progress(
        self,
        name: str,
        training_counters: dict[str, int],
        objective_counters: dict[str, int],
        best: dict[str, Any] | None,
    ) -> None:
        job = self.backend.hyper_parameter_tuning_jobs[name]
        job.training_job_status_counters = dict(training_counters)
        job.objective_status_counters = dict(objective_counters)
        job.best_training_job = copy.deepcopy(best)
        job.OverallBestTrainingJob = copy.deepcopy(best)
        job.last_modified_time = _now()
        job.consumed_resources = {
            "RuntimeInSeconds": int((_now() - _aware(job.creation_time)).total_seconds())
        }

    def tuning_finished(self, name: str, status: str, failure_reason: str | None) -> None:
        job = self.backend.hyper_parameter_tuning_jobs[name]
        job.hyper_parameter_tuning_job_status = status
        job.hyper_parameter_tuning_end_time = job.last_modified_time = _now()
        job.failure_reason = failure_reason or ""


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
