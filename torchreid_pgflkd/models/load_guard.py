"""Refuse a state dict that would leave most of a model at its own (random) values, quietly.

torchreid's ``load_pretrained_weights``, and so ``FeatureExtractor(model_path=...)``, keeps the
checkpoint tensors whose name and shape match the model, merges them into the model's *own*
``state_dict()`` and loads the merge. For a checkpoint of another architecture (a ResNet-18
PGFL-KD loaded into the ResNet-50 ``pgflkd``) most tensors then keep their random values: the
load succeeds, torchreid prints a discard list and every feature is meaningless.

The merge is recognisable: it holds tensors that *are* the model's current ones (``state_dict()``
returns views of the same storage) beside tensors from elsewhere. ``LoadGuard.load_state_dict``
refuses such a mix unless the model's own tensors are only classifier weights and BatchNorm
step counters (a checkpoint trained on another number of identities, loaded for testing).
Loads of foreign tensors only, strict or not, and a model's load of its own ``state_dict()``
pass through unchanged. To load part of a checkpoint on purpose, pass just those tensors with
``strict=False``. Only direct calls are checked: a model wrapped in ``DataParallel`` loads its
children itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import nn


class ForeignCheckpointError(ValueError):
    """A state dict mixes the model's own tensors with a checkpoint's: another architecture."""


def is_exempt(key: str) -> bool:
    """Tensors a checkpoint may leave at the model's own values: the classifiers (another number
    of identities) and BatchNorm's ``num_batches_tracked`` (absent from some checkpoints)."""
    parts = key.split(".")
    return "classifier" in parts or parts[-1] == "num_batches_tracked"


def _same_tensor(a: Any, b: torch.Tensor) -> bool:
    """Whether ``a`` is ``b`` or a view of the same memory with the same shape."""
    if a is b:
        return True
    if not isinstance(a, torch.Tensor) or a.device != b.device or a.shape != b.shape:
        return False
    if a.device.type == "meta" or b.numel() == 0:
        return False  # no memory to compare
    return a.data_ptr() == b.data_ptr() and a.stride() == b.stride()


def own_tensor_keys(model: nn.Module, state_dict: Mapping[str, Any]) -> list[str]:
    """Keys of ``state_dict`` whose value is the model's current tensor under the same key."""
    mine = model.state_dict(keep_vars=True)
    return [k for k, v in state_dict.items() if k in mine and _same_tensor(v, mine[k])]


def _group(key: str) -> str:
    """The module a tensor belongs to, for the error: ``stem``, ``layer4.mb``, ``heads.sab``."""
    parts = key.split(".")[:-1] or [key]
    head = [parts[0]]
    if len(parts) > 1 and not parts[1].isdigit():
        head.append(parts[1])
    return ".".join(head)


def check_not_merged(model: nn.Module, state_dict: Mapping[str, Any], *, fix: str) -> None:
    """Raise ``ForeignCheckpointError`` when ``state_dict`` mixes the model's own tensors (other
    than ``is_exempt`` ones) with foreign ones; ``fix`` says what to do instead."""
    own = own_tensor_keys(model, state_dict)
    if len(own) == len(state_dict):  # the model's own state dict: nothing changes
        return
    kept = [k for k in own if not is_exempt(k)]
    if not kept:
        return
    groups = Counter(_group(k) for k in kept)
    where = ", ".join(f"{g} ({n})" for g, n in groups.most_common(6))
    more = f" and {len(groups) - 6} more modules" if len(groups) > 6 else ""
    name = type(model).__name__
    backbone = getattr(model, "backbone_name", None)
    foreign = len(state_dict) - len(own)
    built = f" (this model: {name} with backbone {backbone})" if backbone else ""
    raise ForeignCheckpointError(
        f"{name}.load_state_dict refused{built}: {len(kept)} of the {len(state_dict)} tensors "
        f"given are the model's own current values (in {where}{more}); only {foreign} "
        "come from the checkpoint. That is what torchreid's load_pretrained_weights "
        "(FeatureExtractor(model_path=...)) builds from a checkpoint of another architecture "
        "(another backbone or other branches): those tensors would keep their random values and "
        f"the features would be meaningless. {fix} To load part of a checkpoint on purpose, pass "
        "only the tensors to load, with strict=False."
    )


class LoadGuard:
    """Mixin for ``nn.Module`` models: ``load_state_dict`` refuses a merged state dict (see the
    module docstring). List it before ``nn.Module`` in the bases."""

    # What the error tells the user to do instead; models override it.
    load_guard_fix: ClassVar[str] = (
        "Build the model the checkpoint holds: build_model('pgflkd_auto', ...) "
        "(FeatureExtractor(model_name='pgflkd_auto', model_path=..., verbose=False)) reads the "
        "architecture from the checkpoint, and so does torchreid_pgflkd.load_model(path)."
    )

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign=False):
        check_not_merged(self, state_dict, fix=self.load_guard_fix)  # type: ignore[arg-type]
        return super().load_state_dict(state_dict, strict=strict, assign=assign)  # type: ignore[misc]
