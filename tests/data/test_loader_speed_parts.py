"""benchmarks/data_loading.py's pieces on the real CUHK03 crops: the four loaders read the same
samples, maps drawn per batch (ours) give the same batches as maps drawn per image, and a one-round
timing yields every loader's figures."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = "data_loading"  # imported by the bench_script fixture (conftest.py)


@pytest.fixture(scope="module")
def dl(bench_script: ModuleType) -> ModuleType:
    return bench_script


def test_loader_benchmark_parts(dl: ModuleType, shared_data: Path) -> None:
    specs = dl.build_loaders(str(shared_data), 64, 32, 8)
    dm, tdm = specs.pop("_dm"), specs.pop("_tdm")
    assert set(specs) == {"torchreid", "pgflkd_pose", "pgflkd_no_pose", "pgflkd_per_image_maps"}
    assert len(tdm.train_loader.dataset) == len(dm.train_set) == 7239

    same = dl.check_prototype(specs, batch=8, seed=0)
    assert same == {
        "max_abs_diff_img": 0.0, "max_abs_diff_pose_maps": 0.0, "max_abs_diff_keypoints": 0.0,
    }  # fmt: skip

    item = specs["pgflkd_no_pose"][0][0]
    assert "pose_maps" not in item and "keypoints" not in item  # the mapper is off

    times = dl.time_loaders(specs, batch_size=8, workers=0, rounds=1, batches=1)
    res = dl.summarise(times, workers=0)
    for name in specs:
        assert res[name]["images"] == 8 and res[name]["images_per_cpu_s"] > 0
    assert res["pgflkd_pose"]["cost_ratio_vs_torchreid"] > 0
    assert "cost_ratio_vs_torchreid" not in res["torchreid"]
