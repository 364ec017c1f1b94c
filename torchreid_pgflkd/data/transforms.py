"""Pose-aware transforms: each takes and returns ``(image, keypoints)`` and keeps them consistent.

``image`` is a PIL image up to :class:`ToTensorNormalize`, a ``(3, H, W)`` float tensor after
it; ``keypoints`` is the ``(17, 3)`` COCO-17 pose in pixels of the current image. A keypoint
that leaves the image (crop) or is covered (random erasing) becomes invisible (confidence 0).
Randomness comes from torch's RNG, which DataLoader seeds per worker.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from torchreid_pgflkd.pose.contract import COCO17_FLIP_INDEX

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Sample = tuple["Image.Image | torch.Tensor", np.ndarray]


def _image_hw(image: Image.Image | torch.Tensor) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.height, image.width
    return int(image.shape[-2]), int(image.shape[-1])


def _hide_outside(keypoints: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = hw
    x, y = keypoints[:, 0], keypoints[:, 1]
    outside = (x < 0) | (x > w) | (y < 0) | (y > h)
    keypoints[outside] = 0.0
    return keypoints


def _rand() -> float:
    return float(torch.rand(()))


def _randint(low: int, high: int) -> int:
    """Uniform integer in ``[low, high]``."""
    return int(torch.randint(low, high + 1, ()))


class PoseCompose:
    """Apply pose-aware transforms in order."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, image, keypoints: np.ndarray) -> Sample:
        keypoints = np.array(keypoints, dtype=np.float32, copy=True)
        for t in self.transforms:
            image, keypoints = t(image, keypoints)
        return image, keypoints

    def __repr__(self) -> str:
        return f"PoseCompose({self.transforms})"


class Resize:
    """Resize a PIL image to ``(height, width)``; keypoints are scaled per axis."""

    def __init__(self, *, height: int, width: int) -> None:
        self.height, self.width = int(height), int(width)

    def __call__(self, image: Image.Image, keypoints: np.ndarray) -> Sample:
        hw = _image_hw(image)
        if hw != (self.height, self.width):
            image = image.resize((self.width, self.height), Image.BILINEAR)
        return image, self.scale_keypoints(keypoints, hw)

    def scale_keypoints(self, keypoints: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
        """``(17, 3)`` keypoints of an image of ``image_hw`` -> keypoints of the resized image.

        Also used alone by the image cache (``data/image_cache.py``), whose pixels are already
        resized: one function, so cached and uncached keypoints are the same floats.
        """
        h, w = image_hw
        if (h, w) != (self.height, self.width):
            keypoints = keypoints.copy()
            keypoints[:, 0] *= self.width / w
            keypoints[:, 1] *= self.height / h
        return keypoints


def flip_keypoints(keypoints: np.ndarray, width: int) -> np.ndarray:
    """Mirror ``(17, 3)`` keypoints in an image of ``width`` and swap left/right joints."""
    out = keypoints[list(COCO17_FLIP_INDEX)].copy()
    vis = out[:, 2] > 0
    out[vis, 0] = width - out[vis, 0]
    return out


class RandomHorizontalFlip:
    """Flip with probability ``p``; ``x -> W - x`` and left/right joints swap."""

    def __init__(self, *, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, image, keypoints: np.ndarray) -> Sample:
        if _rand() >= self.p:
            return image, keypoints
        _, w = _image_hw(image)
        if isinstance(image, Image.Image):
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            image = image.flip(-1)
        return image, flip_keypoints(keypoints, w)


class PadRandomCrop:
    """Zero-pad by ``padding`` pixels on each side, then crop a random window of the input size."""

    def __init__(self, *, padding: int = 10, fill: int = 0) -> None:
        self.padding, self.fill = int(padding), fill

    def __call__(self, image: Image.Image, keypoints: np.ndarray) -> Sample:
        if self.padding <= 0:
            return image, keypoints
        h, w = _image_hw(image)
        pad = self.padding
        canvas = Image.new(image.mode, (w + 2 * pad, h + 2 * pad), self.fill)
        canvas.paste(image, (pad, pad))
        x0, y0 = _randint(0, 2 * pad), _randint(0, 2 * pad)
        image = canvas.crop((x0, y0, x0 + w, y0 + h))
        keypoints = keypoints.copy()
        vis = keypoints[:, 2] > 0
        keypoints[vis, 0] += pad - x0
        keypoints[vis, 1] += pad - y0
        return image, _hide_outside(keypoints, (h, w))


class ColorJitter:
    """torchvision colour jitter on the image; keypoints unchanged."""

    def __init__(
        self,
        *,
        brightness: float = 0.2,
        contrast: float = 0.15,
        saturation: float = 0.0,
        hue: float = 0.0,
        p: float = 0.5,
    ) -> None:
        from torchvision.transforms import ColorJitter as TVColorJitter

        self.p = float(p)
        self.jitter = TVColorJitter(brightness, contrast, saturation, hue)

    def __call__(self, image, keypoints: np.ndarray) -> Sample:
        if _rand() < self.p:
            image = self.jitter(image)
        return image, keypoints


class ToTensorNormalize:
    """PIL image -> ``(3, H, W)`` float tensor, normalised by ``mean`` / ``std``."""

    def __init__(
        self, *, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
    ) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: Image.Image, keypoints: np.ndarray) -> Sample:
        if image.mode != "RGB":
            image = image.convert("RGB")
        # uint8 (H, W, 3) -> one contiguous float (3, H, W), then in place: the same float32
        # operations as ``(asarray(float32) / 255 - mean) / std``, bit for bit, at half the cost
        tensor = torch.from_numpy(np.array(image)).permute(2, 0, 1)
        tensor = tensor.to(torch.float32, memory_format=torch.contiguous_format)
        return tensor.div_(255.0).sub_(self.mean).div_(self.std), keypoints


class RandomErasing:
    """Erase a random rectangle of a ``(3, H, W)`` tensor; covered keypoints become invisible.

    The rectangle covers ``area`` of the image (fraction range) with aspect ratio in
    ``[ratio, 1 / ratio]``; it is filled with ``value`` (0 = the mean colour after
    normalisation). This is the free synthetic occlusion of the method.
    """

    def __init__(
        self,
        *,
        p: float = 0.5,
        area: tuple[float, float] = (0.02, 0.4),
        ratio: float = 0.3,
        value: float = 0.0,
    ) -> None:
        self.p, self.area, self.ratio, self.value = float(p), area, float(ratio), float(value)

    def __call__(self, image: torch.Tensor, keypoints: np.ndarray) -> Sample:
        if not isinstance(image, torch.Tensor):
            raise TypeError("RandomErasing works on tensors: put it after ToTensorNormalize")
        if _rand() >= self.p:
            return image, keypoints
        h, w = _image_hw(image)
        for _ in range(100):
            target = (self.area[0] + _rand() * (self.area[1] - self.area[0])) * h * w
            aspect = float(np.exp(np.log(self.ratio) + _rand() * -2 * np.log(self.ratio)))
            eh, ew = int(round((target * aspect) ** 0.5)), int(round((target / aspect) ** 0.5))
            if 0 < eh < h and 0 < ew < w:
                y0, x0 = _randint(0, h - eh), _randint(0, w - ew)
                image = image.clone()
                image[:, y0 : y0 + eh, x0 : x0 + ew] = self.value
                keypoints = keypoints.copy()
                x, y = keypoints[:, 0], keypoints[:, 1]
                covered = (x >= x0) & (x <= x0 + ew) & (y >= y0) & (y <= y0 + eh)
                keypoints[covered] = 0.0
                return image, keypoints
        return image, keypoints


class RandomOcclusion:
    """Cover part of a ``(3, H, W)`` tensor with an occluder; the joints it covers go invisible.

    With probability ``p`` an axis-aligned occluder covering a fraction ``area`` of the image
    enters from the bottom, the left or the right (as occluders do in occluded ReID queries:
    cars, benches, other people). Half the time it is a region of another training crop
    (another person in front of this one), otherwise a flat colour with noise (an object).
    Unlike random erasing (small, anywhere, mean colour) it looks like a real occluder, and
    the pose stays consistent with it: a free, pose-consistent occlusion.

    Args:
        p: probability of occluding an image.
        area: range of the covered fraction of the image.
        pool: image paths to take "other person" occluders from (none: objects only).
        mean, std: the normalisation of the input tensor (occluders are made in pixel space).
    """

    def __init__(
        self,
        *,
        p: float = 0.5,
        area: tuple[float, float] = (0.3, 0.5),
        pool: Sequence[str] = (),
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"occlusion probability must be in [0, 1], got {p}")
        if not 0 < area[0] <= area[1] < 1:
            raise ValueError(f"occlusion area must satisfy 0 < low <= high < 1, got {area}")
        self.p, self.area, self.pool = float(p), (float(area[0]), float(area[1])), list(pool)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def _occluder(self, h: int, w: int) -> torch.Tensor:
        """A ``(3, h, w)`` occluder in [0, 1] pixel space."""
        if self.pool and _rand() < 0.5:
            path = self.pool[_randint(0, len(self.pool) - 1)]
            with Image.open(path) as other:
                other = other.convert("RGB")
                # A random window of the other crop, at the occluder's aspect, resized to it.
                cw = max(1, min(other.width, int(round(other.height * w / max(h, 1)))))
                ch = max(1, min(other.height, int(round(cw * h / max(w, 1)))))
                x0 = _randint(0, other.width - cw)
                y0 = _randint(0, other.height - ch)
                patch = other.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.BILINEAR)
            return torch.from_numpy(np.asarray(patch, dtype=np.float32) / 255.0).permute(2, 0, 1)
        colour = torch.rand(3, 1, 1)
        return (colour + 0.15 * torch.randn(3, h, w)).clamp(0.0, 1.0)

    def __call__(self, image: torch.Tensor, keypoints: np.ndarray) -> Sample:
        if not isinstance(image, torch.Tensor):
            raise TypeError("RandomOcclusion works on tensors: put it after ToTensorNormalize")
        if _rand() >= self.p:
            return image, keypoints
        h, w = _image_hw(image)
        frac = self.area[0] + _rand() * (self.area[1] - self.area[0])
        side = _randint(0, 2)  # 0: from the bottom, 1: from the left, 2: from the right
        if side == 0:
            eh, ew = max(1, int(round(frac * h))), w
            y0, x0 = h - eh, 0
        else:
            eh, ew = h, max(1, int(round(frac * w)))
            y0, x0 = 0, (0 if side == 1 else w - ew)
        image = image.clone()
        image[:, y0 : y0 + eh, x0 : x0 + ew] = (self._occluder(eh, ew) - self.mean) / self.std
        keypoints = keypoints.copy()
        x, y = keypoints[:, 0], keypoints[:, 1]
        covered = (x >= x0) & (x <= x0 + ew) & (y >= y0) & (y <= y0 + eh)
        keypoints[covered] = 0.0
        return image, keypoints


def build_pose_transforms(
    *,
    height: int,
    width: int,
    flip_prob: float = 0.5,
    padding: int = 10,
    erase_prob: float = 0.5,
    color_jitter: bool = False,
    norm_mean: Sequence[float] = IMAGENET_MEAN,
    norm_std: Sequence[float] = IMAGENET_STD,
    occlusion_prob: float = 0.0,
    occlusion_pool: Sequence[str] = (),
) -> tuple[PoseCompose, PoseCompose]:
    """The default recipe (DESIGN section 2) -> ``(train_transform, test_transform)``.

    Train: resize, random flip, pad + random crop, optional colour jitter, normalise,
    optional occlusion (``RandomOcclusion``, off by default), random erasing.
    Test: resize, normalise.
    """
    train = [Resize(height=height, width=width)]
    if flip_prob > 0:
        train.append(RandomHorizontalFlip(p=flip_prob))
    if padding > 0:
        train.append(PadRandomCrop(padding=padding))
    if color_jitter:
        train.append(ColorJitter())
    train.append(ToTensorNormalize(mean=norm_mean, std=norm_std))
    if occlusion_prob > 0:  # not even built when off: the RNG stream stays as it was
        train.append(
            RandomOcclusion(p=occlusion_prob, pool=occlusion_pool, mean=norm_mean, std=norm_std)
        )
    if erase_prob > 0:
        train.append(RandomErasing(p=erase_prob))
    test = [Resize(height=height, width=width), ToTensorNormalize(mean=norm_mean, std=norm_std)]
    return PoseCompose(train), PoseCompose(test)
