"""Fixtures for the local cloud's tests: one embedded AWS per session on an ephemeral loopback port."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from localcloud.aws import EmbeddedAws

#: The top-level fields of every event EventBridge delivers, as AWS documents them.
EVENTBRIDGE_ENVELOPE = {
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
}


@pytest.fixture(scope="session")
def embedded_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedAws]:
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    with EmbeddedAws(work_dir=tmp_path_factory.mktemp("localcloud")) as aws:
        yield aws


@pytest.fixture(scope="session")
def aws_session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


@pytest.fixture(scope="session")
def client(embedded_aws: EmbeddedAws, aws_session: boto3.session.Session) -> Callable[[str], Any]:
    """``client("sagemaker")``: a boto3 client of the embedded AWS."""
    cache: dict[str, Any] = {}

    def make(service: str) -> Any:
        if service not in cache:
            cache[service] = aws_session.client(service, endpoint_url=embedded_aws.endpoint_url)
        return cache[service]

    return make


class EventRecorder:
    """Every event the bus delivers while a test runs."""

    def __init__(self, aws: EmbeddedAws):
        self.aws = aws
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.unsubscribe = aws.subscribe_events(self._record)

    def _record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, detail_type: str, **detail: Any) -> list[dict[str, Any]]:
        assert self.aws.wait_for_events(10)
        with self._lock:
            return [
                e
                for e in self.events
                if e["detail-type"] == detail_type and all(e["detail"].get(k) == v for k, v in detail.items())
            ]


@pytest.fixture
def events(embedded_aws: EmbeddedAws) -> Iterator[EventRecorder]:
    recorder = EventRecorder(embedded_aws)
    yield recorder
    recorder.unsubscribe()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names that no other test in the session uses (the server's state lives for the session)."""
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


class WorkingCopy:
    """A git working copy with a fixed identity, for commits and pushes as a user makes them."""

    def __init__(self, path: Path):
        self.path = path
        self.env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Dev",
            "GIT_AUTHOR_EMAIL": "dev@example.com",
            "GIT_COMMITTER_NAME": "Dev",
            "GIT_COMMITTER_EMAIL": "dev@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(path.parent),
        }

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", *args], cwd=self.path, env=self.env, capture_output=True, text=True, check=True
        )
        return result.stdout.strip()

    def write(self, relative: str, content: str | bytes, executable: bool = False) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        if executable:
            target.chmod(0o755)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def working_copy(tmp_path: Path) -> Callable[[str], WorkingCopy]:
    def make(clone_url: str) -> WorkingCopy:
        path = tmp_path / f"wc-{uuid.uuid4().hex[:6]}"
        path.mkdir()
        copy = WorkingCopy(path)
        copy.git("init", "-q", "-b", "main")
        copy.git("remote", "add", "origin", clone_url)
        return copy

    return make
