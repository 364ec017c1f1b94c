"""draw_pose and 'pgflkd visualize' on a real crop with its real keypoints."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from torchreid_pgflkd.cli import visualize
from torchreid_pgflkd.pose.draw import draw_pose


def test_draw_pose_marks_the_person(shared_data: Path) -> None:
    demo = shared_data / "keypoints" / "pifpaf_coco17_demo" / "soccer_players" / "group1"
    image = Image.open(next((demo / "images").glob("*.jpg"))).convert("RGB")
    kp = np.zeros((17, 3), np.float32)
    kp[5] = (image.width * 0.3, image.height * 0.3, 1)
    kp[11] = (image.width * 0.3, image.height * 0.6, 1)
    out = draw_pose(image, kp)
    assert out.size == (3 * image.width, image.height)
    fg = np.asarray(out, np.float32)[:, 2 * image.width :]
    orig = np.asarray(image, np.float32)
    changed = np.abs(fg - orig).sum(-1) > 30
    ys, xs = np.nonzero(changed)
    # the foreground overlay sits around the torso bone, not at the far side of the image
    assert changed.any() and abs(xs.mean() - kp[5, 0]) < image.width * 0.25


def test_visualize_command_writes_png(shared_data: Path, tmp_path: Path) -> None:
    demo = shared_data / "keypoints" / "pifpaf_coco17_demo" / "soccer_players" / "group1"
    image = sorted((demo / "images").glob("*.jpg"))[0]
    kp = demo / "keypoints" / f"{image.stem}.json"
    parser = argparse.ArgumentParser()
    visualize.add_arguments(parser)
    out = tmp_path / "x.png"
    args = parser.parse_args(["--image", str(image), "--keypoints", str(kp), "--output", str(out)])
    assert visualize.run(args) == 0
    png = Image.open(out)
    w, h = Image.open(image).size
    assert png.format == "PNG" and png.size == (3 * 2 * w, 2 * h)  # 3 panels, --scale 2
