"""A checkpoint of another architecture cannot load quietly through torchreid's merge; the loads
that are right (the checkpoint's own architecture, another number of identities, partial loads
that say so) still work."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from weights_helpers import features, trained_like

import torchreid_pgflkd
from torchreid_pgflkd import compat
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.models import PGFLKD, AutoPGFLKD, BNNeckReID, build_pgflkd
from torchreid_pgflkd.models.load_guard import ForeignCheckpointError

IMAGES = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(0))


_trained_like = trained_like


def _features(model: torch.nn.Module) -> torch.Tensor:
    return features(model, IMAGES)


def _extractor(name: str, path: Path):
    return compat.feature_extractor()(
        model_name=name, model_path=str(path), image_size=(64, 32), device="cpu", verbose=False
    )


@pytest.fixture(scope="module")
def resnet18_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, PGFLKD]:
    model = _trained_like(build_pgflkd(num_classes=7, backbone="resnet18"))
    folder = tmp_path_factory.mktemp("ckpt")
    return ckpt_io.save_checkpoint(folder / "r18.pth", model=model, epoch=1), model


def test_feature_extractor_refuses_a_checkpoint_of_another_backbone(resnet18_ckpt) -> None:
    path, _ = resnet18_ckpt
    # 'pgflkd' is the ResNet-50: torchreid would keep the few stem tensors that fit and leave
    # the rest random, printing only a discard list.
    with pytest.raises(ForeignCheckpointError) as info:
        _extractor("pgflkd", path)
    text = str(info.value)
    assert "PGFLKD with backbone resnet50" in text
    assert "layer4.mb" in text and "stem" in text  # where the model keeps its own values
    assert "pgflkd_auto" in text and "torchreid_pgflkd.load_model(path)" in text


def test_pgflkd_auto_and_load_model_read_the_same_file(resnet18_ckpt) -> None:
    path, model = resnet18_ckpt
    extractor = _extractor("pgflkd_auto", path)
    assert isinstance(extractor.model, AutoPGFLKD) and extractor.model.backbone_name == "resnet18"
    torch.testing.assert_close(extractor(IMAGES), _features(model))
    torch.testing.assert_close(_features(torchreid_pgflkd.load_model(path)), _features(model))


def test_the_right_name_with_another_number_of_identities_loads(resnet18_ckpt) -> None:
    # FeatureExtractor builds num_classes=1: torchreid's merge keeps the model's own
    # classifiers (the checkpoint's have 7 rows), which features never use.
    path, model = resnet18_ckpt
    extractor = _extractor("pgflkd_resnet18", path)
    assert extractor.model.heads["mb"].classifier.weight.shape[0] == 1
    torch.testing.assert_close(extractor(IMAGES), _features(model))


def test_a_checkpoint_without_batch_counters_loads(tmp_path: Path) -> None:
    model = _trained_like(build_pgflkd(num_classes=3, backbone="resnet_mini"))
    weights = {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    torch.save({"state_dict": weights}, tmp_path / "old.pth")
    extractor = _extractor("pgflkd_resnet_mini", tmp_path / "old.pth")
    torch.testing.assert_close(extractor(IMAGES), _features(model))


def test_a_checkpoint_without_the_pose_branches_is_refused(tmp_path: Path) -> None:
    # A baseline checkpoint (MB only) into the full model: FEB and SAB would stay random.
    baseline = _trained_like(
        build_pgflkd(num_classes=3, backbone="resnet_mini", feb=False, sab=False)
    )
    torch.save({"state_dict": baseline.state_dict()}, tmp_path / "mb.pth")
    model = build_pgflkd(num_classes=3, backbone="resnet_mini")
    with pytest.raises(
        ForeignCheckpointError, match=r"layer4\.feb .*layer4\.sab|layer4\.sab .*layer4\.feb"
    ):
        compat.load_pretrained_weights()(model, str(tmp_path / "mb.pth"))


def test_self_loads_and_foreign_loads_pass() -> None:
    model = _trained_like(build_pgflkd(num_classes=3, backbone="resnet_mini"))
    before = _features(model)
    model.load_state_dict(model.state_dict())  # all own: nothing changes
    model.load_state_dict(model.state_dict(keep_vars=True))
    torch.testing.assert_close(_features(model), before)

    other = _trained_like(build_pgflkd(num_classes=3, backbone="resnet_mini"), seed=1)
    model.load_state_dict(other.state_dict())  # strict, all foreign
    torch.testing.assert_close(_features(model), _features(other))

    # A deliberate partial load: only the tensors to load, strict=False.
    fresh = build_pgflkd(num_classes=3, backbone="resnet_mini")
    stem = {k: v for k, v in other.state_dict().items() if k.startswith("stem.")}
    result = fresh.load_state_dict(stem, strict=False)
    assert result.missing_keys and not result.unexpected_keys
    torch.testing.assert_close(fresh.stem[0].weight, other.stem[0].weight)


def test_a_merge_built_by_hand_is_refused_whatever_strict_says() -> None:
    model = build_pgflkd(num_classes=3, backbone="resnet_mini")
    other = build_pgflkd(num_classes=3, backbone="resnet_mini")
    merged = {**model.state_dict(), "stem.0.weight": other.state_dict()["stem.0.weight"]}
    for strict in (True, False):
        with pytest.raises(ForeignCheckpointError, match="only 1 come from the checkpoint"):
            model.load_state_dict(merged, strict=strict)
    # A copy of a tensor is not the model's own: an equal but separate state dict loads.
    copied = {k: v.clone() for k, v in merged.items()}
    model.load_state_dict(copied)


def test_bnneck_refuses_another_backbone_and_names_its_fix(tmp_path: Path) -> None:
    small = _trained_like(BNNeckReID(num_classes=3, backbone="resnet_mini"))
    torch.save({"state_dict": small.state_dict()}, tmp_path / "bnneck.pth")
    model = BNNeckReID(num_classes=3, backbone="resnet18")
    with pytest.raises(ForeignCheckpointError, match=r"load_model\(path\).*bnneck_"):
        compat.load_pretrained_weights()(model, str(tmp_path / "bnneck.pth"))
    same = BNNeckReID(num_classes=5, backbone="resnet_mini")  # another number of identities
    compat.load_pretrained_weights()(same, str(tmp_path / "bnneck.pth"))
    torch.testing.assert_close(_features(same), _features(small))


def test_our_partial_pretrained_load_still_works(tmp_path: Path) -> None:
    """``engine.checkpoint.load_pretrained_weights`` initialises from what fits, on purpose."""
    baseline = _trained_like(
        build_pgflkd(num_classes=4, backbone="resnet_mini", feb=False, sab=False)
    )
    path = ckpt_io.save_checkpoint(tmp_path / "mb.pth", model=baseline, epoch=1)
    model = build_pgflkd(num_classes=9, backbone="resnet_mini")
    report = ckpt_io.load_pretrained_weights(model, path)
    assert any(k.startswith("layer4.feb.") for k in report.missing)
    assert ("heads.mb.classifier.weight", (4, 256), (9, 256)) in report.mismatched
    torch.testing.assert_close(model.stem[0].weight, baseline.stem[0].weight)
    torch.testing.assert_close(_features(model), _features(baseline))
