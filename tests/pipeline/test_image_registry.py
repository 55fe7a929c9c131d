"""The template's ImageRegistry mapping: generated from the SageMaker SDK's image data, never hand-written.

The accounts come from the SDK's `sagemaker/image_uri_config/sklearn.json` (scikit-learn 1.4-2) and
`sagemaker/image_uri_config/tensorflow.json` (TensorFlow 2.19 training and inference DLCs).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.image_registry import BEGIN_MARKER, END_MARKER, render, update_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SYNTH_PYTHON = ROOT / ".venv-synth" / "bin" / "python"
DLC_ACCOUNT = "763104351884"  # the TensorFlow DLC account of most commercial regions, not of all


def run_generator(*args: str) -> subprocess.CompletedProcess[str]:
    """Run orchestrator.image_registry with the pinned SDK (only the synth venv has `sagemaker`)."""
    if not SYNTH_PYTHON.exists():
        pytest.fail(f"{SYNTH_PYTHON} is missing: `make synth` (or `make test`) bootstraps the SDK's venv")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "layers" / "shared")}
    return subprocess.run(
        [str(SYNTH_PYTHON), "-m", "orchestrator.image_registry", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def generated() -> dict[str, dict[str, str]]:
    result = run_generator("--print")
    assert result.returncode == 0, result.stderr[-2000:]
    return yaml.safe_load("Mappings:\n" + result.stdout)["Mappings"]["ImageRegistry"]


def test_drift_template_matches_the_sdks_image_data() -> None:
    # GIVEN the committed template and the pinned SDK
    # WHEN the generator checks the template without writing it
    result = run_generator("--check", "--template", str(TEMPLATE))
    # THEN the ImageRegistry block is exactly what the SDK's data produces
    assert result.returncode == 0, f"ImageRegistry drift: run `make synth`\n{result.stdout[-3000:]}"


def test_mapping_has_the_sdks_accounts_per_region(generated: dict[str, dict[str, str]]) -> None:
    # GIVEN the mapping generated from sklearn.json and tensorflow.json
    # WHEN looking up regions
    us_east_1 = generated["us-east-1"]
    # THEN us-east-1 has the well-known accounts
    assert us_east_1["Sklearn"] == "683313688378"
    assert us_east_1["TensorflowTraining"] == DLC_ACCOUNT
    assert us_east_1["TensorflowInference"] == DLC_ACCOUNT
    # AND the opt-in/newer regions are there, with whatever 12-digit accounts the SDK names
    for region in ("eu-south-1", "ap-northeast-3"):
        assert set(generated[region]) == {"Sklearn", "TensorflowTraining", "TensorflowInference"}
        for account in generated[region].values():
            assert isinstance(account, str) and re.fullmatch(r"\d{12}", account), (region, account)
    # AND the DLC account is not the same everywhere (the old template hard-coded 763104351884)
    assert any(accounts["TensorflowTraining"] != DLC_ACCOUNT for accounts in generated.values())
    assert list(generated) == sorted(generated)


def test_update_template_needs_the_markers() -> None:
    # GIVEN a template without the ImageRegistry markers
    template = "Mappings:\n  Other:\n    us-east-1: { A: b }\n"
    # WHEN the block is spliced in
    # THEN it refuses rather than guessing where the block goes
    with pytest.raises(ValueError):
        update_template(template, "  ImageRegistry: {}\n")
    with pytest.raises(ValueError):
        update_template(f"{END_MARKER}\n{BEGIN_MARKER}\n", "  ImageRegistry: {}\n")


def test_update_template_replaces_only_between_the_markers() -> None:
    # GIVEN a template with a stale block between the markers
    before = "Mappings:\n  Other:\n    us-east-1: { A: b }\n"
    after = "\nConditions:\n  C: !Equals [a, a]\n"
    stale = "  ImageRegistry:\n    stale-1: { Sklearn: '1' }\n"
    template = f"{before}{BEGIN_MARKER}\n{stale}{END_MARKER}\n{after}"
    mapping: dict[str, Any] = {
        "us-west-2": {"Sklearn": "1" * 12, "TensorflowTraining": "2" * 12, "TensorflowInference": "3" * 12},
        "eu-south-1": {"Sklearn": "4" * 12, "TensorflowTraining": "5" * 12, "TensorflowInference": "6" * 12},
    }
    block = render(mapping, sdk_version="0.0.0")
    # WHEN the rendered block is spliced in (twice, which must change nothing more)
    updated = update_template(template, block)
    # THEN the markers and everything outside them stay, and the block sits between them
    assert updated == f"{before}{BEGIN_MARKER}\n{block}{END_MARKER}\n{after}"
    assert update_template(updated, block) == updated
    assert "stale-1" not in updated
    # AND the block is YAML that lists the regions sorted, accounts as strings
    assert block.splitlines()[3] == (
        '    eu-south-1: { Sklearn: "444444444444", TensorflowTraining: "555555555555", '
        'TensorflowInference: "666666666666" }'
    )
    assert "(sagemaker==0.0.0)" in block
    assert yaml.safe_load("Mappings:\n" + block)["Mappings"]["ImageRegistry"] == mapping
