"""Powertools idempotency on the ledger table (pk = idempotency#<function>, sk = hash of the key)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from orchestrator.clients import aws_client


@cache
def _persistence(table_name: str, operation: str) -> DynamoDBPersistenceLayer:
    # One store per operation: Powertools configures a store once, with the first config it sees.
    return DynamoDBPersistenceLayer(
        table_name=table_name, key_attr="pk", sort_key_attr="sk", boto3_client=aws_client("dynamodb")
    )


def reset_idempotency() -> None:
    _persistence.cache_clear()


def run_once(
    table_name: str,
    key_fields: tuple[str, ...],
    work: Callable[[dict[str, Any]], dict[str, Any]],
    key: dict[str, Any],
    context: Any = None,
    expires_after_seconds: int = 7 * 24 * 3600,
) -> dict[str, Any]:
    """Run `work(key)` at most once per value of `key_fields`; a repeat returns the first result."""
    config = IdempotencyConfig(
        event_key_jmespath="[" + ", ".join(key_fields) + "]",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=expires_after_seconds,
    )
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        config.register_lambda_context(context)

    def once(key: dict[str, Any]) -> dict[str, Any]:
        return work(key)

    # The record key is "<module>.<qualname>#<hash>": name it after the operation, not this wrapper.
    once.__module__, once.__qualname__ = work.__module__, work.__qualname__
    store = _persistence(table_name, f"{work.__module__}.{work.__qualname__}")
    guarded = idempotent_function(data_keyword_argument="key", persistence_store=store, config=config)(once)
    return guarded(key=key)
