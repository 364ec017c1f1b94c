"""``pgflkd keypoints``: write KPR-style keypoint JSON for a folder of person crops."""

from __future__ import annotations

import argparse
import json

HELP = "estimate COCO-17 keypoints for a folder of images with torchvision's Keypoint R-CNN"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, help="folder of images (searched recursively)")
    parser.add_argument(
        "--output",
        required=True,
        help="output folder; <output>/<relative dir>/<image name>_keypoints.json per image",
    )
    parser.add_argument("--weights", default=None, help="local Keypoint R-CNN state dict (.pth)")
    parser.add_argument(
        "--random-weights", action="store_true", help="untrained model (tests only)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--min-size", type=int, default=512, help="model input short side")
    parser.add_argument("--max-size", type=int, default=1024, help="model input long side cap")
    parser.add_argument("--score-threshold", type=float, default=0.5, help="person detections")
    parser.add_argument("--max-people", type=int, default=10, help="detections kept per image")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    from torchreid_pgflkd.pose.estimator import (
        KeypointEstimator,
        build_keypoint_rcnn,
        estimate_folder,
    )

    model = build_keypoint_rcnn(
        weights=args.weights,
        random_weights=args.random_weights,
        min_size=args.min_size,
        max_size=args.max_size,
        max_people=args.max_people,
    )
    estimator = KeypointEstimator(model, device=args.device, score_threshold=args.score_threshold)
    stats = estimate_folder(
        args.images,
        args.output,
        estimator=estimator,
        batch_size=args.batch_size,
        limit=args.limit,
        progress=not args.no_progress,
    )
    print(json.dumps(stats))
    return 0
