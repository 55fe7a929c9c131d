"""The base of every SageMaker API family: the state they share, set up by ``SageMakerExtensions``."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

from localcloud.aws.sagemaker.common import EndpointInvoker

if TYPE_CHECKING:
    from localcloud.aws.sagemaker.lineage import LineageStore
    from localcloud.aws.server import EmbeddedAws


class SageMakerFamily:
    """One family of SageMaker APIs. ``OVERRIDES`` maps an action to the method that answers it;
    ``LISTENERS`` lists (service, action, method) to call after moto answered."""

    OVERRIDES: ClassVar[dict[str, str]] = {}
    LISTENERS: ClassVar[tuple[tuple[str, str, str], ...]] = ()

    aws: EmbeddedAws
    lineage: LineageStore
    lock: threading.RLock
    auto_complete_endpoints: bool
    _steps: dict[str, dict[str, dict[str, Any]]]
    _endpoint_extra: dict[str, dict[str, Any]]
    _invokers: dict[str | None, EndpointInvoker]

    @property
    def backend(self) -> Any:
        return self.aws.backend("sagemaker")
