"""One adapter per AWS service. Each takes its boto3 client, or creates it on first use."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def is_not_found(exc: ClientError) -> bool:
    """SageMaker says 'not found' with several codes (ValidationException 'Could not find ...')."""
    code, message = error_code(exc), error_message(exc).lower()
    return code in {"ResourceNotFound", "ResourceNotFoundException", "NoSuchKey", "404", "NotFound"} or (
        code == "ValidationException" and ("could not find" in message or "does not exist" in message)
    )


def is_already_exists(exc: ClientError) -> bool:
    code, message = error_code(exc), error_message(exc).lower()
    return code in {"ResourceInUse", "ConflictException"} or (
        code == "ValidationException"
        and ("already exist" in message or "cannot create already existing" in message)
    )


def drop_none(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
