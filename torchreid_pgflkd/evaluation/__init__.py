"""Exact, fast ReID evaluation: CMC / mAP / mINP from distances or features, plus reporting.

All metrics are fractions in [0, 1]. See :func:`evaluate_rank` (distance matrix, equals
torchreid's Python ``evaluate_rank``) and :func:`evaluate_features` (blocked, for large
galleries).
"""

from torchreid_pgflkd.evaluation.features import evaluate_features, pairwise_distance
from torchreid_pgflkd.evaluation.rank import evaluate_rank
from torchreid_pgflkd.evaluation.report import (
    format_results_table,
    plot_cmc,
    save_ranked_lists,
    write_results_json,
)

__all__ = [
    "evaluate_features",
    "evaluate_rank",
    "format_results_table",
    "pairwise_distance",
    "plot_cmc",
    "save_ranked_lists",
    "write_results_json",
]
