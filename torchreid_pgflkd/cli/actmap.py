"""``pgflkd actmap --weights CKPT [--config FILE] --output DIR``: where each branch looks.

For every target dataset of the checkpoint's config (``--config`` and ``KEY VALUE``
overrides as in ``pgflkd test``), one PNG, ``DIR/actmap_<dataset>.png``: a row per query
image (``--num`` of them, spread over the query set) with its pose (skeleton, part maps,
foreground, when the dataset has keypoints) and the layer4 activation of every branch (MB,
FEB, SAB). torchreid's own tool (``visualize_actmap.py``) works too: the models return MB's
map for ``model(x, return_featuremaps=True)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torchreid_pgflkd.cli.test import (
    TargetsDataManager,
    build_checkpoint_model,
    checkpoint_run_config,
)
from torchreid_pgflkd.config import adapters, build
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.evaluation.activations import save_activation_figure
from torchreid_pgflkd.pose.keypoints import empty_pose

HELP = "draw each branch's activation maps of a checkpoint over its targets' query images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="checkpoint (.pth) written by train")
    parser.add_argument(
        "--config", default="", help="YAML file (default: the config stored in the checkpoint)"
    )
    parser.add_argument("--output", required=True, help="folder for actmap_<dataset>.png")
    parser.add_argument("--num", type=int, default=8, help="query images per dataset")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")


def run(args: argparse.Namespace) -> int:
    if args.num < 1:
        raise ValueError(f"--num must be at least 1, got {args.num}")
    weights = Path(args.weights)
    state = ckpt_io.read_checkpoint(weights)
    cfg = checkpoint_run_config(state, weights, config_path=args.config, opts=args.opts)
    if adapters.SYNTHETIC_DATASET in cfg.data.targets:
        cfg = build.prepare_synthetic(cfg, progress=not args.no_progress)
    model = build_checkpoint_model(cfg, state, weights)
    datamanager = TargetsDataManager(cfg, num_train_pids=model.num_classes)
    label = (state.get("meta") or {}).get("model_name") or weights.stem
    for name in datamanager.targets:
        query = datamanager.test_dataset[name]["query"]
        paths = [s[0] for s in query[:: max(1, len(query) // args.num)][: args.num]]
        try:
            lookup = datamanager.test_keypoint_lookup(name, "query")
            keypoints = [lookup(p) for p in paths]
        except ValueError:  # a dataset without keypoints: the figure shows no pose
            keypoints = [empty_pose() for _ in paths]
        out = save_activation_figure(
            {label: model},
            paths,
            keypoints,
            Path(args.output) / f"actmap_{name}.png",
            preprocess=datamanager.preprocess_pil_img,
            image_hw=(datamanager.height, datamanager.width),
        )
        print(f"activation maps of {len(paths)} {name} queries written to {out}")
    return 0
