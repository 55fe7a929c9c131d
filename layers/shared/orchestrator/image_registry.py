"""Generate the template's ImageRegistry mapping (region -> ECR account of each default image) and the
rule that refuses a region without them, at build time (`make synth`) from the SageMaker Python SDK's
image data; the Lambda layer never imports it.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The default images the template builds URIs for (see PROCESSING/TRAINING/INFERENCE_IMAGE_URI there).
SKLEARN_VERSION = "1.4-2"
SKLEARN_PY_VERSION = "py3"
TENSORFLOW_VERSION = "2.19.0"
TENSORFLOW_PY_VERSION = "py312"
PROCESSOR = "cpu"

KEYS = ("Sklearn", "TensorflowTraining", "TensorflowInference")
BEGIN_MARKER = "  # BEGIN ImageRegistry (make synth)"
END_MARKER = "  # END ImageRegistry (make synth)"
RULE_BEGIN_MARKER = "        # BEGIN SupportedRegions (make synth)"
RULE_END_MARKER = "        # END SupportedRegions (make synth)"
DEFAULT_TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"

# Regions whose URIs are rebuilt with image_uris.retrieve to check the reading of the raw config.
CROSS_CHECK_REGIONS = ("us-east-1", "eu-south-1", "cn-north-1")


def _image_uris() -> Any:
    """The SDK's image_uris module, imported only when needed (the main venv has no `sagemaker`)."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    # The SDK logs its config lookups to stdout at INFO, which --print must keep clean; a level set
    # beforehand is left alone by the SDK.
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    from sagemaker import image_uris

    return image_uris


def _sdk_version() -> str:
    from importlib.metadata import version

    return version("sagemaker")


def _scope_config(config: Mapping[str, Any], scope: str) -> Mapping[str, Any]:
    """The part of a framework config that serves `scope` ("training" or "inference")."""
    if "versions" in config:  # unscoped, or one config shared by the scopes listed under "scope"
        if scope not in config.get("scope", [scope]):
            raise KeyError(f"image scope {scope!r} not in {config.get('scope')}")
        return config
    return config[scope]


def _registries(
    config: Mapping[str, Any],
    scopes: Sequence[str],
    version: str,
    *,
    py_version: str | None = None,
    processor: str = PROCESSOR,
) -> dict[str, str]:
    """Region -> account for `version`, from the first of `scopes` that lists that version."""
    for scope in scopes:
        try:
            scoped = _scope_config(config, scope)
        except KeyError:
            continue
        version_key = scoped.get("version_aliases", {}).get(version, version)
        entry = scoped.get("versions", {}).get(version_key)
        if entry is None:
            continue
        processors = entry.get("processors", scoped.get("processors"))
        if processors is not None and processor not in processors:
            raise ValueError(f"{entry.get('repository')} {version}: no {processor} image ({processors})")
        py_versions = entry.get("py_versions", scoped.get("py_versions"))
        if py_version is not None and py_versions is not None and py_version not in py_versions:
            raise ValueError(f"{entry.get('repository')} {version}: no {py_version} image ({py_versions})")
        return dict(entry["registries"])
    raise ValueError(f"version {version} is in none of the scopes {list(scopes)}")


def _cross_check(image_uris: Any, mapping: Mapping[str, Mapping[str, str]]) -> None:
    """Rebuild a few regions' URIs with image_uris.retrieve; they must name the same accounts."""
    for region in CROSS_CHECK_REGIONS:
        if region not in mapping:
            continue
        accounts = mapping[region]
        expected = {
            "Sklearn": image_uris.retrieve(
                "sklearn",
                region,
                SKLEARN_VERSION,
                py_version=SKLEARN_PY_VERSION,
                instance_type="ml.m5.large",
            ),
            "TensorflowTraining": image_uris.retrieve(
                "tensorflow",
                region,
                TENSORFLOW_VERSION,
                py_version=TENSORFLOW_PY_VERSION,
                instance_type="ml.m5.large",
                image_scope="training",
            ),
            "TensorflowInference": image_uris.retrieve(
                "tensorflow",
                region,
                TENSORFLOW_VERSION,
                instance_type="ml.m5.large",
                image_scope="inference",
            ),
        }
        for key, uri in expected.items():
            # retrieve's host ends with the partition's suffix (amazonaws.com.cn in China); only the
            # account matters here, since the template builds the host with AWS::URLSuffix.
            if not uri.startswith(f"{accounts[key]}.dkr.ecr.{region}."):
                raise RuntimeError(f"{region} {key}: the config says {accounts[key]}, retrieve says {uri}")


def compute() -> dict[str, dict[str, str]]:
    """Region -> {"Sklearn", "TensorflowTraining", "TensorflowInference": account}, for every region
    that has all three default images (sagemaker/image_uri_config/sklearn.json and tensorflow.json)."""
    image_uris = _image_uris()
    sklearn = _registries(
        image_uris.config_for_framework("sklearn"),
        ("inference", "training"),
        SKLEARN_VERSION,
        py_version=SKLEARN_PY_VERSION,
    )
    tensorflow = image_uris.config_for_framework("tensorflow")
    training = _registries(tensorflow, ("training",), TENSORFLOW_VERSION, py_version=TENSORFLOW_PY_VERSION)
    inference = _registries(tensorflow, ("inference",), TENSORFLOW_VERSION)
    mapping = {
        region: dict(zip(KEYS, (sklearn[region], training[region], inference[region]), strict=True))
        for region in sorted(sklearn.keys() & training.keys() & inference.keys())
    }
    _cross_check(image_uris, mapping)
    return mapping


def regions() -> list[str]:
    """The regions that have all three default images, sorted."""
    return sorted(compute())


def render(mapping: Mapping[str, Mapping[str, str]], sdk_version: str | None = None) -> str:
    """The ImageRegistry mapping as a YAML block, indented to sit under the template's Mappings."""
    version = sdk_version or _sdk_version()
    lines = [
        "  # Generated by `make synth` from the SageMaker Python SDK's image data "
        f"(sagemaker=={version}): the account",
        "  # that publishes each default image in each region. Regions missing here have no default image.",
        "  ImageRegistry:",
    ]
    for region in sorted(mapping):
        fields = ", ".join(f'{key}: "{mapping[region][key]}"' for key in KEYS)
        lines.append(f"    {region}: {{ {fields} }}")
    return "\n".join(lines) + "\n"


def render_rule(mapping: Mapping[str, Mapping[str, str]]) -> str:
    """The Rules assertion (CloudFormation Rules, Fn::Contains) that the stack's region has the images."""
    listed = ", ".join(sorted(mapping))
    return f'        Assert: !Contains [[{listed}], !Ref "AWS::Region"]\n'


def update_template(
    template_text: str, block: str, begin_marker: str = BEGIN_MARKER, end_marker: str = END_MARKER
) -> str:
    """The template with everything between the two markers (kept) replaced by `block`."""
    lines = template_text.splitlines(keepends=True)
    stripped = [line.rstrip("\r\n") for line in lines]
    if stripped.count(begin_marker) != 1 or stripped.count(end_marker) != 1:
        raise ValueError(f"the template needs one {begin_marker.strip()!r} and one {end_marker.strip()!r}")
    begin, end = stripped.index(begin_marker), stripped.index(end_marker)
    if end < begin:
        raise ValueError(f"{end_marker.strip()!r} comes before {begin_marker.strip()!r}")
    if block and not block.endswith("\n"):
        block += "\n"
    return "".join(lines[: begin + 1]) + block + "".join(lines[end:])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE, help="rewritten in place")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 (with a diff) if the template is stale")
    mode.add_argument("--print", action="store_true", help="print the block instead of writing it")
    args = parser.parse_args(argv)

    mapping = compute()
    block = render(mapping)
    if args.print:
        sys.stdout.write(block)
        return 0
    current = args.template.read_text()
    try:
        updated = update_template(current, block)
        updated = update_template(updated, render_rule(mapping), RULE_BEGIN_MARKER, RULE_END_MARKER)
    except ValueError as error:
        print(f"{args.template}: {error}", file=sys.stderr)
        return 1
    if args.check:
        if updated == current:
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(keepends=True),
                updated.splitlines(keepends=True),
                fromfile=str(args.template),
                tofile=f"{args.template} (make synth)",
            )
        )
        print(f"{args.template} is stale: run `make synth`", file=sys.stderr)
        return 1
    if updated != current:
        args.template.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
