"""The objective: which terms each ablation computes, on which tensors, in which order."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
import torch

from torchreid_pgflkd.losses import (
    LOSS_TABLE,
    LossSettings,
    LossTerm,
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
from torchreid_pgflkd.losses.distillation import attention_distillation
from torchreid_pgflkd.models import BranchOutput, TrainOutput

B, C, D, P, H, W = 8, 5, 16, 6, 4, 2
PIDS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
NO_KD = LossWeights(kd_logit=0.0, kd_feat=0.0, kd_attn=0.0, inter=0.0)
KD_TERMS = {f"loss_mb_{kind}_{t}" for kind in ("kdlogit", "kdfeat") for t in ("feb", "sab")}
KD_TERMS |= {"loss_mb_kdattn_feb"}
OWN_TERMS = {f"loss_{b}_{kind}" for b in ("mb", "feb", "sab") for kind in ("id", "tri")}
OWN_TERMS |= {"loss_sab_align"}


def fake_outputs(
    branches: tuple[str, ...] = ("mb", "feb", "sab"), interaction: bool = True, seed: int = 0
) -> TrainOutput:
    """A train-mode output with random leaf tensors (no model), shaped as the model's."""
    gen = torch.Generator().manual_seed(seed)

    def leaf(*shape: int, positive: bool = False) -> torch.Tensor:
        x = torch.randn(*shape, generator=gen)
        return (x.abs() if positive else x).requires_grad_()

    out = {}
    for b in branches:
        out[b] = BranchOutput(feat=leaf(B, D), bn_feat=leaf(B, D), logits=leaf(B, C))
        if "feb" in branches and b in ("mb", "feb"):
            out[b].activation = leaf(B, H, W, positive=True)
        if b == "sab":
            out[b].part_activations = leaf(B, P, H, W, positive=True)
    teachers = [t for t in ("feb", "sab") if t in branches]
    classifiers = {t: leaf(C, D) for t in teachers} if interaction else {}
    return TrainOutput(branches=out, teacher_classifiers=classifiers)


def fake_pose_maps(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    parts = torch.rand(B, P, H, W, generator=gen)
    parts[0, :3] = 0.0  # some occluded parts
    parts[5] = 0.0  # an image without pose
    return torch.cat([parts, parts.amax(dim=1, keepdim=True)], dim=1)


def losses_of(out: TrainOutput, pose_maps=None, **settings) -> dict[str, torch.Tensor]:
    return compute_losses(out, PIDS, pose_maps, LossSettings(**settings))


# The paper's ablations (config.experiment): (branches, interaction, weights) -> terms.
ABLATIONS = {
    "baseline": (("mb",), False, LossWeights(), {"loss_mb_id", "loss_mb_tri"}),
    "+feb": (
        ("mb", "feb"),
        False,
        NO_KD,
        {"loss_mb_id", "loss_mb_tri", "loss_feb_id", "loss_feb_tri"},
    ),
    "+sab": (
        ("mb", "sab"),
        False,
        NO_KD,
        {"loss_mb_id", "loss_mb_tri", "loss_sab_id", "loss_sab_tri", "loss_sab_align"},
    ),
    "+kd": (("mb", "feb", "sab"), False, LossWeights(), OWN_TERMS | KD_TERMS),
    "+interaction": (
        ("mb", "feb", "sab"),
        True,
        LossWeights(kd_logit=0.0, kd_feat=0.0, kd_attn=0.0),
        OWN_TERMS | {"loss_mb_inter_feb", "loss_mb_inter_sab"},
    ),
    "full": (
        ("mb", "feb", "sab"),
        True,
        LossWeights(),
        OWN_TERMS | KD_TERMS | {"loss_mb_inter_feb", "loss_mb_inter_sab"},
    ),
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_paper_ablations_give_their_terms(name):
    branches, interaction, weights, expected = ABLATIONS[name]
    out = fake_outputs(branches, interaction)
    losses = losses_of(out, fake_pose_maps(), weights=weights)
    assert set(losses) == expected
    total = total_loss(losses, weights)
    assert torch.isfinite(total)
    total.backward()
    assert out.branches["mb"].logits.grad is not None


def test_terms_come_in_the_order_of_the_log_and_the_sum():
    # The order fixes the summed loss's floating-point value: the recorded runs rely on it.
    losses = losses_of(fake_outputs(), fake_pose_maps())
    assert list(losses) == [
        "loss_mb_id",
        "loss_mb_tri",
        "loss_feb_id",
        "loss_feb_tri",
        "loss_sab_id",
        "loss_sab_tri",
        "loss_sab_align",
        "loss_mb_kdlogit_feb",
        "loss_mb_kdfeat_feb",
        "loss_mb_kdattn_feb",
        "loss_mb_kdlogit_sab",
        "loss_mb_kdfeat_sab",
        "loss_mb_inter_feb",
        "loss_mb_inter_sab",
    ]


def _expected_terms(branches, interaction, weights):
    teachers = [t for t in ("feb", "sab") if t in branches]
    keys = set()
    for b in branches:
        keys |= {f"loss_{b}_id"} if weights.id else set()
        keys |= {f"loss_{b}_tri"} if weights.tri else set()
    if "sab" in branches and weights.align:
        keys.add("loss_sab_align")
    if "feb" in branches and weights.kd_attn:
        keys.add("loss_mb_kdattn_feb")
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
    LossWeights(tri=0.0, align=0.0, kd_attn=0.0),
    LossWeights(id=0.0, align=0.0, inter=2.0),
]


@pytest.mark.parametrize(
    ("branches", "interaction", "weights"),
    list(itertools.product(BRANCH_SETS, [False, True], WEIGHT_SETS)),
)
def test_every_combination_computes_exactly_its_terms(branches, interaction, weights):
    out = fake_outputs(branches, interaction)
    losses = losses_of(out, fake_pose_maps(), weights=weights)
    assert set(losses) == _expected_terms(branches, interaction, weights)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    total_loss(losses, weights).backward()


def test_each_term_is_computed_on_its_own_branch():
    # Catches a term logged under one branch's name but computed on another's tensors.
    out = fake_outputs()
    br = out.branches
    pose_maps = fake_pose_maps()
    losses = losses_of(out, pose_maps)
    for b in ("mb", "feb", "sab"):
        ce = cross_entropy_label_smooth(br[b].logits, PIDS, epsilon=0.1)
        tri = batch_hard_triplet_loss(br[b].feat, PIDS, margin=0.3)
        assert torch.equal(losses[f"loss_{b}_id"], ce)
        assert torch.equal(losses[f"loss_{b}_tri"], tri)
    for t in ("feb", "sab"):
        kd_logit = logit_distillation(br["mb"].logits, br[t].logits, temperature=4.0)
        kd_feat = feature_distillation(br["mb"].feat, br[t].feat)
        logits = torch.nn.functional.linear(br["mb"].bn_feat, out.teacher_classifiers[t])
        inter = cross_entropy_label_smooth(logits, PIDS, epsilon=0.1)
        assert torch.equal(losses[f"loss_mb_kdlogit_{t}"], kd_logit)
        assert torch.equal(losses[f"loss_mb_kdfeat_{t}"], kd_feat)
        assert torch.equal(losses[f"loss_mb_inter_{t}"], inter)
    align = part_alignment_loss(br["sab"].part_activations, pose_maps, kind="mse")
    assert torch.equal(losses["loss_sab_align"], align)
    attn = attention_distillation(br["mb"].activation, br["feb"].activation, pose_maps[:, -1])
    assert torch.equal(losses["loss_mb_kdattn_feb"], attn)


def test_options_reach_the_loss_functions():
    out = fake_outputs()
    br = out.branches
    pose_maps = fake_pose_maps()
    losses = losses_of(
        out, pose_maps, margin=None, label_smoothing=0.0, temperature=2.0, align_kind="kl"
    )
    mb = br["mb"]
    assert torch.equal(losses["loss_mb_id"], cross_entropy_label_smooth(mb.logits, PIDS, epsilon=0))
    assert torch.equal(losses["loss_mb_tri"], batch_hard_triplet_loss(mb.feat, PIDS, margin=None))
    kd = logit_distillation(mb.logits, br["sab"].logits, temperature=2.0)
    assert torch.equal(losses["loss_mb_kdlogit_sab"], kd)
    align = part_alignment_loss(br["sab"].part_activations, pose_maps, kind="kl")
    assert torch.equal(losses["loss_sab_align"], align)
    logits = torch.nn.functional.linear(mb.bn_feat, out.teacher_classifiers["feb"])
    inter = cross_entropy_label_smooth(logits, PIDS, epsilon=0.0)
    assert torch.equal(losses["loss_mb_inter_feb"], inter)


def test_total_is_the_weighted_sum_by_kind():
    losses = {
        "loss_mb_id": torch.tensor(2.0),
        "loss_feb_tri": torch.tensor(1.0),
        "loss_mb_kdlogit_sab": torch.tensor(1.0),
        "loss_mb_kdfeat_feb": torch.tensor(0.5),
        "loss_mb_kdattn_feb": torch.tensor(0.25),
        "loss_mb_inter_feb": torch.tensor(4.0),
        "loss_sab_align": torch.tensor(3.0),
    }
    weights = LossWeights(
        id=1.0, tri=0.25, align=2.0, kd_logit=3.0, kd_feat=4.0, kd_attn=8.0, inter=0.5
    )
    # 2 * 1 + 1 * 0.25 + 1 * 3 + 0.5 * 4 + 0.25 * 8 + 4 * 0.5 + 3 * 2 = 17.25
    assert total_loss(losses, weights).item() == pytest.approx(17.25)


def test_sab_teacher_scales_only_what_mb_learns_from_sab():
    out, maps = fake_outputs(), fake_pose_maps()
    full = losses_of(out, maps)
    from_sab = {n for n in full if n.startswith("loss_mb_") and n.endswith("_sab")}
    assert from_sab == {"loss_mb_kdlogit_sab", "loss_mb_kdfeat_sab", "loss_mb_inter_sab"}
    quarter = LossWeights(sab_teacher=0.25)
    expected = sum(
        (0.25 if n in from_sab else 1.0) * LossWeights().of(n) * v for n, v in full.items()
    )
    assert total_loss(full, quarter).item() == pytest.approx(expected.item())
    assert quarter.of("loss_sab_id") == 1.0 and quarter.of("loss_sab_align") == 1.0
    assert quarter.of("loss_mb_kdfeat_sab") == 0.25 * 10.0
    # at 0, SAB still learns (its own terms) but teaches nothing: the terms are not computed
    silent = losses_of(out, maps, weights=LossWeights(sab_teacher=0.0))
    assert set(silent) == set(full) - from_sab
    with pytest.raises(ValueError, match="sab_teacher"):
        LossWeights(sab_teacher=-1.0)


@pytest.mark.parametrize("interaction", [False, True])
def test_distillation_sends_no_gradient_to_the_teachers(interaction):
    out = fake_outputs(interaction=interaction)
    kd_only = LossWeights(id=0.0, tri=0.0, align=0.0, inter=float(interaction))
    losses = losses_of(out, fake_pose_maps(), weights=kd_only)
    inter_terms = {"loss_mb_inter_feb", "loss_mb_inter_sab"} if interaction else set()
    assert set(losses) == KD_TERMS | inter_terms
    total_loss(losses, kd_only).backward()
    for t in ("feb", "sab"):
        teacher = out.branches[t]
        assert teacher.logits.grad is None and teacher.feat.grad is None
        assert teacher.bn_feat.grad is None
        assert all(w.grad is None for w in out.teacher_classifiers.values())
    assert out.branches["feb"].activation.grad is None
    mb = out.branches["mb"]
    assert mb.logits.grad.abs().sum() > 0 and mb.feat.grad.abs().sum() > 0
    assert mb.activation.grad.abs().sum() > 0
    if interaction:
        assert mb.bn_feat.grad.abs().sum() > 0


def test_teacher_gradients_do_not_change_when_distillation_is_added():
    pose_maps = fake_pose_maps()
    grads = []
    for weights in (NO_KD, LossWeights(inter=0.0, kd_logit=5.0, kd_feat=5.0, kd_attn=5.0)):
        out = fake_outputs(interaction=False)
        total_loss(losses_of(out, pose_maps, weights=weights), weights).backward()
        br = out.branches
        grads.append((br["feb"].feat.grad, br["sab"].logits.grad, br["mb"].feat.grad))
    assert torch.equal(grads[0][0], grads[1][0])
    assert torch.equal(grads[0][1], grads[1][1])
    assert not torch.equal(grads[0][2], grads[1][2])  # the student does feel the KD


def test_zero_distillation_when_student_equals_teacher():
    out = fake_outputs(("mb", "feb"), interaction=False)
    mb = out.branches["mb"]
    out.branches["feb"] = BranchOutput(
        feat=mb.feat.detach().clone(),
        bn_feat=mb.bn_feat.detach().clone(),
        logits=mb.logits.detach().clone(),
        activation=mb.activation.detach().clone(),
    )
    # FEB masks its map with the foreground: MB matches it when it fires there only.
    fg = fake_pose_maps()[:, -1]
    mb.activation = (out.branches["feb"].activation * fg * 3.0).requires_grad_()
    losses = losses_of(out, fake_pose_maps(), weights=LossWeights(id=0.0, tri=0.0))
    assert losses["loss_mb_kdlogit_feb"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_mb_kdfeat_feb"].item() == pytest.approx(0.0, abs=1e-6)
    assert losses["loss_mb_kdattn_feb"].item() == pytest.approx(0.0, abs=1e-6)


def test_single_identity_and_no_visible_part_give_no_nan():
    out = fake_outputs()
    pids = torch.zeros(B, dtype=torch.long)
    losses = compute_losses(out, pids, torch.zeros(B, P + 1, H, W))
    assert losses["loss_mb_tri"].item() == 0.0 and losses["loss_sab_align"].item() == 0.0
    assert losses["loss_mb_kdattn_feb"].item() == 0.0
    total_loss(losses, LossWeights()).backward()
    leaves = [
        v
        for b in out.branches.values()
        for f in dataclasses.fields(b)
        if (v := getattr(b, f.name)) is not None and v.grad is not None
    ]
    assert any(v is out.branches["sab"].part_activations for v in leaves)
    assert all(torch.isfinite(v.grad).all() for v in leaves)


def test_a_term_needing_pose_names_itself_when_pose_is_missing():
    with pytest.raises(ValueError, match="loss_sab_align needs pose_maps"):
        compute_losses(fake_outputs(), PIDS, None)
    with pytest.raises(ValueError, match="loss_mb_kdattn_feb needs pose_maps"):
        losses_of(fake_outputs(), None, weights=LossWeights(align=0.0))


def test_pose_maps_are_optional_without_alignment_and_spatial_distillation():
    losses = losses_of(fake_outputs(), None, weights=LossWeights(align=0.0, kd_attn=0.0))
    assert "loss_sab_align" not in losses and "loss_sab_id" in losses
    assert "loss_mb_kdlogit_feb" in losses and "loss_mb_kdattn_feb" not in losses
    assert set(compute_losses(fake_outputs(("mb",)), PIDS)) == {"loss_mb_id", "loss_mb_tri"}


def test_outputs_that_break_the_contract_name_what_was_expected():
    with pytest.raises(ValueError, match="'mb'"):
        TrainOutput(branches={"feb": fake_outputs().branches["feb"]})
    out = fake_outputs()
    with pytest.raises(ValueError, match="xyz"):
        TrainOutput(
            out.branches, {**out.teacher_classifiers, "xyz": out.teacher_classifiers["feb"]}
        )
    no_parts = dataclasses.replace(out.branches["sab"], part_activations=None)
    with pytest.raises(ValueError, match="part_activations"):
        TrainOutput({"mb": out.branches["mb"], "sab": no_parts})
    mb_no_map = dataclasses.replace(out.branches["mb"], activation=None)
    with pytest.raises(ValueError, match=r"\['mb'\] need activation"):
        TrainOutput({"mb": mb_no_map, "feb": out.branches["feb"]})
    with pytest.raises(TypeError, match="TrainOutput"):
        compute_losses({"mb": {"logits": torch.zeros(B, C)}}, PIDS)  # the old dict contract
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


def test_loss_settings_are_validated_and_frozen():
    with pytest.raises(ValueError, match=r"\('mse', 'kl'\).*'l1'"):
        LossSettings(align_kind="l1")
    with pytest.raises(ValueError, match="margin"):
        LossSettings(margin=-0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        LossSettings(label_smoothing=1.0)
    with pytest.raises(ValueError, match="temperature"):
        LossSettings(temperature=0.0)
    with pytest.raises(TypeError, match="LossWeights"):
        LossSettings(weights={"id": 1.0})  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        LossSettings().margin = 0.5  # type: ignore[misc]
    assert LossSettings().weights == LossWeights() and LossSettings(margin=None).margin is None


def test_the_table_has_one_row_per_kind_and_rows_are_validated():
    rows = [row for section in LOSS_TABLE for row in section]
    assert sorted(row.kind for row in rows) == sorted(
        ["id", "tri", "align", "kdlogit", "kdfeat", "kdattn", "inter"]
    )
    with pytest.raises(ValueError, match="kind"):
        LossTerm("center", "mb", None, lambda x: x.pids.sum())
    with pytest.raises(ValueError, match="teacher"):
        LossTerm("kdlogit", "mb", "xyz", lambda x: x.pids.sum())
