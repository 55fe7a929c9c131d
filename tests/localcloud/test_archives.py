"""Archives are unpacked without letting a member escape, on Pythons with and without tarfile's data filter
(3.11.4+; Debian's python3 is 3.11.2), so a fresh machine's Python runs the local cloud either way."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from localcloud.runtime.s3io import extract_archive


def archive(tmp_path: Path, members: dict[str, bytes], link: tuple[str, str] | None = None) -> Path:
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        if link:
            info = tarfile.TarInfo(link[0])
            info.type, info.linkname = tarfile.SYMTYPE, link[1]
            tar.addfile(info)
    return path


@pytest.mark.parametrize("data_filter", [True, False], ids=["data-filter", "older-python"])
def test_archives_unpack_inside_and_refuse_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_filter: bool
) -> None:
    if not data_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    good = archive(tmp_path, {"model/1/saved_model.pb": b"pb", "code/train.py": b"print(1)"})
    extract_archive(good, tmp_path / "out")
    assert (tmp_path / "out" / "model" / "1" / "saved_model.pb").read_bytes() == b"pb"

    hostile = {"dotdot": ({"../escaped.txt": b"no"}, None), "link": ({}, ("evil", "/etc/passwd"))}
    for name, (members, link) in hostile.items():
        (tmp_path / name).mkdir()
        with pytest.raises(tarfile.TarError):
            extract_archive(archive(tmp_path / name, members, link), tmp_path / f"out-{name}")
    assert not (tmp_path / "escaped.txt").exists()
