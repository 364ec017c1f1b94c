"""Build what a validated config describes: data, model, optimiser, engine.

With ``cli/``, the only layer that reads a yacs node. The commands, the experiments and the
benchmark scripts all build through these functions, so a setting means the same everywhere.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from yacs.config import CfgNode as CN

from torchreid_pgflkd.config import adapters
from torchreid_pgflkd.engine import PGFLKDEngine, build_optimizer, build_scheduler
from torchreid_pgflkd.engine.distributed import DistInfo, seed_everything, wrap_ddp
from torchreid_pgflkd.engine.sampler import DistributedIdentitySampler
from torchreid_pgflkd.models import build_pgflkd
from torchreid_pgflkd.pose.contract import PoseGeometry
from torchreid_pgflkd.utils.io import atomic_write_text

logger = logging.getLogger(__name__)


def pose_geometry(cfg: CN) -> PoseGeometry:
    """The one pose geometry of a run: handed to both the data and the model."""
    return PoseGeometry.from_model_settings(
        num_parts=cfg.model.num_parts, last_stride=cfg.model.last_stride
    )


def prepare_synthetic(cfg: CN, *, progress: bool = True) -> CN:
    """Generate the embedded benchmark when the config uses it; point ``data`` at its folder."""
    names = {*cfg.data.sources, *cfg.data.targets}
    if adapters.SYNTHETIC_DATASET not in names:
        return cfg
    from torchreid_pgflkd.data.synthetic import generate

    folder = generate(cfg.data.root, progress=progress, **adapters.synthetic_kwargs(cfg))
    cfg = cfg.clone()
    cfg.defrost()
    cfg.data.dataset_dir = folder.name
    cfg.freeze()
    return cfg


def build_datamanager(cfg: CN, dist_info: DistInfo | None = None, *, train: bool = True):
    """A ``PoseDataManager`` whose train sampler is rank-sharded, seeded and resumable.

    Training refuses a source without any keypoints when the model uses the pose (FEB or SAB
    with ``data.pose_source`` ``keypoints`` / ``shuffled``) unless ``data.allow_missing_pose``;
    ``train=False`` (testing reads the train split only to count classes) never refuses."""
    from torchreid_pgflkd.data.datamanager import PoseDataManager
    from torchreid_pgflkd.data.pose_coverage import pose_is_used

    dist_info = dist_info or DistInfo()

    def sampler(*, data_source: Any, batch_size: int, num_instances: int):
        return DistributedIdentitySampler(
            data_source,
            batch_size,
            num_instances,
            num_replicas=dist_info.world_size,
            rank=dist_info.rank,
            seed=cfg.train.seed,
        )

    kwargs = adapters.datamanager_kwargs(cfg)
    d, m = cfg.data, cfg.model
    if not train:  # test only: the train split is still read to know the number of classes
        kwargs["num_workers"] = min(kwargs["num_workers"], 2)
        kwargs["cache_images"] = False  # would decode the whole train split for nothing
    return PoseDataManager(
        sampler=sampler,
        uses_pose=train and pose_is_used(d.pose_source, feb=m.feb, sab=m.sab),
        pin_memory=dist_info.device.type == "cuda",
        geometry=pose_geometry(cfg),
        **kwargs,
    )


def build_engine(
    cfg: CN, datamanager: Any, dist_info: DistInfo | None = None, *, progress: bool = True
) -> PGFLKDEngine:
    """Model (seeded, DDP-wrapped when distributed), optimiser, schedule and engine."""
    dist_info = dist_info or DistInfo()
    device = adapters.resolve_device(cfg) if dist_info.world_size == 1 else dist_info.device
    seed_everything(cfg.train.seed, rank=dist_info.rank)
    model = build_pgflkd(**adapters.model_kwargs(cfg, datamanager.num_train_pids))
    model = wrap_ddp(model, device)
    optimizer = build_optimizer(model, **adapters.optimizer_kwargs(cfg))
    scheduler = build_scheduler(optimizer, **adapters.scheduler_kwargs(cfg))
    return PGFLKDEngine(
        datamanager,
        model,
        optimizer,
        scheduler,
        device=device,
        dist_info=dist_info,
        progress=progress,
        **adapters.engine_kwargs(cfg),
    )


def save_config(cfg: CN, save_dir: str | os.PathLike) -> Path:
    """Write the merged config beside the checkpoints (atomically)."""
    return atomic_write_text(Path(save_dir) / "config.yaml", cfg.dump())


def public_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Evaluation results without the per-image lists (for tables and JSON)."""
    drop = {"query_paths", "gallery_paths"}
    return {name: {k: v for k, v in r.items() if k not in drop} for name, r in results.items()}
