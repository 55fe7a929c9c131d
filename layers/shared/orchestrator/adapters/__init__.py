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
        code == "ValidationException"
        and any(words in message for words in ("could not find", "does not exist", "not found"))
    )


def is_already_exists(exc: ClientError) -> bool:
    code, message = error_code(exc), error_message(exc).lower()
    return code in {"ResourceInUse", "ConflictException"} or (
        code == "ValidationException"
        and ("already exist" in message or "cannot create already existing" in message)
    )


def drop_none(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def is_endpoint_busy(exc: ClientError) -> bool:
    """SageMaker refusing to touch an endpoint that is being created or updated (a wait, not a refusal)."""
    return error_code(exc) == "ValidationException" and "in-progress" in error_message(exc).lower()


def is_permanent(exc: ClientError) -> bool:
    """The request names something that does not exist, or is invalid: a retry cannot succeed.

    Codes from the botocore service models of the operations the handlers call: SageMaker's
    ResourceNotFound and ValidationException; CodeCommit's *DoesNotExistException, Invalid*Exception,
    *RequiredException and FileTooLargeException. Throttling, 5xx, ResourceLimitExceeded, ConflictException,
    ResourceInUse, access and KMS errors are not: they are raised, retried, and land in the dead-letter
    queue when retries run out.
    """
    code = error_code(exc)
    if code == "ValidationException":
        return not is_endpoint_busy(exc)
    return (
        is_not_found(exc)
        or code.endswith("DoesNotExistException")
        or (code.startswith("Invalid") and code.endswith("Exception"))
        or code.endswith("RequiredException")
        or code == "FileTooLargeException"
    )
