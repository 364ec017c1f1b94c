"""PGFL-KD training on torchreid's ``Engine``: pose in training, the pose-free MB at test.

The engine overrides ``forward_backward`` (one training step with every loss term named),
``train`` (progress bar, per-term logging, sampler epochs), ``_evaluate`` (our fast exact
evaluator instead of torchreid's Python ranking) and ``run`` (atomic checkpoints, resume,
rank-0-only saving and evaluation). torchreid's ``test`` loop over target datasets is reused.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from torchreid_pgflkd import compat
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.engine.distributed import DistInfo, unwrap_model
from torchreid_pgflkd.evaluation import evaluate_features
from torchreid_pgflkd.losses import LossWeights, compute_losses, total_loss
from torchreid_pgflkd.pose.contract import POSE_MAPS_KEY

logger = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the run stops before anything is saved."""


class PGFLKDEngine(compat.engine_base()):
    """Train PGFL-KD (or its MB-only baseline) with torchreid's engine machinery.

    Args:
        datamanager: an object with torchreid's ``ImageDataManager`` interface whose train
            batches carry ``pose_maps`` (see ``torchreid_pgflkd.data``).
        model: a ``PGFLKD`` (optionally DDP-wrapped), already on ``device``.
        optimizer, scheduler: from ``engine.optim``; the scheduler steps once per epoch.
        device: where batches go.
        loss_weights, margin, label_smoothing, temperature, align_kind: ``losses.compute_losses``.
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
        loss_weights: LossWeights | None = None,
        margin: float | None = 0.3,
        label_smoothing: float = 0.1,
        temperature: float = 4.0,
        align_kind: str = "mse",
        amp: str = "bf16",
        channels_last: bool = False,
        grad_clip: float = 0.0,
        dist_info: DistInfo | None = None,
        print_freq: int = 20,
        progress: bool = True,
    ) -> None:
        self.device = torch.device(device)
        super().__init__(datamanager, use_gpu=self.device.type == "cuda")
        if amp not in ("none", *AMP_DTYPES):
            raise ValueError(f"amp must be one of ('none', 'bf16', 'fp16'), got {amp!r}")
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.register_model("model", model, optimizer, scheduler)
        loss_weights = loss_weights or LossWeights()
        self.loss_kwargs = dict(
            weights=loss_weights,
            margin=margin,
            label_smoothing=label_smoothing,
            temperature=temperature,
            align_kind=align_kind,
        )
        self.loss_weights = loss_weights
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
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def forward_backward(self, data: dict[str, Any]) -> dict[str, float]:
        """One optimisation step; returns every loss term (and the weighted ``loss``) as floats."""
        images = data["img"].to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        pids = data["pid"].to(self.device, non_blocking=True)
        pose_maps = data.get(POSE_MAPS_KEY)
        if pose_maps is not None:
            pose_maps = pose_maps.to(self.device, non_blocking=True)

        with self._autocast():
            outputs = self.model(images, pose_maps)
        outputs = _to_float32(outputs)  # losses in full precision
        terms = compute_losses(outputs, pids, pose_maps, **self.loss_kwargs)
        loss = total_loss(terms, self.loss_weights)
        for name, value in (*terms.items(), ("loss", loss)):
            if not torch.isfinite(value):
                raise NonFiniteLossError(
                    f"non-finite loss at step {self.global_step} (epoch {self.epoch + 1}, "
                    f"batch {getattr(self, 'batch_idx', 0) + 1}): {name} = {value.item()}. "
                    "Stopped before saving; the last checkpoint is intact. Lower the learning "
                    "rate, enable train.grad_clip, or check the input data."
                )

        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.global_step += 1
        summary = {name: value.item() for name, value in terms.items()}
        summary["loss"] = loss.item()
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
        net = unwrap_model(self.model)
        images = images.to(self.device)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            return net(images).float()

    @torch.no_grad()
    def _evaluate(
        self,
        dataset_name: str = "",
        query_loader: Any = None,
        gallery_loader: Any = None,
        dist_metric: str = "euclidean",
        normalize_feature: bool = False,
        visrank: bool = False,
        visrank_topk: int = 10,
        save_dir: str = "",
        use_metric_cuhk03: bool = False,
        ranks: Any = (1, 5, 10),
        rerank: bool = False,
    ) -> tuple[float, float]:
        """Pose-free MB features of query and gallery, ranked by the fast exact evaluator."""
        if use_metric_cuhk03:
            raise ValueError("the CUHK03 single-shot metric is not supported by this engine")
        q = self._extract(query_loader, f"{dataset_name} query")
        g = self._extract(gallery_loader, f"{dataset_name} gallery")
        if normalize_feature:
            q["feat"] = nn.functional.normalize(q["feat"], dim=1)
            g["feat"] = nn.functional.normalize(g["feat"], dim=1)
        results = evaluate_features(
            q["feat"],
            g["feat"],
            q["pids"],
            g["pids"],
            q["camids"],
            g["camids"],
            metric=dist_metric,
            rerank=rerank,
            device=self.device,
            progress=False,
        )
        results["epoch"] = self.epoch + 1
        results["query_paths"], results["gallery_paths"] = q["paths"], g["paths"]
        self.last_results[dataset_name] = results
        self.last_features[dataset_name] = (q, g)  # for figures, without extracting again
        logger.info(
            "%s: Rank-1 %.1f%%  Rank-5 %.1f%%  mAP %.1f%%  mINP %.1f%%",
            dataset_name,
            100 * results["rank1"],
            100 * results["rank5"],
            100 * results["mAP"],
            100 * results["mINP"],
        )
        if visrank and save_dir:
            self._save_ranked_list(dataset_name, q, g, Path(save_dir), visrank_topk)
        return results["rank1"], results["mAP"]

    def _extract(self, loader: Any, what: str) -> dict[str, Any]:
        feats, pids, camids, paths = [], [], [], []
        for data in tqdm(loader, desc=f"features {what}", leave=False, disable=not self.progress):
            feats.append(self.extract_features(data["img"]).cpu())
            pids.append(torch.as_tensor(data["pid"]))
            camids.append(torch.as_tensor(data["camid"]))
            paths.extend(data.get("impath", []))
        return {
            "feat": torch.cat(feats),
            "pids": torch.cat(pids).numpy(),
            "camids": torch.cat(camids).numpy(),
            "paths": paths,
        }

    def _save_ranked_list(
        self, name: str, q: dict[str, Any], g: dict[str, Any], save_dir: Path, topk: int
    ) -> None:
        from torchreid_pgflkd.evaluation import pairwise_distance, save_ranked_lists

        distmat = pairwise_distance(q["feat"], g["feat"], "euclidean")
        out = save_dir / f"ranked_{name}.png"
        save_ranked_lists(
            distmat, q["paths"], g["paths"], q["pids"], g["pids"], q["camids"], g["camids"],
            out, topk=topk,
        )  # fmt: skip
        logger.info("ranked lists saved to %s", out)

    @torch.no_grad()
    def evaluate_branches(self, metric: str = "euclidean") -> dict[str, dict[str, Any]]:
        """Every branch's BN feature, computed *with* pose, ranked: ``{"<dataset>/<branch>": ..}``.

        For ablations: how good are the teachers (FEB, SAB) that MB distils from? Rank 0 only.
        """
        if not self.dist.is_main:
            return {}
        net = unwrap_model(self.model)
        was_training = net.training
        net.eval()
        out: dict[str, dict[str, Any]] = {}
        try:
            for name in self.datamanager.targets:
                loaders = self.datamanager.pose_test_loaders(name)
                feats: dict[str, dict[str, Any]] = {}
                for split, loader in loaders.items():
                    per_branch: dict[str, list] = defaultdict(list)
                    pids, camids = [], []
                    for data in loader:
                        images = data["img"].to(self.device)
                        if self.channels_last:
                            images = images.contiguous(memory_format=torch.channels_last)
                        with self._autocast():
                            res = net.forward_train(images, data[POSE_MAPS_KEY].to(self.device))
                        for branch in net.branch_names:
                            per_branch[branch].append(res[branch]["bn_feat"].float().cpu())
                        pids.append(torch.as_tensor(data["pid"]))
                        camids.append(torch.as_tensor(data["camid"]))
                    feats[split] = {
                        "feat": {b: torch.cat(v) for b, v in per_branch.items()},
                        "pids": torch.cat(pids).numpy(),
                        "camids": torch.cat(camids).numpy(),
                    }
                q, g = feats["query"], feats["gallery"]
                for branch in net.branch_names:
                    res = evaluate_features(
                        q["feat"][branch], g["feat"][branch], q["pids"], g["pids"],
                        q["camids"], g["camids"], metric=metric, progress=False,
                    )  # fmt: skip
                    out[f"{name}/{branch}"] = res
                    logger.info(
                        "%s %s (with pose): Rank-1 %.1f%%  mAP %.1f%%",
                        name, branch, 100 * res["rank1"], 100 * res["mAP"],
                    )  # fmt: skip
        finally:
            net.train(was_training)
        return out

    def evaluate(self, **test_kwargs: Any) -> dict[str, dict[str, Any]]:
        """Evaluate every target set (rank 0 only); returns ``{dataset: results}``."""
        if not self.dist.is_main:
            return {}
        self.last_results = {}
        self.test(**test_kwargs)
        return self.last_results

    # ---------------------------------------------------------------------- run
    def run(
        self,
        *,
        save_dir: str | Path,
        max_epoch: int,
        start_epoch: int = 0,
        eval_freq: int = -1,
        resume: str | Path | None = None,
        keep_last: int = 3,
        config: Any = None,
        test_kwargs: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Train from ``start_epoch`` (or a checkpoint) to ``max_epoch``, then evaluate.

        A checkpoint is written atomically after every epoch (``last.pth``, plus epoch files,
        ``keep_last`` of them kept); ``resume`` restores model, optimizer, scheduler, scaler,
        epoch and random state. Returns the final evaluation results.
        """
        save_dir = Path(save_dir)
        test_kwargs = dict(test_kwargs or {})
        if resume:
            state = ckpt_io.load_checkpoint(
                resume,
                model=self.model,
                optimizer=self.optimizer,
                scheduler=self.scheduler,
                scaler=self.scaler,
                map_location=self.device,
            )
            start_epoch = int(state["epoch"]) + 1
            self.global_step = int(state.get("step", 0))
            logger.info("resumed from %s at epoch %d", resume, start_epoch + 1)
        self.max_epoch = max_epoch
        if self.dist.is_main and self.writer is None and max_epoch > start_epoch:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(save_dir / "tensorboard"))
        results: dict[str, dict[str, Any]] = {}
        try:
            for self.epoch in range(start_epoch, max_epoch):
                self.train()
                last = self.epoch + 1 == max_epoch
                if not last and eval_freq > 0 and (self.epoch + 1) % eval_freq == 0:
                    results = self.evaluate(**test_kwargs)
                if self.dist.is_main:
                    ckpt_io.save_epoch_checkpoint(
                        save_dir,
                        epoch=self.epoch,
                        keep_last=keep_last,
                        model=self.model,
                        optimizer=self.optimizer,
                        scheduler=self.scheduler,
                        scaler=self.scaler,
                        step=self.global_step,
                        metrics={"losses": self.epoch_losses, **_summary(results)},
                        config=config,
                        extra=extra,
                    )
            self.epoch = max(max_epoch - 1, 0)
            results = self.evaluate(save_dir=str(save_dir), **test_kwargs)
        finally:
            if self.writer is not None:
                for name, res in results.items():
                    self.writer.add_scalar(f"Test/{name}/mINP", res["mINP"], self.epoch)
                self.writer.close()
                self.writer = None
        return results


def _to_float32(outputs: Any) -> Any:
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    if isinstance(outputs, dict):
        return {k: _to_float32(v) for k, v in outputs.items()}
    return outputs


def _fmt(values: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in values.items() if math.isfinite(v))


def _summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    keys = ("rank1", "rank5", "rank10", "mAP", "mINP")
    return {name: {k: res[k] for k in keys if k in res} for name, res in results.items()}
