"""`make mutation`: mutation testing (mutmut) of the layer's decision modules, each against the tests that
cover it; writes the score and every survivor to benchmarks/results/mutation.json.

mutmut derives a mutant's module from its file path, so the layer (layers/shared/orchestrator) is staged
with the tests, handlers, events and template in .mutation/, where `orchestrator` is a top-level package as
it is on the Lambda layer's import path. Usage: `python benchmarks/mutation.py [module ...]` (default: all).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKSPACE = ROOT / ".mutation"
RESULTS = ROOT / "benchmarks" / "results" / "mutation.json"

# module -> the tests that exercise its decisions (mutmut runs, of these, the ones that reach the mutant)
MODULES: dict[str, list[str]] = {
    "naming": ["tests/unit/test_naming.py", "tests/properties/test_naming.py"],
    "intake": [
        "tests/unit/test_intake.py",
        "tests/properties/test_hostile_events.py",
        "tests/unit/test_permanent_and_transient_errors.py",
        # alarm_refusal: the drift alarm's guards (and the candidate alarm's, in test_promotion)
        "tests/unit/test_retraining.py",
    ],
    "events": [
        "tests/unit/test_event_models.py",
        "tests/properties/test_hostile_events.py",
        "tests/template/test_aws_documented_events.py",
    ],
    "packaging": ["tests/unit/test_start_pipeline.py", "tests/unit/test_packaging.py"],
    # (tests/unit/test_half_way_deaths.py is left out: each of its tests waits two seconds for a deadline)
    "push": [
        "tests/unit/test_start_pipeline.py",
        "tests/unit/test_push_details.py",
        "tests/unit/test_permanent_and_transient_errors.py",
    ],
    "deploy": [
        "tests/unit/test_deploy.py",
        "tests/unit/test_deploy_details.py",
        "tests/unit/test_permanent_and_transient_errors.py",
        # staged promotion, A/B and the smoke test's scheduling live in deploy.py's handlers
        "tests/unit/test_promotion.py",
    ],
    "promote": ["tests/unit/test_promotion.py", "tests/unit/test_smoke_test_details.py"],
    "retrain": ["tests/unit/test_retraining.py"],
    "track": ["tests/unit/test_track_and_lineage.py", "tests/unit/test_track_details.py"],
    "lineage": ["tests/unit/test_lineage_records.py", "tests/unit/test_track_and_lineage.py"],
}
# Mutants that change nothing a caller can observe, by name, with the reason (also listed in the README).
_ROOT_LOCATION = (
    "the fallback name of an error at the event's root: none of our models validates at the root, so "
    "pydantic puts every error under a field and the fallback is never shown"
)
_TRACK_LEDGER_ONLY = (
    "the track handler's lineage writes ledger items only (runs, endpoints, transforms); the recorder's "
    "SageMaker client and project name serve Studio entities, which track never creates"
)
_ONE_SLASH = (
    "a processing job's ARN has exactly one '/' "
    "(arn:aws:sagemaker:<region>:<account>:processing-job/<name>), so every one of these splits yields the "
    "same name"
)
_UNUSED_BRANCH = (
    "the branch of a commit found through a run's parameters is never read: run and package records are "
    "keyed by repository and commit only"
)
_ABSENT_CONSTANT = (
    "a constant stands for an absent value in the key of a change; any other constant keys it the same way"
)
_PYTHON_DEFAULT = (
    "the argument states Python's own default (tarfile.DEFAULT_FORMAT is PAX_FORMAT since 3.8; GzipFile's "
    "compresslevel defaults to 9; with a nameless BytesIO, filename None or absent writes no name either)"
)
_NO_SUCH_CONFIG = (
    "with no serving config known, the look-up key only has to name no config: '' and 'XXXX' both do "
    "(our configs are named <endpoint>-v<version>-<hash>)"
)
_BLANK_WATCHED_PATH = (
    "a watched path of only '/' (or blank) names nothing either way: CodeCommit's paths are relative, so no "
    "changed path equals '' or starts with '/'"
)
_NO_DISPLAY_NAME = (
    "a run listed without a display name is never ours: '', 'None' and 'XXXX' are none of them "
    "'<branch>-<12 hex digits>'"
)
_HEAD_UNREAD = (
    "the initial value of `head` is read only when superseding is on, and then it has been replaced by "
    "GetBranch's answer"
)
_KEPT_HAS_PACKAGE = (
    "a kept decision is written with its package_arn (asdict of the Decision), so the default is never used"
)
_CONFIG_ALWAYS_NAMED = (
    "DescribeEndpoint always names the endpoint's config (EndpointConfigName is required in its output, "
    "botocore's sagemaker model), so the default is never used"
)
_CODEC_ALIAS = "'UTF-8' and 'utf-8' name the same codec (codecs.lookup ignores case)"
_FIRST_LINE = "only the first of the lines kept is read (first[0]): keeping two changes nothing"
_SIZE_ALWAYS_LISTED = (
    "ListObjectsV2 gives every object's Size (S3 API reference, Object), so the default is never used"
)
_SAME_INSTANT = (
    "astimezone(None) and now(None) give the same instant in local time (aware, or naive local that "
    "astimezone(UTC) reads as local), and replace(second=0, microsecond=0) cuts the same minute in any "
    "whole-minute time zone; the query's start and end are the same"
)
_REJECTED_SKIPPED = (
    "the rejected package is no longer Approved: the staging list of Approved packages never holds it, and "
    "production's history skips it when it is described, so how (or whether) it is filtered out first "
    "changes nothing"
)
_AB_HAS_CANDIDATE = (
    "the A/B record is always written with candidate_package_arn (record_ab), so the default is never used"
)
_DEPLOYED_AT_ALWAYS = (
    "every deployment record has deployed_at (LineageRecorder.deployed_to_endpoint writes it), so the "
    "default is never used"
)
_NOT_FOUND_NAMED = (
    "verification_failure answers package-not-found for a package it could not describe, so the fallback "
    "reason is never used"
)
_STAGE_CONSTANT = (
    "a promotion's run-once key always holds the stage Production (an A/B end is run once under a record "
    "name of its own), so promotions are keyed alike with or without it"
)
_REJECTED_AS_PARTNER = (
    "these keep the rejected package among the variants' packages; it is no longer Approved, so when it "
    "comes first (alone, or as the Live variant, which the config lists first) it is passed over to "
    "rollback_target, which names production's newest deployment: during an A/B test the candidate, the "
    "partner the exclusion would have found"
)
_CONFIG_NAMES_ENDPOINT = (
    "a config's name begins with its endpoint's (<endpoint>-v<version>-<hash>), and only staging is smoke "
    "tested, so the config alone keys a smoke test the same way"
)
EQUIVALENT: dict[str, str] = {
    "orchestrator.promote.x__prediction__mutmut_7": _CODEC_ALIAS,
    "orchestrator.promote.x__prediction__mutmut_10": _FIRST_LINE,
    # held_out_rows changed on 2026-12-02 (rows spread over the split): renumbered, checked with mutmut show
    "orchestrator.promote.x_held_out_rows__mutmut_62": _CODEC_ALIAS,
    "orchestrator.promote.x_held_out_rows__mutmut_22": _SIZE_ALWAYS_LISTED,
    "orchestrator.promote.x_held_out_rows__mutmut_24": _SIZE_ALWAYS_LISTED,
    "orchestrator.promote.x_held_out_rows__mutmut_28": _SIZE_ALWAYS_LISTED,
    "orchestrator.promote.x_held_out_uri__mutmut_45": _ONE_SLASH,
    "orchestrator.promote.x_held_out_uri__mutmut_46": _ONE_SLASH,
    "orchestrator.promote.x_held_out_uri__mutmut_48": _ONE_SLASH,
    "orchestrator.promote.x_held_out_uri__mutmut_49": _ONE_SLASH,
    "orchestrator.promote.x_variant_metrics__mutmut_11": _SAME_INSTANT,
    "orchestrator.promote.x_variant_metrics__mutmut_20": _SAME_INSTANT,
    "orchestrator.promote.x_variant_metrics__mutmut_22": _SAME_INSTANT,
    "orchestrator.deploy.x_rollback_target__mutmut_1": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_2": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_11": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_35": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_36": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_37": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_38": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_39": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_40": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_41": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_42": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_43": _REJECTED_SKIPPED,
    "orchestrator.deploy.x_rollback_target__mutmut_52": _DEPLOYED_AT_ALWAYS,
    "orchestrator.deploy.x_rollback_target__mutmut_54": _DEPLOYED_AT_ALWAYS,
    "orchestrator.deploy.x_rollback_target__mutmut_57": _DEPLOYED_AT_ALWAYS,
    "orchestrator.deploy.x_end_ab_test__mutmut_43": _AB_HAS_CANDIDATE,
    "orchestrator.deploy.x_end_ab_test__mutmut_45": _AB_HAS_CANDIDATE,
    "orchestrator.deploy.x_end_ab_test__mutmut_48": _AB_HAS_CANDIDATE,
    "orchestrator.deploy.x_handle_promotion__mutmut_22": _NOT_FOUND_NAMED,
    "orchestrator.deploy.x_handle_promotion__mutmut_23": _NOT_FOUND_NAMED,
    "orchestrator.deploy.x_smoke_test_if_due__mutmut_165": _CONFIG_NAMES_ENDPOINT,
    "orchestrator.deploy.x_smoke_test_if_due__mutmut_166": _CONFIG_NAMES_ENDPOINT,
    "orchestrator.deploy.x_smoke_test_if_due__mutmut_169": _CONFIG_NAMES_ENDPOINT,
    "orchestrator.deploy.x_smoke_test_if_due__mutmut_170": _CONFIG_NAMES_ENDPOINT,
    # (named again on the current deploy.py, 2026-12-02: `mutmut show` gives the same mutants as before)
    "orchestrator.deploy.x_release_autoscaling_for_new_instance_type__mutmut_6": _CONFIG_ALWAYS_NAMED,
    "orchestrator.deploy.x_release_autoscaling_for_new_instance_type__mutmut_8": _CONFIG_ALWAYS_NAMED,
    "orchestrator.deploy.x_release_autoscaling_for_new_instance_type__mutmut_12": _CONFIG_ALWAYS_NAMED,
    "orchestrator.deploy.x_rejection_is_moot__mutmut_21": _KEPT_HAS_PACKAGE,
    "orchestrator.deploy.x_rejection_is_moot__mutmut_23": _KEPT_HAS_PACKAGE,
    "orchestrator.deploy.x_rejection_is_moot__mutmut_26": _KEPT_HAS_PACKAGE,
    "orchestrator.deploy.x_roll_back_rejected__mutmut_49": _REJECTED_AS_PARTNER,
    "orchestrator.deploy.x_roll_back_rejected__mutmut_51": _REJECTED_AS_PARTNER,
    "orchestrator.deploy.x_handle_promotion__mutmut_24": _NOT_FOUND_NAMED,
    "orchestrator.deploy.x_handle_promotion__mutmut_25": _NOT_FOUND_NAMED,
    "orchestrator.deploy.x_handle_promotion__mutmut_206": _STAGE_CONSTANT,
    "orchestrator.deploy.x_handle_promotion__mutmut_207": _STAGE_CONSTANT,
    "orchestrator.deploy.x_handle_promotion__mutmut_212": _STAGE_CONSTANT,
    "orchestrator.deploy.x_handle_promotion__mutmut_213": _STAGE_CONSTANT,
    "orchestrator.push.x_touches__mutmut_4": _BLANK_WATCHED_PATH,
    "orchestrator.push.x_stop_superseded__mutmut_14": _NO_DISPLAY_NAME,
    "orchestrator.push.x_stop_superseded__mutmut_16": _NO_DISPLAY_NAME,
    "orchestrator.push.x_stop_superseded__mutmut_20": _NO_DISPLAY_NAME,
    "orchestrator.push.x_start_run__mutmut_58": _HEAD_UNREAD,
    "orchestrator.lineage.x_endpoint_lineage__mutmut_38": _NO_SUCH_CONFIG,
    "orchestrator.packaging.x_sourcedir_tarball__mutmut_4": _PYTHON_DEFAULT,
    "orchestrator.packaging.x_sourcedir_tarball__mutmut_7": _PYTHON_DEFAULT,
    "orchestrator.packaging.x_sourcedir_tarball__mutmut_35": _PYTHON_DEFAULT,
    "orchestrator.packaging.x_sourcedir_tarball__mutmut_40": _PYTHON_DEFAULT,
    "orchestrator.packaging.x_sourcedir_tarball__mutmut_44": _PYTHON_DEFAULT,
    "orchestrator.intake.x_parse_event__mutmut_36": _ROOT_LOCATION,
    "orchestrator.intake.x_parse_event__mutmut_37": _ROOT_LOCATION,
    "orchestrator.track.xǁTrackServicesǁlineage__mutmut_2": _TRACK_LEDGER_ONLY,
    "orchestrator.track.xǁTrackServicesǁlineage__mutmut_3": _TRACK_LEDGER_ONLY,
    "orchestrator.track.xǁTrackServicesǁfrom_settings__mutmut_5": _TRACK_LEDGER_ONLY,
    "orchestrator.track.x_failed_steps__mutmut_50": _ONE_SLASH,
    "orchestrator.track.x_failed_steps__mutmut_51": _ONE_SLASH,
    "orchestrator.track.x_failed_steps__mutmut_54": _ONE_SLASH,
    "orchestrator.track.x_failed_steps__mutmut_55": _ONE_SLASH,
    "orchestrator.track.x_track_execution__mutmut_20": _UNUSED_BRANCH,
    "orchestrator.track.x_track_execution__mutmut_28": _UNUSED_BRANCH,
    "orchestrator.track.x_state_change__mutmut_10": _ABSENT_CONSTANT,
    "orchestrator.track.x_state_change__mutmut_17": _ABSENT_CONSTANT,
    "orchestrator.track.x_state_change__mutmut_22": _ABSENT_CONSTANT,
}
_RESULT_LINE = re.compile(r"^\s*orchestrator\.(?P<module>\w+)\.(?P<mutant>\S+): (?P<status>.+)$")


def stage(modules: list[str]) -> None:
    shutil.rmtree(WORKSPACE, ignore_errors=True)
    WORKSPACE.mkdir()
    shutil.copytree(ROOT / "layers" / "shared" / "orchestrator", WORKSPACE / "orchestrator")
    for item in ("tests", "functions", "events"):
        shutil.copytree(ROOT / item, WORKSPACE / item, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "template.yaml", WORKSPACE / "template.yaml")
    tests = sorted({test for module in modules for test in MODULES[module]})
    config = [
        "[tool.mutmut]",
        'source_paths = ["orchestrator"]',
        f"only_mutate = {json.dumps([f'orchestrator/{module}.py' for module in modules])}",
        'also_copy = ["functions", "events", "template.yaml"]',
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]',
        "",
        "[tool.pytest.ini_options]",
        'markers = ["slow: slow tests"]',
    ]
    (WORKSPACE / "pyproject.toml").write_text("\n".join(config) + "\n")


def mutmut(*args: str) -> str:
    """Run mutmut in the staged workspace; returns what it printed (a run's progress is not kept)."""
    env = {**os.environ, "PYTHONPATH": str(WORKSPACE), "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [str(Path(sys.executable).with_name("mutmut")), *args]
    if args[0] == "run":
        subprocess.run(command, cwd=WORKSPACE, env=env, check=True, stdout=subprocess.DEVNULL)
        return ""
    return subprocess.run(command, cwd=WORKSPACE, env=env, check=True, capture_output=True, text=True).stdout


def statuses(listing: str) -> dict[str, str]:
    """Each mutant's status ("killed", "survived", "not checked", ...) from `mutmut results --all true`."""
    found = {}
    for line in listing.splitlines():
        match = _RESULT_LINE.match(line)
        if match:
            found[f"orchestrator.{match['module']}.{match['mutant']}"] = match["status"]
    return found


def score(entry: dict[str, Any]) -> float:
    """Killed of the mutants that change behaviour (survivors listed in EQUIVALENT do not)."""
    effective = int(entry["mutants"]) - sum(1 for name in entry["survivors"] if name in EQUIVALENT)
    return round(int(entry["killed"]) / effective, 4) if effective else 1.0


def run(modules: list[str], report_only: bool = False) -> dict[str, Any]:
    started = time.monotonic()
    if not report_only:
        stage(modules)
        mutmut("run")
    seconds = time.monotonic() - started
    per_module: dict[str, dict[str, Any]] = {}
    for name, status in statuses(mutmut("results", "--all", "true")).items():
        entry = per_module.setdefault(name.split(".")[1], {"mutants": 0, "killed": 0, "survivors": {}})
        if status == "not checked":  # a run stopped early (--report-only): not counted
            entry["not_checked"] = int(entry.get("not_checked", 0)) + 1
            continue
        entry["mutants"] += 1
        if status == "killed":
            entry["killed"] += 1
        else:
            entry["survivors"][name] = EQUIVALENT.get(name, status)
    for entry in per_module.values():
        entry["score"] = score(entry)
    return {
        "tool": "mutmut 3.8.1",
        "modules": modules,
        "seconds": round(seconds, 1),
        "per_module": per_module,
    }


def merged(result: dict[str, Any]) -> dict[str, Any]:
    """This run's modules replace theirs in the recorded results; the others' last results stay, each
    with the date it was measured. Totals are over the latest result of every module."""
    today = time.strftime("%Y-%m-%d")
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    modules: dict[str, Any] = dict(previous.get("per_module", {}))
    for name, entry in result["per_module"].items():
        modules[name] = entry | {"measured": today}
    total = sum(int(e["mutants"]) for e in modules.values())
    killed = sum(int(e["killed"]) for e in modules.values())
    survivors = {name: status for e in modules.values() for name, status in e["survivors"].items()}
    equivalent = sum(1 for name in survivors if name in EQUIVALENT)
    last_run = {"modules": result["modules"], "seconds": result["seconds"], "date": today}
    if not result["seconds"] and previous.get("last_run", {}).get("modules") == result["modules"]:
        last_run = previous["last_run"]  # a report of the same run (--report-only): keep its duration
    return {
        "tool": result["tool"],
        "modules": sorted(modules),
        "last_run": last_run,
        "mutants": total,
        "killed": killed,
        "equivalent": equivalent,
        "score": score({"mutants": total, "killed": killed, "survivors": survivors}),
        "per_module": modules,
    }


def recheck_survivors(modules: list[str]) -> dict[str, Any]:
    """Run again only the recorded survivors of `modules` (after new tests), against the current tests;
    a survivor now killed counts as killed, the module's other results stand. The source must be unchanged
    since the recorded run (mutant names are positions in it)."""
    previous = json.loads(RESULTS.read_text())
    names = [
        name
        for module in modules
        for name, status in previous["per_module"][module]["survivors"].items()
        if name not in EQUIVALENT and status == "survived"
    ]
    started = time.monotonic()
    stage(modules)
    if names:
        mutmut("run", *names)
    status = statuses(mutmut("results", "--all", "true"))
    per_module: dict[str, Any] = {}
    for module in modules:
        entry = dict(previous["per_module"][module])
        survivors = dict(entry["survivors"])
        for name in list(survivors):
            if status.get(name) == "killed":
                del survivors[name]
                entry["killed"] = int(entry["killed"]) + 1
            else:
                survivors[name] = EQUIVALENT.get(name, survivors[name])
        entry["survivors"] = survivors
        entry["score"] = score(entry)
        per_module[module] = entry
    return {
        "tool": previous["tool"],
        "modules": modules,
        "seconds": round(time.monotonic() - started, 1),
        "per_module": per_module,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(MODULES)} (default: all)")
    parser.add_argument(
        "--report-only", action="store_true", help="report the staged run's results so far, without running"
    )
    parser.add_argument(
        "--recheck-survivors",
        action="store_true",
        help="run only the recorded survivors again (after adding tests; the source must be unchanged)",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown modules {unknown}; choose from {list(MODULES)}")
    modules = args.modules or list(MODULES)
    if args.recheck_survivors:
        result = merged(recheck_survivors(modules))
    else:
        result = merged(run(modules, report_only=args.report_only))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_module"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
