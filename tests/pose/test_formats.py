"""Every keypoint reader on its real sample, the target choice, the cache, malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from torchreid_pgflkd.pose import (
    KeypointFormatError,
    KeypointTable,
    read_coco_results,
    read_keypoint_file,
    read_kpr_json,
    read_market14_mat,
    read_openpose_json,
    sanitize_keypoints,
)
from torchreid_pgflkd.pose.formats import OPENPOSE18_TO_COCO17, openpose_to_coco17


def test_kpr_reader_takes_the_target_skeleton(shared_data: Path) -> None:
    files = sorted((shared_data / "keypoints" / "pifpaf_coco17_demo").rglob("*.json"))
    assert len(files) == 6
    for f in files:
        raw = json.loads(f.read_text())
        target = next(s for s in raw if s["is_target"])
        pose = read_kpr_json(f)
        assert pose.shape == (17, 3) and pose.dtype == np.float32
        np.testing.assert_allclose(pose, np.asarray(target["keypoints"], np.float32), rtol=1e-6)
        assert read_keypoint_file(f).tolist() == pose.tolist()


def test_kpr_target_falls_back_to_score_then_central_box(tmp_path: Path) -> None:
    small = np.zeros((17, 3))
    small[:, :2] = [5, 5]
    small[:, 2] = 1
    small[0, :2] = [8, 9]  # small box at the corner
    big = np.zeros((17, 3))
    big[:, 2] = 1
    big[:, 0] = np.linspace(20, 40, 17)
    big[:, 1] = np.linspace(20, 80, 17)
    f = tmp_path / "a_keypoints.json"
    f.write_text(json.dumps([{"keypoints": small.tolist()}, {"keypoints": big.tolist()}]))
    assert read_kpr_json(f, image_hw=(100, 60))[0, 0] == pytest.approx(20)
    f.write_text(
        json.dumps(
            [{"keypoints": small.tolist(), "score": 0.9}, {"keypoints": big.tolist(), "score": 0.1}]
        )
    )
    assert read_kpr_json(f)[0, 0] == pytest.approx(8)
    f.write_text("[]")
    assert not read_kpr_json(f).any()


def test_openpose_reader_maps_18_joints_to_coco(shared_data: Path) -> None:
    files = sorted((shared_data / "keypoints" / "openpose18_alphapose_samples").glob("*.json"))
    assert len(files) == 4
    for f in files:
        pose = read_openpose_json(f)
        assert pose.shape == (17, 3)
        people = json.loads(f.read_text())["people"]
        candidates = [openpose_to_coco17(p["pose_keypoints_2d"], source="t") for p in people]
        assert any(np.array_equal(pose, c) for c in candidates)
    # joint bookkeeping: COCO left shoulder (5) is OpenPose L-shoulder (5), COCO right hip (12)
    # is OpenPose R-hip (8), COCO left eye (1) is OpenPose L-eye (15)
    flat = np.zeros((18, 3))
    flat[:, 0] = np.arange(18)
    flat[:, 2] = 1
    pose = openpose_to_coco17(flat.ravel(), source="t")
    assert pose[5, 0] == 5 and pose[12, 0] == 8 and pose[1, 0] == 15 and pose[16, 0] == 10
    assert sorted(OPENPOSE18_TO_COCO17) == [i for i in range(18) if i != 1]


def test_coco_results_keep_the_best_detection(tmp_path: Path) -> None:
    a = np.ones((17, 3)) * [10, 20, 0.9]
    b = np.ones((17, 3)) * [30, 40, 0.8]
    dets = [
        {"image_id": "x.jpg", "keypoints": a.ravel().tolist(), "score": 0.5},
        {"image_id": "x.jpg", "keypoints": b.ravel().tolist(), "score": 0.7},
        {"image_id": 3, "keypoints": a.ravel().tolist(), "score": 0.1},
    ]
    f = tmp_path / "res.json"
    f.write_text(json.dumps(dets))
    out = read_coco_results(f)
    assert set(out) == {"x.jpg", 3}
    assert out["x.jpg"][0].tolist() == pytest.approx([30, 40, 0.8])


def test_market14_mat_gives_real_poses(shared_data: Path) -> None:
    folder = shared_data / "keypoints" / "market1501_train_14point"
    poses = read_market14_mat(folder / "market1501_14point_train.mat")
    assert len(poses) == 12936
    pose = poses["0002_c1s1_000451_03.jpg"]
    assert pose.shape == (17, 3)
    assert pose[1:5, 2].tolist() == [0, 0, 0, 0]  # no eyes or ears in the 14-point skeleton
    assert (pose[[0] + list(range(5, 17)), 2] == 1).all()
    stacked = np.stack(list(poses.values()))
    # the head (nose estimate) is above the hips, the hips above the ankles: real people
    assert (stacked[:, 0, 1] < stacked[:, 11, 1]).mean() > 0.95
    assert (stacked[:, 11, 1] < stacked[:, 15, 1]).mean() > 0.95
    assert stacked[..., 0].max() <= 64 and stacked[..., 1].max() <= 128


@pytest.mark.parametrize(
    "content, needle",
    [
        ("{not json", "not valid JSON"),
        ('[{"kp": []}]', "no 'keypoints'"),
        ('[{"keypoints": [[1, 2, 1]]}]', "shape"),
        ('[{"keypoints": ' + json.dumps([[1, 2, -1]] * 17) + "}]", "negative"),
        ('[{"keypoints": ' + json.dumps([[1, 2, float("nan")]] * 17) + "}]", "NaN"),
    ],
)
def test_malformed_kpr_file_names_the_file(tmp_path: Path, content: str, needle: str) -> None:
    f = tmp_path / "broken_keypoints.json"
    f.write_text(content)
    with pytest.raises(KeypointFormatError, match=needle) as info:
        read_kpr_json(f)
    assert str(f) in str(info.value)


def test_malformed_openpose_and_coco_files_name_the_file(tmp_path: Path) -> None:
    f = tmp_path / "op.json"
    f.write_text(json.dumps({"people": [{"pose_keypoints_2d": [1.0] * 10}]}))
    with pytest.raises(KeypointFormatError, match="54") as info:
        read_openpose_json(f)
    assert str(f) in str(info.value)
    g = tmp_path / "coco.json"
    g.write_text(json.dumps([{"image_id": 1, "keypoints": [1.0] * 12}]))
    with pytest.raises(KeypointFormatError, match="51") as info:
        read_coco_results(g)
    assert str(g) in str(info.value)


def test_coordinates_near_the_image_are_clipped_and_far_ones_dropped() -> None:
    kp = np.ones((17, 3)) * [-5, 260, 1]
    kp[3:] = [-5, 300, 1]  # 44 pixels below a 256-pixel image: not in it
    out = sanitize_keypoints(kp, source="t", image_hw=(256, 128))
    assert out[:3].tolist() == [[0, 256, 1]] * 3
    assert not out[3:].any()


def test_cache_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    names = [f"{i:04d}_c1s1_000000_00.jpg" for i in range(50)]
    arr = rng.random((50, 17, 3)).astype(np.float32)
    path = KeypointTable(names, arr).save(tmp_path / "train.npz")
    table = KeypointTable.load(path)
    assert table.names == names
    np.testing.assert_array_equal(table.get(names[7]), arr[7])
    assert table.get("absent.jpg") is None and not table.get_or_empty("absent.jpg").any()
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(KeypointFormatError, match="bad.npz"):
        KeypointTable.load(tmp_path / "bad.npz")
