"""Boto3 clients created on first use and reused across warm invocations (never at import time)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# botocore's standard retry mode: throttling and transient errors (5xx, ThrottlingException,
# ProvisionedThroughputExceededException, ...) are retried with exponential backoff: 5 attempts in all
# (the first and 4 retries).
RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 5})


@cache
def aws_client(service: str) -> Any:
    """The shared client of `service`; AWS_ENDPOINT_URL (local cloud) is honoured by boto3 itself."""
    return boto3.client(service, config=RETRIES)


@cache
def own_account_id() -> str:
    """The account this function runs in (one STS call per cold start)."""
    return str(aws_client("sts").get_caller_identity()["Account"])


def reset_clients() -> None:
    """Forget cached clients (tests start a fresh mocked AWS per test)."""
    aws_client.cache_clear()
    own_account_id.cache_clear()
