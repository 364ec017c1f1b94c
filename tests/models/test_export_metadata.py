"""Exported models take other batch sizes and image sizes, and say how to feed them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from torchreid_pgflkd.models import build_pgflkd, to_deploy
from torchreid_pgflkd.models.export import TORCHSCRIPT_METADATA, export_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_pgflkd(num_classes=4, backbone="resnet_mini").eval()


def test_onnx_has_dynamic_height_width_and_metadata(model, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    path = export_model(model, tmp_path / "m.onnx", fmt="onnx", image_size=(64, 32),
                        model_name="pgflkd_resnet_mini")  # fmt: skip
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["model_name"] == "pgflkd_resnet_mini"
    assert (props["input_height"], props["input_width"]) == ("64", "32")
    assert json.loads(props["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(props["std"]) == pytest.approx([0.229, 0.224, 0.225])
    assert props["feature_dim"] == "256" and props["dynamic_height_width"] == "true"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in ((1, 3, 64, 32), (5, 3, 128, 64)):  # another batch and another size
        images = torch.randn(*shape)
        (got,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(got), to_deploy(model)(images),
                                       atol=1e-4, rtol=1e-4)  # fmt: skip


def test_torchscript_carries_the_same_metadata(model, tmp_path: Path) -> None:
    path = export_model(model, tmp_path / "m.ts", fmt="torchscript", image_size=(64, 32),
                        model_name="pgflkd_resnet_mini")  # fmt: skip
    extra = {TORCHSCRIPT_METADATA: ""}
    scripted = torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra[TORCHSCRIPT_METADATA])
    assert meta["model_name"] == "pgflkd_resnet_mini" and meta["feature_dim"] == "256"
    images = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), to_deploy(model)(images), atol=1e-4, rtol=1e-4)
