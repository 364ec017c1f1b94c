"""Parameters, FLOPs and CPU latency of PGFL-KD against plain ResNet-50 ReID models.

Models, all at 256x128 with 751 classes:
  pgflkd_train      PGFL-KD in train mode (all branches, pose maps in)
  pgflkd_deployed   ``to_deploy(model)``: the main branch alone, no pose
  bnneck_resnet50   a plain last-stride-1 BNNeck ResNet-50 (eval)
  torchreid_resnet50  torchreid's own ``resnet50`` (last stride 2, eval)

Latency is measured in one process with the models interleaved round by round, and reported
as a ratio to ``bnneck_resnet50`` so that machine noise cancels out.

    python benchmarks/model_cost.py [--batch 8] [--rounds 10] [--threads 2]
"""

from __future__ import annotations

import logging
import statistics
import time

import _suite
import torch

import torchreid_pgflkd
from torchreid_pgflkd import compat
from torchreid_pgflkd.models import BNNeckReID, build_pgflkd, to_deploy
from torchreid_pgflkd.models.cost import count_params, forward_gflops
from torchreid_pgflkd.pose import feature_size

logger = logging.getLogger("model_cost")


def main() -> None:
    parser = _suite.parser(__doc__, "model_cost")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    num_classes, hw = 751, (256, 128)
    pgflkd = build_pgflkd(num_classes=num_classes, backbone="resnet50")
    models = {
        "pgflkd_train": pgflkd.train(),
        "pgflkd_deployed": to_deploy(pgflkd),
        "bnneck_resnet50": BNNeckReID(num_classes=num_classes, backbone="resnet50").eval(),
        "torchreid_resnet50": compat.build_torchreid_model(
            "resnet50", num_classes=num_classes, loss="triplet", pretrained=False
        ).eval(),
    }
    images = torch.randn(args.batch, 3, *hw)
    pose = torch.rand(args.batch, pgflkd.num_parts + 1, *feature_size(hw))

    def run(name: str) -> None:
        with torch.no_grad():
            if name == "pgflkd_train":
                models[name](images, pose)
            else:
                models[name](images)

    results: dict[str, dict] = {}
    for name, model in models.items():
        inputs = (images, pose) if name == "pgflkd_train" else (images,)
        results[name] = {
            "params": count_params(model),
            "gflops_per_image": forward_gflops(model, *inputs) / args.batch,
            "latency_ms": [],
        }
        logger.info("%s: %d params", name, results[name]["params"])

    for name in models:  # warm-up
        run(name)
    for r in range(args.rounds):
        for name in models:
            start = time.perf_counter()
            run(name)
            results[name]["latency_ms"].append((time.perf_counter() - start) * 1e3 / args.batch)
        logger.info("round %d/%d done", r + 1, args.rounds)

    base = statistics.median(results["bnneck_resnet50"]["latency_ms"])
    for res in results.values():
        med = statistics.median(res.pop("latency_ms"))
        res["latency_ms_per_image_median"] = med
        res["latency_ratio_vs_bnneck_resnet50"] = med / base
        res["params_ratio_vs_bnneck_resnet50"] = (
            res["params"] / results["bnneck_resnet50"]["params"]
        )
    report = {
        "image_size": list(hw),
        "num_classes": num_classes,
        "batch": args.batch,
        "rounds": args.rounds,
        "threads": args.threads,
        "device": "cpu",
        "pgflkd_version": torchreid_pgflkd.__version__,
        "note": "FLOPs counted by torch.utils.flop_counter (multiply-add = 2 FLOPs); "
        "latency medians, no-grad forward, interleaved in one process",
        "models": results,
    }
    _suite.write_report(report, args.output)
    for name, res in results.items():
        logger.info(
            "%-20s params %10d (x%.4f)  GFLOPs/img %6.2f  latency x%.2f",
            name,
            res["params"],
            res["params_ratio_vs_bnneck_resnet50"],
            res["gflops_per_image"],
            res["latency_ratio_vs_bnneck_resnet50"],
        )


if __name__ == "__main__":
    main()
