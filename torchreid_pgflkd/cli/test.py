"""``pgflkd test --weights CKPT [--config FILE] [KEY VALUE ...]``: evaluate the pose-free MB.

The run's config is the one stored in the checkpoint; ``--config FILE`` replaces it and
``KEY VALUE`` overrides go on top of either. A config that contradicts the checkpoint where
the weights' shapes cannot tell (``GUARDED_KEYS``, and a shared layer4 for weights with one
per branch) is refused, naming the key. The model is built without ImageNet weights and with
the checkpoint's number of classes, and only the target datasets are read: no training set.

``checkpoint_run_config``, ``build_checkpoint_model`` and ``TargetsDataManager`` are shared
with ``pgflkd export`` and ``pgflkd actmap``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from yacs.config import CfgNode as CN

from torchreid_pgflkd.cli.train import report
from torchreid_pgflkd.config import adapters, build, check_cfg, get_default_config, load_config
from torchreid_pgflkd.data.datamanager import PoseDataManager, build_dataset
from torchreid_pgflkd.data.loaders import build_test_loader, dataset_image_hook
from torchreid_pgflkd.data.transforms import build_pose_transforms
from torchreid_pgflkd.engine import PGFLKDEngine
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.models import build_pgflkd
from torchreid_pgflkd.models.loading import (
    check_shared_layer4,
    checkpoint_config,
    checkpoint_num_classes,
    checkpoint_weights,
)
from torchreid_pgflkd.pose.maps import PoseMapper, PriorMapper

HELP = "evaluate a trained checkpoint on its target datasets (config from the checkpoint)"

# Settings a checkpoint fixes whose mismatch no tensor shape reveals: a model built with
# another value loads without error and gives other (worse) features.
GUARDED_KEYS: tuple[str, ...] = (
    "model.backbone",
    "model.share_layer4",
    "model.last_stride",
    "model.num_parts",
    "data.height",
    "data.width",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="checkpoint (.pth) written by train")
    parser.add_argument(
        "--config", default="", help="YAML file (default: the config stored in the checkpoint)"
    )
    parser.add_argument("--output", default="", help="results JSON (default: beside weights)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")


def run(args: argparse.Namespace) -> int:
    weights = Path(args.weights)
    state = ckpt_io.read_checkpoint(weights)
    cfg = checkpoint_run_config(state, weights, config_path=args.config, opts=args.opts)
    if adapters.SYNTHETIC_DATASET in cfg.data.targets:
        cfg = build.prepare_synthetic(cfg, progress=not args.no_progress)
    device = adapters.resolve_device(cfg)
    model = build_checkpoint_model(cfg, state, weights, device=device)
    datamanager = TargetsDataManager(cfg, num_train_pids=model.num_classes)
    engine = PGFLKDEngine(
        datamanager,
        model,
        None,
        device=device,
        progress=not args.no_progress,
        **adapters.engine_kwargs(cfg),
    )
    results = engine.evaluate(save_dir=str(weights.parent), **adapters.test_kwargs(cfg))
    if cfg.test.eval_branches:  # ablations: every branch, FEB and SAB with pose
        results.update(engine.evaluate_branches(metric=cfg.test.metric))
    report(results, Path(args.output) if args.output else weights.with_suffix(".results.json"))
    return 0


# ------------------------------------------------------------------ checkpoint -> config


def checkpoint_run_config(
    state: Any,
    weights: str | os.PathLike,
    *,
    config_path: str | os.PathLike | None = None,
    opts: Sequence[str] = (),
) -> CN:
    """The validated, frozen config of a checkpoint: ``config_path`` (else the stored config)
    with ``opts`` on top; refused where it contradicts the stored config (``GUARDED_KEYS``)."""
    stored = checkpoint_config(state)
    if config_path:
        cfg = load_config(config_path, opts)
    elif stored is not None:
        cfg = config_from_dict(stored, opts, where=f"the config stored in {weights}")
    else:
        raise ValueError(
            f"{weights} stores no config (a checkpoint saved by torchreid?): pass --config FILE "
            "with the settings it was trained with"
        )
    if stored is not None:
        check_against_checkpoint(cfg, stored, weights)
    return cfg


def config_from_dict(stored: Mapping[str, Any], opts: Sequence[str], *, where: str) -> CN:
    """Defaults, then ``stored`` (a config as a dict), then ``KEY VALUE`` ``opts``; validated."""
    cfg = get_default_config()
    if len(opts) % 2:
        raise ValueError(f"overrides must be KEY VALUE pairs, got an odd list: {list(opts)}")
    try:
        cfg.merge_from_other_cfg(CN(dict(stored)))
    except (KeyError, ValueError, AssertionError) as exc:
        raise ValueError(
            f"{where} does not fit this version's config ({exc}): pass --config"
        ) from exc
    try:
        cfg.merge_from_list(list(opts))
    except (KeyError, ValueError, AssertionError) as exc:
        raise ValueError(f"bad override in {list(opts)}: {exc}") from exc
    check_cfg(cfg)
    cfg.freeze()
    return cfg


def check_against_checkpoint(
    cfg: CN, stored: Mapping[str, Any], weights: str | os.PathLike
) -> None:
    """``ValueError`` naming the first of ``GUARDED_KEYS`` where ``cfg`` and ``stored`` differ."""
    for key in GUARDED_KEYS:
        section, name = key.split(".")
        have = (stored.get(section) or {}).get(name)
        if have is None:  # an older checkpoint without the key: nothing to compare
            continue
        want = cfg[section][name]
        if want != have:
            raise ValueError(
                f"config {key}={want!r} contradicts checkpoint {weights}, which was trained with "
                f"{key}={have!r}; the weights would load and give wrong features. Drop the "
                f"override (the checkpoint's config is used by default) or set {key} {have!r}"
            )


def build_checkpoint_model(
    cfg: CN, state: Any, weights: str | os.PathLike, *, device: torch.device | str = "cpu"
) -> torch.nn.Module:
    """The checkpoint's model as ``cfg`` describes it: no ImageNet weights, the checkpoint's
    number of classes, loaded strictly, in eval mode on ``device``."""
    tensors = checkpoint_weights(state)
    check_shared_layer4(tensors, cfg.model.share_layer4)
    kwargs = adapters.model_kwargs(cfg, checkpoint_num_classes(state, tensors))
    kwargs.update(pretrained=False, pretrained_path=None)  # the checkpoint holds the weights
    model = build_pgflkd(**kwargs)
    ckpt_io.load_checkpoint(weights, model=model, restore_rng=False)
    return model.to(device).eval()


# ------------------------------------------------------------------------ target data


class TargetsDataManager(PoseDataManager):
    """The test side of a ``PoseDataManager`` (the loaders, ``fetch_test_loaders``,
    ``pose_test_loaders``, ``test_keypoint_lookup``, ``preprocess_pil_img``) for the config's
    target datasets only: no training set is read. ``num_train_pids`` is given (the
    checkpoint's); there is no ``train_loader``."""

    def __init__(self, cfg: CN, *, num_train_pids: int, pin_memory: bool = False) -> None:
        d = cfg.data
        self.sources: list[str] = []
        self.targets = list(d.targets)
        self.height, self.width = int(d.height), int(d.width)
        geometry = build.pose_geometry(cfg)
        self.geometry = geometry
        self.pose_source = d.pose_source
        if d.pose_source in ("stripes", "none"):
            kind = "stripes" if d.pose_source == "stripes" else "empty"
            self.mapper = PriorMapper(
                num_parts=geometry.num_parts, kind=kind, stride=geometry.stride
            )
        else:
            self.mapper = PoseMapper.from_geometry(
                geometry, threshold=d.visibility_threshold, soft=d.soft_visibility
            )
        self.num_parts = self.mapper.num_parts
        _, self.transform_te = build_pose_transforms(height=self.height, width=self.width)
        self.train_loader = self.train_sampler = self.train_set = None
        self._num_train_pids, self._num_train_cams = int(num_train_pids), 0
        self._loader_kwargs = dict(
            batch_size=cfg.sampler.test_batch_size,
            num_workers=min(d.workers, 2),
            pin_memory=pin_memory,
        )
        self.test_loader: dict[str, dict[str, Any]] = {}
        self.test_dataset: dict[str, dict[str, list]] = {}
        self._test_sets: dict[str, Any] = {}
        dataset_kwargs = adapters.dataset_kwargs(cfg)
        for name in self.targets:
            ds = build_dataset(name, root=d.root, mode="query", **dataset_kwargs.get(name, {}))
            self._test_sets[name] = ds
            self.test_dataset[name] = {"query": ds.query, "gallery": ds.gallery}
            self.test_loader[name] = {
                split: build_test_loader(
                    samples,
                    transform=self.transform_te,
                    image_hook=dataset_image_hook(ds, split),
                    **self._loader_kwargs,
                )
                for split, samples in self.test_dataset[name].items()
            }
