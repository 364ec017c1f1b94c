"""Crop folders named by person and camera; the CUHK03 pair-1 -> Partial-REID benchmark on the
real shared copy (BlazePose keypoints); the seeded query occlusion of the validation split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torchreid_pgflkd  # noqa: F401  (registers the datasets)
from torchreid_pgflkd import compat
from torchreid_pgflkd.data.datasets import (
    DATASETS,
    CropFolderDataset,
    CUHK03Pair1Holdout,
    SeededBlobOcclusion,
    SeededOcclusion,
    SeededPartialView,
)
from torchreid_pgflkd.data.loaders import build_test_loader, dataset_image_hook
from torchreid_pgflkd.data.transforms import build_pose_transforms
from torchreid_pgflkd.pose.keypoints import is_empty

# resolved: the datasets resolve their paths, so a symlinked ../shared must compare equal
SHARED_DATA = (Path(__file__).resolve().parents[2].parent / "shared" / "data").resolve()
NAMES = (
    "crop_folder",
    "cuhk03_pair1",
    "cuhk03_pair1_holdout",
    "cuhk03_pair1_holdout_whole",
    "cuhk03_pair1_holdout_partial",
    "cuhk03_pair1_holdout_blob",
    "partial_reid_occluded",
    "partial_reid_partial",
)


@pytest.fixture(scope="module")
def data() -> Path:
    if not (SHARED_DATA / "cuhk03_pair1").is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (only CI and dev machines have it)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh keypoint cache, so the JSON files are really read (once per module)."""
    return str(tmp_path_factory.mktemp("kp_cache"))


def _init(name: str, **kwargs):
    return compat.submodule("data.datasets").init_image_dataset(name, verbose=False, **kwargs)


def _pids(samples) -> set[int]:
    return {s[1] for s in samples}


def _fake_folder(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True)
    for name in names:
        if Path(name).suffix == ".txt":  # not an image: ignored, not a pattern error
            (folder / name).write_text("notes")
        else:
            Image.new("RGB", (16, 32)).save(folder / name)


def test_names_registered() -> None:
    registry = compat.image_dataset_registry()
    for name in NAMES:
        assert registry[name] is DATASETS[name]


# -- crop_folder on fake files -----------------------------------------------------------------
def test_crop_folder_format_pattern_relabels_and_offsets(tmp_path: Path) -> None:
    _fake_folder(tmp_path / "tr", ["7_1_a.jpg", "7_2_b.jpg", "9_3_c.jpg", "notes.txt"])
    _fake_folder(tmp_path / "te", ["0_1_x.jpg", "0_2_y.jpg", "1_3_z.jpg"])
    ds = _init(
        "crop_folder", root=str(tmp_path), train_dir="tr", query_dir="te", gallery_dir="te",
        pattern="{pid}_{cam}_{any}.jpg", pid_offset={"query": 500, "gallery": 500},
    )  # fmt: skip
    assert sorted((s[1], s[2]) for s in ds.train) == [(0, 0), (0, 1), (1, 2)]  # relabelled
    assert _pids(ds.query) == {500, 501} and {s[2] for s in ds.query} == {0, 1, 2}
    assert ds.num_train_pids == 2 and ds.num_train_cams == 3
    assert ds.dataset_dir == tmp_path.resolve()


def test_crop_folder_regex_and_camera_map(tmp_path: Path) -> None:
    _fake_folder(tmp_path / "q", ["p12-camA.png", "p13-camB.png"])
    _fake_folder(tmp_path / "g", ["p12-camB.png", "p13-camA.png", "p13-camC.png"])
    ds = _init(
        "crop_folder", root=str(tmp_path), query_dir=str(tmp_path / "q"), gallery_dir="g",
        pattern=r"p(?P<pid>\d+)-cam(?P<cam>[A-Z])\.png", camera_map={"A": 0, "B": 1, "C": 1},
        mode="query",
    )  # fmt: skip
    assert sorted((s[1], s[2]) for s in ds.query) == [(12, 0), (13, 1)]
    assert sorted((s[1], s[2]) for s in ds.gallery) == [(12, 1), (13, 0), (13, 1)]
    assert ds.train == [] and ds.num_train_pids == 0  # no train_dir: a test-only set
    with pytest.raises(ValueError, match="test-only"):
        _init("crop_folder", root=str(tmp_path), query_dir="q", gallery_dir="g",
              pattern=r"p(?P<pid>\d+)-cam(?P<cam>\w)\.png", camera_map=lambda c: 0)  # fmt: skip


def test_crop_folder_errors_name_file_pattern_and_folders(tmp_path: Path) -> None:
    _fake_folder(tmp_path / "q", ["1_1.jpg", "holiday.jpg"])
    with pytest.raises(ValueError, match=r"holiday\.jpg.*pattern") as info:
        _init("crop_folder", root=str(tmp_path), query_dir="q", gallery_dir="q", mode="query")
    assert "pid" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        _init("crop_folder", root=str(tmp_path), query_dir="q", gallery_dir="nope", mode="query")
    msg = str(info.value)
    assert "gallery=" in msg and "nope" in msg and "missing" in msg and "query=" in msg
    with pytest.raises(ValueError, match="unknown field"):
        CropFolderDataset(root=str(tmp_path), query_dir="q", gallery_dir="q", pattern="{id}.jpg")
    with pytest.raises(ValueError, match="cam"):
        CropFolderDataset(
            root=str(tmp_path), query_dir="q", gallery_dir="q", pattern=r"(?P<pid>\d)"
        )
    (tmp_path / "q" / "holiday.jpg").unlink()
    with pytest.raises(ValueError, match="camera_map"):
        _init("crop_folder", root=str(tmp_path), query_dir="q", gallery_dir="q",
              camera_map={"2": 0}, mode="query")  # fmt: skip


# -- CUHK03 pair 1 on the real copy ------------------------------------------------------------
def test_cuhk03_pair1_counts(data: Path) -> None:
    ds = _init("cuhk03_pair1", root=str(data))
    assert len(ds.train) == 7239 and ds.num_train_pids == 743 and ds.num_train_cams == 2
    assert _pids(ds.train) == set(range(743))
    assert len(ds.query) + len(ds.gallery) == 938
    assert (len(ds.query), len(ds.gallery)) == (451, 487)
    assert _pids(ds.query) == _pids(ds.gallery) == set(range(100_000, 100_100))
    assert {s[2] for s in ds.query} == {0} and {s[2] for s in ds.gallery} == {1}
    assert all("/val/" in s[0] for s in ds.query + ds.gallery)
    assert all(int(Path(s[0]).stem[-2:]) < 5 for s in ds.query)


def test_cuhk03_holdout_is_disjoint_and_consistent(data: Path) -> None:
    src = _init("cuhk03_pair1", root=str(data), holdout_ids=100)
    val = _init("cuhk03_pair1_holdout", root=str(data), mode="query", occlude_queries=False)
    assert src.num_train_pids == val.num_train_pids == 643
    assert [s[0] for s in src.train] == [s[0] for s in val.train]
    assert _pids(val.query) == _pids(val.gallery) and len(_pids(val.query)) == 100
    train_names = {Path(s[0]).name[:4] for s in src.train}
    held_names = {Path(s[0]).name[:4] for s in val.query + val.gallery}
    assert held_names == {f"{i:04d}" for i in range(643, 743)} and not train_names & held_names
    assert len(src.train) + len(val.query) + len(val.gallery) == 7239
    assert {s[2] for s in val.query} == {0} and {s[2] for s in val.gallery} == {1}
    assert dataset_image_hook(val, "query") is None  # occlude_queries=False
    with pytest.raises(ValueError, match="holdout_ids"):
        _init("cuhk03_pair1_holdout", root=str(data), mode="query", holdout_ids=0)


def test_cuhk03_blazepose_keypoints_every_crop(data: Path, cache: str) -> None:
    ds = _init("cuhk03_pair1", root=str(data), keypoint_cache_dir=cache)
    kp_root = data / "keypoints" / "blazepose" / "cuhk03_pair1" / "labeled"
    assert kp_root in ds.keypoint_search_dirs()
    for s in ds.train:  # every train crop has its keypoint file
        assert (kp_root / "train" / f"{Path(s[0]).stem}_keypoints.json").is_file()
    empty = total = 0
    for split in ("train", "query", "gallery"):
        table = ds.keypoint_table(split)
        assert table is not None
        samples = getattr(ds, split)
        assert all(Path(s[0]).name in table for s in samples)  # a file read for every crop
        lookup = ds.keypoint_lookup(split)
        empty += sum(is_empty(lookup(s[0])) for s in samples)
        total += len(samples)
    assert total == 7239 + 938
    assert 0.03 <= empty / total <= 0.05  # README: 4.0 % of the crops have no skeleton
    some = ds.train[0][0]
    pose = ds.keypoint_lookup("train")(some)
    raw = json.loads((kp_root / "train" / f"{Path(some).stem}_keypoints.json").read_text())
    if raw:
        np.testing.assert_allclose(pose, np.asarray(raw[0]["keypoints"]), atol=1e-3)


# -- Partial-REID as fixed-query targets ---------------------------------------------------------
@pytest.mark.parametrize("name", ["partial_reid_occluded", "partial_reid_partial"])
def test_partial_reid_fixed_queries_and_keypoints(data: Path, cache: str, name: str) -> None:
    ds = _init(name, root=str(data), mode="query", keypoint_cache_dir=cache)
    folder = name.split("_")[-1] + "_body_images"
    assert (len(ds.query), len(ds.gallery)) == (300, 300)
    assert len(_pids(ds.query)) == len(_pids(ds.gallery)) == 60
    assert all(f"/{folder}/" in s[0] for s in ds.query)
    assert all("/whole_body_images/" in s[0] for s in ds.gallery)
    kp_root = data / "keypoints" / "blazepose" / "partial_reid" / "Partial-REID_Dataset"
    assert ds.keypoint_search_dirs()[-1] == kp_root
    for split in ("query", "gallery"):
        table = ds.keypoint_table(split)
        assert table is not None and len(table) == 300
    empty = sum(is_empty(ds.keypoint_lookup("query")(s[0])) for s in ds.query)
    assert 0.1 < empty / 300 < 0.25  # occluded / partial crops: BlazePose misses ~18 %


def test_partial_reid_from_the_data_root(data: Path) -> None:
    ds = _init("partial_reid", root=str(data), mode="query")
    assert ds.dataset_dir == data / "partial_reid" / "Partial-REID_Dataset"
    assert (len(ds.query), len(ds.gallery)) == (300, 300)


# -- seeded query occlusion ----------------------------------------------------------------------
def test_seeded_occlusion_is_deterministic_and_covers_30_to_50_percent() -> None:
    occ = SeededOcclusion()
    base = Image.fromarray(np.full((128, 64, 3), 7, np.uint8))
    sides = set()
    for i in range(60):
        path = f"/somewhere/{i:04d}_03.jpg"
        out = np.asarray(occ(base, path))
        again = np.asarray(SeededOcclusion()(base.copy(), "/elsewhere/" + Path(path).name))
        np.testing.assert_array_equal(out, again)  # same file name -> same occlusion
        changed = (out != 7).any(axis=2)
        rows, cols = np.nonzero(changed)
        # the rectangle's bounding box (noise or a colour may leave a few pixels at 7)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1) / changed.size
        assert 0.3 <= box <= 0.5
        assert changed.mean() <= 0.5
        sides.add("bottom" if cols.min() == 0 and cols.max() == 63 else "side")
    assert sides == {"bottom", "side"}
    assert np.asarray(base).max() == 7  # the input is not modified
    a, b = (np.asarray(occ(base, f"{n}.jpg")) for n in ("0001_00", "0002_00"))
    assert not np.array_equal(a, b)


def test_seeded_partial_view_keeps_the_top_50_to_80_percent() -> None:
    base = Image.fromarray(
        np.arange(100 * 40 * 3, dtype=np.uint32).reshape(100, 40, 3).astype(np.uint8)
    )
    kept = set()
    for i in range(40):
        out = SeededPartialView()(base, f"/a/{i:04d}_01.jpg")
        assert out.width == 40 and 50 <= out.height <= 80
        np.testing.assert_array_equal(np.asarray(out), np.asarray(base)[: out.height])
        assert out.size == SeededPartialView()(base, f"/b/{i:04d}_01.jpg").size  # by name
        kept.add(out.height)
    assert len(kept) > 10  # the cut varies from image to image
    with pytest.raises(ValueError, match="keep"):
        SeededPartialView(keep=(0.9, 0.5))


def _solid_crops(folder: Path, colours: dict[str, int]) -> list[tuple[str, int]]:
    pool = []
    for name, value in colours.items():
        path = folder / name
        Image.fromarray(np.full((60, 30, 3), value, np.uint8)).save(path)
        pool.append((str(path), int(name[:4])))
    return pool


def test_seeded_blob_occlusion_pastes_another_person_inside_the_frame(tmp_path: Path) -> None:
    pool = _solid_crops(tmp_path, {"0001_05.png": 200, "0002_05.png": 90})
    blob = SeededBlobOcclusion(pool=pool, people={"0001_00.jpg": 1, "0002_00.jpg": 2})
    base = Image.fromarray(np.full((128, 64, 3), 7, np.uint8))
    for name, other in (("0001_00.jpg", 90), ("0002_00.jpg", 200)):
        out = np.asarray(blob(base, f"/q/{name}"))
        covered = (out != 7).any(axis=2)
        assert 0.2 <= covered.mean() <= 0.45  # about the 25-40 % asked (clipped at the edges)
        assert set(np.unique(out[covered])) == {other}  # never the person's own crop
        np.testing.assert_array_equal(out, np.asarray(blob(base, f"/elsewhere/{name}")))
        rows, cols = np.nonzero(covered)
        # an ellipse, not a rectangle from an edge: its bounding box is not all covered
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert covered.sum() < 0.9 * box
    with pytest.raises(ValueError, match="no other person"):
        SeededBlobOcclusion(pool=pool[:1])(base, "/q/0001_05.png")
    with pytest.raises(ValueError, match="not a known person"):
        blob(base, "/q/0003_00.jpg")
    with pytest.raises(ValueError, match="pool"):
        SeededBlobOcclusion(pool=[])
    (tmp_path / "0002_05.png").write_bytes(b"not an image")
    with pytest.raises(OSError, match="0002_05.png"):
        blob(base, "/q/0001_00.jpg")


@pytest.mark.parametrize(
    ("name", "hook"),
    [
        ("cuhk03_pair1_holdout", SeededOcclusion),
        ("cuhk03_pair1_holdout_whole", None),
        ("cuhk03_pair1_holdout_partial", SeededPartialView),
        ("cuhk03_pair1_holdout_blob", SeededBlobOcclusion),
    ],
)
def test_holdout_views_share_the_people_and_differ_in_the_query_hook(
    data: Path, name: str, hook: type | None
) -> None:
    val = _init(name, root=str(data), mode="query")
    assert (len(val.query), len(val.gallery), val.num_train_pids) == (484, 491, 643)
    got = dataset_image_hook(val, "query")
    assert got is None if hook is None else isinstance(got, hook)
    assert dataset_image_hook(val, "gallery") is None
    if isinstance(got, SeededBlobOcclusion):  # every query can be occluded: its person is known
        img = Image.open(val.query[0][0]).convert("RGB")
        assert np.asarray(got(img, val.query[0][0])).shape == np.asarray(img).shape
    with pytest.raises(ValueError, match="query_view"):
        _init("cuhk03_pair1_holdout", root=str(data), mode="query", query_view="sideways")


def test_holdout_queries_are_occluded_by_the_test_loader(data: Path) -> None:
    val = _init("cuhk03_pair1_holdout", root=str(data), mode="query")
    assert isinstance(val, CUHK03Pair1Holdout)
    hook = dataset_image_hook(val, "query")
    assert isinstance(hook, SeededOcclusion) and dataset_image_hook(val, "gallery") is None
    _, test_tf = build_pose_transforms(height=64, width=32)
    samples = val.query[:3]
    plain = next(iter(build_test_loader(samples, transform=test_tf, num_workers=0)))["img"]
    loader = build_test_loader(samples, transform=test_tf, num_workers=0, image_hook=hook)
    first = next(iter(loader))["img"]
    assert first.shape == plain.shape == (3, 3, 64, 32) and not torch.equal(first, plain)
    assert torch.equal(first, next(iter(loader))["img"])  # identical every pass


def test_datamanager_applies_the_hook_to_holdout_queries_only(data: Path, cache: str) -> None:
    from torchreid_pgflkd.data.datamanager import PoseDataManager

    kp = {"keypoint_cache_dir": cache}
    targets = ["cuhk03_pair1_holdout", "partial_reid_occluded", "partial_reid_partial"]
    dm = PoseDataManager(
        root=str(data), sources="cuhk03_pair1_holdout", targets=targets, height=64, width=32,
        batch_size_train=16, num_workers=0, dataset_kwargs={n: kp for n in targets},
    )  # fmt: skip
    assert dm.num_train_pids == 643
    hooks = {
        (n, s): loader.dataset.image_hook
        for n in targets
        for s, loader in dm.test_loader[n].items()
    }
    assert isinstance(hooks.pop(("cuhk03_pair1_holdout", "query")), SeededOcclusion)
    assert set(hooks.values()) == {None}
    pose_query = dm.pose_test_loaders("cuhk03_pair1_holdout")["query"]
    assert isinstance(pose_query.dataset.image_hook, SeededOcclusion)
