"""``pgflkd test --config FILE --weights CKPT``: evaluate the pose-free main branch."""

from __future__ import annotations

import argparse
from pathlib import Path

from torchreid_pgflkd.cli.train import report
from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io

HELP = "evaluate a trained checkpoint on the config's target datasets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML file the model was trained with")
    parser.add_argument("--weights", required=True, help="checkpoint (.pth) written by train")
    parser.add_argument("--output", default="", help="results JSON (default: beside weights)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.opts)
    cfg = build.prepare_synthetic(cfg, progress=not args.no_progress)
    weights = Path(args.weights)
    datamanager = build.build_datamanager(cfg, train=False)
    engine = build.build_engine(cfg, datamanager, progress=not args.no_progress)
    ckpt_io.load_checkpoint(weights, model=engine.model, restore_rng=False)
    results = engine.evaluate(save_dir=str(weights.parent), **build.adapters.test_kwargs(cfg))
    if cfg.test.eval_branches:  # ablations: every branch, FEB and SAB with pose
        results.update(engine.evaluate_branches(metric=cfg.test.metric))
    report(results, Path(args.output) if args.output else weights.with_suffix(".results.json"))
    return 0
