"""Evaluate every branch of a trained PGFL-KD checkpoint, the teachers *with* pose.

Shows how much of its teachers' (FEB, SAB) accuracy the pose-free main branch took in.

    python benchmarks/branch_eval.py --run outputs/ablation/seed0/pgflkd

``--run`` is a folder written by ``pgflkd run`` / ``pgflkd train`` (``config.yaml`` and
``last.pth``). Writes ``benchmarks/results/branch_eval.json``.
"""

from __future__ import annotations

from pathlib import Path

import _suite

from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io


def main() -> None:
    parser = _suite.parser(__doc__, "branch_eval")
    parser.add_argument("--run", type=Path, required=True, help="folder with config.yaml, last.pth")
    args = parser.parse_args()
    _suite.setup_logging()
    cfg = load_config(args.run / "config.yaml")
    datamanager = build.build_datamanager(cfg, train=False)
    engine = build.build_engine(cfg, datamanager, progress=False)
    ckpt_io.load_checkpoint(args.run / "last.pth", model=engine.model, restore_rng=False)
    results = engine.evaluate_branches(metric=cfg.test.metric)
    keys = ("rank1", "rank5", "mAP", "mINP")
    report = {
        "run": str(args.run),
        "note": "mb is evaluated as deployed (no pose needed); feb and sab use the test images' "
        "keypoints; fractions in [0, 1]",
        "branches": {name: {k: r[k] for k in keys} for name, r in results.items()},
    }
    _suite.write_report(report, args.output)


if __name__ == "__main__":
    main()
