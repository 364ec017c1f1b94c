"""Shared fixtures: the real test data in ``<repo>/../shared/data`` (skipped when absent), and a
tiny embedded benchmark with its config overrides (engine, config and command-line tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
