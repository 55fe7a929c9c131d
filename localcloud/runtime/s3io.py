"""S3 transfers for local jobs: inputs down into a job's `/opt/ml` tree, outputs back up, as SageMaker does
it."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class S3Location:
    """A bucket and key (or key prefix) parsed from an `s3://` URI."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        if not uri.startswith("s3://"):
            raise ValueError(f"not an S3 URI: {uri!r}")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"S3 URI without a bucket: {uri!r}")
        return cls(bucket, key)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, relative: str) -> S3Location:
        base = self.key.rstrip("/")
        return S3Location(self.bucket, f"{base}/{relative}" if base else relative)


def read_json(s3_client: Any, uri: str) -> Any:
    """The JSON document stored at an `s3://` URI."""
    location = S3Location.parse(uri)
    return json.loads(s3_client.get_object(Bucket=location.bucket, Key=location.key)["Body"].read())


def list_keys(s3_client: Any, location: S3Location) -> list[str]:
    """Every object key under the prefix, sorted (the order ShardedByS3Key distributes in)."""
    keys: list[str] = []
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.key):
        keys.extend(obj["Key"] for obj in page.get("Contents", []) if not obj["Key"].endswith("/"))
    return sorted(keys)


def relative_key(prefix: str, key: str) -> str:
    """Path of an object below the local directory: its key after the prefix; its name for an exact key."""
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    return key[len(prefix) :].lstrip("/")


def download(s3_client: Any, location: S3Location, keys: list[str], local_dir: Path) -> list[Path]:
    """Download the given keys of the prefix into `local_dir`, keeping their paths below the prefix."""
    local_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for key in keys:
        target = local_dir / relative_key(location.key, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3_client.download_file(location.bucket, key, str(target))
        written.append(target)
    return written


def upload_tree(s3_client: Any, local_dir: Path, location: S3Location) -> list[str]:
    """Upload every file below `local_dir` under the prefix; returns the keys written."""
    keys: list[str] = []
    if not local_dir.is_dir():
        return keys
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        target = location.child(path.relative_to(local_dir).as_posix())
        s3_client.upload_file(str(path), target.bucket, target.key)
        keys.append(target.key)
    return keys


def extract_archive(archive: Path, target: Path) -> None:
    """Unpack a tar archive (as the containers unpack code and models) without letting a member escape
    `target`: tarfile's "data" filter where this Python has it (3.11.4 and later), otherwise the same
    refusal of absolute paths, ".." and links that leave the target, checked here."""
    with tarfile.open(archive, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(target, filter="data")
            return
        root = target.resolve()
        for member in tar.getmembers():
            destination = (root / member.name).resolve()
            link = (
                (destination.parent / member.linkname).resolve() if member.issym() or member.islnk() else root
            )
            if not destination.is_relative_to(root) or not link.is_relative_to(root) or member.isdev():
                raise tarfile.TarError(f"{member.name!r} would be extracted outside {target}")
        tar.extractall(target)  # noqa: S202 (every member was checked above)
