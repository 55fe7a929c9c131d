"""Errors the handlers distinguish: retryable ones propagate (Lambda retries), the rest become a response."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Base class of the orchestrator's own errors."""


class SettingsError(OrchestratorError):
    """The function's environment is invalid; the message names every offending variable."""


class RetryableError(OrchestratorError):
    """Raised so that Lambda retries the event later (e.g. an endpoint is mid-update)."""


class EndpointBusyError(RetryableError):
    """The endpoint is being created, updated or rolled back; a deployment must wait."""


class TrainingCodeMissingError(OrchestratorError):
    """The commit lacks a file the pipeline needs (e.g. preprocess.py)."""
