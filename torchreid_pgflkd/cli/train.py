"""``pgflkd train --config FILE [KEY VALUE ...]``: train, evaluate, save checkpoints and results.

Runs on one process, or on several under ``torchrun --nproc_per_node=N -m
torchreid_pgflkd.cli.main train ...`` (DistributedDataParallel, NCCL on GPUs, gloo on CPUs).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.engine.distributed import barrier, cleanup, init_distributed
from torchreid_pgflkd.utils.io import write_json

HELP = "train PGFL-KD (or an ablation) from a config file"
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML file (see configs/)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="resume from a checkpoint file, or (no value) from save_dir's latest",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.opts)
    dist_info = init_distributed()
    try:
        # Rank 0 generates the embedded benchmark (if used); the others then find it done.
        if dist_info.is_main:
            cfg = build.prepare_synthetic(cfg, progress=not args.no_progress)
        barrier()
        if not dist_info.is_main:
            cfg = build.prepare_synthetic(cfg, progress=False)
        save_dir = Path(cfg.train.save_dir)
        resume = args.resume
        if resume == "auto":
            resume = ckpt_io.latest_checkpoint(save_dir)
            if resume is None:
                raise FileNotFoundError(f"--resume: no checkpoint found in {save_dir}")
        if dist_info.is_main:
            build.save_config(cfg, save_dir)
        datamanager = build.build_datamanager(cfg, dist_info)
        engine = build.build_engine(cfg, datamanager, dist_info, progress=not args.no_progress)
        results = engine.run(
            save_dir=save_dir,
            max_epoch=cfg.train.max_epoch,
            eval_freq=cfg.train.eval_freq,
            resume=resume,
            keep_last=cfg.train.keep_last,
            config=cfg.dump(),
            test_kwargs=build.adapters.test_kwargs(cfg),
            extra={"num_classes": datamanager.num_train_pids},
        )
        if dist_info.is_main:
            if cfg.test.eval_branches:  # ablations: every branch, FEB and SAB with pose
                results.update(engine.evaluate_branches(metric=cfg.test.metric))
            report(results, save_dir / "results.json")
    finally:
        cleanup()
    return 0


def report(results: dict, path: Path) -> None:
    """Table on stdout; JSON at ``path``; the CMC curves of all targets beside it (PNG)."""
    from torchreid_pgflkd.evaluation import format_results_table, plot_cmc

    public = build.public_results(results)
    write_json(public, path)
    plot = plot_cmc({name: r["cmc"] for name, r in public.items()}, path.with_suffix(".cmc.png"))
    print(format_results_table(public))
    print(f"results written to {path}, CMC curves to {plot}")
