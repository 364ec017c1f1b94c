"""Export the deployed main branch to TorchScript or ONNX, checked against PyTorch first."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from torchreid_pgflkd.models.deploy import to_deploy

logger = logging.getLogger(__name__)

FORMATS = ("torchscript", "onnx")


class ExportMismatchError(RuntimeError):
    """The exported model's output differs from PyTorch's beyond the tolerance."""


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    fmt: str = "torchscript",
    image_size: tuple[int, int] = (256, 128),
    atol: float = 1e-4,
    opset: int = 17,
) -> Path:
    """Export ``to_deploy(model)`` (a PGFLKD, or an already deployed model) to ``path``.

    The export is run on a random batch and compared with the PyTorch output (max abs diff
    <= ``atol``) in a temporary file; only a model that passes is moved to ``path``.
    Input: ``(B, 3, H, W)`` float images, normalised; output: ``(B, D)`` features.
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

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(deployed, sample)
            traced.save(str(tmp))
            got = torch.jit.load(str(tmp))(sample)
        else:
            got = _export_onnx(deployed, sample, tmp, opset)
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


def _export_onnx(model: nn.Module, sample: torch.Tensor, tmp: Path, opset: int) -> torch.Tensor:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(
            "ONNX export needs onnx and onnxruntime: pip install 'torchreid-pgflkd[export]'"
        ) from exc
    torch.onnx.export(
        model,
        (sample,),
        str(tmp),
        input_names=["images"],
        output_names=["features"],
        dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"images": sample.numpy()})
    return torch.from_numpy(out)
