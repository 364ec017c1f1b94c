"""``data.cache_images``: batches from cached pixels are bit-identical to the uncached loader's
(images, keypoints, pose maps, augmentation draws), the size limit is checked before any
decoding, and an unreadable image is still named."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import torchreid_pgflkd  # noqa: F401  (registers the datasets)
from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.data.datamanager import PoseDataManager
from torchreid_pgflkd.data.datasets.folder import SeededOcclusion
from torchreid_pgflkd.data.image_cache import ImageCacheTooLarge, build_image_cache
from torchreid_pgflkd.data.loaders import build_test_loader, build_train_loader
from torchreid_pgflkd.data.transforms import Resize, build_pose_transforms
from torchreid_pgflkd.data.verify import BadImagesError
from torchreid_pgflkd.pose import POSE_MAPS_KEY
from torchreid_pgflkd.pose.maps import PoseMapper

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"
HEIGHT, WIDTH = 32, 16


class _Crops:
    """6 people x 4 crops of mixed sizes (one already 32x16, two greyscale) with keypoints."""

    num_train_pids, num_train_cams = 6, 2

    def __init__(self, folder: Path) -> None:
        rng = np.random.default_rng(0)
        self.train, self.kp = [], {}
        for i in range(24):
            pid = i // 4
            h, w = (
                (HEIGHT, WIDTH) if i == 5 else (int(rng.integers(20, 70)), int(rng.integers(9, 31)))
            )
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            image = Image.fromarray(arr).convert("L" if i in (2, 13) else "RGB")
            path = str(folder / f"{pid:04d}_c{i % 2}_{i:02d}.jpg")
            image.save(path, quality=90)
            self.train.append((path, pid, i % 2, 0))
            kp = np.stack([rng.uniform(0, w, 17), rng.uniform(0, h, 17), rng.uniform(0, 1, 17)], 1)
            kp[rng.random(17) < 0.2, 2] = 0.0
            self.kp[path] = kp.astype(np.float32)

    def keypoint_lookup(self, split: str):
        return self.kp.__getitem__


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> _Crops:
    return _Crops(tmp_path_factory.mktemp("crops"))


def _batches(loader, seed: int, n: int) -> list[dict]:
    random.seed(seed)  # torchreid's identity sampler draws from random and numpy
    np.random.seed(seed)
    torch.manual_seed(seed)  # every augmentation, and the workers' seeds
    return [batch for _, batch in zip(range(n), loader)]


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys() and x["impath"] == y["impath"]
        for key, value in x.items():
            if isinstance(value, torch.Tensor):
                assert value.dtype == y[key].dtype and torch.equal(value, y[key]), key


@pytest.mark.parametrize("workers", [0, 2])
def test_cached_train_batches_are_bit_identical(crops: _Crops, workers: int) -> None:
    transform, _ = build_pose_transforms(
        height=HEIGHT,
        width=WIDTH,
        padding=3,
        color_jitter=True,
        occlusion_prob=0.5,
        occlusion_pool=[s[0] for s in crops.train],
    )
    mapper = PoseMapper(stride=4)
    kwargs = dict(transform=transform, mapper=mapper, batch_size=8, num_instances=2)
    plain = build_train_loader([crops], num_workers=workers, **kwargs)
    cached = build_train_loader([crops], num_workers=workers, cache_images=True, **kwargs)
    assert plain.dataset.cache is None and len(cached.dataset.cache) == 24
    a, b = _batches(plain, 1, 3), _batches(cached, 1, 3)
    assert len(b) >= 2
    _assert_same(a, b)
    assert b[0]["img"].shape == (8, 3, HEIGHT, WIDTH) and b[0][POSE_MAPS_KEY].any()


def test_cached_test_batches_with_an_image_hook_are_bit_identical(crops: _Crops) -> None:
    _, transform = build_pose_transforms(height=HEIGHT, width=WIDTH)
    hook = SeededOcclusion()  # applied once while caching, before the resize, as uncached
    kwargs = dict(transform=transform, batch_size=10, num_workers=0, image_hook=hook)
    plain = build_test_loader(crops.train, **kwargs)
    cached = build_test_loader(crops.train, cache_images=True, **kwargs)
    _assert_same(_batches(plain, 0, 3), _batches(cached, 0, 3))
    unhooked = build_test_loader(crops.train, transform=transform, batch_size=10, num_workers=0)
    assert not torch.equal(next(iter(unhooked))["img"], next(iter(cached))["img"])


def test_the_cache_is_one_shared_uint8_tensor_of_resized_pixels(crops: _Crops) -> None:
    paths = [s[0] for s in crops.train]
    cache = build_image_cache(paths + paths[:5], resize=Resize(height=HEIGHT, width=WIDTH))
    assert cache.pixels.shape == (24, HEIGHT, WIDTH, 3) and cache.pixels.dtype == torch.uint8
    assert cache.pixels.is_shared() and cache.nbytes == 24 * HEIGHT * WIDTH * 3
    image, hw = cache[paths[0]]
    with Image.open(paths[0]) as original:
        assert hw == (original.height, original.width)
        expected = original.convert("RGB").resize((WIDTH, HEIGHT), Image.BILINEAR)
    assert np.array_equal(np.asarray(image), np.asarray(expected))
    with pytest.raises(KeyError, match="not in the image cache"):
        cache["elsewhere.jpg"]


def test_too_large_a_cache_is_refused_before_decoding(crops: _Crops, tmp_path: Path) -> None:
    transform, _ = build_pose_transforms(height=256, width=128)
    with pytest.raises(ImageCacheTooLarge, match=r"24 train images at 256x128 needs 0\.00 GB"):
        build_train_loader(
            [crops],
            transform=transform,
            mapper=PoseMapper(),
            batch_size=8,
            num_instances=2,
            cache_images=True,
            cache_max_gb=1e-4,  # 24 x 256 x 128 x 3 bytes = 2.4e-3 GB
        )
    missing = [str(tmp_path / "absent.jpg")]  # never opened: the size is checked first
    with pytest.raises(ImageCacheTooLarge, match="over data.cache_max_gb = 0"):
        build_image_cache(missing, resize=Resize(height=8, width=4), max_gb=0)


def test_an_unreadable_image_is_named(crops: _Crops, tmp_path: Path) -> None:
    good = crops.train[0][0]
    cut = tmp_path / "cut.jpg"
    data = Path(good).read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImagesError, match=rf"1 of 2 images .*: images: {cut} \(OSError"):
        build_image_cache([good, str(cut)], resize=Resize(height=HEIGHT, width=WIDTH))


def test_config_cache_images_through_the_builder(tiny_opts: list[str]) -> None:
    opts = [*tiny_opts, "data.pad", "3"]
    cfg = build.prepare_synthetic(load_config(CONFIG, opts), progress=False)
    cached_cfg = load_config(CONFIG, [*opts, "data.cache_images", "True"])
    cached_cfg = build.prepare_synthetic(cached_cfg, progress=False)
    plain, cached = build.build_datamanager(cfg), build.build_datamanager(cached_cfg)
    assert plain.train_set.cache is None and cached.cache_images
    assert len(cached.train_set.cache) == len(cached.train_set)
    for name, loaders in cached.test_loader.items():
        for split, loader in loaders.items():
            assert loader.dataset.cache is not None
            _assert_same(_batches(plain.test_loader[name][split], 0, 1), _batches(loader, 0, 1))
    plain.train_sampler.set_epoch(0)
    cached.train_sampler.set_epoch(0)
    _assert_same(_batches(plain.train_loader, 3, 2), _batches(cached.train_loader, 3, 2))

    small = load_config(CONFIG, [*opts, "data.cache_images", "True", "data.cache_max_gb", "1e-5"])
    with pytest.raises(ImageCacheTooLarge, match=r"caching \d+ train and test images at 64x32"):
        build.build_datamanager(build.prepare_synthetic(small, progress=False))


def test_real_market_crops_resized_with_real_keypoints(shared_data: Path) -> None:
    """Real 128x64 crops resized to 96x48 (a 0.75 scale on both axes) with real keypoints."""
    mat = shared_data / "keypoints" / "market1501_train_14point" / "market1501_14point_train.mat"
    kwargs = dict(
        root=str(shared_data / "market1501_mini"),
        sources="market1501_pose",
        height=96,
        width=48,
        batch_size_train=16,
        num_instances=4,
        batch_size_test=32,
        num_workers=0,
        dataset_kwargs={"market1501_pose": {"keypoints_file": str(mat)}},
    )
    plain, cached = PoseDataManager(**kwargs), PoseDataManager(cache_images=True, **kwargs)
    a, b = _batches(plain.train_loader, 0, 2), _batches(cached.train_loader, 0, 2)
    _assert_same(a, b)
    assert (b[0][POSE_MAPS_KEY][:, -1].flatten(1).amax(1) > 0.5).all()  # real poses
    gallery = cached.test_loader["market1501_pose"]["gallery"]
    _assert_same(
        _batches(plain.test_loader["market1501_pose"]["gallery"], 0, 1), _batches(gallery, 0, 1)
    )


def test_to_tensor_normalize_is_the_reference_formula_bit_for_bit() -> None:
    """The loader's slowest step after the cache, rewritten in place: every uint8 value in every
    channel (and greyscale / RGBA inputs) gives exactly ``(asarray(float32) / 255 - m) / s``."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    step = build_pose_transforms(height=16, width=16, norm_mean=mean, norm_std=std)[1].transforms[1]
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = np.stack([values, values.T, values[::-1]], -1)
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    for image in (
        Image.fromarray(rgb),
        Image.fromarray(values),
        Image.fromarray(rgb).convert("RGBA"),
    ):
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        expected = (torch.from_numpy(arr).permute(2, 0, 1) - m) / s
        out, _ = step(image, np.zeros((17, 3), np.float32))
        assert out.shape == (3, 16, 16) and torch.equal(out, expected)
