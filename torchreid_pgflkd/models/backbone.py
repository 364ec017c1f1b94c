"""Backbones split for PGFL-KD: a shared trunk, the last stage (copied per branch), its width.

Two families, both at feature stride 16 (256x128 -> 16x8, 128x64 -> 8x4):

- torchvision ResNets (and ``resnet_mini``, a CPU-sized ResNet-10): trunk = stem..layer3,
  last stage = layer4 with its stride set to 1 (``last_stride=2`` gives stride 32);
- torchreid's OSNets: trunk = conv1, maxpool, conv2, conv3 (stride 16 is reached at the end
  of conv3), last stage = conv4 (the last OS blocks, no down-sampling) + conv5 (1x1 conv).
  OSNet's fc (512-d embedding) and classifier are dropped: the BNNeck heads replace them.
  Its down-sampling is a 2x2 average pool, which rounds *down* where ResNet's strided
  convolutions round up: the maps agree with ``pose.contract.feature_size`` when H and W
  are multiples of 16 (128x64, 256x128, 384x128), not otherwise.

Weight resolution order when ImageNet weights are requested:
1. an explicit file (``pretrained_path=``), else the ``PGFLKD_PRETRAINED_PATH`` environment
   variable (a file, or a folder holding the weights file name);
2. torch hub's cache, ``$TORCH_HOME/hub/checkpoints/<file name>`` (torchreid's older file
   names are accepted too; for OSNet also torchreid's own cache, ``$TORCH_HOME/checkpoints``);
3. a download (``download.pytorch.org``; OSNet's from Google Drive through ``gdown``), unless
   ``PGFLKD_OFFLINE=1``.
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
from torchreid_pgflkd.pose.contract import FEATURE_STRIDE

logger = logging.getLogger(__name__)

PRETRAINED_ENV = "PGFLKD_PRETRAINED_PATH"
OFFLINE_ENV = "PGFLKD_OFFLINE"


@dataclass(frozen=True)
class BackboneSpec:
    builder: str  # torchvision / torchreid function name, or "mini" for the CPU-sized ResNet
    weights_url: str  # ImageNet weights ('' = none exist)
    feature_dim: int  # channels of the last stage's map
    legacy_names: tuple[str, ...] = ()  # file names torchreid's model_zoo used
    family: str = "resnet"  # "resnet" (torchvision) | "osnet" (torchreid)
    filename: str = ""  # weights file name ('' = the URL's last component)

    @property
    def weights_file(self) -> str:
        return self.filename or self.weights_url.rsplit("/", 1)[1]


_HUB = "https://download.pytorch.org/models/"
RESNETS: dict[str, BackboneSpec] = {
    name: BackboneSpec(name, _HUB + current, dim, (legacy,))
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
RESNETS["resnet_mini"] = BackboneSpec("mini", "", 256)

_DRIVE = "https://drive.google.com/uc?id="
# torchreid's models/osnet.py (its ``pretrained_urls``; its cache file is <name>_imagenet.pth).
OSNETS: dict[str, BackboneSpec] = {
    name: BackboneSpec(
        name, _DRIVE + drive_id, dim, family="osnet", filename=f"{name}_imagenet.pth"
    )
    for name, drive_id, dim in (
        ("osnet_x1_0", "1LaG1EJpHrxdAxKnSCJ_i0u-nbxSAeiFY", 512),
        ("osnet_x0_75", "1uwA9fElHOk3ZogwbeY5GkLI6QPTX70Hq", 384),
        ("osnet_x0_5", "16DGLbZukvVYgINws8u8deSaOqjybZ83i", 256),
        ("osnet_x0_25", "1rb8UN5ZzPKRc_xvtHlyDh-cSz88YX9hs", 128),
        ("osnet_ibn_x1_0", "1sr90V6irlYYDd4_4ISU2iruoRG8J__6l", 512),
    )
}
BACKBONES: dict[str, BackboneSpec] = {**RESNETS, **OSNETS}


class PretrainedWeightsUnavailable(RuntimeError):
    """ImageNet weights were requested but could not be found or downloaded."""


def _hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _cache_dirs(spec: BackboneSpec) -> list[Path]:
    hub = _hub_checkpoint_dir()
    # torchreid caches OSNet weights in $TORCH_HOME/checkpoints, beside hub/.
    return [hub, hub.parent.parent / "checkpoints"] if spec.family == "osnet" else [hub]


def resolve_pretrained(arch: str, pretrained_path: str | os.PathLike | None = None) -> Path:
    """Find (or download) the ImageNet weights file of ``arch``; see the module docstring."""
    spec = _spec(arch)
    if not spec.weights_url:
        raise PretrainedWeightsUnavailable(
            f"{arch} has no ImageNet weights; build it with pretrained=False"
        )
    filename = spec.weights_file
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
    for folder in _cache_dirs(spec):
        for name in (filename, *spec.legacy_names):
            if (folder / name).is_file():
                return folder / name
    cache = _hub_checkpoint_dir()
    if os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        raise _unavailable(arch, spec, cache, f"${OFFLINE_ENV} is set")
    try:
        _download(spec, cache / filename)
    except Exception as exc:  # no network, proxy, disk full: all mean "not available"
        raise _unavailable(arch, spec, cache, f"download failed: {exc}") from exc
    return cache / filename


def _download(spec: BackboneSpec, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if spec.family != "osnet":
        torch.hub.download_url_to_file(spec.weights_url, str(dst), progress=True)
        return
    import gdown  # torchreid's own dependency; Google Drive needs its confirmation handling

    if not gdown.download(spec.weights_url, str(dst), quiet=False) or not dst.is_file():
        raise OSError(f"gdown could not fetch {spec.weights_url}")


def _unavailable(arch: str, spec: BackboneSpec, cache: Path, why: str):
    filename = spec.weights_file
    return PretrainedWeightsUnavailable(
        f"ImageNet weights for {arch} were requested but are not available ({why}). Download "
        f"{spec.weights_url} and either put it at {cache / filename} (torch hub cache), pass its "
        f"path as pretrained_path=..., or set {PRETRAINED_ENV}=/path/to/{filename}. "
        "Pass pretrained=False to train from random initialisation on purpose."
    )


def _spec(arch: str) -> BackboneSpec:
    if arch not in BACKBONES:
        raise ValueError(f"unknown backbone {arch!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[arch]


def _load_imagenet(
    net: nn.Module, arch: str, pretrained_path: str | os.PathLike | None, head: tuple[str, ...]
) -> None:
    """Load ``arch``'s ImageNet weights into ``net``; only the ``head`` keys may be missing."""
    spec = _spec(arch)
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
    state = {k.removeprefix("module."): v for k, v in state.items()}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if [k for k in missing if not k.startswith(head)] or unexpected:
        raise PretrainedWeightsUnavailable(
            f"{path} is not a {arch} ImageNet checkpoint: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}"
        )
    logger.info("loaded ImageNet weights for %s from %s", arch, path)


def feature_stride(arch: str, last_stride: int = 1) -> int:
    """Stride of ``arch``'s last-stage map: 16 (``FEATURE_STRIDE``), or 32 for a ResNet with
    ``last_stride=2``. The pose maps must be drawn at this stride (``PoseGeometry.stride``)."""
    spec = _spec(arch)
    return FEATURE_STRIDE * (last_stride if spec.family == "resnet" else 1)


def build_backbone(
    arch: str = "resnet50",
    *,
    last_stride: int = 1,
    pretrained: bool = False,
    pretrained_path: str | os.PathLike | None = None,
) -> tuple[nn.Module, nn.Module, int]:
    """Any backbone of ``BACKBONES`` as ``(trunk, last_stage, feature_dim)``.

    ``trunk``: ``(B, 3, H, W) -> (B, C, H/16, W/16)``, shared by the branches;
    ``last_stage``: ``-> (B, feature_dim, h, w)`` at ``feature_stride(arch, last_stride)``,
    copied per branch. See the module docstring for where each family is split.
    """
    build = build_osnet if _spec(arch).family == "osnet" else build_resnet
    return build(
        arch, last_stride=last_stride, pretrained=pretrained, pretrained_path=pretrained_path
    )


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
    if arch not in RESNETS:
        raise ValueError(f"unknown ResNet {arch!r}; choose one of {sorted(RESNETS)}")
    spec = RESNETS[arch]
    torchvision = compat.check_torchvision()
    if spec.builder == "mini":
        net = _resnet_mini(torchvision)
    else:
        net = getattr(torchvision.models, spec.builder)(weights=None)
    if pretrained or pretrained_path:
        _load_imagenet(net, arch, pretrained_path, head=("fc.",))
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


def build_osnet(
    arch: str = "osnet_x1_0",
    *,
    last_stride: int = 1,
    pretrained: bool = False,
    pretrained_path: str | os.PathLike | None = None,
) -> tuple[nn.Sequential, nn.Sequential, int]:
    """torchreid's OSNet split into ``(conv1..conv3, conv4 + conv5, feature_dim)``.

    conv3 ends with OSNet's last down-sampling (stride 16: 256x128 -> 16x8); conv4 and conv5
    keep that resolution, so there is no last stride to remove and ``last_stride`` must be 1.
    """
    if last_stride != 1:
        raise ValueError(
            f"{arch}: OSNet's last stage (conv4, conv5) does not down-sample, its map is at "
            f"stride 16; last_stride must be 1, got {last_stride}"
        )
    if arch not in OSNETS:
        raise ValueError(f"unknown OSNet {arch!r}; choose one of {sorted(OSNETS)}")
    spec = OSNETS[arch]
    # ImageNet-shaped (1000 classes), so that the checkpoint's classifier fits as well.
    net = getattr(compat.submodule("models.osnet"), spec.builder)(
        num_classes=1000, pretrained=False
    )
    if pretrained or pretrained_path:
        _load_imagenet(net, arch, pretrained_path, head=("fc.", "classifier."))
    trunk = nn.Sequential(net.conv1, net.maxpool, net.conv2, net.conv3)
    return trunk, nn.Sequential(net.conv4, net.conv5), spec.feature_dim


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
