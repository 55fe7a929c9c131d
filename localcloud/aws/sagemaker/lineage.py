"""The lineage APIs moto lacks: artifacts, contexts, actions and associations."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from localcloud.aws.protocol import AwsError, RequestInfo
from localcloud.aws.sagemaker.base import SageMakerFamily
from localcloud.aws.sagemaker.common import (
    ASSOCIATION_TYPES,
    _created_between,
    _now,
    _paginate,
    _sort,
)


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


class LineageApis(SageMakerFamily):
    OVERRIDES = {
        "CreateArtifact": "_create_artifact",
        "DescribeArtifact": "_describe_artifact",
        "ListArtifacts": "_list_artifacts",
        "DeleteArtifact": "_delete_artifact",
        "CreateContext": "_create_context",
        "DescribeContext": "_describe_context",
        "ListContexts": "_list_contexts",
        "DeleteContext": "_delete_context",
        "CreateAction": "_create_action",
        "DescribeAction": "_describe_action",
        "ListActions": "_list_actions",
        "DeleteAction": "_delete_action",
        "AddAssociation": "_add_association",
        "DeleteAssociation": "_delete_association",
        "ListAssociations": "_list_associations",
    }

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
