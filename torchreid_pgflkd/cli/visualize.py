"""``pgflkd visualize``: draw keypoints, skeleton, part maps and foreground over an image."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "draw an image's keypoints, skeleton, part maps and foreground mask to a PNG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="image file")
    parser.add_argument(
        "--keypoints",
        required=True,
        help="keypoint file: KPR/PifPaf or OpenPose per-image JSON, or our .npz cache / a "
        "Market 14-point .mat (looked up by the image's file name)",
    )
    parser.add_argument("--output", required=True, help="PNG to write")
    parser.add_argument("--scale", type=int, default=2, help="enlarge small crops by this factor")


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from torchreid_pgflkd.data.keypoint_source import load_keypoint_file
    from torchreid_pgflkd.pose.draw import draw_pose
    from torchreid_pgflkd.pose.formats import read_keypoint_file

    image_path, kp_path = Path(args.image), Path(args.keypoints)
    if not image_path.is_file():
        raise FileNotFoundError(f"--image {image_path} does not exist")
    image = Image.open(image_path).convert("RGB")
    if kp_path.suffix in (".npz", ".mat"):
        table = load_keypoint_file(kp_path)
        keypoints = table.get(image_path.name)
        if keypoints is None:
            raise KeyError(f"--keypoints {kp_path} has no entry for {image_path.name}")
    else:
        keypoints = read_keypoint_file(kp_path, image_hw=(image.height, image.width))
    if args.scale > 1:
        image = image.resize((image.width * args.scale, image.height * args.scale))
        keypoints = keypoints.copy()
        keypoints[:, :2] *= args.scale
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_pose(image, keypoints).save(out)
    print(out)
    return 0
