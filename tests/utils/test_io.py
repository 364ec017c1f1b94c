"""The one atomic writer: all or nothing, readable like a plain file, errors name the path."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from torchreid_pgflkd.utils.io import atomic_write, stale_temp_files, write_json


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = write_json({"a": 1}, tmp_path / "r.json")

    def boom(f) -> None:
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, boom)
    assert path.read_text().strip().startswith("{") and '"a": 1' in path.read_text()
    assert stale_temp_files(tmp_path) == []


def test_files_get_the_permissions_of_a_plain_open(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    try:
        path = write_json({"a": 1}, tmp_path / "r.json")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_unwritable_folder_is_named(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match=str(blocker / "r.json").replace("/", ".")):
        write_json({}, blocker / "r.json")
