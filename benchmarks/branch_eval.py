"""Evaluate every branch of a trained PGFL-KD checkpoint, the teachers *with* pose.

Shows how much of its teachers' (FEB, SAB) accuracy the pose-free main branch took in.

    python benchmarks/branch_eval.py --run outputs/ablation/seed0/pgflkd

``--run`` is a folder written by ``pgflkd run`` / ``pgflkd train`` (``config.yaml`` and
``last.pth``). Writes ``benchmarks/results/branch_eval.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from torchreid_pgflkd.cli import common
from torchreid_pgflkd.config import load_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="folder with config.yaml, last.pth")
    parser.add_argument("--output", type=Path, default=RESULTS / "branch_eval.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = load_config(args.run / "config.yaml")
    datamanager = common.build_datamanager(cfg, train=False)
    engine = common.build_engine(cfg, datamanager, progress=False)
    ckpt_io.load_checkpoint(args.run / "last.pth", model=engine.model, restore_rng=False)
    results = engine.evaluate_branches(metric=cfg.test.metric)
    keys = ("rank1", "rank5", "mAP", "mINP")
    report = {
        "run": str(args.run),
        "note": "mb is evaluated as deployed (no pose needed); feb and sab use the test images' "
        "keypoints; fractions in [0, 1]",
        "branches": {name: {k: r[k] for k in keys} for name, r in results.items()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1) + "\n")
    logging.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
