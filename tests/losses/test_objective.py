import dataclasses
import itertools
import math

import pytest
import torch

from torchreid_pgflkd.losses import (
    LossWeights,
    batch_hard_triplet_loss,
    compute_losses,
    cross_entropy_label_smooth,
    feature_distillation,
    logit_distillation,
    part_alignment_loss,
    term_kind,
    total_loss,
)

B, C, D, P, H, W = 8, 5, 16, 6, 4, 2
PIDS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
NO_KD = LossWeights(kd_logit=0.0, kd_feat=0.0, inter=0.0)
KD_TERMS = {f"loss_mb_{kind}_{t}" for kind in ("kdlogit", "kdfeat") for t in ("feb", "sab")}


def fake_outputs(branches=("mb", "feb", "sab"), interaction=True, seed=0):
    """A train-mode output dict with random leaf tensors (no model involved)."""
    gen = torch.Generator().manual_seed(seed)

    def leaf(*shape, positive=False):
        x = torch.randn(*shape, generator=gen)
        return (x.abs() if positive else x).requires_grad_()

    out = {}
    for b in branches:
        out[b] = {"feat": leaf(B, D), "bn_feat": leaf(B, D), "logits": leaf(B, C)}
    if "sab" in branches:
        out["sab"]["part_activations"] = leaf(B, P, H, W, positive=True)
    teachers = [t for t in ("feb", "sab") if t in branches]
    if interaction and teachers:
        out["interaction"] = {t: leaf(C, D) for t in teachers}
    return out


def fake_pose_maps(seed=0):
    gen = torch.Generator().manual_seed(seed)
    parts = torch.rand(B, P, H, W, generator=gen)
    parts[0, :3] = 0.0  # some occluded parts
    parts[5] = 0.0  # an image without pose
    return torch.cat([parts, parts.amax(dim=1, keepdim=True)], dim=1)


# The paper's ablations: (branches, interaction in outputs, weights) -> expected terms.
ABLATIONS = {
    "mb_only": (("mb",), False, LossWeights(), {"loss_mb_id", "loss_mb_tri"}),
    "+feb": (
        ("mb", "feb"),
        False,
        NO_KD,
        {"loss_mb_id", "loss_mb_tri", "loss_feb_id", "loss_feb_tri"},
    ),
    "+sab": (
        ("mb", "feb", "sab"),
        False,
        NO_KD,
        {"loss_mb_id", "loss_mb_tri", "loss_feb_id", "loss_feb_tri"}
        | {"loss_sab_id", "loss_sab_tri", "loss_sab_align"},
    ),
    "+kd": (
        ("mb", "feb", "sab"),
        False,
        LossWeights(inter=0.0),
        {"loss_mb_id", "loss_mb_tri", "loss_feb_id", "loss_feb_tri"}
        | {"loss_sab_id", "loss_sab_tri", "loss_sab_align"}
        | {
            "loss_mb_kdlogit_feb",
            "loss_mb_kdlogit_sab",
            "loss_mb_kdfeat_feb",
            "loss_mb_kdfeat_sab",
        },
    ),
    "+interaction": (
        ("mb", "feb", "sab"),
        True,
        LossWeights(),
        {"loss_mb_id", "loss_mb_tri", "loss_feb_id", "loss_feb_tri"}
        | {"loss_sab_id", "loss_sab_tri", "loss_sab_align"}
        | KD_TERMS
        | {"loss_mb_inter_feb", "loss_mb_inter_sab"},
    ),
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_paper_ablations_give_their_terms(name):
    branches, interaction, weights, expected = ABLATIONS[name]
    out = fake_outputs(branches, interaction)
    losses = compute_losses(out, PIDS, fake_pose_maps(), weights=weights)
    assert set(losses) == expected
    total = total_loss(losses, weights)
    assert torch.isfinite(total)
    total.backward()
    assert out["mb"]["logits"].grad is not None


def _expected_terms(branches, interaction, weights):
    teachers = [t for t in ("feb", "sab") if t in branches]
    keys = set()
    for b in branches:
        keys |= {f"loss_{b}_id"} if weights.id else set()
        keys |= {f"loss_{b}_tri"} if weights.tri else set()
    if "sab" in branches and weights.align:
        keys.add("loss_sab_align")
    for t in teachers:
        keys |= {f"loss_mb_kdlogit_{t}"} if weights.kd_logit else set()
        keys |= {f"loss_mb_kdfeat_{t}"} if weights.kd_feat else set()
        keys |= {f"loss_mb_inter_{t}"} if weights.inter and interaction else set()
    return keys


BRANCH_SETS = [("mb",), ("mb", "feb"), ("mb", "sab"), ("mb", "feb", "sab")]
WEIGHT_SETS = [
    LossWeights(),
    NO_KD,
    LossWeights(kd_feat=0.0),
    LossWeights(kd_logit=0.0, inter=0.0),
    LossWeights(tri=0.0, align=0.0),
    LossWeights(id=0.0, align=0.0, inter=2.0),
]


@pytest.mark.parametrize(
    ("branches", "interaction", "weights"),
    list(itertools.product(BRANCH_SETS, [False, True], WEIGHT_SETS)),
)
def test_every_combination_computes_exactly_its_terms(branches, interaction, weights):
    out = fake_outputs(branches, interaction)
    losses = compute_losses(out, PIDS, fake_pose_maps(), weights=weights)
    assert set(losses) == _expected_terms(branches, interaction, weights)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    total_loss(losses, weights).backward()


def test_each_term_is_computed_on_its_own_branch():
    # Catches a term logged under one branch's name but computed on another's tensors.
    out = fake_outputs()
    pose_maps = fake_pose_maps()
    losses = compute_losses(out, PIDS, pose_maps)
    for b in ("mb", "feb", "sab"):
        ce = cross_entropy_label_smooth(out[b]["logits"], PIDS, epsilon=0.1)
        tri = batch_hard_triplet_loss(out[b]["feat"], PIDS, margin=0.3)
        assert torch.equal(losses[f"loss_{b}_id"], ce)
        assert torch.equal(losses[f"loss_{b}_tri"], tri)
    for t in ("feb", "sab"):
        kd_logit = logit_distillation(out["mb"]["logits"], out[t]["logits"], temperature=4.0)
        kd_feat = feature_distillation(out["mb"]["feat"], out[t]["feat"])
        logits = torch.nn.functional.linear(out["mb"]["bn_feat"], out["interaction"][t])
        inter = cross_entropy_label_smooth(logits, PIDS, epsilon=0.1)
        assert torch.equal(losses[f"loss_mb_kdlogit_{t}"], kd_logit)
        assert torch.equal(losses[f"loss_mb_kdfeat_{t}"], kd_feat)
        assert torch.equal(losses[f"loss_mb_inter_{t}"], inter)
    align = part_alignment_loss(out["sab"]["part_activations"], pose_maps, kind="mse")
    assert torch.equal(losses["loss_sab_align"], align)


def test_options_reach_the_loss_functions():
    out = fake_outputs()
    pose_maps = fake_pose_maps()
    losses = compute_losses(
        out, PIDS, pose_maps, margin=None, label_smoothing=0.0, temperature=2.0, align_kind="kl"
    )
    mb = out["mb"]
    assert torch.equal(
        losses["loss_mb_id"], cross_entropy_label_smooth(mb["logits"], PIDS, epsilon=0)
    )
    assert torch.equal(
        losses["loss_mb_tri"], batch_hard_triplet_loss(mb["feat"], PIDS, margin=None)
    )
    kd = logit_distillation(mb["logits"], out["sab"]["logits"], temperature=2.0)
    assert torch.equal(losses["loss_mb_kdlogit_sab"], kd)
    align = part_alignment_loss(out["sab"]["part_activations"], pose_maps, kind="kl")
    assert torch.equal(losses["loss_sab_align"], align)


def test_total_is_the_weighted_sum_by_kind():
    losses = {
        "loss_mb_id": torch.tensor(2.0),
        "loss_feb_tri": torch.tensor(1.0),
        "loss_mb_kdlogit_sab": torch.tensor(1.0),
        "loss_mb_kdfeat_feb": torch.tensor(0.5),
        "loss_mb_inter_feb": torch.tensor(4.0),
        "loss_sab_align": torch.tensor(3.0),
    }
    weights = LossWeights(id=1.0, tri=0.25, align=2.0, kd_logit=3.0, kd_feat=4.0, inter=0.5)
    # 2 * 1 + 1 * 0.25 + 1 * 3 + 0.5 * 4 + 4 * 0.5 + 3 * 2 = 15.25
    assert total_loss(losses, weights).item() == pytest.approx(15.25)


def test_distillation_sends_no_gradient_to_the_teachers():
    out = fake_outputs(interaction=False)
    kd_only = LossWeights(id=0.0, tri=0.0, align=0.0, inter=0.0)
    losses = compute_losses(out, PIDS, fake_pose_maps(), weights=kd_only)
    assert set(losses) == KD_TERMS
    total_loss(losses, kd_only).backward()
    for t in ("feb", "sab"):
        assert out[t]["logits"].grad is None and out[t]["feat"].grad is None
    assert out["mb"]["logits"].grad.abs().sum() > 0
    assert out["mb"]["feat"].grad.abs().sum() > 0


def test_teacher_gradients_do_not_change_when_distillation_is_added():
    pose_maps = fake_pose_maps()
    grads = []
    for weights in (NO_KD, LossWeights(inter=0.0, kd_logit=5.0, kd_feat=5.0)):
        out = fake_outputs(interaction=False)
        total_loss(compute_losses(out, PIDS, pose_maps, weights=weights), weights).backward()
        grads.append((out["feb"]["feat"].grad, out["sab"]["logits"].grad, out["mb"]["feat"].grad))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.equal(grads[0][1], grads[1][1])
    assert not torch.equal(grads[0][2], grads[1][2])  # the student does feel the KD


def test_zero_distillation_when_student_equals_teacher():
    out = fake_outputs(("mb", "feb"), interaction=False)
    out["feb"] = {k: v.detach().clone() for k, v in out["mb"].items()}
    losses = compute_losses(out, PIDS, weights=LossWeights(id=0.0, tri=0.0))
    assert losses["loss_mb_kdlogit_feb"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_mb_kdfeat_feb"].item() == pytest.approx(0.0, abs=1e-6)


def test_single_identity_and_no_visible_part_give_no_nan():
    out = fake_outputs()
    pids = torch.zeros(B, dtype=torch.long)
    losses = compute_losses(out, pids, torch.zeros(B, P + 1, H, W))
    assert losses["loss_mb_tri"].item() == 0.0 and losses["loss_sab_align"].item() == 0.0
    total_loss(losses, LossWeights()).backward()
    leaves = [v for b in ("mb", "feb", "sab") for v in out[b].values() if v.grad is not None]
    leaves += [out["sab"]["part_activations"]]
    assert all(torch.isfinite(v.grad).all() for v in leaves)


def test_errors_name_what_was_expected():
    with pytest.raises(ValueError, match="'mb'"):
        compute_losses({"feb": fake_outputs()["feb"]}, PIDS)
    with pytest.raises(ValueError, match="pose_maps"):
        compute_losses(fake_outputs(), PIDS, None)
    out = fake_outputs()
    out["interaction"]["xyz"] = out["interaction"]["feb"]
    with pytest.raises(ValueError, match="xyz"):
        compute_losses(out, PIDS, fake_pose_maps())
    with pytest.raises(ValueError, match="no loss term"):
        total_loss({}, LossWeights())
    with pytest.raises(ValueError, match="kind"):
        term_kind("loss_mb_center")


def test_loss_weights_are_validated_and_frozen():
    with pytest.raises(ValueError, match="kd_feat"):
        LossWeights(kd_feat=-1.0)
    with pytest.raises(ValueError, match="align"):
        LossWeights(align=math.nan)
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossWeights().id = 2.0  # type: ignore[misc]
    assert LossWeights().inter == 1.0 and LossWeights().kd_logit == 4.0


def test_pose_maps_are_optional_without_sab_alignment():
    out = fake_outputs()
    losses = compute_losses(out, PIDS, None, weights=LossWeights(align=0.0))
    assert "loss_sab_align" not in losses and "loss_sab_id" in losses
