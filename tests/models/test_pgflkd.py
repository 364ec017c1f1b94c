"""The PGFL-KD model: torchreid integration, shapes, gradients, deploy, pose contract."""

from __future__ import annotations

import pytest
import torch

import torchreid_pgflkd
from torchreid_pgflkd import compat
from torchreid_pgflkd.models import PGFLKD, BNNeckReID, build_pgflkd, to_deploy
from torchreid_pgflkd.pose.contract import feature_size

SMALL = (64, 32)  # image size for the ResNet-18 tests: 4x2 feature map


def _pose(batch: int, parts: int, hw: tuple[int, int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, parts + 1, *feature_size(hw), generator=g)


def test_build_model_through_torchreid() -> None:
    build_model = compat.submodule("models").build_model
    model = build_model("pgflkd_resnet18", num_classes=10, loss="triplet", pretrained=False)
    assert isinstance(model, PGFLKD) and model.backbone_name == "resnet18"
    assert model.heads["mb"].classifier.out_features == 10
    assert "pgflkd" in compat.model_factory() and "pgflkd_resnet50" in compat.model_factory()


def test_register_is_idempotent_and_never_clobbers_torchreid() -> None:
    torchreid_pgflkd.register()
    torchreid_pgflkd.register()
    with pytest.raises(ValueError, match="already taken by torchreid"):
        compat.register_model("resnet50", lambda **kw: None)


def test_eval_needs_no_pose_and_train_returns_named_branches() -> None:
    model = build_pgflkd(num_classes=5, backbone="resnet18").eval()
    images = torch.randn(3, 3, *SMALL)
    with torch.no_grad():
        feat = model(images)
    assert feat.shape == (3, 512)

    model.train()
    out = model(images, _pose(3, 6, SMALL))
    for name in ("mb", "feb", "sab"):
        assert out[name]["feat"].shape == (3, 512)
        assert out[name]["bn_feat"].shape == (3, 512)
        assert out[name]["logits"].shape == (3, 5)
    assert out["sab"]["part_activations"].shape == (3, 6, *feature_size(SMALL))
    assert set(out["interaction"]) == {"feb", "sab"}
    assert out["interaction"]["feb"].shape == (5, 512)  # FEB's classifier weight


def test_resnet50_eval_feature_is_2048_at_256x128() -> None:
    model = torchreid_pgflkd.build_pgflkd(num_classes=751).eval()
    with torch.no_grad():
        feat = model(torch.randn(2, 3, 256, 128))
    assert feat.shape == (2, 2048)
    assert model.feature_maps(torch.randn(1, 3, 256, 128))["mb"].shape == (1, 2048, 16, 8)


@pytest.mark.parametrize("share_layer4", [False, True])
def test_gradients_reach_every_trainable_parameter(share_layer4: bool) -> None:
    torch.manual_seed(0)
    model = build_pgflkd(num_classes=4, backbone="resnet18", share_layer4=share_layer4).train()
    out = model(torch.randn(4, 3, *SMALL), _pose(4, 6, SMALL))
    # Every output a loss uses; a branch built but never used would leave parameters untouched.
    total = sum(t.float().pow(2).mean() for branch in out.values() for t in branch.values())
    total.backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))
    ]
    assert not missing, f"parameters without gradient: {missing}"


def test_pose_maps_of_wrong_shape_name_the_expected_shape() -> None:
    model = build_pgflkd(num_classes=4, backbone="resnet18").train()
    images = torch.randn(2, 3, *SMALL)
    h, w = feature_size(SMALL)
    with pytest.raises(ValueError, match=rf"\(2, 7, {h}, {w}\)"):
        model(images, torch.rand(2, 6, h, w))  # P maps without the foreground channel
    with pytest.raises(ValueError, match=rf"\(2, 7, {h}, {w}\).*got \(2, 7, {2 * h}, {2 * w}\)"):
        model(images, torch.rand(2, 7, 2 * h, 2 * w))
    with pytest.raises(ValueError, match="need pose_maps"):
        model(images)


def test_baseline_configuration_trains_without_pose() -> None:
    model = build_pgflkd(num_classes=4, backbone="resnet18", feb=False, sab=False).train()
    out = model(torch.randn(2, 3, *SMALL))
    assert set(out) == {"mb"}


def test_empty_pose_falls_back_to_whole_map() -> None:
    model = build_pgflkd(num_classes=4, backbone="resnet18").train()
    images = torch.randn(2, 3, *SMALL)
    out = model(images, torch.zeros(2, 7, *feature_size(SMALL)))
    assert torch.isfinite(out["feb"]["feat"]).all() and torch.isfinite(out["sab"]["feat"]).all()
    # FEB with an empty mask pools like MB would on FEB's own map.
    fmap = model.feature_maps(images)["feb"]
    torch.testing.assert_close(out["feb"]["feat"], fmap.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)


def test_deploy_equals_full_model_and_matches_plain_bnneck_resnet50() -> None:
    torch.manual_seed(0)
    model = build_pgflkd(num_classes=751)
    # Move BN statistics away from their init so equality is not trivial.
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 128, 64), torch.rand(4, 7, 8, 4))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    deployed = to_deploy(model)
    images = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        diff = (deployed(images) - model(images)).abs().max().item()
    assert diff <= 1e-5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert set(model.branch_names) == {"mb", "feb", "sab"}  # argument untouched

    def count(m: torch.nn.Module) -> int:
        return sum(p.numel() for p in m.parameters())

    plain = BNNeckReID(num_classes=751, backbone="resnet50")
    assert abs(count(deployed) - count(plain)) / count(plain) <= 0.005
    assert count(deployed) < 0.5 * count(model)


def test_to_deploy_rejects_other_models() -> None:
    with pytest.raises(TypeError, match="PGFLKD"):
        to_deploy(torch.nn.Linear(2, 2))
