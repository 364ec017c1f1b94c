"""The keypoint-extraction command, on real images with random weights (no download here)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from torchreid_pgflkd.cli import keypoints as cli
from torchreid_pgflkd.pose import read_kpr_json


def _args(images: Path, output: Path, **extra) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    argv = ["--images", str(images), "--output", str(output), "--random-weights"]
    argv += ["--min-size", "128", "--max-size", "128", "--batch-size", "2", "--no-progress"]
    argv += ["--score-threshold", "0.0", "--max-people", "3"]
    for k, v in extra.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return parser.parse_args(argv)


def test_keypoints_command_writes_resumable_kpr_files(
    shared_data: Path, tmp_path: Path, capsys
) -> None:
    src = shared_data / "market1501_mini" / "Market-1501-v15.09.15" / "query"
    images = tmp_path / "images" / "query"
    images.mkdir(parents=True)
    for p in sorted(src.glob("*.jpg"))[:3]:
        shutil.copy(p, images / p.name)
    out = tmp_path / "kp"
    assert cli.run(_args(tmp_path / "images", out)) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["images"] == 3 and stats["written"] == 3
    files = sorted(out.rglob("*_keypoints.json"))
    assert [f.parent.name for f in files] == ["query"] * 3
    for f in files:
        skeletons = json.loads(f.read_text())
        assert isinstance(skeletons, list)
        pose = read_kpr_json(f, image_hw=(128, 64))  # our own reader accepts what we write
        assert pose.shape == (17, 3)
        if skeletons:
            assert skeletons[0]["is_target"] and len(skeletons[0]["keypoints"]) == 17
    # resumable: a second run skips every image
    assert cli.run(_args(tmp_path / "images", out)) == 0
    stats = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert stats["skipped"] == 3 and stats["written"] == 0


def test_missing_weights_file_is_named(tmp_path: Path) -> None:
    from torchreid_pgflkd.pose.estimator import build_keypoint_rcnn

    with pytest.raises(FileNotFoundError, match="nope.pth"):
        build_keypoint_rcnn(weights=tmp_path / "nope.pth")
