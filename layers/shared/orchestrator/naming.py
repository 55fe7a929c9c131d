"""Deterministic names and tokens, so that a retry finds what the first attempt created."""

from __future__ import annotations

import hashlib
import re

MAX_NAME = 63


def short_hash(*parts: object, length: int = 8) -> str:
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:length]


def slug(text: str) -> str:
    """Letters, digits and single hyphens, as SageMaker names require."""
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-zA-Z0-9-]", "-", text)).strip("-") or "x"


def bounded(*parts: str, limit: int = MAX_NAME) -> str:
    """Join parts with '-'; if too long, shorten the first part (keeping the distinguishing suffix)."""
    head, tail = slug(parts[0]), "-".join(slug(part) for part in parts[1:])
    name = f"{head}-{tail}" if tail else head
    if len(name) <= limit:
        return name
    digest = short_hash(name, length=6)
    room = limit - len(tail) - len(digest) - 2
    return f"{head[: max(room, 1)].rstrip('-')}-{digest}-{tail}"[:limit].rstrip("-")


def model_name(group: str, version: int) -> str:
    return bounded(group, f"v{version}")


def endpoint_config_name(endpoint: str, version: int, settings_fingerprint: str) -> str:
    return bounded(endpoint, f"v{version}", short_hash(settings_fingerprint))


def transform_job_name(group: str, version: int, input_uri: str) -> str:
    return bounded(group, f"v{version}", short_hash(input_uri))


def execution_token(repository: str, branch: str, commit_id: str) -> str:
    """ClientRequestToken for StartPipelineExecution: 64 hex characters derived from the commit."""
    return hashlib.sha256(f"{repository}:{branch}:{commit_id}".encode()).hexdigest()


def execution_display_name(branch: str, commit_id: str) -> str:
    """<branch>-<commit[:12]>: the branch prefix identifies executions that a newer push supersedes."""
    return f"{branch_prefix(branch)}{commit_id[:12]}"


def branch_prefix(branch: str) -> str:
    return f"{slug(branch)[:60]}-"


def is_display_name_of_branch(display_name: str, branch: str) -> bool:
    """Whether execution_display_name(branch, <commit>) gave this name: the branch's prefix and exactly 12
    hex digits, so a run of "main-old" (main-old-<12 hex>) is never taken for one of "main"."""
    prefix = branch_prefix(branch)
    return (
        display_name.startswith(prefix)
        and re.fullmatch(r"[0-9a-f]{12}", display_name[len(prefix) :]) is not None
    )


def lineage_name(project: str, kind: str, *parts: str, limit: int = 120) -> str:
    """<project>-<kind>-<parts>: the handlers' IAM allows Contexts and Actions named <ProjectName>-* only,
    so the project prefix is never shortened (ContextName/ActionName: at most 120 characters)."""
    head = f"{project}-"  # verbatim, as the policies name it (PROJECT_NAME is ^[a-z][a-z0-9-]{0,29}$)
    return head + bounded(kind, *parts, limit=limit - len(head))
