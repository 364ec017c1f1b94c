"""``PoseDataManager``: what torchreid's ``Engine`` uses from an ``ImageDataManager``, with pose.

Attributes the Engine reads: ``train_loader``, ``test_loader`` (name -> {'query', 'gallery'}),
``num_train_pids``, ``num_train_cams``, ``sources``, ``targets``, ``height``, ``width``,
``data_type`` and ``fetch_test_loaders(name)`` (returns the query and gallery sample lists,
as torchreid's does, for rank visualisation).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import Sampler

from torchreid_pgflkd import compat
from torchreid_pgflkd.data.image_cache import check_cache_size, count_images
from torchreid_pgflkd.data.loaders import (
    SamplerFactory,
    build_test_loader,
    build_train_loader,
    dataset_image_hook,
)
from torchreid_pgflkd.data.pose_coverage import (
    KEYPOINT_POSE_SOURCES,
    check_training_pose,
    dataset_coverage,
    log_coverage,
)
from torchreid_pgflkd.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_pose_transforms
from torchreid_pgflkd.data.verify import verify_images as check_images
from torchreid_pgflkd.pose.contract import VISIBILITY_THRESHOLD, PoseGeometry
from torchreid_pgflkd.pose.maps import DEFAULT_SIGMA, PoseMapper, PriorMapper

POSE_SOURCES: tuple[str, ...] = ("keypoints", "stripes", "shuffled", "none")

logger = logging.getLogger(__name__)


def build_dataset(name: str, *, root: str, mode: str, **kwargs: Any) -> Any:
    """Construct a registered torchreid dataset (ours or torchreid's own) quietly."""
    registry = compat.image_dataset_registry()
    if name not in registry:
        raise ValueError(f"unknown dataset {name!r}; registered: {sorted(registry)}")
    return registry[name](root=root, mode=mode, verbose=False, **kwargs)


class PoseDataManager:
    """Train loader with pose maps (P x K batches) and pose-free test loaders.

    Args:
        root: data root.
        sources: training dataset name(s); several are combined with pids offset.
        targets: test dataset name(s); default ``sources``.
        height, width: image size.
        batch_size_train: P x K batch size; ``num_instances`` = K.
        batch_size_test: test batch size.
        num_workers: loader worker processes.
        sampler: a train ``Sampler`` or a factory ``(data_source, batch_size, num_instances)``
            (e.g. rank-sharded for DDP); default torchreid's ``RandomIdentitySampler``.
        dataset_kwargs: per dataset name, extra constructor keywords (``keypoints_dir``, ...).
        geometry: the part grouping and feature stride the model uses (``PoseGeometry``).
        sigma, visibility_threshold: pose-map settings (see ``PoseMapper``).
        pose_source: ``"keypoints"`` (default); controls that keep the model and losses but
            not the pose: ``"stripes"`` (fixed horizontal stripes and a centred foreground,
            ``PriorMapper``), ``"shuffled"`` (another image's pose maps) or ``"none"``.
        flip_prob, padding, erase_prob, color_jitter, norm_mean, norm_std: augmentation.
        soft_visibility: weight each keypoint's map by its confidence (``PoseMapper(soft=)``).
        occlusion_prob: probability of covering a training crop with another person or an
            object from the bottom or a side, hiding the covered joints (``RandomOcclusion``).
        pin_memory: pin batches (set when training on a GPU).
        persistent_workers: keep train workers across epochs (faster; breaks the exact
            equality of a resumed run with an uninterrupted one, see ``build_train_loader``).
        verify_images: open every train, query and gallery image once before anything else
            (``data.verify``): an unreadable one stops here, not after the last epoch.
        skip_bad_images: drop unreadable images instead (counted and logged).
        allow_missing_pose: train on a source that has no keypoints at all (its pose maps
            empty) instead of refusing it; only matters when the pose is used.
        uses_pose: whether the model trained on these batches reads the pose maps (FEB or
            SAB); with False (or ``pose_source`` ``stripes`` / ``none``) a source without
            keypoints is never refused. Either way the share of images without pose is
            logged per split and kept in ``pose_coverage`` (``data.pose_coverage``).
        cache_images: decode and resize every image once and keep it in memory (shared by
            the loader workers); batches are identical to the uncached loader's.
        cache_max_gb: refuse a cache larger than this many GB of decoded pixels.
    """

    data_type = "image"

    def __init__(
        self,
        *,
        root: str,
        sources: str | Sequence[str],
        targets: str | Sequence[str] | None = None,
        height: int = 256,
        width: int = 128,
        batch_size_train: int = 64,
        batch_size_test: int = 128,
        num_instances: int = 4,
        num_workers: int = 2,
        sampler: Sampler | SamplerFactory | None = None,
        dataset_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        geometry: PoseGeometry | None = None,
        sigma: float = DEFAULT_SIGMA,
        visibility_threshold: float = VISIBILITY_THRESHOLD,
        pose_source: str = "keypoints",
        soft_visibility: bool = False,
        occlusion_prob: float = 0.0,
        flip_prob: float = 0.5,
        padding: int = 10,
        erase_prob: float = 0.5,
        color_jitter: bool = False,
        norm_mean: Sequence[float] = IMAGENET_MEAN,
        norm_std: Sequence[float] = IMAGENET_STD,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        verify_images: bool = True,
        skip_bad_images: bool = False,
        allow_missing_pose: bool = False,
        uses_pose: bool = True,
        cache_images: bool = False,
        cache_max_gb: float = 8.0,
    ) -> None:
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        targets = self.sources if targets is None else targets
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        if not self.sources:
            raise ValueError("sources must name at least one dataset")
        self.height, self.width = int(height), int(width)
        self.allow_missing_pose = bool(allow_missing_pose)
        self.cache_images = bool(cache_images)
        self.cache_max_gb = float(cache_max_gb)
        kwargs = {k: dict(v) for k, v in (dataset_kwargs or {}).items()}
        self.geometry = geometry = geometry or PoseGeometry()
        if pose_source not in POSE_SOURCES:
            raise ValueError(f"pose_source must be one of {POSE_SOURCES}, got {pose_source!r}")
        self.pose_source = pose_source
        if pose_source in ("stripes", "none"):
            kind = "stripes" if pose_source == "stripes" else "empty"
            self.mapper = PriorMapper(
                num_parts=geometry.num_parts, kind=kind, stride=geometry.stride
            )
        else:
            self.mapper = PoseMapper.from_geometry(
                geometry, sigma=sigma, threshold=visibility_threshold, soft=soft_visibility
            )
        self.num_parts = self.mapper.num_parts

        train_sets = [
            build_dataset(n, root=root, mode="train", **kwargs.get(n, {})) for n in self.sources
        ]
        self._test_sets: dict[str, Any] = {
            n: build_dataset(n, root=root, mode="query", **kwargs.get(n, {})) for n in self.targets
        }
        self.pose_coverage = dataset_coverage(
            dict(zip(self.sources, train_sets)), self._test_sets, threshold=visibility_threshold
        )
        log_coverage(self.pose_coverage)
        if uses_pose and pose_source in KEYPOINT_POSE_SOURCES:  # before the slow image check
            check_training_pose(self.pose_coverage, allow_missing_pose=self.allow_missing_pose)
        if verify_images:
            splits = {f"{n}/train": ds.train for n, ds in zip(self.sources, train_sets)}
            for n, ds in self._test_sets.items():
                splits.update({f"{n}/query": ds.query, f"{n}/gallery": ds.gallery})
            check_images(splits, skip_bad=skip_bad_images)
        if self.cache_images:  # train and test caches together, before decoding any image
            check_cache_size(
                count_images(
                    [[s for ds in train_sets for s in ds.train]]
                    + [ds.query for ds in self._test_sets.values()]
                    + [ds.gallery for ds in self._test_sets.values()]
                ),
                height=self.height,
                width=self.width,
                max_gb=self.cache_max_gb,
                what="train and test images",
            )
        self.transform_tr, self.transform_te = build_pose_transforms(
            height=height,
            width=width,
            flip_prob=flip_prob,
            padding=padding,
            erase_prob=erase_prob,
            color_jitter=color_jitter,
            norm_mean=norm_mean,
            norm_std=norm_std,
            occlusion_prob=occlusion_prob,
            # Other people to occlude with: the training crops themselves.
            occlusion_pool=[x[0] for ds in train_sets for x in ds.train] if occlusion_prob else (),
        )
        self.train_loader = build_train_loader(
            train_sets,
            transform=self.transform_tr,
            mapper=self.mapper,
            shuffle_pose=pose_source == "shuffled",
            batch_size=batch_size_train,
            num_instances=num_instances,
            num_workers=num_workers,
            sampler=sampler,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            cache_images=self.cache_images,
            cache_max_gb=self.cache_max_gb,
        )
        self.train_sampler = self.train_loader.sampler
        self.train_set = self.train_loader.dataset
        self._num_train_pids = sum(ds.num_train_pids for ds in train_sets)
        self._num_train_cams = sum(ds.num_train_cams for ds in train_sets)

        self.test_loader: dict[str, dict[str, Any]] = {}
        self.test_dataset: dict[str, dict[str, list]] = {}
        self._loader_kwargs = dict(
            batch_size=batch_size_test, num_workers=num_workers, pin_memory=pin_memory
        )
        for name, ds in self._test_sets.items():
            self.test_dataset[name] = {"query": ds.query, "gallery": ds.gallery}
            self.test_loader[name] = {
                split: build_test_loader(
                    samples,
                    transform=self.transform_te,
                    batch_size=batch_size_test,
                    num_workers=num_workers,
                    pin_memory=pin_memory,
                    image_hook=dataset_image_hook(ds, split),
                    cache_images=self.cache_images,
                    cache_max_gb=self.cache_max_gb,
                )
                for split, samples in self.test_dataset[name].items()
            }
        logger.info(
            "PoseDataManager: sources %s (%d ids, %d images, %d cameras), targets %s",
            self.sources,
            self._num_train_pids,
            len(self.train_set),
            self._num_train_cams,
            self.targets,
        )

    @property
    def num_train_pids(self) -> int:
        return self._num_train_pids

    @property
    def num_train_cams(self) -> int:
        return self._num_train_cams

    def query_groups(self, name: str) -> dict[str, str] | None:
        """Query file name -> group (the embedded benchmark's occluder kind) for test set
        ``name``; ``None`` when the dataset has no such groups."""
        groups = getattr(self._test_sets.get(name), "query_groups", None)
        return groups() if callable(groups) else None

    def fetch_test_loaders(self, name: str) -> tuple[list, list]:
        """Query and gallery sample lists ``(img_path, pid, camid, dsetid)`` of a target."""
        if name not in self.test_dataset:
            raise KeyError(f"{name!r} is not a target; targets: {self.targets}")
        return self.test_dataset[name]["query"], self.test_dataset[name]["gallery"]

    def pose_test_loaders(self, name: str) -> dict[str, Any]:
        """Query and gallery loaders of a target *with* pose maps (test transform).

        For evaluating the pose-guided branches (ablations); the deployed model needs none.
        """
        from torch.utils.data import DataLoader

        from torchreid_pgflkd.data.loaders import PoseCollate, PoseSampleSet

        if name not in self._test_sets:
            raise KeyError(f"{name!r} is not a target; targets: {self.targets}")
        ds = self._test_sets[name]
        if not hasattr(ds, "keypoint_lookup"):
            raise ValueError(f"{type(ds).__name__} has no keypoints: use a pose-aware dataset")
        return {
            split: DataLoader(
                PoseSampleSet(
                    samples,
                    transform=self.transform_te,
                    keypoints=ds.keypoint_lookup(split),
                    mapper=self.mapper,
                    image_hook=dataset_image_hook(ds, split),
                    batch_maps=True,
                ),
                shuffle=False,
                drop_last=False,
                collate_fn=PoseCollate(self.mapper),
                **self._loader_kwargs,
            )
            for split, samples in self.test_dataset[name].items()
        }

    def test_keypoint_lookup(self, name: str, split: str = "query") -> Any:
        """``img_path -> (17, 3)`` keypoints of a target's ``query`` or ``gallery`` images."""
        if name not in self._test_sets:
            raise KeyError(f"{name!r} is not a target; targets: {self.targets}")
        ds = self._test_sets[name]
        if not hasattr(ds, "keypoint_lookup"):
            raise ValueError(f"{type(ds).__name__} has no keypoints: use a pose-aware dataset")
        return ds.keypoint_lookup(split)

    def return_query_and_gallery_by_name(self, name: str) -> tuple[list, list]:
        """Same as :meth:`fetch_test_loaders` (the name older torchreid releases use)."""
        return self.fetch_test_loaders(name)

    return_testdataset_by_name = return_query_and_gallery_by_name

    def preprocess_pil_img(self, img: Any) -> Any:
        """A PIL image -> normalised test tensor ``(3, H, W)``."""
        from torchreid_pgflkd.pose.keypoints import empty_pose

        return self.transform_te(img, empty_pose())[0]
