"""The training code's sourcedir archive: every header field fixed, so equal trees give equal bytes."""

from __future__ import annotations

import gzip
import io
import tarfile

from orchestrator.adapters.codecommit import RepositoryFile
from orchestrator.packaging import sourcedir_tarball

FILES = [
    RepositoryFile("train.py", b"print('train')\n"),
    RepositoryFile("lib/features.py", b"FEATURES = 13\n"),
    RepositoryFile("run.sh", b"#!/bin/sh\n", executable=True),
]


def test_every_member_has_fixed_headers_in_name_order() -> None:
    with tarfile.open(fileobj=io.BytesIO(sourcedir_tarball(FILES)), mode="r:gz") as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == ["lib/features.py", "run.sh", "train.py"]
        for member in members:
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
            assert member.isfile()
        assert {m.name: m.mode for m in members} == {
            "lib/features.py": 0o644,
            "run.sh": 0o755,
            "train.py": 0o644,
        }
        assert {m.name: archive.extractfile(m).read() for m in members} == {  # type: ignore[union-attr]
            f.path: f.content for f in FILES
        }
        assert all(m.size == len(archive.extractfile(m).read()) for m in members)  # type: ignore[union-attr]


def test_the_archive_is_pax_and_its_gzip_header_has_no_name_no_time_and_maximum_compression() -> None:
    data = sourcedir_tarball(FILES)
    # gzip header (RFC 1952): magic, CM=8, FLG=0 (no FNAME), MTIME=0, XFL=2 (maximum compression)
    assert data[:4] == b"\x1f\x8b\x08\x00"
    assert data[4:8] == b"\x00\x00\x00\x00"
    assert data[8] == 2
    raw = gzip.decompress(data)
    assert raw[257:265] == b"ustar\x0000"  # POSIX (pax) magic and version; GNU tar writes "ustar  \0"
    assert len(data) == len(gzip.compress(raw, compresslevel=9, mtime=0))


def test_the_same_tree_in_any_order_gives_the_same_bytes_and_a_change_does_not() -> None:
    assert sourcedir_tarball(FILES) == sourcedir_tarball(list(reversed(FILES)))
    changed = [*FILES[:2], RepositoryFile("run.sh", b"#!/bin/sh\n", executable=False)]
    assert sourcedir_tarball(changed) != sourcedir_tarball(FILES)


def test_an_empty_tree_is_an_empty_archive() -> None:
    with tarfile.open(fileobj=io.BytesIO(sourcedir_tarball([])), mode="r:gz") as archive:
        assert archive.getmembers() == []
