"""``pgflkd train --config FILE [KEY VALUE ...]``: train, evaluate, save checkpoints and results.

Runs on one process, or on several under ``torchrun --nproc_per_node=N -m
torchreid_pgflkd.cli.main train ...`` (DistributedDataParallel, NCCL on GPUs, gloo on CPUs).

``train.save_dir`` belongs to one run. A second job into it fails at once; a new run into a
folder holding checkpoints needs ``--overwrite`` (which deletes them first); ``--resume``
continues the run there from ``last.pth`` (repaired from the newest readable snapshot when it
is stale, empty or corrupt), ``--resume-from FILE`` from a given checkpoint. A resumed run
keeps the checkpoint's settings: only ``config.RESUME_MUTABLE`` keys may change.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
from pathlib import Path
from typing import Any

from torchreid_pgflkd.config import build, load_config, resume_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.engine import run_folder
from torchreid_pgflkd.engine.distributed import barrier, cleanup, init_distributed
from torchreid_pgflkd.utils.io import write_json

HELP = "train PGFL-KD (or an ablation) from a config file"
logger = logging.getLogger(__name__)
LOG_NAME = "train.log"  # the run's text log, beside its checkpoints

RESULTS_NAME = "results.json"


class _ResumeAction(argparse.Action):
    """``--resume`` takes no value. argparse hands it the next word when that is not an
    option; a checkpoint (``*.pth``, the older ``--resume PATH`` form) is kept as the file to
    resume from, anything else (``train.max_epoch``) goes back to the overrides."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        namespace.resume = True
        if value is None:
            return
        if str(value).endswith(".pth"):
            namespace.resume_from = value
        else:
            namespace.opts_before = [*getattr(namespace, "opts_before", []), value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="YAML file (see configs/)")
    parser.add_argument(
        "--resume",
        nargs="?",
        action=_ResumeAction,
        default=False,
        help="continue the run in train.save_dir from its last.pth (no value)",
    )
    parser.add_argument(
        "--resume-from", default=None, metavar="FILE", help="continue from this checkpoint"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start again in a train.save_dir holding checkpoints: deletes them first",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")


def _overrides(args: argparse.Namespace) -> list[str]:
    words = [*getattr(args, "opts_before", []), *args.opts]
    options = [w for w in words if w.startswith("--")]
    if options:  # argparse hands everything after the first override to the overrides
        raise ValueError(
            f"options go before the KEY VALUE overrides: {' '.join(options)} came after them"
        )
    if words and Path(words[0]).is_file():
        raise ValueError(
            f"--resume takes no value; to resume from the file {words[0]}, pass "
            f"--resume-from {words[0]}"
        )
    return words


def run(args: argparse.Namespace) -> int:
    resume_from = Path(args.resume_from) if args.resume_from else None
    if args.overwrite and (args.resume or resume_from):
        raise ValueError("--overwrite starts the run again, --resume continues it: choose one")
    cfg = load_config(args.config, _overrides(args))
    dist_info = init_distributed()
    try:
        save_dir = Path(cfg.train.save_dir)
        # Only the main process owns the folder; the others follow it after the barrier.
        owner = run_folder.run_folder_lock(save_dir) if dist_info.is_main else None
        with owner or contextlib.nullcontext():
            resume = None
            if dist_info.is_main:
                resume = _claim(save_dir, args.resume, resume_from, overwrite=args.overwrite)
                # Rank 0 generates the embedded benchmark (if used); the others find it done.
                cfg = build.prepare_synthetic(cfg, progress=not args.no_progress)
            barrier()
            if not dist_info.is_main:
                cfg = build.prepare_synthetic(cfg, progress=False)
                if args.resume or resume_from:
                    resume = resume_from or save_dir / ckpt_io.LAST_NAME
            if resume is not None:
                cfg = resume_config(cfg, _stored_config(resume), source=str(resume))
            return _train(cfg, args, dist_info, save_dir, resume)
    finally:
        cleanup()


def _stored_config(path: Path) -> Any:
    """The config a checkpoint stores, read without loading its tensors where possible."""
    try:
        state = ckpt_io.read_checkpoint(path, mmap=True)
    except ckpt_io.CheckpointError:  # torch's old non-zip format cannot be memory-mapped
        state = ckpt_io.read_checkpoint(path)
    return state.get("config") if isinstance(state, dict) else None


def _claim(
    save_dir: Path, resume: bool, resume_from: Path | None, *, overwrite: bool
) -> Path | None:
    """Ready ``save_dir`` (owned) for this run; returns the checkpoint to resume from."""
    if resume_from is not None:
        if not resume_from.is_file():
            raise FileNotFoundError(f"--resume-from: no checkpoint file at {resume_from}")
        run_folder.start_run_folder(save_dir, resume_from=resume_from)
        return resume_from
    if resume:
        return run_folder.resume_checkpoint(save_dir)
    run_folder.start_run_folder(save_dir, overwrite=overwrite)
    if overwrite:  # what the earlier run left beside its checkpoints
        events = save_dir / "tensorboard"
        stale = [save_dir / RESULTS_NAME, save_dir / RESULTS_NAME.replace(".json", ".cmc.png")]
        for path in [p for p in stale if p.is_file()]:
            path.unlink()
            logger.warning("overwrite: removed %s of the earlier run", path)
        if events.is_dir():
            shutil.rmtree(events)
            logger.warning("overwrite: removed %s (TensorBoard) of the earlier run", events)
    return None


def _train(cfg: Any, args: argparse.Namespace, dist_info: Any, save_dir: Path, resume: Any) -> int:
    if dist_info.is_main:
        build.save_config(cfg, save_dir)
    with _text_log(save_dir / LOG_NAME, enabled=dist_info.is_main):
        return _train_logged(cfg, args, dist_info, save_dir, resume)


@contextlib.contextmanager
def _text_log(path: Path, *, enabled: bool):
    """Everything the package logs also goes to ``path`` (appended: a resumed run continues it)."""
    if not enabled:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
    )
    handler.setLevel(logging.INFO)
    package = logging.getLogger("torchreid_pgflkd")
    level = package.level
    package.setLevel(min(package.getEffectiveLevel(), logging.INFO))
    package.addHandler(handler)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
        handler.close()


def _train_logged(
    cfg: Any, args: argparse.Namespace, dist_info: Any, save_dir: Path, resume: Any
) -> int:
    datamanager = build.build_datamanager(cfg, dist_info)
    engine = build.build_engine(cfg, datamanager, dist_info, progress=not args.no_progress)
    results = engine.run(
        save_dir=save_dir,
        max_epoch=cfg.train.max_epoch,
        eval_freq=cfg.train.eval_freq,
        resume=resume,
        overwrite=args.overwrite,
        keep_last=cfg.train.keep_last,
        snapshot_freq=cfg.train.snapshot_freq,
        config=cfg.dump(),
        test_kwargs=build.adapters.test_kwargs(cfg),
        extra={"num_classes": datamanager.num_train_pids},
    )
    if dist_info.is_main:
        if cfg.test.eval_branches:  # ablations: every branch, FEB and SAB with pose
            results.update(engine.evaluate_branches(metric=cfg.test.metric))
        report(results, save_dir / RESULTS_NAME)
    return 0


def report(results: dict, path: Path) -> None:
    """Table on stdout; JSON at ``path``; the CMC curves of all targets beside it (PNG)."""
    from torchreid_pgflkd.evaluation import format_results_table, plot_cmc

    public = build.public_results(results)
    write_json(public, path)
    plot = plot_cmc({name: r["cmc"] for name, r in public.items()}, path.with_suffix(".cmc.png"))
    print(format_results_table(public))
    print(f"results written to {path}, CMC curves to {plot}")
