"""The synthetic benchmark's keypoint estimator model and outside occluder textures: the
oracle stays byte-identical, each option does what it says, and no option moves a pixel."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from torchreid_pgflkd.config import adapters
from torchreid_pgflkd.config.defaults import get_default_config
from torchreid_pgflkd.data.synthetic import (
    ESTIMATOR_OPTIONS,
    ESTIMATOR_PRESETS,
    META_FILE,
    SPLITS,
    SyntheticSettings,
    estimator_options,
    generate,
    plan_images,
    render_sample,
)
from torchreid_pgflkd.data.synthetic.appearance import (
    HAIR_COLOURS,
    OUTSIDE_KINDS,
    PALETTE,
    SKIN_TONES,
    TEXTURE_KINDS,
    sample_outside_texture,
)
from torchreid_pgflkd.data.synthetic.estimator import (
    COVERED_CONFIDENCE,
    QUANTILE_LEVELS,
    VISIBLE_CONFIDENCE,
)

TINY = dict(num_train_ids=3, images_per_id=2, num_test_ids=3, queries_per_id=1, gallery_per_id=2)
# Made by the generator before the estimator model existed (commit 103634e), seed 0, TINY:
# the folder name (hash of the settings) and a hash of meta.json and every keypoint file.
ORACLE_DIRNAME = "pgflkd_synthetic_s0_128x64_abdb2011"
ORACLE_TEXT_SHA256 = "b5390337a85f4111841f3f444ea80d0b1ee852114d92c7337f5df14a2b56b8e5"
# Some hundred small images: train (40 % occluded), occluded queries, a mostly whole gallery.
MANY = dict(
    num_train_ids=20,
    images_per_id=6,
    num_test_ids=30,
    queries_per_id=4,
    gallery_per_id=2,
    height=64,
    width=32,
    seed=11,
)
ON = dict(
    visible_confidence=1.0,
    covered_visible=0.6,
    covered_noise=3.0,
    miss_person=0.2,
    miss_occluded=0.25,
    wrong_person=0.5,
)
CALIBRATION = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _text_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.json")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def rendered() -> list[tuple]:
    """(spec, oracle sample, sample with every option on) for a few hundred images."""
    oracle = SyntheticSettings(**MANY)
    on = SyntheticSettings(**MANY, **ON)
    specs = [s for split in SPLITS for s in plan_images(oracle)[split]]
    return [(s, render_sample(oracle, s), render_sample(on, s)) for s in specs]


def test_the_oracle_is_byte_identical_to_the_generator_before_the_estimator(
    tmp_path: Path,
) -> None:
    plain = generate(tmp_path / "plain", seed=0, progress=False, num_workers=0, **TINY)
    zeros = dict.fromkeys(ESTIMATOR_OPTIONS, 0.0)
    named = generate(
        tmp_path / "named",
        seed=0,
        keypoints="oracle",
        occluder_textures="identities",
        progress=False,
        num_workers=0,
        **zeros,
        **TINY,
    )
    assert plain.name == named.name == ORACLE_DIRNAME
    assert _files(plain) == _files(named)
    assert _text_hash(plain) == ORACLE_TEXT_SHA256
    meta = json.loads((plain / META_FILE).read_text())
    assert "covered_visible" not in meta["settings"]  # later settings only when set
    assert all("keypoints_on" not in e for split in SPLITS for e in meta["images"][split])
    # The recorded benchmark (the config's defaults) keeps its folder name too.
    assert SyntheticSettings().dirname == "pgflkd_synthetic_s0_128x64_228adaf7"


def test_no_option_changes_a_pixel_and_each_draws_from_its_own_stream(rendered) -> None:
    for _, oracle, on in rendered:
        assert np.array_equal(oracle.image, on.image) and np.array_equal(oracle.body, on.body)
    # covered_visible alone reports the same joints as with every other option on too.
    settings = SyntheticSettings(**MANY, covered_visible=ON["covered_visible"], covered_noise=3.0)
    checked = 0
    for spec, _, on in rendered[::6]:
        if on.reported != "target":
            continue
        alone = render_sample(settings, spec).skeletons[0][0]
        both = on.skeletons[0][0]
        assert np.array_equal(alone[:, :2], both[:, :2])
        assert np.array_equal(alone[:, 2] > 0, both[:, 2] > 0)
        checked += 1
    assert checked > 20


def test_missed_people_get_no_skeleton_more_often_when_occluded(rendered) -> None:
    whole = [on.reported == "none" for s, _, on in rendered if s.occluder is None]
    occluded = [on.reported == "none" for s, _, on in rendered if s.occluder is not None]
    assert len(whole) > 80 and len(occluded) > 120
    assert abs(np.mean(whole) - 0.2) < 0.09, np.mean(whole)
    assert abs(np.mean(occluded) - (1 - 0.8 * 0.75)) < 0.09, np.mean(occluded)
    assert all(on.skeletons == [] for _, _, on in rendered if on.reported == "none")


def test_covered_joints_are_reported_at_the_rate_with_estimator_confidence(rendered) -> None:
    reported, total, moved, confidences = 0, 0, [], []
    for _, oracle, on in rendered:
        if on.reported != "target":
            continue
        truth, got = oracle.skeletons[0][0], on.skeletons[0][0]
        h, w = oracle.visible.shape
        for j, (x, y, c) in enumerate(truth):
            inside = 0 <= x < w and 0 <= y < h
            if (
                c == 0
                and inside
                and oracle.body[int(y), int(x)]
                and not oracle.visible[int(y), int(x)]
            ):
                total += 1  # under an occluder: hidden by the oracle
                if got[j, 2] > 0:
                    reported += 1
                    confidences.append(got[j, 2])
                    moved.append(np.hypot(*(got[j, :2] - truth[j, :2])))
    assert total > 150
    assert abs(reported / total - ON["covered_visible"]) < 0.1, reported / total
    assert min(confidences) >= 0.2 and max(confidences) <= 1.0
    assert abs(np.median(confidences) - COVERED_CONFIDENCE[10]) < 0.15
    assert 1.0 < np.mean(moved) < 8.0  # covered_noise 3 px per axis, clipped to the crop


def test_visible_joints_get_blazepose_like_confidence(rendered) -> None:
    conf = []
    for _, oracle, on in rendered:
        if on.reported == "target":
            seen = oracle.skeletons[0][0][:, 2] > 0
            conf += on.skeletons[0][0][seen, 2].tolist()
            assert np.array_equal(on.skeletons[0][0][seen, :2], oracle.skeletons[0][0][seen, :2])
    conf = np.asarray(conf)
    assert conf.size > 1000 and conf.min() >= 0.2 and conf.max() <= 1.0
    for k in (2, 5, 10):  # the share below each tabled quantile is its level
        assert abs(np.mean(conf < VISIBLE_CONFIDENCE[k]) - QUANTILE_LEVELS[k]) < 0.04, k


def test_the_occluding_persons_skeleton_is_reported_instead_at_the_rate() -> None:
    plan = dict(MANY, num_test_ids=60)
    oracle = SyntheticSettings(**plan)
    wrong_half = SyntheticSettings(**plan, wrong_person=0.5, visible_confidence=1.0)
    specs = [s for s in plan_images(oracle)["query"] if s.occluder in ("person", "box")]
    wrong, person = 0, 0
    for spec in specs:
        truth, on = render_sample(oracle, spec), render_sample(wrong_half, spec)
        if spec.occluder == "box":
            assert on.reported == "target"
            continue
        person += 1
        if on.reported == "target":
            assert np.array_equal(on.skeletons[0][0][:, :2], truth.skeletons[0][0][:, :2])
            continue
        wrong += 1
        (given, is_target), (target, not_target) = on.skeletons
        assert is_target and not not_target
        assert np.array_equal(target[:, :2], truth.skeletons[0][0][:, :2])
        other = truth.skeletons[1][0]  # the occluding person's joints the oracle saw
        seen = other[:, 2] > 0
        assert np.array_equal(given[seen, :2], other[seen, :2])
        assert (given[seen, 2] >= 0.2).all()
        h, w = truth.visible.shape
        x, y = given[given[:, 2] > 0, 0], given[given[:, 2] > 0, 1]
        assert ((x >= 0) & (x < w) & (y >= 0) & (y < h)).all()  # clipped to the crop
    assert person > 60
    assert abs(wrong / person - 0.5) < 0.15, wrong / person


def test_generated_files_record_whom_each_skeleton_is_on(tmp_path: Path) -> None:
    out = generate(tmp_path, progress=False, num_workers=0, **TINY, **dict(ON, miss_person=0.5))
    meta = json.loads((out / META_FILE).read_text())
    assert meta["settings"]["miss_person"] == 0.5
    entries = [e for split in SPLITS for e in meta["images"][split]]
    assert {e["keypoints_on"] for e in entries} <= {"target", "occluder", "none"}
    missed = [e for e in entries if e["keypoints_on"] == "none"]
    assert missed and all(e["visible_keypoints"] == 0 for e in missed)
    for split in SPLITS:
        for e in meta["images"][split]:
            file = out / "external_annotation" / "pifpaf_keypoints_pifpaf_maskrcnn_filtering"
            skeletons = json.loads((file / split / f"{e['file']}_keypoints.json").read_text())
            assert (skeletons == []) == (e["keypoints_on"] == "none")


def test_outside_textures_wear_no_identity_colour_and_change_only_the_objects() -> None:
    identity = np.asarray(PALETTE + SKIN_TONES + HAIR_COLOURS, dtype=float)
    rng = np.random.default_rng(0)
    for _ in range(500):
        texture = sample_outside_texture(rng)
        assert texture.kind == "plain" or texture.kind in OUTSIDE_KINDS
        assert not set(OUTSIDE_KINDS) & set(TEXTURE_KINDS)
        for colour in (texture.base, texture.accent):
            # identity colours are jittered by <= 10 per channel: 75 - 2 * 10 * sqrt(3) > 40
            assert np.linalg.norm(identity - np.asarray(colour), axis=1).min() > 40, colour
    settings = dict(TINY, num_test_ids=8, queries_per_id=3)
    inside = SyntheticSettings(**settings)
    outside = SyntheticSettings(**settings, occluder_textures="outside")
    kinds = set()
    for spec in plan_images(inside)["query"] + plan_images(inside)["bounding_box_train"]:
        a, b = render_sample(inside, spec), render_sample(outside, spec)
        assert np.array_equal(a.visible, b.visible)  # same shapes and places
        for (ka, _), (kb, _) in zip(a.skeletons, b.skeletons, strict=True):
            assert np.array_equal(ka, kb)
        if spec.occluder in (None, "person"):
            assert np.array_equal(a.image, b.image)
        else:
            kinds.add(spec.occluder)
            assert not np.array_equal(a.image, b.image)
    assert len(kinds) >= 3


def test_outside_objects_wear_no_ones_clothes_in_meta(tmp_path: Path) -> None:
    out = generate(tmp_path, occluder_textures="outside", progress=False, num_workers=0, **TINY)
    meta = json.loads((out / META_FILE).read_text())
    assert meta["settings"]["occluder_textures"] == "outside"
    for e in (e for split in SPLITS for e in meta["images"][split]):
        if e["occluder"] not in (None, "person"):
            assert e["occluder_pid"] is None
        assert e["occluder_group"] in (None, "below", "side", "person")


def test_the_config_selects_a_preset_and_single_numbers_override_it(monkeypatch) -> None:
    module = sys.modules["torchreid_pgflkd.data.synthetic.generate"]
    seen = []
    monkeypatch.setattr(module, "generate_from_settings", lambda root, s, **kw: seen.append(s))
    cfg = get_default_config()
    assert cfg.synthetic.keypoints == "blazepose_like"  # the default: estimator-like
    cfg.merge_from_list(["data.height", 128, "data.width", 64, "synthetic.keypoints", "oracle"])
    generate("unused", progress=False, **adapters.synthetic_kwargs(cfg))
    assert seen[-1].dirname == "pgflkd_synthetic_s0_128x64_228adaf7"  # oracle: as recorded
    opts = ["synthetic.keypoints", "blazepose_like", "synthetic.wrong_person", 0.0]
    cfg.merge_from_list([*opts, "synthetic.occluder_textures", "outside", "data.height", 256])
    cfg.merge_from_list(["data.width", 128])
    generate("unused", progress=False, **adapters.synthetic_kwargs(cfg))
    s, preset = seen[-1], ESTIMATOR_PRESETS["blazepose_like"]
    assert s.wrong_person == 0.0 and s.occluder_textures == "outside"
    assert s.covered_visible == preset["covered_visible"] and s.miss_person == preset["miss_person"]
    assert s.keypoint_noise == pytest.approx(2 * preset["keypoint_noise"])  # pixels scale
    with pytest.raises(ValueError, match="blazepose_like"):
        estimator_options("perfect")
    with pytest.raises(ValueError, match="covered_visible"):
        SyntheticSettings(covered_visible=1.5)
    with pytest.raises(ValueError, match="occluder_textures"):
        SyntheticSettings(occluder_textures="gallery")


def test_the_blazepose_preset_is_the_recorded_calibration() -> None:
    report = CALIBRATION / "keypoint_calibration.json"
    derived = json.loads(report.read_text())["derived"]
    preset = ESTIMATOR_PRESETS["blazepose_like"]
    for name in ("keypoint_dropout", "covered_visible", "miss_person", "miss_occluded"):
        assert preset[name] == pytest.approx(derived[name], abs=0.001), name
    assert preset["wrong_person"] == pytest.approx(derived["wrong_person"], abs=0.001)
    assert preset["keypoint_noise"] == pytest.approx(derived["keypoint_noise_px_at_128"])
    assert np.allclose(VISIBLE_CONFIDENCE, derived["visible_confidence_quantiles"])
    assert np.allclose(COVERED_CONFIDENCE, derived["covered_confidence_quantiles"])
    assert set(ESTIMATOR_PRESETS["oracle"].values()) == {0.0}
