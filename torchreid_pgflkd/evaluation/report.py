"""Reporting: a results table, atomic JSON, CMC plots and ranked-list images."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from torchreid_pgflkd.utils.io import write_json

_COLUMNS = (
    ("Rank-1", "rank1"),
    ("Rank-5", "rank5"),
    ("Rank-10", "rank10"),
    ("mAP", "mAP"),
    ("mINP", "mINP"),
)


def format_results_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A text table, one row per name (model or dataset), metrics shown as percentages.

    Args:
        results: name -> result dict as returned by ``evaluate_features`` (fractions in [0, 1]).
    """
    from tabulate import tabulate

    rows = []
    for name, res in results.items():
        row = [name]
        for _, key in _COLUMNS:
            value = res.get(key)
            row.append("-" if value is None else f"{100.0 * float(value):.1f}")
        rows.append(row)
    return tabulate(
        rows, headers=["name", *(c for c, _ in _COLUMNS)], tablefmt="github", disable_numparse=True
    )


def write_results_json(results: Any, path: str | os.PathLike) -> Path:
    """Write ``results`` as JSON atomically (keys sorted)."""
    return write_json(results, path, sort_keys=True)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cmc(curves: Mapping[str, Sequence[float]], path: str | os.PathLike) -> Path:
    """Save one PNG with a CMC curve per name; ``curves`` hold fractions, rank 1 first."""
    if not curves:
        raise ValueError("plot_cmc: curves is empty, nothing to plot")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, cmc in curves.items():
        cmc = np.asarray(cmc, dtype=float)
        ax.plot(np.arange(1, len(cmc) + 1), 100 * cmc, label=f"{name} (R1 {100 * cmc[0]:.1f})")
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def save_ranked_lists(
    distmat: Any,
    query_paths: Sequence[str | os.PathLike],
    gallery_paths: Sequence[str | os.PathLike],
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    out_path: str | os.PathLike,
    num_queries: int = 8,
    topk: int = 10,
    cell: tuple[int, int] = (64, 128),
) -> Path:
    """One PNG grid: each row a query (left) and its top-k gallery images.

    Gallery items with the query's id and camera are skipped, as in evaluation. Borders are
    green for the right id, red for a wrong one. Images are read with PIL.

    Args:
        distmat: (Q, G) distances.
        cell: (width, height) of each thumbnail in pixels.
    """
    from PIL import Image, ImageOps

    from torchreid_pgflkd.evaluation.checks import check_distmat, check_ids, to_numpy

    dist = check_distmat(distmat)
    num_q, num_g = dist.shape
    if len(query_paths) != num_q or len(gallery_paths) != num_g:
        raise ValueError(
            f"query_paths/gallery_paths have {len(query_paths)}/{len(gallery_paths)} entries, "
            f"distmat is {num_q}x{num_g}"
        )
    qp, gp = check_ids(q_pids, "q_pids", num_q), check_ids(g_pids, "g_pids", num_g)
    qc, gc = check_ids(q_camids, "q_camids", num_q), check_ids(g_camids, "g_camids", num_g)
    num_queries, topk = min(num_queries, num_q), min(topk, num_g)
    w, h = cell
    pad, border = 6, 3
    canvas = Image.new(
        "RGB", ((topk + 1) * (w + pad) + pad * 2, num_queries * (h + pad) + pad), "white"
    )

    def thumb(p: str | os.PathLike, colour: str | None) -> Image.Image:
        with Image.open(p) as im:
            im = im.convert("RGB").resize((w - 2 * border, h - 2 * border))
        return ImageOps.expand(im, border=border, fill=colour or "white")

    for i in range(num_queries):
        order = np.argsort(to_numpy(dist[i], "distmat"))
        keep = order[~((gp[order] == qp[i]) & (gc[order] == qc[i]))][:topk]
        y = pad + i * (h + pad)
        canvas.paste(thumb(query_paths[i], None), (pad, y))
        for k, j in enumerate(keep):
            colour = "green" if gp[j] == qp[i] else "red"
            canvas.paste(thumb(gallery_paths[j], colour), (pad * 3 + (k + 1) * (w + pad), y))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, format="PNG")
    return out
