"""PGFL-KD training on torchreid's ``Engine``: pose in training, the pose-free MB at test.

The engine overrides ``forward_backward`` (one step, ``engine.step``), ``train`` (progress
bar, per-term logging, sampler epochs), ``_evaluate`` (``engine.evaluate``: our fast exact
evaluator instead of torchreid's Python ranking) and ``run`` (a locked run folder, atomic
checkpoints, resume, rank-0-only saving and evaluation). torchreid's ``test`` loop over
target datasets is reused.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from torchreid_pgflkd import compat
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.engine import run_folder
from torchreid_pgflkd.engine.distributed import DistInfo
from torchreid_pgflkd.engine.evaluate import EvaluationMixin
from torchreid_pgflkd.engine.step import AMP_DTYPES, AMP_MODES, NonFiniteLossError, train_step
from torchreid_pgflkd.evaluation.extract import autocast, to_device
from torchreid_pgflkd.losses import LossSettings
from torchreid_pgflkd.utils.modules import unwrap_model

logger = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "PGFLKDEngine"]


class PGFLKDEngine(EvaluationMixin, compat.engine_base()):
    """Train PGFL-KD (or its MB-only baseline) with torchreid's engine machinery.

    Args:
        datamanager: an object with torchreid's ``ImageDataManager`` interface whose train
            batches carry ``pose_maps`` (see ``torchreid_pgflkd.data``).
        model: a ``PGFLKD`` (optionally DDP-wrapped), already on ``device``.
        optimizer, scheduler: from ``engine.optim``; the scheduler steps once per epoch.
        device: where batches go.
        loss_settings: loss weights and options (``losses.LossSettings``).
        amp: ``'none' | 'bf16' | 'fp16'``; only on CUDA (fp16 uses a gradient scaler).
        channels_last: NHWC memory format for the model and images (CPU and CUDA).
        grad_clip: maximum gradient norm, 0 for none.
        dist_info: this process's place in a DDP job; only rank 0 logs, evaluates and saves.
        print_freq: iterations between log lines.
        progress: tqdm bars on the main process.
    """

    def __init__(
        self,
        datamanager: Any,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any = None,
        *,
        device: torch.device | str = "cpu",
        loss_settings: LossSettings | None = None,
        amp: str = "bf16",
        channels_last: bool = False,
        grad_clip: float = 0.0,
        dist_info: DistInfo | None = None,
        print_freq: int = 20,
        progress: bool = True,
    ) -> None:
        self.device = torch.device(device)
        super().__init__(datamanager, use_gpu=self.device.type == "cuda")
        if amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {amp!r}")
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.register_model("model", model, optimizer, scheduler)
        self.loss_settings = loss_settings or LossSettings()
        on_cuda = self.device.type == "cuda"
        self.amp_dtype = AMP_DTYPES.get(amp) if on_cuda else None
        self.scaler = torch.amp.GradScaler("cuda") if on_cuda and amp == "fp16" else None
        # NHWC is much faster on CPUs too (oneDNN): about 10x for training at 128x64 on 2 cores.
        self.channels_last = channels_last
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.grad_clip = grad_clip
        self.dist = dist_info or DistInfo()
        self.print_freq = max(1, print_freq)
        self.progress = progress
        self.global_step = 0
        self.epoch = 0
        self.max_epoch = 0
        self.last_results: dict[str, dict[str, Any]] = {}
        self.last_features: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        self.epoch_losses: dict[str, float] = {}

    # ----------------------------------------------------------------- training
    def forward_backward(self, data: dict[str, Any]) -> dict[str, float]:
        """One optimisation step; returns every loss term (and the weighted ``loss``) as floats."""
        summary = train_step(
            self.model,
            self.optimizer,
            data,
            settings=self.loss_settings,
            device=self.device,
            channels_last=self.channels_last,
            amp_dtype=self.amp_dtype,
            scaler=self.scaler,
            grad_clip=self.grad_clip,
            where=f"step {self.global_step} (epoch {self.epoch + 1}, "
            f"batch {getattr(self, 'batch_idx', 0) + 1})",
        )
        self.global_step += 1
        return summary

    def train(self, print_freq: int = 0, fixbase_epoch: int = 0, open_layers: Any = None) -> None:
        """One epoch over the train loader, with a progress bar and per-term logging."""
        self.set_model_mode("train")
        sampler = getattr(self.train_loader, "batch_sampler", None)
        for candidate in (getattr(self.train_loader, "sampler", None), sampler):
            if hasattr(candidate, "set_epoch"):
                candidate.set_epoch(self.epoch)
        sums: dict[str, float] = defaultdict(float)
        num_batches = len(self.train_loader)
        bar = tqdm(
            self.train_loader,
            total=num_batches,
            desc=f"epoch {self.epoch + 1}/{self.max_epoch}",
            disable=not (self.progress and self.dist.is_main),
            leave=False,
            dynamic_ncols=True,
        )
        start = time.time()
        for self.batch_idx, data in enumerate(bar):
            summary = self.forward_backward(data)
            for name, value in summary.items():
                sums[name] += value
            bar.set_postfix(loss=f"{summary['loss']:.3f}")
            if self.dist.is_main and self.writer is not None:
                for name, value in summary.items():
                    self.writer.add_scalar(f"Train/{name}", value, self.global_step)
                self.writer.add_scalar("Train/lr", self.get_current_lr(), self.global_step)
            if self.dist.is_main and (self.batch_idx + 1) % self.print_freq == 0:
                logger.debug("step %d %s", self.global_step, _fmt(summary))
        count = max(1, self.batch_idx + 1 if num_batches else 0)
        self.epoch_losses = {name: total / count for name, total in sums.items()}
        if self.dist.is_main:
            logger.info(
                "epoch %d/%d done in %.1fs, lr %.2e, %s",
                self.epoch + 1,
                self.max_epoch,
                time.time() - start,
                self.get_current_lr(),
                _fmt(self.epoch_losses),
            )
        self.update_lr()

    # --------------------------------------------------------------- evaluation
    def extract_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pose-free MB features of a batch (torchreid's ``Engine`` API)."""
        images = to_device(images, self.device, channels_last=self.channels_last)
        with autocast(self.device, self.amp_dtype):
            return unwrap_model(self.model)(images).float()

    # ---------------------------------------------------------------------- run
    def run(
        self,
        save_dir: str | Path = "log",
        max_epoch: int = 0,
        start_epoch: int = 0,
        print_freq: int | None = None,
        fixbase_epoch: int = 0,
        open_layers: str | Sequence[str] | None = None,
        start_eval: int = 0,
        eval_freq: int = -1,
        test_only: bool = False,
        dist_metric: str = "euclidean",
        normalize_feature: bool = False,
        visrank: bool = False,
        visrank_topk: int = 10,
        use_metric_cuhk03: bool = False,
        ranks: Sequence[int] = (1, 5, 10, 20),
        rerank: bool = False,
        *,
        resume: str | Path | None = None,
        overwrite: bool = True,
        keep_last: int = 3,
        snapshot_freq: int = 0,
        config: Any = None,
        test_kwargs: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Train from ``start_epoch`` (or a checkpoint) to ``max_epoch``, then evaluate.

        The main process owns ``save_dir`` while it runs (``run_folder``: locked, leftovers of
        killed writes removed). A fresh run into a folder holding checkpoints deletes them
        first when ``overwrite`` (each logged) and raises ``FileExistsError`` otherwise; the
        ``train`` command refuses unless ``--overwrite``. After every epoch ``last.pth`` is
        written atomically, and every ``snapshot_freq`` epochs (0 = never) a
        ``checkpoint_epochNNN.pth`` copy, ``keep_last`` of them kept. ``resume`` restores
        model, optimizer, scheduler, scaler, epoch and random state. Returns the final
        evaluation results ``{dataset: metrics}``.

        torchreid's ``Engine.run`` arguments keep torchreid's meaning: ``print_freq`` (log
        every N iterations; default the engine's), ``fixbase_epoch`` / ``open_layers`` (train
        only those top-level modules, e.g. ``"heads"``, for the first epochs), ``start_eval``
        / ``eval_freq``, ``test_only`` (evaluate, touch nothing in ``save_dir`` but the rank
        images, return), and the test settings ``dist_metric``, ``normalize_feature``,
        ``visrank`` (ranked images per query in ``save_dir/visrank_<dataset>/`` plus a
        summary PNG, at the final evaluation), ``visrank_topk``, ``use_metric_cuhk03``
        (refused: not supported), ``ranks``, ``rerank``. ``test_kwargs``, when given,
        overrides those test settings (the config's path). A model built with
        ``loss="softmax"`` trains without the triplet terms.
        """
        save_dir = Path(save_dir)
        test_kwargs = {
            "dist_metric": dist_metric,
            "normalize_feature": normalize_feature,
            "visrank": visrank,
            "visrank_topk": visrank_topk,
            "use_metric_cuhk03": use_metric_cuhk03,
            "ranks": list(ranks),
            "rerank": rerank,
            **(test_kwargs or {}),
        }
        if print_freq is not None:
            self.print_freq = max(1, int(print_freq))
        self._honour_model_loss()
        if test_only:
            return self.evaluate(save_dir=str(save_dir), **test_kwargs)
        fixbase = None  # as torchreid: no open_layers, nothing frozen
        if fixbase_epoch > 0 and open_layers:
            fixbase = _Fixbase(self.model, open_layers, fixbase_epoch)
        owner = run_folder.run_folder_lock(save_dir) if self.dist.is_main else nullcontext()
        with owner:
            if self.dist.is_main:
                run_folder.start_run_folder(save_dir, resume_from=resume, overwrite=overwrite)
            if resume:
                state = ckpt_io.load_checkpoint(
                    resume,
                    model=self.model,
                    optimizer=self.optimizer,
                    scheduler=self.scheduler,
                    scaler=self.scaler,
                    map_location=self.device,
                )
                start_epoch = ckpt_io.finished_epochs(state)
                self.global_step = int(state.get("step", 0))
                logger.info("resumed from %s at epoch %d", resume, start_epoch + 1)
            return self._train_and_evaluate(
                save_dir,
                start_epoch=start_epoch,
                max_epoch=max_epoch,
                eval_freq=eval_freq,
                start_eval=start_eval,
                fixbase=fixbase,
                save=dict(keep_last=keep_last, snapshot_freq=snapshot_freq),
                config=config,
                test_kwargs=test_kwargs,
                extra=extra,
            )

    def _train_and_evaluate(
        self,
        save_dir: Path,
        *,
        start_epoch: int,
        max_epoch: int,
        eval_freq: int,
        save: dict[str, Any],
        start_eval: int = 0,
        fixbase: _Fixbase | None = None,
        config: Any,
        test_kwargs: dict[str, Any],
        extra: dict[str, Any] | None,
    ) -> dict[str, dict[str, Any]]:
        self.max_epoch = max_epoch
        if self.dist.is_main and self.writer is None and max_epoch > start_epoch:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(save_dir / "tensorboard"))
        results: dict[str, dict[str, Any]] = {}
        try:
            for self.epoch in range(start_epoch, max_epoch):
                if fixbase is not None:
                    fixbase.set_epoch(self.epoch)
                self.train()
                last = self.epoch + 1 == max_epoch
                due = eval_freq > 0 and (self.epoch + 1) % eval_freq == 0
                if not last and due and self.epoch + 1 >= start_eval:
                    # torchreid draws rank images at test time only: not at periodic evaluations
                    results = self.evaluate(**{**test_kwargs, "visrank": False})
                if self.dist.is_main:
                    ckpt_io.save_run_checkpoint(
                        save_dir,
                        epoch=self.epoch + 1,  # finished epochs, torchreid's convention
                        model=self.model,
                        optimizer=self.optimizer,
                        scheduler=self.scheduler,
                        scaler=self.scaler,
                        step=self.global_step,
                        metrics={"losses": self.epoch_losses, **_summary(results)},
                        config=config,
                        extra=extra,
                        **save,
                    )
            self.epoch = max(max_epoch - 1, 0)
            results = self.evaluate(save_dir=str(save_dir), **test_kwargs)
        finally:
            if fixbase is not None:
                fixbase.restore()
            if self.writer is not None:
                for name, res in results.items():
                    self.writer.add_scalar(f"Test/{name}/mINP", res["mINP"], self.epoch)
                self.writer.close()
                self.writer = None
        return results

    def _honour_model_loss(self) -> None:
        """A model built with ``loss="softmax"`` (torchreid's classification-only setting)
        trains without the triplet terms."""
        if getattr(unwrap_model(self.model), "loss", "triplet") != "softmax":
            return
        if self.loss_settings.weights.tri:
            weights = dataclasses.replace(self.loss_settings.weights, tri=0.0)
            self.loss_settings = dataclasses.replace(self.loss_settings, weights=weights)
            logger.info("model built with loss='softmax': training without the triplet terms")


class _Fixbase:
    """torchreid's ``fixbase_epoch``: in the first ``epochs`` epochs only the ``open_layers``
    top-level modules train; then every parameter gets its own ``requires_grad`` back (frozen
    BNNeck biases stay frozen, unlike torchreid's ``open_all_layers``)."""

    def __init__(self, model: nn.Module, open_layers: str | Sequence[str] | None, epochs: int):
        self.model = unwrap_model(model)
        names = [open_layers] if isinstance(open_layers, str) else list(open_layers or [])
        unknown = [n for n in names if not isinstance(getattr(self.model, n, None), nn.Module)]
        if unknown:
            children = [n for n, _ in self.model.named_children()]
            raise ValueError(f"open_layers {unknown} are not modules of the model: {children}")
        self.open, self.epochs = set(names), epochs
        self.saved = {p: p.requires_grad for p in self.model.parameters()}

    def set_epoch(self, epoch: int) -> None:
        frozen = epoch < self.epochs
        for name, child in self.model.named_children():
            for p in child.parameters():
                p.requires_grad_(self.saved[p] and (not frozen or name in self.open))

    def restore(self) -> None:
        for p, flag in self.saved.items():
            p.requires_grad_(flag)


def _fmt(values: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in values.items() if math.isfinite(v))


def _summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    keys = ("rank1", "rank5", "rank10", "mAP", "mINP")
    return {name: {k: res[k] for k in keys if k in res} for name, res in results.items()}
