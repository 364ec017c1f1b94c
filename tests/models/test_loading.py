"""A checkpoint -> the model it was trained as: ``load_model``, ``pgflkd_auto`` in torchreid's
``FeatureExtractor``, and the refusals that keep a wrong architecture from loading quietly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from weights_helpers import features, trained_like

import torchreid_pgflkd
from torchreid_pgflkd import compat
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.models import PGFLKD, AutoPGFLKD, BNNeckReID, build_pgflkd
from torchreid_pgflkd.models.loading import (
    check_shared_layer4,
    infer_architecture,
    model_kwargs_from_checkpoint,
)

IMAGES = torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(0))


_trained_like = trained_like


def _features(model: torch.nn.Module) -> torch.Tensor:
    return features(model, IMAGES)


@pytest.fixture
def resnet18_ckpt(tmp_path: Path) -> tuple[Path, PGFLKD]:
    model = _trained_like(build_pgflkd(num_classes=7, backbone="resnet18", last_stride=2))
    config = "model:\n  backbone: resnet18\n  last_stride: 2\n  share_layer4: false\n"
    path = ckpt_io.save_checkpoint(tmp_path / "r18.pth", model=model, epoch=1, config=config)
    return path, model


def test_load_model_reads_the_architecture_from_the_checkpoint(resnet18_ckpt) -> None:
    path, model = resnet18_ckpt
    loaded = torchreid_pgflkd.load_model(path)
    assert isinstance(loaded, PGFLKD) and not loaded.training
    assert (loaded.backbone_name, loaded.num_classes, loaded.last_stride) == ("resnet18", 7, 2)
    torch.testing.assert_close(_features(loaded), _features(model))


def test_load_model_reads_torchreid_checkpoints_and_baselines(tmp_path: Path) -> None:
    model = _trained_like(build_pgflkd(num_classes=5, backbone="resnet_mini", sab=False))
    path = tmp_path / "model.pth.tar-3"  # what torchreid's save_checkpoint writes
    torch.save({"state_dict": model.state_dict(), "epoch": 3, "rank1": np.float64(0.5)}, path)
    loaded = torchreid_pgflkd.load_model(path)
    assert loaded.branch_names == ("mb", "feb") and loaded.num_classes == 5
    torch.testing.assert_close(_features(loaded), _features(model))

    baseline = _trained_like(BNNeckReID(num_classes=3, backbone="resnet18"))
    torch.save({"state_dict": baseline.state_dict()}, tmp_path / "bnneck.pth")
    loaded = torchreid_pgflkd.load_model(tmp_path / "bnneck.pth")
    assert isinstance(loaded, BNNeckReID)
    torch.testing.assert_close(_features(loaded), _features(baseline))


def test_feature_extractor_with_pgflkd_auto_gets_the_trained_model(tmp_path: Path) -> None:
    model = _trained_like(build_pgflkd(num_classes=7, backbone="resnet18"))
    path = ckpt_io.save_checkpoint(tmp_path / "r18.pth", model=model, epoch=1)
    extractor = compat.feature_extractor()(
        model_name="pgflkd_auto",
        model_path=str(path),
        image_size=(64, 32),
        device="cpu",
        verbose=False,
    )
    assert isinstance(extractor.model, AutoPGFLKD) and not extractor.model.training
    assert extractor.model.backbone_name == "resnet18" and extractor.model.num_classes == 7
    torch.testing.assert_close(extractor(IMAGES), _features(model))


def test_pgflkd_auto_fails_loudly_on_other_weights(tmp_path: Path) -> None:
    baseline = BNNeckReID(num_classes=3, backbone="resnet18")
    torch.save({"state_dict": baseline.state_dict()}, tmp_path / "bnneck.pth")
    model = compat.build_torchreid_model("pgflkd_auto", num_classes=1, pretrained=False)
    with pytest.raises(RuntimeError, match="no architecture until a checkpoint is loaded"):
        model.eval()(IMAGES)
    with pytest.raises(ValueError, match="BNNeckReID.*bnneck_resnet18"):
        compat.load_pretrained_weights()(model, str(tmp_path / "bnneck.pth"))
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a PGFL-KD or BNNeck checkpoint"):
        compat.load_pretrained_weights()(model, str(tmp_path / "other.pth"))


def test_a_shared_layer4_config_is_refused_for_per_branch_weights(tmp_path: Path) -> None:
    model = _trained_like(build_pgflkd(num_classes=4, backbone="resnet_mini"))
    weights = model.state_dict()
    with pytest.raises(ValueError, match="model.share_layer4"):
        check_shared_layer4(weights, share_layer4=True)
    check_shared_layer4(weights, share_layer4=False)
    state = {"state_dict": weights, "config": "model:\n  share_layer4: true\n"}
    with pytest.raises(ValueError, match="model.share_layer4"):
        model_kwargs_from_checkpoint(state)
    state = {"state_dict": weights, "config": "model:\n  backbone: resnet18\n"}
    with pytest.raises(ValueError, match="model.backbone 'resnet18'.*resnet_mini"):
        model_kwargs_from_checkpoint(state)


def test_architecture_inference_names_branches_and_sharing() -> None:
    shared = build_pgflkd(num_classes=3, backbone="resnet_mini", share_layer4=True, feb=False)
    cls, kwargs = infer_architecture(shared.state_dict())
    assert cls is PGFLKD
    assert kwargs == dict(backbone="resnet_mini", feb=False, sab=True, share_layer4=True)
    split = _trained_like(build_pgflkd(num_classes=3, backbone="resnet_mini"))
    assert infer_architecture(split.state_dict())[1]["share_layer4"] is False
