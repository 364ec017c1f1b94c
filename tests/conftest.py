"""Shared fixtures: the real test data in ``<repo>/../shared/data`` (skipped when absent), and a
tiny embedded benchmark with its config overrides (engine, config and command-line tests)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

# resolved: the datasets resolve their paths, so a symlinked ../shared must compare equal
SHARED_DATA = (Path(__file__).resolve().parents[1].parent / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the shared real data folder; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (only CI and dev machines have it)")
    return SHARED_DATA


# Small enough for a few CPU steps per test: 8 train ids x 4 images at 64x32, resnet_mini.
TINY = [
    "data.height", "64", "data.width", "32", "data.workers", "0", "data.pad", "2",
    "synthetic.num_train_ids", "8", "synthetic.images_per_id", "4",
    "synthetic.num_test_ids", "4", "sampler.batch_size", "8", "sampler.num_instances", "2",
    "sampler.test_batch_size", "16", "train.max_epoch", "2", "train.warmup_epochs", "1",
    "train.milestones", "[10]", "train.print_freq", "1",
]  # fmt: skip
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "embedded.yaml"


@pytest.fixture(autouse=True)
def _keypoint_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHREID_PGFLKD_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synthetic")


@pytest.fixture
def tiny_opts(tiny_root: Path, tmp_path: Path) -> list[str]:
    return [*TINY, "data.root", str(tiny_root), "train.save_dir", str(tmp_path / "run")]


@pytest.fixture(autouse=True)
def _package_log_level():
    """Benchmark scripts run in-process set the package's log level; give each test a fresh one."""
    import logging

    package = logging.getLogger("torchreid_pgflkd")
    level = package.level
    yield
    package.setLevel(level)


@pytest.fixture
def tiny_market(tmp_path: Path):
    """A factory for a tiny Market-1501 copy (4 train ids x 4 images, 2 query and 4 gallery
    images, 64x32) under a fresh data root, which it returns: ``make(with_keypoints=n)`` writes
    KPR keypoint files (``external_annotation/...``) for the first ``n`` images of every split,
    ``None`` writes no keypoints folder; ``invisible=k`` makes the first ``k`` of those files
    hold no visible joint."""
    import json

    import numpy as np
    from PIL import Image

    from torchreid_pgflkd.data.keypoint_source import KPR_SUBDIR

    pose = np.zeros((17, 3))
    pose[:, 0], pose[:, 1], pose[:, 2] = 16, np.linspace(4, 60, 17), 0.9
    splits = {
        "bounding_box_train": [(pid, cam) for pid in (1, 2, 3, 4) for cam in (1, 1, 2, 2)],
        "query": [(5, 1), (6, 1)],
        "bounding_box_test": [(5, 2), (5, 2), (6, 2), (6, 2)],
    }

    def make(*, with_keypoints: int | None = None, invisible: int = 0) -> Path:
        root = tmp_path / f"market_{with_keypoints}_{invisible}"
        data = root / "market1501"
        rng = np.random.default_rng(0)
        for folder, rows in splits.items():
            (data / folder).mkdir(parents=True)
            for i, (pid, cam) in enumerate(rows):
                name = f"{pid:04d}_c{cam}s1_{i:06d}_00.jpg"
                pixels = rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(data / folder / name)
                if with_keypoints is None or i >= with_keypoints:
                    continue
                kp_dir = data / KPR_SUBDIR / folder
                kp_dir.mkdir(parents=True, exist_ok=True)
                kp = pose * [1, 1, 0] if i < invisible else pose
                people = [{"keypoints": kp.tolist(), "is_target": True}]
                (kp_dir / f"{name}_keypoints.json").write_text(json.dumps(people))
        return root

    return make


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench_script(request: pytest.FixtureRequest) -> ModuleType:
    """The ``benchmarks/`` script named by the test module's ``SCRIPT``, imported as a module
    (``benchmarks/`` on ``sys.path`` for its siblings such as ``_suite``), unloaded after."""
    name = request.module.SCRIPT
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module(name)
    sys.modules.pop(name, None)
