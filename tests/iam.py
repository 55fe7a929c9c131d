"""What IAM lets each function do, read from template.yaml, and a guard that checks every AWS call a handler
makes in a test against it.

Checked at the level of actions: each call a handler makes must be allowed by one of its function's Allow
statements (inline, or the SAM policy templates it uses). Resource scoping is checked separately by the
template tests (no unscoped resources); matching each call's resource ARN is not attempted here.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import botocore.client
import samtranslator

from tests.template.cfn import Resolver, functions, load_template

# API operations authorised by an action of another name (the S3 ones IAM documents), or by none at all.
ACTION_OF_OPERATION = {
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:ListObjects": "s3:ListBucket",
    "s3:HeadBucket": "s3:ListBucket",
    "sts:GetCallerIdentity": None,  # needs no permission
}
_HANDLER_FILE = re.compile(r"[/\\]functions[/\\](?P<code>[^/\\]+)[/\\]app\.py$")


@cache
def policy_template_actions(name: str) -> frozenset[str]:
    """The actions one of SAM's policy templates expands to, from the translator's own template data."""
    data = Path(samtranslator.__file__).parent / "policy_templates_data" / "policy_templates.json"
    statements = json.loads(data.read_text())["Templates"][name]["Definition"]["Statement"]
    return frozenset(action for statement in statements for action in _as_list(statement["Action"]))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@cache
def allowed_actions() -> dict[str, frozenset[str]]:
    """Function code folder (functions/<folder>) → the action patterns its policies allow."""
    template = load_template()
    resolver = Resolver(template)
    allowed: dict[str, frozenset[str]] = {}
    for resource in functions(template).values():
        props = resource["Properties"]
        actions: set[str] = set()
        for policy in props.get("Policies", []):
            if isinstance(policy, dict) and "Statement" in policy:
                for statement in resolver.resolve(policy)["Statement"]:
                    if statement["Effect"] == "Allow":
                        actions.update(_as_list(statement["Action"]))
            elif isinstance(policy, dict):
                for name in policy:
                    actions.update(policy_template_actions(name))
        folder = str(props["CodeUri"]).rstrip("/").rsplit("/", 1)[-1]
        allowed[folder] = frozenset(actions)
    return allowed


def iam_action(client: Any, operation: str) -> str | None:
    prefix = client.meta.service_model.signing_name
    action = f"{prefix}:{operation}"
    return ACTION_OF_OPERATION.get(action, action)


def is_allowed(folder: str, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action, pattern) for pattern in allowed_actions()[folder])


def _calling_handler() -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        match = _HANDLER_FILE.search(frame.f_code.co_filename)
        if match:
            return match["code"]
        frame = frame.f_back  # type: ignore[assignment]
    return None


@contextmanager
def recording_handler_calls() -> Iterator[list[tuple[str, str]]]:
    """Yields the (function folder, IAM action) of every AWS call made from inside a handler."""
    calls: list[tuple[str, str]] = []
    original = botocore.client.BaseClient._make_api_call

    def recorded(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        folder = _calling_handler()
        action = iam_action(self, operation_name)
        if folder is not None and action is not None:
            calls.append((folder, action))
        return original(self, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = recorded  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]
