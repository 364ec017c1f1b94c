"""The PGFL-KD model: torchreid integration, shapes, gradients, deploy, pose contract."""

from __future__ import annotations

import pytest
import torch

import torchreid_pgflkd
from torchreid_pgflkd import compat
from torchreid_pgflkd.losses import LossSettings, LossWeights, compute_losses, total_loss
from torchreid_pgflkd.models import PGFLKD, BNNeckReID, TrainOutput, build_pgflkd, to_deploy
from torchreid_pgflkd.pose.contract import feature_size
from torchreid_pgflkd.pose.maps import PoseMapper

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
    assert isinstance(out, TrainOutput) and list(out.branches) == ["mb", "feb", "sab"]
    hw = feature_size(SMALL)
    for branch in out.branches.values():
        assert branch.feat.shape == (3, 512)
        assert branch.bn_feat.shape == (3, 512)
        assert branch.logits.shape == (3, 5)
        assert branch.activation is None or branch.activation.shape == (3, *hw)
    assert out.branches["mb"].activation is not None and out.branches["feb"].activation is not None
    assert out.branches["sab"].part_activations.shape == (3, 6, *hw)
    assert out.branches["mb"].part_activations is None and out.branches["sab"].activation is None
    assert list(out.teacher_classifiers) == ["feb", "sab"]
    # The teacher's classifier itself (the interaction loss detaches it), (C, D).
    assert out.teacher_classifiers["feb"] is model.heads["feb"].classifier.weight
    assert out.teacher_classifiers["feb"].shape == (5, 512)


@pytest.mark.parametrize(("feb", "sab"), [(False, False), (True, False), (False, True)])
def test_train_output_holds_what_the_configuration_builds(feb: bool, sab: bool) -> None:
    model = build_pgflkd(num_classes=4, backbone="resnet_mini", feb=feb, sab=sab).train()
    out = model(torch.randn(2, 3, *SMALL), _pose(2, 6, SMALL) if feb or sab else None)
    assert list(out.branches) == ["mb", *(["feb"] if feb else []), *(["sab"] if sab else [])]
    assert (out.branches["mb"].activation is not None) == feb  # only FEB teaches where to look
    assert list(out.teacher_classifiers) == list(out.branches)[1:]
    no_interaction = build_pgflkd(num_classes=4, backbone="resnet_mini", interaction=False)
    assert (
        no_interaction.train()(torch.randn(2, 3, *SMALL), _pose(2, 6, SMALL)).teacher_classifiers
        == {}
    )


def test_resnet50_eval_feature_is_2048_at_256x128() -> None:
    model = torchreid_pgflkd.build_pgflkd(num_classes=751).eval()
    with torch.no_grad():
        feat = model(torch.randn(2, 3, 256, 128))
    assert feat.shape == (2, 2048)
    assert model.feature_maps(torch.randn(1, 3, 256, 128))["mb"].shape == (1, 2048, 16, 8)


PIDS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
NO_KD = LossWeights(kd_logit=0.0, kd_feat=0.0, kd_attn=0.0, inter=0.0)


def _keypoint_pose(batch: int, seed: int = 0) -> torch.Tensor:
    """Pose maps drawn from random visible keypoints, as the data pipeline makes them."""
    g = torch.Generator().manual_seed(seed)
    h, w = SMALL
    xy = torch.rand(batch, 17, 2, generator=g) * torch.tensor([w, h])
    keypoints = torch.cat([xy, torch.ones(batch, 17, 1)], dim=2)
    return PoseMapper()(keypoints, image_hw=SMALL)


def _backward(
    model: PGFLKD, settings: LossSettings, drop: tuple[str, ...] = ()
) -> dict[str, torch.Tensor]:
    """One training step's backward through the real objective, without the terms in ``drop``."""
    torch.manual_seed(0)
    pose_maps = _keypoint_pose(len(PIDS))
    outputs = model(torch.randn(len(PIDS), 3, *SMALL), pose_maps)
    terms = compute_losses(outputs.float(), PIDS, pose_maps, settings)
    terms = {name: v for name, v in terms.items() if not name.startswith(drop)}
    total_loss(terms, settings.weights).backward()
    return terms


def _without_gradient(model: torch.nn.Module) -> list[str]:
    """Trainable parameters that the last backward left without a non-zero gradient."""
    return [
        n
        for n, p in model.named_parameters()
        if p.requires_grad and (p.grad is None or not torch.any(p.grad != 0))
    ]


def _teacher_only(model: PGFLKD, teachers: tuple[str, ...] = ("feb", "sab")) -> list[str]:
    """Trainable parameters that only the teachers use (their layer4, unless shared; heads)."""
    prefixes = tuple(f"{part}.{t}." for t in teachers for part in ("layer4", "heads"))
    return [n for n, p in model.named_parameters() if p.requires_grad and n.startswith(prefixes)]


@pytest.mark.parametrize("share_layer4", [False, True])
def test_the_losses_reach_every_trainable_parameter(share_layer4: bool) -> None:
    # A branch built but used by no loss would leave parameters untouched (timm's test).
    torch.manual_seed(0)
    model = build_pgflkd(num_classes=4, backbone="resnet_mini", share_layer4=share_layer4)
    terms = _backward(model.train(), LossSettings())
    assert len(terms) == 14  # every term of the full model
    missing = _without_gradient(model)
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("share_layer4", [False, True])
@pytest.mark.parametrize("inter", [0.0, 1.0])
def test_distillation_moves_the_student_and_leaves_the_teachers(
    share_layer4: bool, inter: float
) -> None:
    torch.manual_seed(0)
    model = build_pgflkd(num_classes=4, backbone="resnet_mini", share_layer4=share_layer4)
    kd_only = LossWeights(id=0.0, tri=0.0, align=0.0, inter=inter)
    terms = _backward(model.train(), LossSettings(weights=kd_only))
    assert all(name.startswith(("loss_mb_kd", "loss_mb_inter")) for name in terms)
    teachers = _teacher_only(model)
    assert teachers  # the test would be empty otherwise
    params = dict(model.named_parameters())
    assert all(params[n].grad is None for n in teachers), "a teacher got a gradient"
    assert sorted(_without_gradient(model)) == sorted(teachers)  # and the student all of its


def test_a_branch_no_loss_uses_is_reported() -> None:
    # The check above is only worth something if it fails on an unused branch: drop FEB's own
    # terms with distillation off, and FEB's layer4 and head must be reported.
    torch.manual_seed(0)
    model = build_pgflkd(num_classes=4, backbone="resnet_mini")
    terms = _backward(model.train(), LossSettings(weights=NO_KD), drop=("loss_feb_",))
    assert "loss_mb_id" in terms and not any("feb" in name for name in terms)
    assert sorted(_without_gradient(model)) == sorted(_teacher_only(model, ("feb",)))
    assert any(n.startswith("layer4.feb.") for n in _without_gradient(model))


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
    assert list(out.branches) == ["mb"] and out.teacher_classifiers == {}


def test_empty_pose_falls_back_to_whole_map() -> None:
    model = build_pgflkd(num_classes=4, backbone="resnet18").train()
    images = torch.randn(2, 3, *SMALL)
    out = model(images, torch.zeros(2, 7, *feature_size(SMALL)))
    feb, sab = out.branches["feb"], out.branches["sab"]
    assert torch.isfinite(feb.feat).all() and torch.isfinite(sab.feat).all()
    # FEB with an empty mask pools like MB would on FEB's own map.
    fmap = model.feature_maps(images)["feb"]
    torch.testing.assert_close(feb.feat, fmap.mean(dim=(2, 3)), rtol=1e-4, atol=1e-5)


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
