"""Hamming-ranking retrieval metrics: pure functions (:mod:`.functional`) and torchmetrics classes (:mod:`.metric`).

See ``docs/metrics.md`` for the definitions, the conventions and the benchmark.
"""

from lightning_hash.metrics import functional
from lightning_hash.metrics.functional import (
    DEFAULT_TIE_BREAK,
    hamming_distance,
    hamming_radius_precision_recall,
    mean_average_precision,
    mean_average_precision_first_k_hits,
    precision_at_k,
    precision_recall_at_k,
    precision_recall_curve,
    recall_at_k,
)
from lightning_hash.metrics.metric import (
    HammingMAP,
    HammingPrecisionAtK,
    HammingPRCurve,
    HammingRadiusPrecisionRecall,
    HammingRecallAtK,
    HammingRetrievalMetrics,
)

__all__ = [
    "functional",
    "DEFAULT_TIE_BREAK",
    "hamming_distance",
    "mean_average_precision",
    "mean_average_precision_first_k_hits",
    "precision_at_k",
    "recall_at_k",
    "precision_recall_at_k",
    "hamming_radius_precision_recall",
    "precision_recall_curve",
    "HammingMAP",
    "HammingPrecisionAtK",
    "HammingRadiusPrecisionRecall",
    "HammingPRCurve",
    "HammingRecallAtK",
    "HammingRetrievalMetrics",
]
