"""Results table, atomic JSON, CMC plot and ranked-list grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from torchreid_pgflkd.evaluation import (
    format_results_table,
    plot_cmc,
    save_ranked_lists,
    write_results_json,
)

RES = {"rank1": 0.631, "rank5": 0.78, "rank10": 0.83, "mAP": 0.541, "mINP": 0.2, "cmc": [0.631]}


def test_table_has_rows_and_percentages():
    table = format_results_table({"pgflkd/occluded_duke": RES, "baseline": {**RES, "mINP": None}})
    lines = table.splitlines()
    assert "Rank-1" in lines[0] and "mINP" in lines[0]
    assert "pgflkd/occluded_duke" in table and "63.1" in table and "54.1" in table
    assert lines[-1].split("|")[-2].strip() == "-"
    assert "78.0" in lines[-2]


def test_json_is_written_atomically(tmp_path):
    path = tmp_path / "sub" / "res.json"
    write_results_json({"m": {**RES, "cmc": np.array([0.5, 1.0], dtype=np.float32)}}, path)
    write_results_json({"m": RES, "n": np.int64(3)}, path)  # overwrite in place
    assert json.loads(path.read_text()) == {"m": RES, "n": 3}
    assert [p.name for p in path.parent.iterdir()] == ["res.json"]


def test_plot_cmc_writes_png(tmp_path):
    out = plot_cmc({"a": [0.5, 0.7, 0.9], "b": np.linspace(0.2, 1.0, 50)}, tmp_path / "cmc.png")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 100
    with pytest.raises(ValueError, match="curves is empty"):
        plot_cmc({}, tmp_path / "x.png")


def test_ranked_lists_grid_borders(tmp_path):
    paths = []
    for i in range(6):
        p = tmp_path / f"{i}.jpg"
        Image.new("RGB", (40, 80), (30 * i, 0, 200)).save(p)
        paths.append(p)
    # query 0 (id 1, cam 0): gallery 0 is same id+cam (skipped), then 1 (id 1), 2 (id 2), ...
    dist = np.array([[0.0, 0.1, 0.2, 0.3, 0.4]])
    out = save_ranked_lists(
        dist,
        paths[:1],
        paths[1:],
        np.array([1]),
        np.array([1, 1, 2, 3, 1]),
        np.array([0]),
        np.array([0, 1, 1, 1, 1]),
        tmp_path / "r.png",
        topk=3,
        cell=(40, 80),
    )
    with Image.open(out) as im:
        im = im.convert("RGB")
        w, pad = 40, 6
        # top-left border pixel of each ranked cell: green, red, red
        colours = [im.getpixel((pad * 3 + (k + 1) * (w + pad), pad)) for k in range(3)]
    assert colours[0][1] > 100 and colours[0][0] < 50
    assert all(c[0] > 200 and c[1] < 50 for c in colours[1:])


def test_ranked_lists_on_real_images(shared_data, tmp_path):
    query = sorted((shared_data / "market1501_mini").rglob("*.jpg"))[:6]
    if len(query) < 6:
        pytest.skip("market1501_mini has fewer than 6 jpg images")
    dist = np.random.default_rng(0).random((3, 3))
    ids = np.array([1, 2, 3])
    out = save_ranked_lists(
        dist,
        query[:3],
        query[3:],
        ids,
        ids,
        np.zeros(3, int),
        np.ones(3, int),
        tmp_path / "real.png",
        num_queries=3,
        topk=3,
    )
    with Image.open(out) as im:
        assert im.size[1] > 3 * 128
