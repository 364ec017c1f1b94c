"""Loaders: P x K train batches with pose maps computed after the geometric transforms.

A train batch is a dict: ``img`` (B, 3, H, W), ``pid`` (B,), ``camid`` (B,), ``impath`` (list),
``dsetid`` (B,), ``keypoints`` (B, 17, 3) after the transforms, and ``pose_maps``
(B, P + 1, h, w) per the pose contract. Test batches carry no pose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, default_collate

from torchreid_pgflkd import compat
from torchreid_pgflkd.data.image_cache import (
    AfterResize,
    ImageCache,
    ImageHook,
    build_image_cache,
    split_resize,
)
from torchreid_pgflkd.pose.contract import POSE_MAPS_KEY
from torchreid_pgflkd.pose.keypoints import empty_pose, sanitize_keypoints
from torchreid_pgflkd.pose.maps import PoseMapper

logger = logging.getLogger(__name__)

Sample = tuple[str, int, int, int]
KeypointLookup = Callable[[str], np.ndarray]
SamplerFactory = Callable[..., Sampler]


class _EmptyLookup:
    def __call__(self, _img_path: str) -> np.ndarray:
        return empty_pose()


class PoseSampleSet(Dataset):
    """Samples ``(img_path, pid, camid, dsetid)`` -> batch items, optionally with pose maps.

    Args:
        samples: torchreid 4-tuples.
        transform: a pose-aware transform ``(image, keypoints) -> (tensor, keypoints)``.
        keypoints: per-sample lookups ``img_path -> (17, 3)``, one per ``dsetid`` (or one
            for all); None for test sets.
        mapper: builds the pose maps from the transformed keypoints; None for no pose.
        image_hook: ``(image, img_path) -> image`` applied right after loading (before the
            transform); None for none.
        batch_maps: leave the pose maps to the loader's :class:`PoseCollate`, which draws a
            whole batch at once (9x cheaper per image than one at a time; the same maps).
        cache: the images already decoded and resized (:func:`build_image_cache`, with
            ``transform``'s first step, a ``Resize``, and any image hook applied); the
            transform then starts after its resize. The same items as without a cache.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        *,
        transform: Callable,
        keypoints: Sequence[KeypointLookup] | KeypointLookup | None = None,
        mapper: PoseMapper | None = None,
        image_hook: ImageHook | None = None,
        batch_maps: bool = False,
        cache: ImageCache | None = None,
    ) -> None:
        self.samples = list(samples)
        self.cache = cache
        self.after_resize = None if cache is None else AfterResize(transform)
        if self.after_resize is not None:
            if image_hook is not None:
                raise ValueError("with a cache, give the image hook to build_image_cache")
            resize = self.after_resize.resize
            if cache.image_hw != (resize.height, resize.width):
                raise ValueError(
                    f"the cache holds {cache.image_hw} images; the transform resizes to "
                    f"{(resize.height, resize.width)}"
                )
        self.batch_maps = batch_maps
        self.image_hook = image_hook
        self.transform = transform
        if keypoints is None or callable(keypoints):
            keypoints = [keypoints or _EmptyLookup()]
        self.keypoints = list(keypoints)
        self.mapper = mapper

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        img_path, pid, camid, dsetid = self.samples[index]
        if self.cache is None:
            try:
                image = Image.open(img_path).convert("RGB")
            except OSError as exc:
                raise OSError(f"cannot read image {img_path}: {exc}") from exc
            if self.image_hook is not None:
                image = self.image_hook(image, img_path)
            hw = image.size[::-1]
            transform = self.transform
        else:  # resized already: the keypoints are scaled from the original size `hw`
            image, hw = self.cache[img_path]
            transform = partial(self.after_resize, source_hw=hw)
        item: dict[str, Any] = {"pid": pid, "camid": camid, "impath": img_path, "dsetid": dsetid}
        if self.mapper is None:
            item["img"], _ = transform(image, empty_pose())
            return item
        lookup = self.keypoints[dsetid if dsetid < len(self.keypoints) else 0]
        kp = sanitize_keypoints(lookup(img_path), source=img_path, image_hw=hw)
        img, kp = transform(image, kp)
        item["img"], item["keypoints"] = img, torch.from_numpy(np.ascontiguousarray(kp))
        if not self.batch_maps:
            item[POSE_MAPS_KEY] = self.mapper(kp, image_hw=tuple(img.shape[-2:]))
        return item


def combine_train_sets(datasets: Sequence[Any]) -> tuple[list[Sample], list[KeypointLookup]]:
    """Train samples of several datasets with pids/cameras offset and ``dsetid`` = position.

    Returns the samples and one keypoint lookup per dataset (empty poses for datasets that do
    not know their keypoints, e.g. torchreid's own ``market1501``).
    """
    samples: list[Sample] = []
    lookups: list[KeypointLookup] = []
    pid_offset = cam_offset = 0
    for i, ds in enumerate(datasets):
        if not ds.train:
            raise ValueError(f"{type(ds).__name__} has no train split; use it as a target only")
        samples += [(p, pid + pid_offset, cam + cam_offset, i) for p, pid, cam, _ in ds.train]
        pid_offset += ds.num_train_pids
        cam_offset += ds.num_train_cams
        if hasattr(ds, "keypoint_lookup"):
            lookups.append(ds.keypoint_lookup("train"))
        else:
            logger.warning("%s has no keypoints: empty poses for its images", type(ds).__name__)
            lookups.append(_EmptyLookup())
    return samples, lookups


def shuffle_pose(batch: dict[str, Any]) -> dict[str, Any]:
    """Give each image of ``batch`` another image's pose maps and keypoints (a control).

    A random n-cycle: image ``order[i]`` takes the pose of image ``order[i + 1]``, so no image
    keeps its own. The maps keep the statistics of real poses but belong to someone else: a
    gain that survives this is not caused by *this* image's pose.
    """
    n = batch[POSE_MAPS_KEY].shape[0]
    if n > 1:
        order = torch.randperm(n)
        perm = torch.empty_like(order)
        perm[order] = order.roll(-1)
        batch[POSE_MAPS_KEY] = batch[POSE_MAPS_KEY][perm]
        batch["keypoints"] = batch["keypoints"][perm]
    return batch


class ShufflePoseCollate:
    """Collate items that carry pose maps, then :func:`shuffle_pose` the batch."""

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return shuffle_pose(default_collate(items))


class PoseCollate:
    """Collate, then draw the whole batch's pose maps from its transformed keypoints at once
    (``PoseMapper`` is batched), optionally :func:`shuffle_pose`. Picklable for workers; the
    shuffle's permutation comes from torch's RNG, which the loader seeds per worker and epoch.
    """

    def __init__(self, mapper: PoseMapper, *, shuffle: bool = False) -> None:
        self.mapper = mapper
        self.shuffle = shuffle

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch = default_collate(items)
        batch[POSE_MAPS_KEY] = self.mapper(batch["keypoints"], image_hw=batch["img"].shape[-2:])
        return shuffle_pose(batch) if self.shuffle else batch


def build_train_loader(
    datasets: Sequence[Any],
    *,
    transform: Callable,
    mapper: PoseMapper,
    shuffle_pose: bool = False,
    batch_size: int = 64,
    num_instances: int = 4,
    num_workers: int = 2,
    sampler: Sampler | SamplerFactory | None = None,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    cache_images: bool = False,
    cache_max_gb: float = 8.0,
) -> DataLoader:
    """P x K train loader over one or more source datasets (pids offset).

    With ``persistent_workers=False`` (default) the workers are started every epoch and
    seeded from the main process's torch RNG, so augmentation is a function of the run's
    seed and epoch: a resumed run (RNG restored from the checkpoint) sees the same
    augmentations as an uninterrupted one. Persistent workers save their start-up time per
    epoch but carry their RNG streams across epochs, which a resume cannot restore.

    ``sampler`` is a ``Sampler``, or a factory called as
    ``sampler(data_source=samples, batch_size=..., num_instances=...)`` (e.g. a rank-sharded
    identity sampler); default torchreid's ``RandomIdentitySampler``. ``shuffle_pose`` gives
    each image of a batch another image's pose maps (:func:`shuffle_pose`, a control).
    ``cache_images`` decodes and resizes every train image once, here, into shared memory
    (:func:`build_image_cache`, at most ``cache_max_gb``); the batches stay the same.
    """
    samples, lookups = combine_train_sets(datasets)
    if sampler is None:
        sampler = compat.random_identity_sampler()(samples, batch_size, num_instances)
    elif not isinstance(sampler, Sampler):
        sampler = sampler(data_source=samples, batch_size=batch_size, num_instances=num_instances)
    cache = None
    if cache_images:
        cache = build_image_cache(
            [s[0] for s in samples],
            resize=split_resize(transform)[0],
            max_gb=cache_max_gb,
            what="train images",
        )
    dataset = PoseSampleSet(
        samples,
        transform=transform,
        keypoints=lookups,
        mapper=mapper,
        batch_maps=True,
        cache=cache,
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=True,
        persistent_workers=persistent_workers and num_workers > 0,
        collate_fn=PoseCollate(mapper, shuffle=shuffle_pose),
    )


def build_test_loader(
    samples: Sequence[Sample],
    *,
    transform: Callable,
    batch_size: int = 128,
    num_workers: int = 2,
    pin_memory: bool = False,
    image_hook: ImageHook | None = None,
    cache_images: bool = False,
    cache_max_gb: float = 8.0,
) -> DataLoader:
    """Query or gallery loader: images only, in order (``image_hook`` applied before the
    transform, see :func:`dataset_image_hook`). ``cache_images``: as in
    :func:`build_train_loader`, with the hook applied once while caching."""
    if cache_images:
        cache = build_image_cache(
            [s[0] for s in samples],
            resize=split_resize(transform)[0],
            image_hook=image_hook,
            max_gb=cache_max_gb,
            what="test images",
        )
        dataset = PoseSampleSet(samples, transform=transform, cache=cache)
    else:
        dataset = PoseSampleSet(samples, transform=transform, image_hook=image_hook)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=False,
    )


def dataset_image_hook(dataset: Any, split: str) -> ImageHook | None:
    """The image hook a dataset asks for on ``split`` (its ``image_hook(split)``), or None for
    datasets without one (torchreid's own, most of ours)."""
    hook = getattr(dataset, "image_hook", None)
    return hook(split) if callable(hook) else None
