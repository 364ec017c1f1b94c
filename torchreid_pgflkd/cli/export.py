"""``pgflkd export --weights CKPT --format torchscript|onnx``: the deployed MB, checked.

The model and input size come from the config stored in the checkpoint (``--config`` replaces
it, as for ``pgflkd test``). A checkpoint without a config (saved by torchreid's own engine)
is read from its weights alone (``models.loading``); its input size is then ``--image-size``
(default 256x128; the ONNX file accepts other sizes too).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from torchreid_pgflkd.cli.test import build_checkpoint_model, checkpoint_run_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.models.export import FORMATS, export_model
from torchreid_pgflkd.models.loading import (
    checkpoint_config,
    checkpoint_weights,
    infer_architecture,
    load_model,
    model_name,
)

HELP = "export the deployed main branch of a checkpoint to TorchScript or ONNX"
DEFAULT_IMAGE_SIZE = (256, 128)
logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="checkpoint (.pth) written by train")
    parser.add_argument("--format", choices=FORMATS, default="torchscript")
    parser.add_argument("--output", default="", help="output file (default: beside weights)")
    parser.add_argument(
        "--config", default="", help="config of the run (default: the one in the checkpoint)"
    )
    parser.add_argument(
        "--image-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        default=None,
        help="input size for a checkpoint without a config (default 256 128)",
    )


def run(args: argparse.Namespace) -> int:
    weights = Path(args.weights)
    state = ckpt_io.read_checkpoint(weights)
    cls, kwargs = infer_architecture(checkpoint_weights(state))
    meta = state.get("meta") if isinstance(state, dict) else None
    name = (meta or {}).get("model_name") or model_name(cls, kwargs["backbone"])
    if args.config or checkpoint_config(state) is not None:
        cfg = checkpoint_run_config(state, weights, config_path=args.config)
        image_size = (cfg.data.height, cfg.data.width)
        if args.image_size and tuple(args.image_size) != image_size:
            raise ValueError(
                f"--image-size {args.image_size} contradicts the config's data.height/width "
                f"{list(image_size)} the checkpoint was trained at"
            )
        model = build_checkpoint_model(cfg, state, weights)
    else:
        image_size = tuple(args.image_size or DEFAULT_IMAGE_SIZE)
        logger.warning(
            "%s stores no config (a torchreid checkpoint?): architecture read from its weights "
            "(%s), input size %dx%d",
            weights,
            name,
            *image_size,
        )
        model = load_model(weights)
    suffix = ".ts" if args.format == "torchscript" else ".onnx"
    out = Path(args.output) if args.output else weights.with_suffix(suffix)
    export_model(model, out, fmt=args.format, image_size=image_size, model_name=name)
    print(f"exported {args.format} model to {out}")
    return 0
