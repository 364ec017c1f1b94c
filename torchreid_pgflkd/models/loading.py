"""The model a checkpoint was trained as, built from the checkpoint alone.

``load_model(path)`` reads a checkpoint written by ``pgflkd train`` / ``PGFLKDEngine`` (or by
torchreid's own ``save_checkpoint``) and returns the trained model in eval mode, with no
ImageNet download and no dataset: the architecture comes from the weights' names and shapes
(backbone, branches, whether layer4 is shared, number of classes) and, when the checkpoint
stores its config, from it (``last_stride``, ``num_parts``, ``interaction``, which weights
cannot show).

``AutoPGFLKD``, registered with torchreid as ``pgflkd_auto``, is the same for torchreid's own
loading path: built empty by ``build_model('pgflkd_auto', ...)``, it takes its architecture
from the first state dict loaded into it, so that ``FeatureExtractor(model_name='pgflkd_auto',
model_path=CKPT, verbose=False)`` gets the trained model whatever its backbone. Weights alone
cannot tell ``last_stride``: it assumes 1 (the default); use ``load_model`` for a checkpoint
trained with ``model.last_stride 2``.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

import torch
import yaml
from torch import nn

from torchreid_pgflkd.models.backbone import BACKBONES, build_backbone
from torchreid_pgflkd.models.baseline import BNNeckReID
from torchreid_pgflkd.models.pgflkd import PGFLKD

logger = logging.getLogger(__name__)

TEACHER_BRANCHES: tuple[str, ...] = ("feb", "sab")
# Options the weights cannot show, read from the stored config's ``model`` section.
CONFIG_ONLY_OPTIONS: tuple[str, ...] = (
    "last_stride",
    "num_parts",
    "interaction",
    "sab_invisible",
)


def checkpoint_weights(state: Any) -> dict[str, torch.Tensor]:
    """The model weights of a loaded checkpoint (ours, torchreid's or a bare state dict)."""
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise ValueError("checkpoint has no model weights (no 'state_dict' entry)")
    weights = {k.removeprefix("module."): v for k, v in state.items()}
    if not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ValueError(
            "checkpoint has no model weights: expected a 'state_dict' entry or a dict of "
            f"tensors, found keys {list(weights)[:8]}"
        )
    return weights


def checkpoint_config(state: Any) -> dict[str, Any] | None:
    """The config stored in a checkpoint as a plain dict (YAML text or a mapping), or None."""
    config = state.get("config") if isinstance(state, Mapping) else None
    if isinstance(config, str) and config.strip():
        config = yaml.safe_load(config)
    return dict(config) if isinstance(config, Mapping) else None


def checkpoint_num_classes(state: Any, weights: Mapping[str, torch.Tensor]) -> int:
    """Training identities: ``meta.num_classes``, ``extra.num_classes``, else the classifier."""
    if isinstance(state, Mapping):
        for section in ("meta", "extra"):
            value = (state.get(section) or {}).get("num_classes")
            if value:
                return int(value)
    for key in ("heads.mb.classifier.weight", "classifier.weight"):
        if key in weights:
            return int(weights[key].shape[0])
    raise ValueError("cannot tell the number of classes: no meta.num_classes and no classifier")


@functools.cache
def _backbone_shapes(arch: str) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """``(trunk, last stage)`` parameter shapes of ``arch``, built on the meta device (no
    memory, no weights)."""
    with torch.device("meta"):
        trunk, last, _ = build_backbone(arch, pretrained=False)
    return (
        {k: tuple(v.shape) for k, v in trunk.state_dict().items()},
        {k: tuple(v.shape) for k, v in last.state_dict().items()},
    )


def _sub(weights: Mapping[str, torch.Tensor], prefix: str) -> dict[str, tuple]:
    n = len(prefix)
    return {k[n:]: tuple(v.shape) for k, v in weights.items() if k.startswith(prefix)}


def infer_backbone(trunk: Mapping[str, tuple], last: Mapping[str, tuple]) -> str:
    """The backbone whose trunk and last stage have exactly these names and shapes."""
    for arch in BACKBONES:
        if _backbone_shapes(arch) == (dict(trunk), dict(last)):
            return arch
    raise ValueError(
        f"the checkpoint's backbone is none of {sorted(BACKBONES)} (its trunk has "
        f"{len(trunk)} tensors, first {next(iter(trunk), None)!r})"
    )


def shares_layer4(weights: Mapping[str, torch.Tensor]) -> bool:
    """Whether every teacher's layer4 in ``weights`` equals MB's (one shared layer4)."""
    mb = {k[len("layer4.mb.") :]: v for k, v in weights.items() if k.startswith("layer4.mb.")}
    teachers = [t for t in TEACHER_BRANCHES if f"layer4.{t}.{next(iter(mb))}" in weights]
    return all(torch.equal(weights[f"layer4.{t}.{k}"], v) for t in teachers for k, v in mb.items())


def infer_architecture(weights: Mapping[str, torch.Tensor]) -> tuple[type[nn.Module], dict]:
    """``(PGFLKD or BNNeckReID, keyword arguments)`` read from the weights' names and shapes.

    Raises ``ValueError`` for weights of any other model.
    """
    if "heads.mb.bn.weight" in weights:
        branches = [t for t in TEACHER_BRANCHES if f"heads.{t}.bn.weight" in weights]
        kwargs = dict(
            backbone=infer_backbone(_sub(weights, "stem."), _sub(weights, "layer4.mb.")),
            feb="feb" in branches,
            sab="sab" in branches,
            share_layer4=bool(branches) and shares_layer4(weights),
        )
        return PGFLKD, kwargs
    if "bottleneck.weight" in weights and any(k.startswith("backbone.0.") for k in weights):
        backbone = infer_backbone(_sub(weights, "backbone.0."), _sub(weights, "backbone.1."))
        return BNNeckReID, dict(backbone=backbone)
    raise ValueError(
        "not a PGFL-KD or BNNeck checkpoint: its weights start "
        f"{list(weights)[:5]} (expected 'stem.*', 'layer4.mb.*', 'heads.mb.*')"
    )


def model_name(cls: type[nn.Module], backbone: str) -> str:
    """The torchreid ``build_model`` name of a model class and backbone (``pgflkd_resnet18``)."""
    return f"{'bnneck' if issubclass(cls, BNNeckReID) else 'pgflkd'}_{backbone}"


def check_shared_layer4(weights: Mapping[str, torch.Tensor], share_layer4: bool) -> None:
    """Refuse ``share_layer4=True`` for weights with a layer4 per branch.

    Loading them into one shared layer4 would give MB the last branch's (SAB's) layer4: the
    shapes fit, the features are silently wrong.
    """
    teachers = any(k.startswith(("layer4.feb.", "layer4.sab.")) for k in weights)
    if share_layer4 and teachers and not shares_layer4(weights):
        raise ValueError(
            "model.share_layer4 is True but the checkpoint was trained with a layer4 per branch "
            "(its MB, FEB and SAB layer4 differ): loading it would give MB the SAB layer4. "
            "Use model.share_layer4 False (what the checkpoint stores)"
        )


def model_kwargs_from_checkpoint(state: Any) -> tuple[type[nn.Module], dict[str, Any]]:
    """The model class and constructor keywords of a loaded checkpoint (``pretrained=False``).

    Architecture from the weights; ``CONFIG_ONLY_OPTIONS`` and ``share_layer4`` from the stored
    config when there is one. A stored config that contradicts the weights is an error.
    """
    weights = checkpoint_weights(state)
    cls, kwargs = infer_architecture(weights)
    kwargs["num_classes"] = checkpoint_num_classes(state, weights)
    stored = (checkpoint_config(state) or {}).get("model") or {}
    if stored.get("backbone", kwargs["backbone"]) != kwargs["backbone"]:
        raise ValueError(
            f"the checkpoint's config says model.backbone {stored['backbone']!r} but its weights "
            f"are a {kwargs['backbone']}"
        )
    if cls is PGFLKD:
        for key in CONFIG_ONLY_OPTIONS:
            if key in stored:
                kwargs[key] = stored[key]
        if "share_layer4" in stored:
            check_shared_layer4(weights, bool(stored["share_layer4"]))
            kwargs["share_layer4"] = bool(stored["share_layer4"])
        if "last_stride" not in stored:
            logger.info("checkpoint stores no model.last_stride: assuming 1 (the default)")
    elif "last_stride" in stored:
        kwargs["last_stride"] = stored["last_stride"]
    return cls, {**kwargs, "pretrained": False}


def load_model(path: str | os.PathLike, *, device: torch.device | str = "cpu") -> nn.Module:
    """The trained model stored in checkpoint ``path``, in eval mode on ``device``.

    Reads ``PGFLKDEngine`` / ``pgflkd train`` checkpoints, torchreid's own and bare state
    dicts (``torch.load(weights_only=True)``, numpy scalars allowed). Needs no ImageNet
    weights and no dataset. The load is strict: any tensor that does not fit is an error.
    """
    from torchreid_pgflkd.engine.checkpoint import read_checkpoint

    state = read_checkpoint(path)
    cls, kwargs = model_kwargs_from_checkpoint(state)
    model = cls(**kwargs)
    model.load_state_dict(checkpoint_weights(state))
    logger.info("loaded %s (%s) from %s", model_name(cls, kwargs["backbone"]), cls.__name__, path)
    return model.eval().to(device)


class _AnyShape:
    """Stands for a tensor of whatever shape it is compared with (see ``_AnyKeys``)."""

    def size(self) -> _AnyShape:
        return self

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = None  # type: ignore[assignment]


class _AnyKeys(dict):
    """The state dict of an ``AutoPGFLKD`` not built yet: it claims every key at every shape.

    torchreid's ``load_pretrained_weights`` keeps only the checkpoint tensors whose key is in
    ``model.state_dict()`` with the same shape, then calls ``model.load_state_dict`` with
    them; this lets every tensor through, so the model can build itself from all of them.
    """

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> _AnyShape:
        return _AnyShape()


class AutoPGFLKD(PGFLKD):
    """``build_model('pgflkd_auto', ...)``: a PGFL-KD built by the first weights loaded into it.

    Until then it has no parameters and cannot run. ``load_state_dict(weights)`` reads the
    backbone, branches, shared layer4 and number of classes from the weights (``num_classes``
    given here is ignored), builds itself and loads them strictly; weights of another model
    are a ``ValueError``. ``last_stride`` 1 and ``num_parts`` 6 are assumed (see the module
    docstring); ``load_model`` reads them from the checkpoint's config.
    """

    def __init__(self, *, num_classes: int = 1, loss: str = "softmax", **_: Any) -> None:
        nn.Module.__init__(self)
        self._auto_loss = loss
        self._built = False

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if not self._built and not args and not kwargs:
            return _AnyKeys()
        return super().state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign=False):
        if not self._built:
            weights = {k.removeprefix("module."): v for k, v in dict(state_dict).items()}
            cls, kwargs = infer_architecture(weights)
            if cls is not PGFLKD:
                raise ValueError(
                    f"pgflkd_auto loads PGFL-KD checkpoints; these weights are a {cls.__name__} "
                    f"({model_name(cls, kwargs['backbone'])}): build that name instead"
                )
            num_classes = checkpoint_num_classes({}, weights)
            training = self.training
            PGFLKD.__init__(self, num_classes=num_classes, loss=self._auto_loss, **kwargs)
            self._built = True
            self.train(training)
            logger.info("pgflkd_auto built as %s", model_name(PGFLKD, kwargs["backbone"]))
            state_dict = weights
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, images: torch.Tensor, *args: Any, **kwargs: Any):
        if not self._built:
            raise RuntimeError(
                "pgflkd_auto has no architecture until a checkpoint is loaded into it "
                "(load_state_dict / torchreid's load_pretrained_weights). With torchreid's "
                "FeatureExtractor pass verbose=False: its model summary runs the model before "
                "loading the weights. Or use torchreid_pgflkd.load_model(path)"
            )
        return super().forward(images, *args, **kwargs)
