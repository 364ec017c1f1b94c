"""Models: PGFL-KD, its train-mode output, its deploy copy, a BNNeck baseline, torchreid names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from torchreid_pgflkd.models.baseline import BNNeckReID
from torchreid_pgflkd.models.deploy import DeployedReID, to_deploy
from torchreid_pgflkd.models.loading import AutoPGFLKD, load_model
from torchreid_pgflkd.models.outputs import BranchOutput, TrainOutput
from torchreid_pgflkd.models.pgflkd import PGFLKD, build_pgflkd


def _torchreid_factory(cls: type[nn.Module], backbone: str) -> Callable[..., nn.Module]:
    """Adapt to ``build_model(name, num_classes, loss, pretrained, use_gpu)``."""

    def factory(
        num_classes: int,
        loss: str = "softmax",
        pretrained: bool = True,
        use_gpu: bool = True,
        **kw: Any,
    ) -> nn.Module:
        del use_gpu  # torchreid's flag; the caller moves the model to its device
        return cls(
            num_classes=num_classes, backbone=backbone, loss=loss, pretrained=pretrained, **kw
        )

    factory.__name__ = f"{cls.__name__.lower()}_{backbone}"
    factory.__qualname__ = factory.__name__
    factory.__module__ = __name__
    return factory


def pgflkd_auto(
    num_classes: int = 1,
    loss: str = "softmax",
    pretrained: bool = False,
    use_gpu: bool = True,
    **kw: Any,
) -> AutoPGFLKD:
    """``build_model('pgflkd_auto', ...)``: an empty PGFL-KD that takes its backbone, branches
    and number of classes from the first checkpoint loaded into it (``models.loading``);
    ``num_classes`` and ``pretrained`` are ignored, the checkpoint holds both."""
    del pretrained, use_gpu
    return AutoPGFLKD(num_classes=num_classes, loss=loss, **kw)


# Names registered with torchreid.models.build_model on import.
MODEL_FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "pgflkd": _torchreid_factory(PGFLKD, "resnet50"),
    "pgflkd_resnet50": _torchreid_factory(PGFLKD, "resnet50"),
    "pgflkd_resnet34": _torchreid_factory(PGFLKD, "resnet34"),
    "pgflkd_resnet18": _torchreid_factory(PGFLKD, "resnet18"),
    "pgflkd_resnet_mini": _torchreid_factory(PGFLKD, "resnet_mini"),
    "pgflkd_auto": pgflkd_auto,
    "pgflkd_osnet_x0_25": _torchreid_factory(PGFLKD, "osnet_x0_25"),
    "pgflkd_osnet_x1_0": _torchreid_factory(PGFLKD, "osnet_x1_0"),
    "bnneck_resnet50": _torchreid_factory(BNNeckReID, "resnet50"),
    "bnneck_resnet18": _torchreid_factory(BNNeckReID, "resnet18"),
}

__all__ = [
    "MODEL_FACTORIES",
    "PGFLKD",
    "AutoPGFLKD",
    "BNNeckReID",
    "BranchOutput",
    "DeployedReID",
    "TrainOutput",
    "build_pgflkd",
    "load_model",
    "to_deploy",
]
