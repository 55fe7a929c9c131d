"""S3: content-addressed code objects and small JSON reads."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from botocore.exceptions import ClientError

from orchestrator.adapters import error_code, is_not_found
from orchestrator.clients import aws_client


def split_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


class S3Adapter:
    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("s3")
        return self._client

    def put_content_addressed(self, bucket: str, name: str, body: bytes) -> str:
        """Store `body` at code/<sha256 of body>/<name>, uploading only if absent; return its S3 URI."""
        key = f"code/{hashlib.sha256(body).hexdigest()}/{name}"
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if not (is_not_found(exc) or error_code(exc) in {"404", "NoSuchKey"}):
                raise
            self.client.put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}"

    def read_json(self, uri: str) -> Any:
        bucket, key = split_s3_uri(uri)
        return json.loads(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
