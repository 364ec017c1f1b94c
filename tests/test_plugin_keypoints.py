"""Plugging in a keypoint format: ``register_keypoint_reader`` and ``read_keypoint_file``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from torchreid_pgflkd.pose import (
    KeypointFormatError,
    keypoint_readers,
    keypoint_suffixes,
    read_keypoint_file,
    register_keypoint_reader,
    unregister_keypoint_reader,
)

POSE = np.array([[10 + j, 20 + 2 * j, 0.8] for j in range(17)], dtype=np.float64)


def read_csv17(path: Path) -> np.ndarray:  # the README's example
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.shape != (17, 3):
        raise KeypointFormatError(f"{path}: expected 17 rows of x,y,confidence")
    return rows


@pytest.fixture
def readers() -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    for name in names:
        unregister_keypoint_reader(name)


def test_a_registered_reader_reads_its_suffix(tmp_path: Path, readers: list[str]) -> None:
    path = tmp_path / "0001_c1_01.csv"
    np.savetxt(path, POSE, delimiter=",")
    with pytest.raises(KeypointFormatError, match="0001_c1_01.csv"):
        read_keypoint_file(path)  # unknown suffix: read as JSON, which it is not
    register_keypoint_reader("csv17", [".csv"], read_csv17)
    readers.append("csv17")
    assert keypoint_readers()["csv17"] == (".csv",) and ".csv" in keypoint_suffixes()
    np.testing.assert_allclose(read_keypoint_file(path), POSE, atol=1e-5)
    # Values are checked whatever the reader returns: out of the image -> invisible.
    assert read_keypoint_file(path, image_hw=(20, 20))[-1, 2] == 0
    with pytest.raises(ValueError, match="already registered"):
        register_keypoint_reader("csv17", ".csv", read_csv17)


def test_several_people_and_fallthrough_to_the_builtin_json(
    tmp_path: Path, readers: list[str]
) -> None:
    def mmpose_like(path: Path) -> np.ndarray:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "instances" not in data:
            raise KeypointFormatError(f"{path}: not an MMPose-style file")
        return np.array([[[*xy, s] for xy, s in zip(p["kp"], p["score"])]
                         for p in data["instances"]])  # fmt: skip

    register_keypoint_reader("mmpose", ".json", mmpose_like)
    readers.append("mmpose")
    mine = tmp_path / "a.json"
    small = POSE.copy()  # a far smaller person: the larger one is the target
    small[:, :2] = 10 + (POSE[:, :2] - 10) * 0.1
    people = [{"kp": P[:, :2].tolist(), "score": P[:, 2].tolist()} for P in (small, POSE)]
    mine.write_text(json.dumps({"instances": people}))
    np.testing.assert_allclose(read_keypoint_file(mine), POSE, atol=1e-5)
    kpr = tmp_path / "b.json"  # the built-in layout still reads, after mmpose declines
    kpr.write_text(json.dumps([{"keypoints": POSE.tolist(), "is_target": True}]))
    np.testing.assert_allclose(read_keypoint_file(kpr), POSE, atol=1e-5)
    broken = tmp_path / "c.json"
    broken.write_text("{")
    with pytest.raises(KeypointFormatError, match=r"\[mmpose\].*\[kpr_openpose_json\]"):
        read_keypoint_file(broken)


def test_bad_readers_and_bad_output_are_named(tmp_path: Path, readers: list[str]) -> None:
    with pytest.raises(ValueError, match="suffixes must look like"):
        register_keypoint_reader("x", ["csv"], read_csv17)
    with pytest.raises(TypeError, match="callable"):
        register_keypoint_reader("x", ".x", None)  # type: ignore[arg-type]
    register_keypoint_reader("flat", ".flat", lambda p: np.zeros(51))
    readers.append("flat")
    path = tmp_path / "a.flat"
    path.write_text("")
    with pytest.raises(KeypointFormatError, match=r"a\.flat.*shape \(51,\)"):
        read_keypoint_file(path)
