"""Evaluation for the engine: pose-free MB features ranked by the fast exact evaluator.

``EvaluationMixin`` replaces torchreid's ``_evaluate`` (its Python ranking is slow) and adds
``evaluate`` (every target, rank 0 only) and ``evaluate_branches`` (every branch *with* pose,
for ablations). It expects the engine's ``model``, ``device``, ``channels_last``,
``amp_dtype``, ``progress``, ``dist``, ``epoch`` and ``datamanager``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from torchreid_pgflkd.evaluation import evaluate_features
from torchreid_pgflkd.evaluation.extract import extract_features
from torchreid_pgflkd.utils.modules import unwrap_model

logger = logging.getLogger(__name__)


def evaluate_query_groups(
    q: dict[str, Any],
    g: dict[str, Any],
    labels: Sequence[str],
    metric: str = "euclidean",
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Rank-1 / mAP / mINP and ``num_queries`` of each group of queries, each group ranked
    against the whole gallery. ``q`` / ``g`` are ``extract_features`` outputs; ``labels``
    gives every query row its group. Groups come out in sorted order."""
    if len(labels) != len(q["pids"]):
        raise ValueError(f"{len(labels)} group labels for {len(q['pids'])} queries")
    out: dict[str, dict[str, Any]] = {}
    for group in sorted(set(labels)):
        rows = np.array([i for i, label in enumerate(labels) if label == group])
        res = evaluate_features(
            q["feat"][torch.from_numpy(rows)], g["feat"], q["pids"][rows], g["pids"],
            q["camids"][rows], g["camids"], metric=metric, device=device, progress=False,
        )  # fmt: skip
        out[group] = {k: res[k] for k in ("rank1", "mAP", "mINP")}
        out[group]["num_queries"] = len(rows)
    return out


class EvaluationMixin:
    """Evaluation methods of ``PGFLKDEngine`` (see the module docstring)."""

    def _extract(self, loader: Any, what: str, *, with_pose: bool = False) -> dict[str, Any]:
        return extract_features(
            self.model,
            loader,
            device=self.device,
            channels_last=self.channels_last,
            amp_dtype=self.amp_dtype,
            with_pose=with_pose,
            progress=self.progress,
            desc=f"features {what}",
        )

    @torch.no_grad()
    def _evaluate(
        self,
        dataset_name: str = "",
        query_loader: Any = None,
        gallery_loader: Any = None,
        dist_metric: str = "euclidean",
        normalize_feature: bool = False,
        visrank: bool = False,
        visrank_topk: int = 10,
        save_dir: str = "",
        use_metric_cuhk03: bool = False,
        ranks: Any = (1, 5, 10),
        rerank: bool = False,
    ) -> tuple[float, float]:
        """Pose-free MB features of query and gallery, ranked by the fast exact evaluator."""
        if use_metric_cuhk03:
            raise ValueError("the CUHK03 single-shot metric is not supported by this engine")
        q = self._extract(query_loader, f"{dataset_name} query")
        g = self._extract(gallery_loader, f"{dataset_name} gallery")
        if normalize_feature:
            q["feat"] = nn.functional.normalize(q["feat"], dim=1)
            g["feat"] = nn.functional.normalize(g["feat"], dim=1)
        results = evaluate_features(
            q["feat"], g["feat"], q["pids"], g["pids"], q["camids"], g["camids"],
            metric=dist_metric, rerank=rerank, device=self.device, progress=False,
        )  # fmt: skip
        results["epoch"] = self.epoch + 1
        by_group = self._evaluate_by_group(dataset_name, q, g, dist_metric)
        if by_group:
            results["by_occluder"] = by_group
        results["query_paths"], results["gallery_paths"] = q["paths"], g["paths"]
        self.last_results[dataset_name] = results
        self.last_features[dataset_name] = (q, g)  # for figures, without extracting again
        logger.info(
            "%s: Rank-1 %.1f%%  Rank-5 %.1f%%  mAP %.1f%%  mINP %.1f%%",
            dataset_name,
            100 * results["rank1"],
            100 * results["rank5"],
            100 * results["mAP"],
            100 * results["mINP"],
        )
        if visrank and save_dir:
            self._save_ranked_list(dataset_name, q, g, Path(save_dir), visrank_topk, dist_metric)
        return results["rank1"], results["mAP"]

    def _evaluate_by_group(
        self, name: str, q: dict[str, Any], g: dict[str, Any], metric: str
    ) -> dict[str, dict[str, Any]]:
        """Rank-1 / mAP / mINP of each group of queries (the embedded benchmark's occluder
        kinds), each against the whole gallery; empty when the test set has no groups."""
        query_groups = getattr(self.datamanager, "query_groups", None)
        groups = query_groups(name) if callable(query_groups) else None
        if not groups:
            return {}
        names = [Path(p).name for p in q["paths"]]
        missing = [n for n in names if n not in groups]
        if missing:
            raise ValueError(f"{name}: no occluder kind for queries {missing[:3]} in meta.json")
        out = evaluate_query_groups(q, g, [groups[n] for n in names], metric, self.device)
        for group, res in out.items():
            logger.info(
                "%s, %s occluders (%d queries): Rank-1 %.1f%%  mAP %.1f%%",
                name, group, res["num_queries"], 100 * res["rank1"], 100 * res["mAP"],
            )  # fmt: skip
        return out

    def _save_ranked_list(
        self,
        name: str,
        q: dict[str, Any],
        g: dict[str, Any],
        save_dir: Path,
        topk: int,
        metric: str = "euclidean",
    ) -> None:
        """torchreid's layout, ``save_dir/visrank_<name>/`` (one image per query, by its
        ``visualize_ranked_results``), and a summary of a few queries, ``ranked_<name>.png``."""
        from torchreid_pgflkd import compat
        from torchreid_pgflkd.evaluation import pairwise_distance, save_ranked_lists

        distmat = pairwise_distance(q["feat"], g["feat"], metric)
        folder = save_dir / f"visrank_{name}"
        dm = self.datamanager
        compat.visualize_ranked_results()(
            distmat.cpu().numpy(),
            dm.fetch_test_loaders(name),
            getattr(dm, "data_type", "image"),
            width=dm.width,
            height=dm.height,
            save_dir=str(folder),
            topk=topk,
        )
        out = save_dir / f"ranked_{name}.png"
        save_ranked_lists(
            distmat, q["paths"], g["paths"], q["pids"], g["pids"], q["camids"], g["camids"],
            out, topk=topk,
        )  # fmt: skip
        logger.info("ranked images saved to %s/, a summary to %s", folder, out)

    @torch.no_grad()
    def evaluate_branches(self, metric: str = "euclidean") -> dict[str, dict[str, Any]]:
        """Every branch's BN feature, computed *with* pose, ranked: ``{"<dataset>/<branch>": ..}``.

        For ablations: how good are the teachers (FEB, SAB) that MB distils from? Rank 0 only.
        """
        if not self.dist.is_main:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for name in self.datamanager.targets:
            loaders = self.datamanager.pose_test_loaders(name)
            q = self._extract(loaders["query"], f"{name} query, with pose", with_pose=True)
            g = self._extract(loaders["gallery"], f"{name} gallery, with pose", with_pose=True)
            for branch in unwrap_model(self.model).branch_names:
                res = evaluate_features(
                    q["feat"][branch], g["feat"][branch], q["pids"], g["pids"],
                    q["camids"], g["camids"], metric=metric, progress=False,
                )  # fmt: skip
                out[f"{name}/{branch}"] = res
                logger.info(
                    "%s %s (with pose): Rank-1 %.1f%%  mAP %.1f%%",
                    name, branch, 100 * res["rank1"], 100 * res["mAP"],
                )  # fmt: skip
        return out

    def evaluate(self, **test_kwargs: Any) -> dict[str, dict[str, Any]]:
        """Evaluate every target set (rank 0 only); returns ``{dataset: results}``."""
        if not self.dist.is_main:
            return {}
        self.last_results = {}
        self.test(**test_kwargs)
        return self.last_results
