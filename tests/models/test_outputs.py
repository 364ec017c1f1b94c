"""The typed train-mode output: float32 copies for the losses, the contract, pytree flattening."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.utils._pytree as pytree

from torchreid_pgflkd.models import BranchOutput, TrainOutput

B, C, D, P, H, W = 2, 3, 4, 6, 4, 2


def _branch(dtype: torch.dtype, *, activation: bool = False, parts: bool = False) -> BranchOutput:
    def t(*shape: int) -> torch.Tensor:
        return torch.randn(*shape).to(dtype)

    return BranchOutput(
        feat=t(B, D),
        bn_feat=t(B, D),
        logits=t(B, C),
        activation=t(B, H, W) if activation else None,
        part_activations=t(B, P, H, W) if parts else None,
    )


def _output(dtype: torch.dtype = torch.bfloat16) -> TrainOutput:
    return TrainOutput(
        branches={
            "mb": _branch(dtype, activation=True),
            "feb": _branch(dtype, activation=True),
            "sab": _branch(dtype, parts=True),
        },
        teacher_classifiers={"feb": torch.randn(C, D), "sab": torch.randn(C, D)},
    )


def _tensors(out: TrainOutput) -> list[torch.Tensor]:
    found = [
        v
        for b in out.branches.values()
        for f in dataclasses.fields(b)
        if (v := getattr(b, f.name)) is not None
    ]
    return found + list(out.teacher_classifiers.values())


def test_float_casts_every_tensor_and_keeps_the_structure() -> None:
    out = _output(torch.bfloat16)
    cast = out.float()
    assert list(cast.branches) == ["mb", "feb", "sab"]
    assert list(cast.teacher_classifiers) == ["feb", "sab"]
    assert cast.branches["sab"].activation is None and cast.branches["mb"].part_activations is None
    before, after = _tensors(out), _tensors(cast)
    assert len(before) == len(after) == 14
    assert all(t.dtype == torch.float32 for t in after)
    assert all(torch.equal(a, b.float()) for a, b in zip(after, before, strict=True))
    assert out.branches["mb"].feat.dtype == torch.bfloat16  # the original is left as it was


def test_float_is_free_on_float32_and_keeps_the_graph() -> None:
    out = _output(torch.float32)
    out.branches["mb"].logits.requires_grad_()
    cast = out.float()
    assert all(a is b for a, b in zip(_tensors(cast), _tensors(out), strict=True))
    cast.branches["mb"].logits.sum().backward()
    assert out.branches["mb"].logits.grad is not None


def test_the_contract_is_checked_on_construction() -> None:
    out = _output()
    with pytest.raises(ValueError, match="start with the main branch 'mb'"):
        TrainOutput({"feb": out.branches["feb"], "mb": out.branches["mb"]})
    with pytest.raises(ValueError, match=r"among \('mb', 'feb', 'sab'\).*'xyz'"):
        TrainOutput({"mb": out.branches["mb"], "xyz": out.branches["sab"]})
    with pytest.raises(ValueError, match="teacher_classifiers.*'sab'"):
        TrainOutput({"mb": out.branches["mb"]}, {"sab": torch.randn(C, D)})
    with pytest.raises(TypeError, match="BranchOutput"):
        TrainOutput({"mb": {"feat": torch.randn(B, D)}})  # type: ignore[dict-item]
    plain_mb = dataclasses.replace(out.branches["mb"], activation=None)
    assert list(TrainOutput({"mb": plain_mb}).branches) == ["mb"]  # MB alone needs no map


def test_torch_utilities_see_the_tensors_inside() -> None:
    # DistributedDataParallel (find_unused_parameters) and torch.compile walk the output as a
    # pytree; a TrainOutput must not be an opaque leaf to them.
    out = _output()
    leaves, spec = pytree.tree_flatten(out)
    assert len(leaves) == 14 and all(isinstance(v, torch.Tensor) for v in leaves)
    rebuilt = pytree.tree_unflatten([v + 1 for v in leaves], spec)
    assert isinstance(rebuilt, TrainOutput)
    assert torch.equal(
        rebuilt.branches["sab"].part_activations, out.branches["sab"].part_activations + 1
    )
