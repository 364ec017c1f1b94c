"""Pose maps per second at 16x8 for P = 6 on one CPU core (target: >= 5,000 images/s).

Usage: python benchmarks/pose_maps.py [--batch 256] [--repeats 50]
Writes benchmarks/results/pose_maps.json.
"""

from __future__ import annotations

import json
import time

import _suite
import torch

from torchreid_pgflkd.pose import PoseMapper

TARGET = 5000.0


def main() -> None:
    parser = _suite.parser(__doc__, "pose_maps")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    kp = torch.rand(args.batch, 17, 3, generator=gen) * torch.tensor([128.0, 256.0, 1.0])
    mapper = PoseMapper()
    mapper(kp, image_hw=(256, 128))  # warm-up
    start = time.perf_counter()
    for _ in range(args.repeats):
        maps = mapper(kp, image_hw=(256, 128))
    seconds = time.perf_counter() - start
    rate = args.batch * args.repeats / seconds
    result = {
        "benchmark": "pose_maps",
        "images_per_s": round(rate, 1),
        "target_images_per_s": TARGET,
        "meets_target": rate >= TARGET,
        "batch": args.batch,
        "repeats": args.repeats,
        "out_shape": list(maps.shape),
        "threads": torch.get_num_threads(),
    }
    _suite.write_report(result, args.output)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
