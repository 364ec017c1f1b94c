"""Images/s of the pose train loader on the real Market mini crops with their 14-point keypoints.

Usage: python benchmarks/data_loading.py [--workers 2] [--batches 20]
Needs ../shared/data (the project's real test data). Writes benchmarks/results/data_loading.json.
"""

from __future__ import annotations

import json
import logging
import time

import _suite

import torchreid_pgflkd  # noqa: F401  (registers the datasets)
from torchreid_pgflkd.data.datamanager import PoseDataManager


def main() -> None:
    parser = _suite.parser(__doc__, "data_loading")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    DATA = _suite.require_shared_data()
    mat = DATA / "keypoints" / "market1501_train_14point" / "market1501_14point_train.mat"
    dm = PoseDataManager(
        root=str(DATA / "market1501_mini"),
        sources="market1501_pose",
        batch_size_train=args.batch_size,
        num_instances=4,
        num_workers=args.workers,
        dataset_kwargs={"market1501_pose": {"keypoints_file": str(mat)}},
    )
    images, seen, start = 0, 0, None
    while seen < args.batches + 1:
        for batch in dm.train_loader:
            if start is None:  # first batch pays worker start-up
                start = time.perf_counter()
            else:
                images += batch["img"].shape[0]
            seen += 1
            if seen >= args.batches + 1:
                break
    seconds = time.perf_counter() - start
    result = {
        "benchmark": "data_loading",
        "images_per_s": round(images / seconds, 1),
        "images": images,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "image_size": [256, 128],
        "pose_maps_shape": list(batch["pose_maps"].shape[1:]),
    }
    _suite.write_report(result, args.output)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
