"""Keypoint input that is wrong fails naming the file; joints far off the image are dropped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from torchreid_pgflkd.pose.formats import (
    read_coco_results,
    read_keypoint_file,
    read_kpr_json,
    read_openpose_json,
)
from torchreid_pgflkd.pose.keypoints import sanitize_keypoints


def test_joints_far_outside_the_image_become_invisible_and_near_ones_are_clipped() -> None:
    kp = np.tile([32.0, 64.0, 0.9], (17, 1))
    kp[0] = [-2.0, 10.0, 0.9]  # a pixel or two off the left edge: detector jitter
    kp[1] = [30.0, 130.0, 0.8]  # just below a 128-pixel-high crop
    kp[2] = [-40.0, 10.0, 0.9]  # far off the left edge
    kp[3] = [30.0, 400.0, 0.7]  # far below
    kp[4] = [500.0, -300.0, 0.7]
    out = sanitize_keypoints(kp, source="t", image_hw=(128, 64))
    assert out[0].tolist() == pytest.approx([0.0, 10.0, 0.9])
    assert out[1].tolist() == pytest.approx([30.0, 128.0, 0.8])
    assert (out[2:5] == 0).all()  # invisible, not a joint on the border
    assert (out[5:] == np.float32(kp[5:])).all()


def test_reading_with_the_image_size_drops_joints_far_outside(tmp_path: Path) -> None:
    kp = np.tile([20.0, 50.0, 1.0], (17, 1))
    kp[15] = [20.0, 260.0, 1.0]  # an ankle projected twice the crop height down
    f = tmp_path / "a_keypoints.json"
    f.write_text(json.dumps([{"keypoints": kp.tolist(), "is_target": True}]))
    pose = read_kpr_json(f, image_hw=(128, 64))
    assert pose[15, 2] == 0 and pose[14, 2] == 1


def _openpose(values: list) -> dict:
    return {"people": [{"pose_keypoints_2d": values}]}


BAD_FILES = {
    "openpose_string": (read_openpose_json, _openpose([1.0] * 20 + ["high"] + [1.0] * 33)),
    "openpose_nested": (read_openpose_json, _openpose([[1.0, 2.0], [3.0]] * 27)),
    "openpose_person_not_dict": (read_keypoint_file, {"people": [[1, 2, 3]]}),
    "openpose_bad_score": (
        read_openpose_json,
        {"people": [{"pose_keypoints_2d": [1.0] * 54, "score": "x"}] * 2},
    ),
    "kpr_ragged": (read_kpr_json, [{"keypoints": [[1, 2, 1]] * 16 + [[1, 2]]}]),
    "kpr_string": (read_kpr_json, [{"keypoints": [["a", 2, 1]] * 17}]),
    "kpr_bad_score": (read_kpr_json, [{"keypoints": [[1, 2, 1]] * 17, "score": "x"}] * 2),
    "coco_string": (read_coco_results, [{"image_id": 1, "keypoints": ["x"] * 51}]),
    "coco_bad_score": (read_coco_results, [{"image_id": 1, "keypoints": [1] * 51, "score": "x"}]),
    "coco_image_without_id": (
        read_coco_results,
        {"images": [{"file_name": "a.jpg"}], "annotations": []},
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_every_reader_error_names_the_file(tmp_path: Path, case: str) -> None:
    reader, content = BAD_FILES[case]
    f = tmp_path / f"{case}.json"
    f.write_text(json.dumps(content))
    with pytest.raises(ValueError) as info:
        reader(f)
    assert str(f) in str(info.value)


@pytest.mark.parametrize("reader", [read_keypoint_file, read_coco_results, read_openpose_json])
def test_deeply_nested_json_names_the_file(tmp_path: Path, reader) -> None:
    f = tmp_path / "deep.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested") as info:
        reader(f)
    assert str(f) in str(info.value)


def test_a_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    f = tmp_path / "latin1.json"
    f.write_bytes(b'[{"keypoints": "\xe9"}]')
    with pytest.raises(ValueError) as info:
        read_keypoint_file(f)
    assert str(f) in str(info.value)
