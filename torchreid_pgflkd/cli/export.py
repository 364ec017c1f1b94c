"""``pgflkd export --weights CKPT --format torchscript|onnx``: the deployed MB, checked."""

from __future__ import annotations

import argparse
from pathlib import Path

from yacs.config import CfgNode as CN

from torchreid_pgflkd.config import adapters, load_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.models import build_pgflkd
from torchreid_pgflkd.models.export import FORMATS, export_model

HELP = "export the deployed main branch of a checkpoint to TorchScript or ONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="checkpoint (.pth) written by train")
    parser.add_argument("--format", choices=FORMATS, default="torchscript")
    parser.add_argument("--output", default="", help="output file (default: beside weights)")
    parser.add_argument(
        "--config", default="", help="config of the run (default: the one in the checkpoint)"
    )


def run(args: argparse.Namespace) -> int:
    weights = Path(args.weights)
    state = ckpt_io.read_checkpoint(weights)
    if args.config:
        cfg = load_config(args.config)
    elif isinstance(state, dict) and isinstance(state.get("config"), str):
        cfg = CN.load_cfg(state["config"])
    else:
        raise ValueError(f"{weights} stores no config: pass --config FILE")
    num_classes = (state.get("extra") or {}).get("num_classes") or state["meta"]["num_classes"]
    kwargs = adapters.model_kwargs(cfg, int(num_classes))
    kwargs.update(pretrained=False, pretrained_path=None)  # the checkpoint holds the weights
    model = build_pgflkd(**kwargs)
    ckpt_io.load_checkpoint(weights, model=model, restore_rng=False)
    suffix = ".ts" if args.format == "torchscript" else ".onnx"
    out = Path(args.output) if args.output else weights.with_suffix(suffix)
    export_model(model, out, fmt=args.format, image_size=(cfg.data.height, cfg.data.width))
    print(f"exported {args.format} model to {out}")
    return 0
