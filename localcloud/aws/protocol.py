"""Wire protocols of the AWS APIs the embedded AWS serves: decoding a request, rendering a reply or error.

SageMaker, CodeCommit, DynamoDB and Application Auto Scaling speak JSON 1.1 (`X-Amz-Target`); SNS and
the other query services speak `Action=` with XML replies; S3 is REST-XML; SageMaker Runtime is REST-JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

JSON_CONTENT_TYPE = "application/x-amz-json-1.1"

# X-Amz-Target prefixes of the JSON services, for requests whose signature names no service.
_TARGET_PREFIX_TO_SERVICE = {
    "SageMaker": "sagemaker",
    "CodeCommit_20150413": "codecommit",
    "DynamoDB_20120810": "dynamodb",
    "AnyScaleFrontendService": "application-autoscaling",
    "AWSEvents": "events",
    "Logs_20140328": "logs",
    "AmazonSQS": "sqs",
    "AWSLambda": "lambda",
}
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_RUNTIME_PATH = re.compile(r"^/endpoints/([^/]+)/(invocations|async-invocations)$")
# Lambda's Invoke: POST /2015-03-31/functions/{FunctionName}/invocations (botocore's lambda model).
_LAMBDA_INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")


# The User-Agent mark of the local cloud's own clients (engine, hosting, job runner): fault mode spares them.
INTERNAL_AGENT = "localcloud-internal"


class AwsError(Exception):
    """An AWS service error: botocore raises it to the caller as ClientError with this code."""

    def __init__(self, code: str, message: str, status: int = 400, extra: dict[str, Any] | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra or {}


@dataclass(frozen=True)
class RawResponse:
    """A reply given byte for byte, for REST APIs whose body is not a JSON document."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestInfo:
    """What the middleware decoded from one request."""

    service: str
    action: str
    protocol: str  # "json" | "query" | "rest-json" | "rest-xml" | "unknown"
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    region: str
    request_id: str


def _header_map(environ: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = value
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return headers


def _flat_qs(text: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}


def _s3_action(method: str, path: str, query: dict[str, str]) -> str:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "ListBuckets"
    has_key = len(parts) > 1
    if has_key:
        return {
            "GET": "GetObject",
            "PUT": "PutObject",
            "HEAD": "HeadObject",
            "DELETE": "DeleteObject",
            "POST": "PostObject",
        }.get(method, method)
    if method == "GET":
        return "ListObjectsV2" if query.get("list-type") == "2" else "ListObjects"
    return {
        "PUT": "CreateBucket",
        "HEAD": "HeadBucket",
        "DELETE": "DeleteBucket",
        "POST": "DeleteObjects",
    }.get(method, method)


def decode_request(environ: dict[str, Any], body: bytes, default_region: str) -> RequestInfo:
    """Name the service and action of a request the way AWS routes it."""
    headers = _header_map(environ)
    method = environ.get("REQUEST_METHOD", "GET")
    path = unquote(environ.get("PATH_INFO", "/"))
    query = _flat_qs(environ.get("QUERY_STRING", ""))
    service, region = "", default_region
    scope = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    if scope:
        region, service = scope.group(1), scope.group(2)
    target = headers.get("x-amz-target", "")
    action, protocol = "", "unknown"
    runtime = _RUNTIME_PATH.match(environ.get("PATH_INFO", "/"))
    if runtime and service in ("", "sagemaker"):
        service, protocol = "sagemaker-runtime", "rest-json"
        action = "InvokeEndpoint" if runtime.group(2) == "invocations" else "InvokeEndpointAsync"
    elif service == "lambda" and method == "POST" and _LAMBDA_INVOKE_PATH.match(path):
        action, protocol = "Invoke", "rest-json"
    elif target:
        prefix, _, action = target.rpartition(".")
        service = service or _TARGET_PREFIX_TO_SERVICE.get(prefix, prefix.lower())
        protocol = "json"
    elif service == "s3":
        protocol, action = "rest-xml", _s3_action(method, path, query)
    else:
        form = _flat_qs(body.decode("utf-8", "replace")) if b"Action=" in body else {}
        action = query.get("Action") or form.get("Action", "")
        if action:
            protocol = "query"
    return RequestInfo(
        service=service,
        action=action,
        protocol=protocol,
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        region=region,
        request_id=str(uuid.uuid4()),
    )


def request_params(info: RequestInfo) -> dict[str, Any]:
    """The call's parameters: the JSON document, the flattened query form, or the REST members."""
    params: dict[str, Any]
    if info.protocol == "json":
        document = json.loads(info.body or b"{}")
        return document if isinstance(document, dict) else {}
    if info.protocol == "query":
        params = dict(info.query)
        params.update(_flat_qs(info.body.decode("utf-8", "replace")))
        return params
    if info.service == "sagemaker-runtime":
        match = _RUNTIME_PATH.match(info.path)
        params = {
            "EndpointName": match.group(1) if match else "",
            "Body": info.body,
            "ContentType": info.headers.get("content-type"),
            "Accept": info.headers.get("accept"),
        }
        for header, member in (
            ("x-amzn-sagemaker-custom-attributes", "CustomAttributes"),
            ("x-amzn-sagemaker-target-variant", "TargetVariant"),
            ("x-amzn-sagemaker-inference-id", "InferenceId"),
        ):
            if header in info.headers:
                params[member] = info.headers[header]
        return params
    if info.service == "lambda" and info.action == "Invoke":
        match = _LAMBDA_INVOKE_PATH.match(info.path)
        return {
            "FunctionName": match.group(1) if match else "",
            "InvocationType": info.headers.get("x-amz-invocation-type", "RequestResponse"),
            "Payload": info.body,
            **({"Qualifier": info.query["Qualifier"]} if "Qualifier" in info.query else {}),
        }
    if info.service == "s3":
        parts = info.path.lstrip("/").split("/", 1)
        params = {"Bucket": parts[0]} if parts[0] else {}
        if len(parts) > 1 and parts[1]:
            params["Key"] = parts[1]
        params.update(info.query)
        return params
    return dict(info.query)


def response_document(info: RequestInfo, body: bytes) -> dict[str, Any]:
    """A reply body as a dict: parsed JSON for the JSON protocols, the raw bytes under "Body" otherwise."""
    if info.protocol in ("json", "rest-json") and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"Body": body}
        return parsed if isinstance(parsed, dict) else {"Body": parsed}
    return {"Body": body}


def json_default(value: Any) -> Any:
    """JSON encoding of what AWS JSON protocols carry besides plain JSON: timestamps and blobs."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def render_result(info: RequestInfo, result: dict[str, Any] | RawResponse) -> RawResponse:
    """Render an override's reply in the protocol of its service."""
    if isinstance(result, RawResponse):
        headers = {"x-amzn-RequestId": info.request_id, **result.headers}
        return RawResponse(result.status, result.body, headers)
    if info.protocol in ("json", "rest-json"):
        body = json.dumps(result, default=json_default).encode()
        content_type = JSON_CONTENT_TYPE if info.protocol == "json" else "application/json"
        return RawResponse(200, body, {"Content-Type": content_type, "x-amzn-RequestId": info.request_id})
    raise TypeError(f"an override of {info.service}:{info.action} ({info.protocol}) must return RawResponse")


def render_error(info: RequestInfo, error: AwsError) -> RawResponse:
    """Render an error so that botocore raises ClientError with the error's code and message."""
    if info.protocol in ("json", "rest-json", "unknown"):
        document = {"__type": error.code, "message": error.message, **error.extra}
        headers = {
            "Content-Type": JSON_CONTENT_TYPE if info.protocol == "json" else "application/json",
            "x-amzn-ErrorType": error.code,
            "x-amzn-RequestId": info.request_id,
        }
        return RawResponse(error.status, json.dumps(document, default=json_default).encode(), headers)
    fields = f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
    if info.protocol == "rest-xml":
        request_id = f"<RequestId>{info.request_id}</RequestId>"
        xml = f"<?xml version='1.0' encoding='UTF-8'?><Error>{fields}{request_id}</Error>"
    else:
        kind = "Sender" if error.status < 500 else "Receiver"
        xml = (
            f"<ErrorResponse><Error><Type>{kind}</Type>{fields}</Error>"
            f"<RequestId>{info.request_id}</RequestId></ErrorResponse>"
        )
    return RawResponse(
        error.status, xml.encode(), {"Content-Type": "text/xml", "x-amzn-RequestId": info.request_id}
    )
