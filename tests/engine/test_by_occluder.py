"""The embedded benchmark's results per occluder kind: a partition of the queries."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.data.synthetic.occluders import OCCLUDER_GROUPS

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"


def test_results_per_occluder_kind_partition_the_queries(tiny_opts: list[str]) -> None:
    cfg = build.prepare_synthetic(load_config(CONFIG, tiny_opts), progress=False)
    dm = build.build_datamanager(cfg)
    engine = build.build_engine(cfg, dm, progress=False)
    results = engine.evaluate()
    (name,) = results
    res = results[name]
    groups = res["by_occluder"]
    assert set(groups) <= {*OCCLUDER_GROUPS, "none"} and groups
    counts = [g["num_queries"] for g in groups.values()]
    assert sum(counts) == len(res["query_paths"])
    # Every query is valid here, so the whole set's figures are the groups' weighted means.
    for metric in ("rank1", "mAP", "mINP"):
        weighted = sum(g[metric] * g["num_queries"] for g in groups.values()) / sum(counts)
        assert weighted == pytest.approx(res[metric], abs=1e-6)
    assert dm.query_groups(name) is not None


def test_a_set_without_occluder_kinds_has_no_breakdown(tiny_opts: list[str]) -> None:
    cfg = build.prepare_synthetic(load_config(CONFIG, tiny_opts), progress=False)
    dm = build.build_datamanager(cfg)
    engine = build.build_engine(cfg, dm, progress=False)
    dm.query_groups = lambda name: None  # a real dataset: no occluder kinds
    (res,) = engine.evaluate().values()
    assert "by_occluder" not in res
