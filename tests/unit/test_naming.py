"""The names and tokens the handlers derive: SageMaker-valid, stable across releases (a retry, or the next
version of this code, finds what the first attempt created), distinct where the inputs differ."""

from __future__ import annotations

import hashlib

import pytest

from orchestrator import naming


def test_short_hash_is_a_pinned_prefix_of_sha256() -> None:
    # pinned: changing it would orphan every endpoint config and transform job already named with it
    assert naming.short_hash("x") == hashlib.sha256(b"x").hexdigest()[:8]
    assert naming.short_hash("a", "b") == hashlib.sha256(b"a\x1fb").hexdigest()[:8]
    assert naming.short_hash("a", length=6) == hashlib.sha256(b"a").hexdigest()[:6]
    assert naming.endpoint_config_name("mlops-demo-endpoint", 1, "fp") == (
        f"mlops-demo-endpoint-v1-{hashlib.sha256(b'fp').hexdigest()[:8]}"
    )


@pytest.mark.parametrize(
    ("text", "slugged"),
    [
        ("main", "main"),
        ("feature/new_model", "feature-new-model"),
        ("--a__b--", "a-b"),
        ("", "x"),
        ("_", "x"),
    ],
)
def test_slug_keeps_letters_digits_and_single_hyphens(text: str, slugged: str) -> None:
    assert naming.slug(text) == slugged


def test_a_long_name_is_shortened_at_its_head_keeping_the_distinguishing_tail() -> None:
    head = "g" * 80
    name = naming.model_name(head, 12)
    # GIVEN a group name too long for a model name (63): the tail survives whole, the head gives way
    assert len(name) == 63
    assert name.endswith("-v12")
    assert name.startswith("g" * 40)
    # AND the digest of the whole name keeps two long heads that differ only at their end apart
    assert naming.model_name(head + "a", 12) != naming.model_name(head + "b", 12)
    digest = naming.short_hash(f"{head}-v12", length=6)
    assert name == f"{'g' * (63 - len('v12') - len(digest) - 2)}-{digest}-v12"
    # a short name is left alone
    assert naming.model_name("mlops-demo-models", 3) == "mlops-demo-models-v3"


def test_a_head_ending_in_hyphens_does_not_leave_a_double_hyphen_when_cut() -> None:
    name = naming.bounded("a" * 50 + "-" * 30, "tail", limit=40)
    assert "--" not in name and len(name) <= 40 and name.endswith("-tail")


def test_config_and_transform_names_change_with_what_they_are_derived_from() -> None:
    assert naming.endpoint_config_name("ep", 1, "a") != naming.endpoint_config_name("ep", 1, "b")
    assert naming.transform_job_name("g", 1, "s3://b/in/") != naming.transform_job_name(
        "g", 1, "s3://b/other/"
    )
    assert naming.transform_job_name("g", 1, "s3://b/in/").startswith("g-v1-")


def test_lineage_names_use_the_room_sagemaker_gives_them() -> None:
    # ContextName / ActionName allow 120 characters (botocore): a deploy action keeps the whole config name
    config = "mlops-demo-endpoint-v12-" + "c" * 39  # 63 characters, an endpoint config's maximum
    assert naming.lineage_name("mlops-demo", "deploy", config) == f"mlops-demo-deploy-{config}"
    assert len(naming.lineage_name("p", "k", "z" * 300)) == 120


def test_execution_identity_is_fixed_by_repository_branch_and_commit() -> None:
    commit = "7f6e1f5a2b3c4d5e6f708192a3b4c5d6e7f80912"
    token = naming.execution_token("repo", "main", commit)
    assert token == hashlib.sha256(f"repo:main:{commit}".encode()).hexdigest()
    assert naming.execution_token("repo", "main-old", commit) != token
    assert naming.execution_display_name("feature/x", commit) == "feature-x-7f6e1f5a2b3c"
    # the branch part is at most 60 characters, so a display name stays within SageMaker's 82
    assert naming.branch_prefix("b" * 100) == "b" * 60 + "-"


def test_bounded_leaves_a_name_that_fits_alone() -> None:
    assert naming.bounded("abc") == "abc"  # no tail: no trailing hyphen
    assert naming.bounded("a" * 60, "v1", limit=63) == "a" * 60 + "-v1"  # exactly the limit still fits


def test_bounded_cuts_without_leaving_a_hyphen_at_either_cut() -> None:
    # the head is cut right after a hyphen (and an upper-case X that must stay): no "--"
    head = "a" * 26 + "X-" + "b" * 40
    digest = naming.short_hash(f"{head}-tail", length=6)
    assert naming.bounded(head, "tail", limit=40) == f"{'a' * 26}X-{digest}-tail"
    # a tail too long for the room: the head keeps one character, and the cut never ends on a hyphen
    tail = "x" * 52 + "X-" + "y" * 10
    digest = naming.short_hash(f"hello-{tail}", length=6)
    assert naming.bounded("hello", tail, limit=63) == f"h-{digest}-{'x' * 52}X"


@pytest.mark.parametrize(("text", "slugged"), [("Main", "Main"), ("Xa-X", "Xa-X")])
def test_slug_keeps_upper_case(text: str, slugged: str) -> None:
    assert naming.slug(text) == slugged


@pytest.mark.parametrize(
    ("display_name", "branch", "ours"),
    [
        ("main-0123456789ab", "main", True),
        ("main-old-0123456789ab", "main", False),  # a run of branch main-old
        ("main-0123456789a", "main", False),
        ("main-0123456789abc", "main", False),
        ("main-0123456789AB", "main", False),
        ("feature-x-0123456789ab", "feature/x", True),
    ],
)
def test_a_display_name_is_told_apart_from_a_longer_branchs(
    display_name: str, branch: str, ours: bool
) -> None:
    assert naming.is_display_name_of_branch(display_name, branch) is ours
