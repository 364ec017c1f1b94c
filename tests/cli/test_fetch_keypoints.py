"""``pgflkd fetch-keypoints``: KPR's Drive layout -> the folders the datasets read (gdown is
faked: nothing is downloaded here), the offline error, and installing a manual download."""

from __future__ import annotations

import json
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchreid_pgflkd.cli import fetch_keypoints as fk
from torchreid_pgflkd.cli.main import main
from torchreid_pgflkd.data.datasets import DATASETS
from torchreid_pgflkd.data.datasets.base import normalise_name
from torchreid_pgflkd.data.keypoint_source import KPR_SUBDIR

SPLITS = {"query": "partial_body_images", "gallery": "whole_body_images"}


def _pose(shift: float) -> list[list[float]]:
    return [[4.0 + shift + j % 5, 6.0 + 3 * j, 0.9] for j in range(17)]  # inside 32x64


@pytest.fixture
def partial_reid(tmp_path: Path) -> Path:
    """A two-person Partial-REID copy under ``root`` (no keypoints yet)."""
    root = tmp_path / "data"
    for folder in SPLITS.values():
        (root / "Partial_REID" / folder).mkdir(parents=True)
        for pid in (1, 2):
            Image.new("RGB", (32, 64)).save(root / "Partial_REID" / folder / f"{pid:03d}_01.jpg")
    return root


def _kpr_zip(path: Path) -> Path:
    """KPR's keypoints of that copy, zipped as its Drive folder holds them."""
    with zipfile.ZipFile(path, "w") as zf:
        for folder in SPLITS.values():
            for pid in (1, 2):
                name = f"{KPR_SUBDIR}/{folder}/{pid:03d}_01.jpg_keypoints.json"
                zf.writestr(name, json.dumps([{"keypoints": _pose(pid), "is_target": True}]))
    return path


@pytest.fixture
def fake_drive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """gdown over a fake copy of KPR's Drive folder; records what is downloaded."""
    files = {
        "k1": ("Partial-REID/external_annotation.zip", _kpr_zip(tmp_path / "kpr.zip")),
        "m1": ("Partial-REID/masks.zip", None),  # human-parsing masks: must not be fetched
        "k2": ("Market-1501/external_annotation.zip", None),
    }
    log: dict = {"downloaded": [], "offline": False}

    def download_folder(*, id, output, quiet, skip_download):  # noqa: A002 - gdown's names
        assert id == fk.KPR_DRIVE_FOLDER_ID and skip_download
        if log["offline"]:
            raise OSError("Failed to establish a new connection: [Errno -3] name resolution")
        return [types.SimpleNamespace(id=i, path=p, local_path=str(Path(output) / p))
                for i, (p, _) in files.items()]  # fmt: skip

    def download(*, id, output, quiet):  # noqa: A002
        log["downloaded"].append(id)
        Path(output).write_bytes(files[id][1].read_bytes())
        return output

    gdown = types.SimpleNamespace(download_folder=download_folder, download=download)
    monkeypatch.setitem(sys.modules, "gdown", gdown)
    return log


def _lookup(root: Path):
    return DATASETS["partial_reid"](root=str(root), mode="query", verbose=False).keypoint_lookup


def test_fetch_puts_kpr_keypoints_where_the_dataset_reads_them(partial_reid, fake_drive, capsys):
    before = _lookup(partial_reid)("query")(str(partial_reid / "Partial_REID/partial_body_images"
                                                 / "002_01.jpg"))  # fmt: skip
    assert not before[:, 2].any()  # no keypoints yet: an empty pose
    assert main(["fetch-keypoints", "Partial-REID", "--root", str(partial_reid)]) == 0
    assert fake_drive["downloaded"] == ["k1"]  # its keypoints only: no masks, no Market
    target = partial_reid / "Partial_REID" / KPR_SUBDIR
    assert sorted(p.name for p in target.iterdir()) == sorted(SPLITS.values())
    assert "4 keypoint files" in capsys.readouterr().out
    for split, folder in SPLITS.items():
        got = _lookup(partial_reid)(split)(str(partial_reid / "Partial_REID" / folder
                                                / "002_01.jpg"))  # fmt: skip
        np.testing.assert_allclose(got, np.asarray(_pose(2)), atol=1e-5)


def test_offline_names_the_drive_folder_and_where_files_go(partial_reid, fake_drive, capsys):
    fake_drive["offline"] = True
    assert main(["fetch-keypoints", "partial_reid", "--root", str(partial_reid)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert fk.KPR_DRIVE_URL in err and "'Partial-REID'" in err and "--from" in err
    assert str(partial_reid / "Partial_REID" / KPR_SUBDIR) in err


def test_a_manual_download_installs_the_same_way(partial_reid, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gdown", None)  # importing gdown would fail
    archive = _kpr_zip(tmp_path / "manual.zip")
    argv = ["fetch-keypoints", "partial_reid", "--root", str(partial_reid), "--from", str(archive)]
    assert main(argv) == 0
    got = _lookup(partial_reid)("gallery")(str(partial_reid / "Partial_REID/whole_body_images"
                                               / "001_01.jpg"))  # fmt: skip
    np.testing.assert_allclose(got, np.asarray(_pose(1)), atol=1e-5)
    assert main(["fetch-keypoints", "partial_reid", "--root", str(partial_reid), "--from",
                 str(tmp_path / "nothing.zip")]) == 2  # fmt: skip


def test_every_kpr_dataset_maps_to_folders_our_datasets_look_in() -> None:
    partial = {**DATASETS["partial_reid"]._QUERY_FOLDERS, "gallery": ("whole_body_images",)}
    folders = {
        "market1501_pose": DATASETS["market1501_pose"].split_dir_names,
        "occluded_duke": DATASETS["occluded_duke"].split_dir_names,
        "occluded_reid": DATASETS["occluded_reid"].split_dir_names,
        "partial_reid": partial,
    }
    for name, spec in fk.KPR_DATASETS.items():
        cls = DATASETS[name]
        assert normalise_name(spec.default_dir) in map(normalise_name, cls.dataset_dir_names)
        split_names = {alts[0] for alts in folders[name].values()}
        assert split_names <= set(spec.splits), name
    for alias in ("Market-1501", "Occluded-Duke", "Occluded-REID", "partial_reid_occluded"):
        assert fk.resolve_name(alias) in fk.KPR_DATASETS
    with pytest.raises(ValueError, match="KPR publishes keypoints for"):
        fk.resolve_name("cuhk03")
