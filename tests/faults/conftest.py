"""The fault suite's local cloud: the whole stack from template.yaml, with fault mode switched per test.

One cloud serves the module (moto's backends are process-wide, so one stack at a time); `faults(plan)`
turns fault mode on for one test and off again after it. Each test pushes commits of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud.cloud import LocalCloud
from localcloud.faults import FaultPlan, Faults
from tests.clouds import module_cloud

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with module_cloud(
        tmp_path_factory.mktemp("faulty-cloud"),
        parameters={"MaxTuningJobs": "1", "MaxParallelTuningJobs": "1"},
    ) as cloud:
        cloud.upload_data(ROOT / "data" / "boston_housing.csv")
        yield cloud


@pytest.fixture
def faults(local_cloud: LocalCloud) -> Iterator[Callable[..., Faults]]:
    """`faults(seed=…, throttle=…, …)`: fault mode on, for this test; it reports what it injected."""

    def switch_on(**rates: Any) -> Faults:
        injected = Faults(FaultPlan(**rates))
        local_cloud.inject_faults(injected)
        return injected

    yield switch_on
    local_cloud.inject_faults(None)
    assert local_cloud.router is not None
    local_cloud.router.wait_until_idle(120)
