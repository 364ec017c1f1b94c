"""Export the deployed main branch to TorchScript or ONNX, checked against PyTorch first.

Both formats take any batch size; the ONNX file also any image height and width (checked
with onnxruntime at a second size; a model that cannot is exported at its fixed size). Both
carry what a user needs to feed them (``export_metadata``): the ONNX file in its
``metadata_props``, the TorchScript file as ``metadata.json`` among its extra files
(``torch.jit.load(path, _extra_files={"metadata.json": ""})``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchreid_pgflkd.models.deploy import to_deploy

logger = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHSCRIPT_METADATA = "metadata.json"


class ExportMismatchError(RuntimeError):
    """The exported model's output differs from PyTorch's beyond the tolerance."""


def export_metadata(
    *,
    image_size: Sequence[int],
    feature_dim: int,
    model_name: str = "",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    dynamic_hw: bool = False,
) -> dict[str, str]:
    """What a consumer of an exported model needs, as strings (ONNX ``metadata_props``)."""
    return {
        "model_name": model_name,
        "input_name": "images",
        "input_layout": "NCHW, RGB, float32, (x / 255 - mean) / std",
        "input_height": str(int(image_size[0])),
        "input_width": str(int(image_size[1])),
        "dynamic_height_width": str(bool(dynamic_hw)).lower(),
        "mean": json.dumps([float(m) for m in mean]),
        "std": json.dumps([float(s) for s in std]),
        "output_name": "features",
        "feature_dim": str(int(feature_dim)),
    }


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    fmt: str = "torchscript",
    image_size: tuple[int, int] = (256, 128),
    atol: float = 1e-4,
    opset: int = 17,
    model_name: str = "",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Path:
    """Export ``to_deploy(model)`` (a PGFLKD, or an already deployed model) to ``path``.

    The export is run on a random batch and compared with the PyTorch output (max abs diff
    <= ``atol``) in a temporary file; only a model that passes is moved to ``path``.
    Input: ``(B, 3, H, W)`` float images, normalised with ``mean`` / ``std``; output:
    ``(B, D)`` features. ``model_name``, the size and the normalisation go into the file's
    metadata (see the module docstring).
    """
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {FORMATS}, got {fmt!r}")
    deployed = model if not hasattr(model, "branch_names") else to_deploy(model)
    deployed = deployed.eval().cpu()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sample = torch.randn(2, 3, *image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = deployed(sample)
    meta = dict(
        image_size=image_size,
        feature_dim=expected.shape[1],
        model_name=model_name,
        mean=mean,
        std=std,
    )

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(deployed, sample)
            other = torch.randn(1, 3, *_other_size(image_size))
            try:
                with torch.no_grad():
                    diff_other = (traced(other) - deployed(other)).abs().max().item()
            except RuntimeError:  # a trace that baked in the sample's size
                diff_other = float("inf")
            props = export_metadata(**meta, dynamic_hw=diff_other <= atol)
            extra = {TORCHSCRIPT_METADATA: json.dumps(props)}
            traced.save(str(tmp), _extra_files=extra)
            got = torch.jit.load(str(tmp))(sample)
        else:
            got = _export_onnx(deployed, sample, tmp, opset, meta, atol)
        diff = (got - expected).abs().max().item()
        if not diff <= atol:
            raise ExportMismatchError(
                f"{fmt} export differs from PyTorch by {diff:.3g} (> {atol}); not written"
            )
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    logger.info("exported %s to %s (max abs diff vs PyTorch %.2e)", fmt, path, diff)
    return path


def _other_size(image_size: Sequence[int]) -> tuple[int, int]:
    """A second input size to check a dynamic height and width with (stride-32 friendly)."""
    return int(image_size[0]) + 32, int(image_size[1]) + 32


def _export_onnx(
    model: nn.Module,
    sample: torch.Tensor,
    tmp: Path,
    opset: int,
    meta: Mapping[str, Any],
    atol: float,
) -> torch.Tensor:
    """Export with dynamic batch, height and width when onnxruntime runs it at another size
    and agrees with PyTorch there; else with a dynamic batch only. Returns the ONNX output of
    ``sample``."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(
            "ONNX export needs onnx and onnxruntime: pip install 'torchreid-pgflkd[export]'"
        ) from exc
    other = torch.randn(1, 3, *_other_size(sample.shape[-2:]))
    with torch.no_grad():
        other_expected = model(other)
    for dynamic_hw in (True, False):
        axes = {0: "batch", 2: "height", 3: "width"} if dynamic_hw else {0: "batch"}
        torch.onnx.export(
            model,
            (sample,),
            str(tmp),
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": axes, "features": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        if not dynamic_hw:
            break
        try:
            (out,) = session.run(None, {"images": other.numpy()})
        except Exception as exc:  # onnxruntime raises its own error types
            logger.warning("ONNX model does not run at another image size (%s): fixed size", exc)
            continue
        if (torch.from_numpy(out) - other_expected).abs().max().item() <= atol:
            break
        logger.warning("ONNX model differs from PyTorch at another image size: fixed size")
    proto = onnx.load(str(tmp))
    props = export_metadata(**meta, dynamic_hw=dynamic_hw)
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(tmp))
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": sample.numpy()})
    return torch.from_numpy(out)
