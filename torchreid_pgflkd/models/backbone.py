"""ResNet backbones with last stride 1, and ImageNet weights that never arrive silently random.

Weight resolution order when ImageNet weights are requested:
1. an explicit file (``pretrained_path=``), else the ``PGFLKD_PRETRAINED_PATH`` environment
   variable (a file, or a folder holding torchvision's file name);
2. torch hub's cache, ``$TORCH_HOME/hub/checkpoints/<torchvision file name>`` (torchreid's
   older file names are accepted too);
3. a download from ``download.pytorch.org`` (unless ``PGFLKD_OFFLINE=1``).
If none works the build fails with a message naming the file and where to put it.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from torchreid_pgflkd import compat

logger = logging.getLogger(__name__)

PRETRAINED_ENV = "PGFLKD_PRETRAINED_PATH"
OFFLINE_ENV = "PGFLKD_OFFLINE"


@dataclass(frozen=True)
class ResNetSpec:
    builder: str  # torchvision.models function name, or "mini" for the CPU-sized ResNet
    weights_url: str  # torchvision IMAGENET1K_V1 weights ('' = no ImageNet weights exist)
    feature_dim: int
    legacy_names: tuple[str, ...] = ()  # file names torchreid's model_zoo used


_HUB = "https://download.pytorch.org/models/"
RESNETS: dict[str, ResNetSpec] = {
    name: ResNetSpec(name, _HUB + current, dim, (legacy,))
    for name, current, legacy, dim in (
        ("resnet18", "resnet18-f37072fd.pth", "resnet18-5c106cde.pth", 512),
        ("resnet34", "resnet34-b627a593.pth", "resnet34-333f7ec4.pth", 512),
        ("resnet50", "resnet50-0676ba61.pth", "resnet50-19c8e357.pth", 2048),
        ("resnet101", "resnet101-63fe2227.pth", "resnet101-5d3b4d8f.pth", 2048),
    )
}
# A ResNet-10 at half width (one BasicBlock per stage, 32-256 channels): about a tenth of
# ResNet-18's compute, so the embedded benchmark trains from scratch in minutes on a CPU.
# There are no ImageNet weights for it.
RESNETS["resnet_mini"] = ResNetSpec("mini", "", 256)


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights were requested but could not be found or downloaded."""


def _hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_pretrained(arch: str, pretrained_path: str | os.PathLike | None = None) -> Path:
    """Find (or download) the ImageNet weights file of ``arch``; see the module docstring."""
    spec = _spec(arch)
    if not spec.weights_url:
        raise PretrainedWeightsUnavailable(
            f"{arch} has no ImageNet weights; build it with pretrained=False"
        )
    filename = spec.weights_url.rsplit("/", 1)[1]
    explicit = pretrained_path or os.environ.get(PRETRAINED_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_dir():
            path = path / filename
        if not path.is_file():
            source = "pretrained_path" if pretrained_path else f"${PRETRAINED_ENV}"
            raise PretrainedWeightsUnavailable(
                f"ImageNet weights for {arch} not found at {path} (from {source}). Download "
                f"{spec.weights_url} and put it there."
            )
        return path
    cache = _hub_checkpoint_dir()
    for name in (filename, *spec.legacy_names):
        if (cache / name).is_file():
            return cache / name
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise _unavailable(arch, spec, filename, cache, f"${OFFLINE_ENV} is set")
    try:
        torch.hub.download_url_to_file(spec.weights_url, str(cache / filename), progress=True)
    except Exception as exc:  # no network, proxy, disk full: all mean "not available"
        raise _unavailable(arch, spec, filename, cache, f"download failed: {exc}") from exc
    return cache / filename


def _unavailable(arch: str, spec: ResNetSpec, filename: str, cache: Path, why: str):
    return PretrainedWeightsUnavailable(
        f"ImageNet weights for {arch} were requested but are not available ({why}). Download "
        f"{spec.weights_url} and either put it at {cache / filename} (torch hub cache), pass its "
        f"path as pretrained_path=..., or set {PRETRAINED_ENV}=/path/to/{filename}. "
        "Pass pretrained=False to train from random initialisation on purpose."
    )


def _spec(arch: str) -> ResNetSpec:
    if arch not in RESNETS:
        raise ValueError(f"unknown backbone {arch!r}; choose one of {sorted(RESNETS)}")
    return RESNETS[arch]


def build_resnet(
    arch: str = "resnet50",
    *,
    last_stride: int = 1,
    pretrained: bool = False,
    pretrained_path: str | os.PathLike | None = None,
) -> tuple[nn.Sequential, nn.Module, int]:
    """Build a torchvision ResNet split into ``(stem..layer3, layer4, feature_dim)``.

    ``last_stride=1`` keeps layer4 at stride 16 overall: 256x128 -> 16x8.
    """
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
    spec = _spec(arch)
    torchvision = compat.check_torchvision()
    if spec.builder == "mini":
        net = _resnet_mini(torchvision)
    else:
        net = getattr(torchvision.models, spec.builder)(weights=None)
    if pretrained or pretrained_path:
        path = resolve_pretrained(arch, pretrained_path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise PretrainedWeightsUnavailable(
                f"could not read ImageNet weights {path}: {exc}. Delete the file and download "
                f"{spec.weights_url} again."
            ) from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        missing, unexpected = net.load_state_dict(state, strict=False)
        if [k for k in missing if not k.startswith("fc.")] or unexpected:
            raise PretrainedWeightsUnavailable(
                f"{path} is not a {arch} ImageNet checkpoint: missing keys {missing[:5]}, "
                f"unexpected keys {unexpected[:5]}"
            )
        logger.info("loaded ImageNet weights for %s from %s", arch, path)
    if last_stride == 1:
        block = net.layer4[0]
        # Bottleneck strides in conv2, BasicBlock in conv1; the shortcut strides in downsample.
        for conv in (getattr(block, "conv1", None), getattr(block, "conv2", None)):
            if conv is not None and conv.stride == (2, 2):
                conv.stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    stem = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3
    )
    return stem, net.layer4, spec.feature_dim


def _resnet_mini(torchvision) -> nn.Module:
    """torchvision's ResNet layout (conv1..layer4) with one BasicBlock per stage, 32-256 wide."""
    resnet = torchvision.models.resnet
    net = resnet.ResNet(resnet.BasicBlock, [1, 1, 1, 1])
    widths = (32, 64, 128, 256)
    net.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = nn.BatchNorm2d(widths[0])
    inplanes = widths[0]
    for i, planes in enumerate(widths):
        stride = 1 if i == 0 else 2
        downsample = None
        if stride != 1 or inplanes != planes:
            downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        block = resnet.BasicBlock(inplanes, planes, stride=stride, downsample=downsample)
        setattr(net, f"layer{i + 1}", nn.Sequential(block))
        inplanes = planes
    net.fc = nn.Linear(widths[-1], 1000)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return net
