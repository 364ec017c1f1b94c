"""The embedded synthetic occluded-ReID benchmark: determinism, layout, keypoints, occlusion."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchreid_pgflkd.data.synthetic import (
    KEYPOINT_DIR,
    META_FILE,
    SPLITS,
    Pose,
    SyntheticSettings,
    generate,
    keypoint_path,
    plan_images,
    render_person,
    render_sample,
)

MARKET_NAME = re.compile(r"^(\d{4})_c([1-6])s1_(\d{6})_00\.jpg$")
TINY = dict(num_train_ids=3, images_per_id=2, num_test_ids=3, queries_per_id=1, gallery_per_id=2)


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=3, progress=False, num_workers=0, **TINY)
    b = generate(tmp_path / "b", seed=3, progress=False, num_workers=2, **TINY)
    c = generate(tmp_path / "c", seed=4, progress=False, num_workers=0, **TINY)
    assert a.name == b.name and a.name != c.name
    files_a, files_b = _files(a), _files(b)
    assert files_a == files_b  # worker processes do not change a byte
    for split in SPLITS:  # same sizes, other identities, cameras and pixels
        images_a = sorted((a / split).iterdir())
        images_c = sorted((c / split).iterdir())
        assert len(images_a) == len(images_c)
        assert all(x.read_bytes() != y.read_bytes() for x, y in zip(images_a, images_c))


def test_layout_names_and_counts_follow_market1501(tmp_path: Path) -> None:
    settings = dict(TINY, queries_per_id=2, gallery_per_id=3)
    out = generate(tmp_path, seed=0, progress=False, **settings)
    assert out.parent == tmp_path and out.name.startswith("pgflkd_synthetic_s0_128x64_")
    pids: dict[str, set[int]] = {}
    cams: dict[str, dict[int, set[int]]] = {}
    for split in SPLITS:
        names = sorted(p.name for p in (out / split).iterdir())
        assert names and all(MARKET_NAME.match(n) for n in names), names[:3]
        pids[split] = {int(MARKET_NAME.match(n).group(1)) for n in names}
        cams[split] = {}
        for n in names:
            m = MARKET_NAME.match(n)
            cams[split].setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            skeletons = json.loads(keypoint_path(out, split, n).read_text())
            assert skeletons[0]["is_target"] is True
            assert all(np.asarray(s["keypoints"]).shape == (17, 3) for s in skeletons)
        keypoint_files = list((out / KEYPOINT_DIR / split).iterdir())
        assert len(keypoint_files) == len(names)
    meta = json.loads((out / META_FILE).read_text())
    counts = meta["counts"]
    assert counts["bounding_box_train"]["images"] == 3 * 2
    assert counts["query"]["images"] == 3 * 2 and counts["bounding_box_test"]["images"] == 3 * 3
    assert pids["bounding_box_train"] == {1, 2, 3}
    assert pids["query"] == pids["bounding_box_test"] == {4, 5, 6}
    for pid, query_cams in cams["query"].items():
        assert not query_cams & cams["bounding_box_test"][pid], pid
    assert meta["settings"]["seed"] == 0 and meta["format_version"] >= 1
    # Every query records its occluder's kind and group, to report results per kind.
    kinds = {"car", "bench", "box", "pillar", "panel", "person"}
    for entry in meta["images"]["query"]:
        assert entry["occluder"] in kinds and entry["occluder_group"] in ("below", "side", "person")


def test_visible_keypoints_lie_on_the_person_and_covered_joints_are_flagged() -> None:
    settings = SyntheticSettings(**dict(TINY, queries_per_id=4))
    specs = plan_images(settings)
    checked = flagged = 0
    for spec in specs["bounding_box_train"] + specs["query"]:
        sample = render_sample(settings, spec)
        keypoints = sample.skeletons[0][0]
        h, w = sample.visible.shape
        for x, y, c in keypoints:
            inside = 0 <= x < w and 0 <= y < h
            if c > 0:
                assert inside and sample.visible[int(y), int(x)], (spec.filename, x, y)
                checked += 1
            elif inside and sample.body[int(y), int(x)] and not sample.visible[int(y), int(x)]:
                flagged += 1  # a joint under an occluder, reported missing
        for x, y, c in keypoints:  # and no joint under an occluder is reported visible
            if 0 <= x < w and 0 <= y < h and not sample.visible[int(y), int(x)]:
                assert c == 0
    assert checked > 100 and flagged > 5


def test_render_person_gives_mask_keypoints_and_hides_the_face_from_behind() -> None:
    front = render_person(pose=Pose(facing=0.0), seed=1)
    back = render_person(appearance=front.appearance, pose=Pose(facing=np.pi), seed=1)
    assert front.image.shape == (128, 64, 3) and front.image.dtype == np.uint8
    assert front.mask.dtype == bool and 0.1 < front.mask.mean() < 0.6
    assert front.keypoints.shape == (17, 3) and front.keypoints.dtype == np.float32
    assert front.mask.shape == (128, 64)
    for person in (front, back):
        assert all(person.mask[int(y), int(x)] for x, y, c in person.keypoints if c > 0)
    assert (front.keypoints[:3, 2] == 1).all()  # nose and eyes seen from the front
    assert (back.keypoints[:3, 2] == 0).all()  # not from behind
    # A back view mirrors the figure: the person's left shoulder is on the image left.
    assert front.keypoints[5, 0] > front.keypoints[6, 0]
    assert back.keypoints[5, 0] < back.keypoints[6, 0]
    # Distinct part appearances: torso and legs differ in colour for most identities.
    people = [render_person(pose=Pose(), seed=s) for s in range(8)]
    differ = 0
    for p in people:
        kp = p.keypoints
        chest = p.image[int((kp[5, 1] + kp[11, 1]) / 2), int((kp[5, 0] + kp[6, 0]) / 2)]
        shin = p.image[int((kp[13, 1] + kp[15, 1]) / 2), int((kp[13, 0] + kp[15, 0]) / 2)]
        differ += np.abs(chest.astype(int) - shin.astype(int)).sum() > 40
    assert differ >= 5


def test_queries_lose_a_third_to_half_of_the_body_and_the_gallery_stays_mostly_whole() -> None:
    settings = SyntheticSettings(
        **dict(TINY, num_test_ids=12, queries_per_id=2, gallery_per_id=3), seed=5
    )
    specs = plan_images(settings)
    query = [render_sample(settings, s) for s in specs["query"]]
    fractions = np.array([1.0 - (q.visible.sum() / q.body.sum()) for q in query])
    assert 1 / 3 <= fractions.mean() <= 1 / 2, fractions
    assert fractions.min() > 0.25 and fractions.max() < 0.6, fractions
    assert np.allclose(fractions, [q.occluded_fraction for q in query])
    kinds = {s.occluder for s in specs["query"]}
    assert len(kinds) >= 3 and None not in kinds
    others = [q for q in query if len(q.skeletons) == 2]
    assert others and all(not is_target for _, is_target in (q.skeletons[1] for q in others))
    gallery = specs["bounding_box_test"]
    occluded = [s for s in gallery if s.occluder is not None]
    assert len(occluded) <= 0.4 * len(gallery)
    for spec in occluded:
        assert render_sample(settings, spec).occluded_fraction < 0.3


def test_meta_is_written_last_and_an_interrupted_run_is_redone(tmp_path: Path) -> None:
    out = generate(tmp_path, progress=False, **TINY)
    before = _files(out)
    marker = out / "marker.txt"
    marker.write_text("kept when the folder is complete")
    assert generate(tmp_path, progress=False, **TINY) == out
    assert marker.exists()  # complete folder reused, nothing regenerated
    # Interrupted run: images written, meta.json never was.
    (out / META_FILE).unlink()
    first_image = sorted((out / "query").iterdir())[0]
    first_image.unlink()
    assert generate(tmp_path, progress=False, **TINY) == out
    assert not marker.exists() and first_image.exists()
    assert _files(out) == before
    assert not list(out.glob("*.tmp"))


def test_keypoint_noise_and_dropout_imitate_an_estimator_without_changing_pixels() -> None:
    exact = SyntheticSettings(**TINY)
    noisy = SyntheticSettings(**TINY, keypoint_noise=2.0, keypoint_dropout=0.3)
    spec = plan_images(exact)["bounding_box_train"]
    conf_noisy, moved, dropped, visible = [], [], 0, 0
    for s in spec:
        a, b = render_sample(exact, s), render_sample(noisy, s)
        assert np.array_equal(a.image, b.image)
        ka, kb = a.skeletons[0][0], b.skeletons[0][0]
        vis = ka[:, 2] > 0
        visible += int(vis.sum())
        dropped += int((vis & (kb[:, 2] == 0)).sum())
        kept = vis & (kb[:, 2] > 0)
        conf_noisy += kb[kept, 2].tolist()
        moved += np.linalg.norm(ka[kept, :2] - kb[kept, :2], axis=1).tolist()
        assert (kb[~vis, 2] == 0).all()
    assert 0.15 < dropped / visible < 0.45
    assert min(conf_noisy) >= 0.3 and max(conf_noisy) <= 1.0 and np.std(conf_noisy) > 0.1
    assert 1.0 < np.mean(moved) < 4.0


def test_bad_settings_are_refused_with_the_argument_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_train_ids"):
        generate(tmp_path, num_train_ids=0, progress=False)
    with pytest.raises(ValueError, match="keypoint_dropout"):
        generate(tmp_path, keypoint_dropout=1.5, progress=False)
    with pytest.raises(ValueError, match="1501"):
        generate(tmp_path, num_train_ids=1000, num_test_ids=600, progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("image_format", ["jpg", "png"])
def test_images_decode_at_the_requested_size(tmp_path: Path, image_format: str) -> None:
    out = generate(tmp_path, height=64, width=32, image_format=image_format, progress=False, **TINY)
    for split in SPLITS:
        for image in (out / split).iterdir():
            assert image.suffix == f".{image_format}"
            assert keypoint_path(out, split, image.name).is_file()
            with Image.open(image) as im:
                assert im.size == (32, 64) and im.mode == "RGB"
