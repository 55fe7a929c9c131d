"""Stand-ins for the AWS APIs moto 5.2.5 lacks, installed on boto3's default session.

Clients that the layer creates lazily inherit these handlers, so production code runs unchanged: each
handler answers one operation before any HTTP request (as botocore's Stubber does). `Expected` queues
responses with expected parameters (Stubber semantics); the stateful fakes (CodeCommit repository,
lineage store, endpoint updates, execution stops) act on in-memory or moto state.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from orchestrator.clients import reset_clients

REGION = "us-east-1"


class MissingApis:
    """Registry of operation handlers on the default boto3 session."""

    def __init__(self) -> None:
        self.session = boto3.DEFAULT_SESSION or boto3.setup_default_session() or boto3.DEFAULT_SESSION
        self.calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._pending: dict[str, dict[str, Any]] = {}

    def serve(self, service: str, operation: str, answer: Any) -> None:
        """answer(params) -> response dict, or raises ClientError."""
        key = f"{service}.{operation}"

        def capture(params: dict[str, Any], **_: Any) -> None:
            self._pending[key] = dict(params)

        def respond(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            params = self._pending.pop(key, {})
            self.calls[key].append(params)
            try:
                return AWSResponse(None, 200, {}, None), answer(params)  # type: ignore[arg-type]
            except ClientError as exc:
                return AWSResponse(None, 400, {}, None), exc.response  # type: ignore[arg-type]

        assert self.session is not None
        self.session.events.register(f"before-parameter-build.{service}.{operation}", capture)
        self.session.events.register(f"before-call.{service}.{operation}", respond)
        reset_clients()  # clients copy the session's handlers when created: let the layer make new ones


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@dataclass
class Expected:
    """Stubber-style queue: each call must match the next expected parameters (None = any)."""

    operation: str
    queue: list[tuple[dict[str, Any] | None, dict[str, Any]]] = field(default_factory=list)

    def add(self, response: dict[str, Any], expected_params: dict[str, Any] | None = None) -> None:
        self.queue.append((expected_params, response))

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.queue, f"unexpected {self.operation} call with {params}"
        expected, response = self.queue.pop(0)
        if expected is not None:
            assert params == expected, f"{self.operation} called with {params}, expected {expected}"
        return response


@dataclass
class FakeRepository:
    """A CodeCommit repository as commits of {path: bytes}; answers GetDifferences/GetFolder/GetBlob."""

    name: str
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # branch -> head commit

    @staticmethod
    def blob_id(content: bytes) -> str:
        return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()  # noqa: S324 (git's id)

    def commit(self, files: dict[str, bytes], parent: str | None = None, branch: str | None = "main") -> str:
        """A new commit (moving `branch` to it, as a push does; None: a commit no branch points at)."""
        tree = {**(self.commits[parent] if parent else {}), **files}
        commit_id = hashlib.sha1(repr(sorted(tree.items())).encode() + (parent or "").encode()).hexdigest()  # noqa: S324
        self.commits[commit_id] = tree
        if branch is not None:
            self.branches[branch] = commit_id
        return commit_id

    def get_branch(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["repositoryName"] != self.name:
            raise client_error(
                "RepositoryDoesNotExistException", f"{params['repositoryName']} does not exist", "GetBranch"
            )
        if params["branchName"] not in self.branches:
            raise client_error(
                "BranchDoesNotExistException", f"Could not find branch {params['branchName']}", "GetBranch"
            )
        return {
            "branch": {"branchName": params["branchName"], "commitId": self.branches[params["branchName"]]}
        }

    def _tree(self, params: dict[str, Any], key: str, operation: str) -> dict[str, bytes]:
        if params["repositoryName"] != self.name:
            raise client_error(
                "RepositoryDoesNotExistException", f"{params['repositoryName']} does not exist", operation
            )
        if params[key] not in self.commits:  # CodeCommit's error for a commit the repository lacks
            raise client_error(
                "CommitDoesNotExistException", f"Could not find commit {params[key]}", operation
            )
        return self.commits[params[key]]

    def get_differences(self, params: dict[str, Any]) -> dict[str, Any]:
        after = self._tree(params, "afterCommitSpecifier", "GetDifferences")
        before = (
            self._tree({**params, "b": params["beforeCommitSpecifier"]}, "b", "GetDifferences")
            if params.get("beforeCommitSpecifier")
            else {}
        )
        differences = []
        for path in sorted(set(before) | set(after)):
            if before.get(path) == after.get(path):
                continue
            difference: dict[str, Any] = {"changeType": "M" if path in before and path in after else "A"}
            if path in before:
                difference["beforeBlob"] = {
                    "blobId": self.blob_id(before[path]),
                    "path": path,
                    "mode": "100644",
                }
            if path in after:
                difference["afterBlob"] = {
                    "blobId": self.blob_id(after[path]),
                    "path": path,
                    "mode": "100644",
                }
            else:
                difference["changeType"] = "D"
            differences.append(difference)
        return {"differences": differences}

    def get_folder(self, params: dict[str, Any]) -> dict[str, Any]:
        tree = self._tree(params, "commitSpecifier", "GetFolder")
        folder = params["folderPath"].strip("/")
        files, subfolders = [], set()
        for path, content in sorted(tree.items()):
            if not path.startswith(folder + "/"):
                continue
            rest = path[len(folder) + 1 :]
            if "/" in rest:
                subfolders.add(f"{folder}/{rest.split('/', 1)[0]}")
            else:
                files.append(
                    {
                        "blobId": self.blob_id(content),
                        "absolutePath": path,
                        "relativePath": rest,
                        "fileMode": "NORMAL",
                    }
                )
        if not files and not subfolders:
            raise client_error("FolderDoesNotExistException", f"{folder} does not exist", "GetFolder")
        return {
            "commitId": params["commitSpecifier"],
            "folderPath": folder,
            "files": files,
            "subFolders": [
                {"absolutePath": sub, "relativePath": sub.rsplit("/", 1)[-1]} for sub in sorted(subfolders)
            ],
        }

    def get_blob(self, params: dict[str, Any]) -> dict[str, Any]:
        for tree in self.commits.values():
            for content in tree.values():
                if self.blob_id(content) == params["blobId"]:
                    return {"content": content}
        raise client_error("BlobIdDoesNotExistException", params["blobId"], "GetBlob")

    def install(self, apis: MissingApis) -> None:
        apis.serve("codecommit", "GetDifferences", self.get_differences)
        apis.serve("codecommit", "GetFolder", self.get_folder)
        apis.serve("codecommit", "GetBlob", self.get_blob)
        apis.serve("codecommit", "GetBranch", self.get_branch)


@dataclass
class FakeLineageStore:
    """SageMaker lineage entities: unique Context/Action names, Artifacts listed by source URI."""

    entities: dict[str, dict[str, Any]] = field(default_factory=dict)  # arn -> entity
    associations: set[tuple[str, str, str]] = field(default_factory=set)

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{DEFAULT_ACCOUNT_ID}:{kind}/{name.lower()}"

    def _create(self, kind: str, name_key: str, params: dict[str, Any], operation: str) -> str:
        arn = self._arn(kind, params[name_key])
        if arn in self.entities and kind != "artifact":
            raise client_error("ValidationException", f"{kind} {params[name_key]} already exists", operation)
        self.entities[arn] = {"kind": kind, **params}
        return arn

    def install(self, apis: MissingApis) -> None:
        apis.serve(
            "sagemaker",
            "CreateContext",
            lambda p: {"ContextArn": self._create("context", "ContextName", p, "CreateContext")},
        )
        apis.serve(
            "sagemaker",
            "CreateAction",
            lambda p: {"ActionArn": self._create("action", "ActionName", p, "CreateAction")},
        )
        apis.serve(
            "sagemaker",
            "CreateArtifact",
            lambda p: {"ArtifactArn": self._create("artifact", "ArtifactName", p, "CreateArtifact")},
        )
        apis.serve(
            "sagemaker", "DescribeContext", lambda p: {"ContextArn": self._arn("context", p["ContextName"])}
        )
        apis.serve(
            "sagemaker", "DescribeAction", lambda p: {"ActionArn": self._arn("action", p["ActionName"])}
        )
        apis.serve(
            "sagemaker",
            "ListArtifacts",
            lambda p: {
                "ArtifactSummaries": [
                    {"ArtifactArn": arn}
                    for arn, e in self.entities.items()
                    if e["kind"] == "artifact" and e["Source"]["SourceUri"] == p.get("SourceUri")
                ]
            },
        )
        apis.serve("sagemaker", "AddAssociation", self._associate)

    def _associate(self, params: dict[str, Any]) -> dict[str, Any]:
        self.associations.add((params["SourceArn"], params["DestinationArn"], params["AssociationType"]))
        return {"SourceArn": params["SourceArn"], "DestinationArn": params["DestinationArn"]}

    def name_of(self, arn: str) -> str:
        entity = self.entities[arn]
        return str(entity.get("ContextName") or entity.get("ActionName") or entity.get("ArtifactName"))

    def chain(self) -> set[tuple[str, str, str]]:
        return {(self.name_of(s), self.name_of(d), kind) for s, d, kind in self.associations}


def moto_sagemaker() -> Any:
    return sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]


def install_sagemaker_state_changes(apis: MissingApis) -> None:
    """UpdateEndpoint and StopPipelineExecution acting on moto's own state (as SageMaker would)."""

    def update_endpoint(params: dict[str, Any]) -> dict[str, Any]:
        backend = moto_sagemaker()
        endpoint = backend.endpoints.get(params["EndpointName"])
        if endpoint is None:
            raise client_error(
                "ValidationException", f"Could not find endpoint {params['EndpointName']}", "UpdateEndpoint"
            )
        if params["EndpointConfigName"] not in backend.endpoint_configs:
            raise client_error(
                "ValidationException", "Could not find endpoint configuration", "UpdateEndpoint"
            )
        # "If you want to change the instance type of an autoscaled variant, you must deregister it first"
        # (SageMaker developer guide, endpoint-scaling-update): SageMaker refuses the update otherwise.
        live = backend.endpoint_configs[endpoint.endpoint_config_name].production_variants
        new = backend.endpoint_configs[params["EndpointConfigName"]].production_variants
        live_types = {v["VariantName"]: v.get("InstanceType") for v in live}
        scaled = {
            target.resource_id
            for target in applicationautoscaling_backends[DEFAULT_ACCOUNT_ID][
                REGION
            ]._flatten_scalable_targets("sagemaker")
        }
        for variant in new:
            changed = live_types.get(variant["VariantName"]) not in (None, variant.get("InstanceType"))
            if changed and f"endpoint/{endpoint.endpoint_name}/variant/{variant['VariantName']}" in scaled:
                raise client_error(
                    "ValidationException",
                    f"The variant {variant['VariantName']} is registered for automatic scaling; deregister "
                    "it before changing its instance type.",
                    "UpdateEndpoint",
                )
        endpoint.endpoint_config_name = params["EndpointConfigName"]
        return {"EndpointArn": endpoint.arn}

    def stop_execution(params: dict[str, Any]) -> dict[str, Any]:
        for pipeline in moto_sagemaker().pipelines.values():
            execution = pipeline.pipeline_executions.get(params["PipelineExecutionArn"])
            if execution is not None:
                execution.pipeline_execution_status = "Stopping"
                return {"PipelineExecutionArn": execution.arn}
        raise client_error("ResourceNotFound", "execution not found", "StopPipelineExecution")

    apis.serve("sagemaker", "UpdateEndpoint", update_endpoint)
    apis.serve("sagemaker", "StopPipelineExecution", stop_execution)
