"""template.yaml passes cfn-lint and `sam validate --lint`, and `sam build` produces a deployable layer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.template.cfn import ROOT, TEMPLATE_PATH


def test_template_is_cfn_lint_clean() -> None:
    # GIVEN the template  WHEN cfn-lint checks it as a library (SAM transform included, all rules)
    matches = lint_file(TEMPLATE_PATH, ManualArgs(regions=["us-east-1"]))
    # THEN it reports nothing, warnings included
    assert [str(match) for match in matches] == []


@pytest.mark.slow
def test_sam_validate_with_lint_passes(sam: Path, sam_env: dict[str, str]) -> None:
    # GIVEN the SAM CLI  WHEN it validates the template offline, linting included
    result = subprocess.run(
        [str(sam), "validate", "--lint", "--region", "us-east-1", "--template-file", str(TEMPLATE_PATH)],
        cwd=ROOT,
        env=sam_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # THEN the template is valid
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


@pytest.mark.slow
def test_sam_build_ships_the_orchestrator_definition_and_powertools_but_no_sagemaker_sdk(
    sam: Path, sam_env: dict[str, str], tmp_path: Path
) -> None:
    # GIVEN the project, and no python3.12 binary or Docker needed
    build_dir, cache_dir = tmp_path / "build", tmp_path / "cache"
    # WHEN sam build runs the Makefile builds into a scratch directory
    result = subprocess.run(
        [
            str(sam),
            "build",
            "--region",
            "us-east-1",
            "--template-file",
            str(TEMPLATE_PATH),
            "--base-dir",
            str(ROOT),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(cache_dir),
        ],
        cwd=ROOT,
        env=sam_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    # THEN the layer holds the package, the synthesized definition and the runtime dependencies
    site = build_dir / "SharedLayer" / "python"
    assert (site / "orchestrator" / "__init__.py").is_file()
    assert (site / "orchestrator" / "pipeline_definition.json").is_file()
    assert (site / "aws_lambda_powertools" / "__init__.py").is_file()
    assert (site / "pydantic" / "__init__.py").is_file()
    # AND the compiled wheels are the Lambda runtime's (CPython 3.12, Linux x86_64), not this machine's
    extensions = list((site / "pydantic_core").glob("*.so"))
    assert extensions and all("cpython-312-x86_64-linux-gnu" in p.name for p in extensions), extensions
    # AND neither the SageMaker SDK nor its builder module travel in the layer (250 MB limit)
    assert not (site / "sagemaker").exists()
    assert not (site / "orchestrator" / "pipeline_builder.py").exists()
    assert not list(site.rglob("__pycache__"))
    # AND each handler's artifact holds its module
    for function_id in ("StartPipelineFunction", "TrackFunction", "DeployFunction"):
        assert (build_dir / function_id / "app.py").is_file(), function_id
