"""PGFL-KD on torchreid's OSNet: the split, its stride against the pose contract, training,
deploy, and ImageNet weights that never arrive silently random."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchreid_pgflkd import compat
from torchreid_pgflkd.losses import LossSettings, compute_losses, total_loss
from torchreid_pgflkd.models import PGFLKD, build_pgflkd, to_deploy
from torchreid_pgflkd.models import backbone as bb
from torchreid_pgflkd.pose.contract import PoseGeometry, feature_size
from torchreid_pgflkd.pose.maps import PoseMapper

SMALL = (64, 32)  # 4x2 maps: the cheapest size at which OSNet's pools stay exact
PIDS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])


def _torchreid_osnet(name: str) -> torch.nn.Module:
    return getattr(compat.submodule("models.osnet"), name)(num_classes=1000, pretrained=False)


@pytest.mark.parametrize("hw", [(128, 64), (256, 128)])
def test_osnet_last_stage_is_at_the_pose_contract_stride(hw: tuple[int, int]) -> None:
    trunk, last, dim = bb.build_backbone("osnet_x0_25")
    with torch.no_grad():
        mid = trunk.eval()(torch.zeros(1, 3, *hw))
        fmap = last.eval()(mid)
    assert bb.feature_stride("osnet_x0_25") == PoseGeometry().stride == 16
    assert mid.shape[-2:] == fmap.shape[-2:] == feature_size(hw)  # 128x64 -> 8x4
    assert fmap.shape[1] == dim == 128
    with pytest.raises(ValueError, match="last_stride must be 1"):
        bb.build_backbone("osnet_x0_25", last_stride=2)


def test_the_split_is_torchreids_osnet_without_its_fc() -> None:
    torch.manual_seed(0)
    trunk, last, _ = bb.build_osnet("osnet_x0_25")
    torch.manual_seed(0)
    reference = _torchreid_osnet("osnet_x0_25").eval()
    images = torch.randn(2, 3, *SMALL)
    with torch.no_grad():
        torch.testing.assert_close(last.eval()(trunk.eval()(images)), reference.featuremaps(images))
    split = sum(p.numel() for m in (trunk, last) for p in m.parameters())
    head = sum(p.numel() for n, p in reference.named_parameters() if n.startswith(("fc.", "cl")))
    assert split == sum(p.numel() for p in reference.parameters()) - head


def test_registered_names_build_pgflkd_on_osnet() -> None:
    build_model = compat.submodule("models").build_model
    for name, dim in (("pgflkd_osnet_x0_25", 128), ("pgflkd_osnet_x1_0", 512)):
        model = build_model(name, num_classes=7, loss="triplet", pretrained=False)
        assert isinstance(model, PGFLKD) and model.feature_dim == dim
        assert model.heads["sab"].classifier.out_features == 7


def _keypoint_pose(batch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    h, w = SMALL
    xy = torch.rand(batch, 17, 2, generator=g) * torch.tensor([w, h])
    return PoseMapper()(torch.cat([xy, torch.ones(batch, 17, 1)], dim=2), image_hw=SMALL)


def test_train_forward_with_pose_and_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    model = build_pgflkd(num_classes=4, backbone="osnet_x0_25").train()
    pose_maps = _keypoint_pose(len(PIDS))
    assert pose_maps.shape == (8, 7, *feature_size(SMALL))
    out = model(torch.randn(len(PIDS), 3, *SMALL), pose_maps)
    assert list(out.branches) == ["mb", "feb", "sab"]
    assert out.branches["sab"].part_activations.shape == (8, 6, *feature_size(SMALL))
    assert all(b.feat.shape == (8, 128) and b.logits.shape == (8, 4) for b in out.branches.values())
    terms = compute_losses(out.float(), PIDS, pose_maps, LossSettings())
    assert len(terms) == 14 and {
        "loss_mb_id",
        "loss_mb_tri",
        "loss_sab_align",
        "loss_mb_kdattn_feb",
    } <= set(terms)
    total_loss(terms, LossSettings().weights).backward()
    missing = [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))
    ]
    # OSNet's channel gates squeeze C channels to C/16 ReLU units: 1 unit in conv2 of x0_25,
    # which often starts dead (so in torchreid's own osnet_x0_25 too). Everything else learns.
    assert all(n.startswith("stem.") and ".gate.fc" in n for n in missing), missing
    # Each branch owns its copy of the last stage (conv4 + conv5).
    assert model.layer4["feb"] is not model.layer4["mb"]
    assert not torch.equal(
        model.layer4["feb"][1].conv.weight.grad, model.layer4["mb"][1].conv.weight.grad
    )


def test_deploy_equals_the_main_branch_in_eval_mode() -> None:
    torch.manual_seed(0)
    model = build_pgflkd(num_classes=5, backbone="osnet_x0_25", branch_init="independent")
    with torch.no_grad():  # move BN statistics away from their init
        model.train()(torch.randn(4, 3, *SMALL), torch.rand(4, 7, *feature_size(SMALL)))
    model.eval()
    deployed = to_deploy(model)
    images = torch.randn(3, 3, 128, 64)
    with torch.no_grad():
        torch.testing.assert_close(deployed(images), model(images), rtol=0, atol=1e-6)
        assert model(images).shape == (3, 128)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(deployed) < 0.6 * count(model)


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$TORCH_HOME`` (hub and torchreid caches) with downloads switched off."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(bb.PRETRAINED_ENV, raising=False)
    monkeypatch.setenv(bb.OFFLINE_ENV, "1")
    return tmp_path


def test_osnet_weights_from_torchreids_cache_are_loaded(empty_caches: Path) -> None:
    torch.manual_seed(1)
    state = _torchreid_osnet("osnet_x0_25").state_dict()
    path = empty_caches / "checkpoints" / "osnet_x0_25_imagenet.pth"  # where torchreid keeps it
    path.parent.mkdir()
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # DataParallel-saved
    trunk, last, _ = bb.build_backbone("osnet_x0_25", pretrained=True)
    assert torch.equal(trunk[0].conv.weight, state["conv1.conv.weight"])
    assert torch.equal(last[0][0].conv1.conv.weight, state["conv4.0.conv1.conv.weight"])


def test_missing_osnet_weights_fail_naming_file_and_source(empty_caches: Path) -> None:
    with pytest.raises(bb.PretrainedWeightsUnavailable) as err:
        build_pgflkd(num_classes=3, backbone="osnet_x0_25", pretrained=True)
    msg = str(err.value)
    assert "osnet_x0_25_imagenet.pth" in msg and "drive.google.com" in msg
    assert bb.PRETRAINED_ENV in msg and bb.OFFLINE_ENV in msg


def test_osnet_weight_urls_are_torchreids() -> None:
    urls = compat.submodule("models.osnet").pretrained_urls
    assert {name: spec.weights_url for name, spec in bb.OSNETS.items()} == urls


def test_unknown_backbone_names_the_choices() -> None:
    with pytest.raises(ValueError, match="osnet_x0_25"):
        bb.build_backbone("osnet_x9")
