"""A whole local cloud for one test module, and the process left as it was found afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from moto.core.base_backend import BackendDict

from localcloud.cloud import LocalCloud


@contextmanager
def module_cloud(workdir: Path, **options: Any) -> Iterator[LocalCloud]:
    """A started LocalCloud; on exit it stops, moto's process-wide backends are emptied (the next embedded
    AWS of this process starts clean) and the environment variables it exported are undone."""
    saved = dict(os.environ)
    cloud = LocalCloud(workdir=workdir, **options)
    try:
        cloud.start()
        yield cloud
    finally:
        cloud.stop()
        BackendDict.reset()
        os.environ.clear()
        os.environ.update(saved)
