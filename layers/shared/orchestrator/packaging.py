"""Deterministic packaging of training code: the same tree always gives the same bytes (and S3 key)."""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterable

from orchestrator.adapters.codecommit import RepositoryFile


def sourcedir_tarball(files: Iterable[RepositoryFile]) -> bytes:
    """A gzip'd tar of `files`: sorted names, mtime 0, root ownership, gzip header without name or time."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for item in sorted(files, key=lambda f: f.path):
            info = tarfile.TarInfo(name=item.path)
            info.size = len(item.content)
            info.mtime = 0
            info.mode = 0o755 if item.executable else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(item.content))
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as stream:
        stream.write(raw.getvalue())
    return compressed.getvalue()
