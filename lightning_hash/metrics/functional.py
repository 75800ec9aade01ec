"""Hamming-ranking retrieval metrics, pure torch (CPU and CUDA), exact and chunked.

Every metric here ranks a database by Hamming distance to each query and scores the ranking against label
relevance (a database item is *relevant* to a query when they share at least one label). The definitions follow
Appendix A of Shen's thesis (Precision@K, eq. A.1; average precision, eq. A.2/A.3; HD2 precision and recall,
eq. A.4) and make every convention that the field's code leaves implicit an explicit argument:

* ``tie_break``: how items at equal Hamming distance are ordered. ``"average"`` (the default) is the exact
  expected value over all orderings of tied items (tie-aware AP; McFee & Lanckriet 2009, He et al. CVPR 2018);
  ``"index"`` ranks tied items by ascending database index.
* ``empty_queries``: what a query without any relevant database item contributes (``"zero"``, ``"skip"``,
  ``"error"``).
* ``top_k_mode``: ``"ranks"`` (AP over the first K ranks, DJSRH / DeepHash-pytorch / torchmetrics) or ``"hits"``
  (AP over the first K relevant hits, DCMH's ``calc_map_k``).

Why ``tie_break="average"`` is the default: with b-bit codes there are only b + 1 distinct distances, so almost
every relevant item shares its distance with many others and the tie order decides a large part of the score.
``"index"`` makes the score depend on how the database happens to be ordered (sorting a database by class
changes mAP without changing a single code), and ``np.argsort``-based repos report one arbitrary order, which
equals the tie-aware value only on average. The tie-aware value is a property of the codes and labels alone: it
does not change when the database is shuffled or sharded across processes, and it is the expected value of what
any random tie order reports.

How it is computed: Hamming distances come from an exact integer matrix product of the bits
(d(u, v) = |u| + |v| - 2 u.v; float32, exact because every entry and partial sum is a small integer; no private
int8 op, see ``_exact_mm``). The tie-aware metrics and the radius / P-R metrics only need, per query, the
number of database items and of relevant items at each distance 0..bits; these are counted with one
``bincount`` per tile (queries x database columns), so memory is bounded for any database size and no sort is
needed. The closed forms of the expected values are in the private helpers below. ``tie_break="index"`` needs the
positions of the relevant items in the (distance, index) order; it uses one stable sort of the small integer
distances per query (a radix sort on CPU). On CPU, chunks of queries run in a pool of single-threaded workers.
All sums are accumulated in float64.

Where the pieces live (this module re-exports every public function): :mod:`.distance` (``hamming_distance``),
:mod:`.histograms` (``distance_histograms``), :mod:`.ranking` (mAP, P@K, R@K, the ranking P-R curve and their
``*_from_histograms`` forms), :mod:`.radius` (radius precision / recall and the radius P-R curve); private:
``_checks`` (input checks), ``_products`` (exact products, tiling), ``_tie_aware`` (closed forms),
``_index_order`` (the stable-sort path).
"""

from lightning_hash.metrics._checks import DEFAULT_TIE_BREAK
from lightning_hash.metrics.distance import hamming_distance
from lightning_hash.metrics.histograms import DistanceHistograms, distance_histograms
from lightning_hash.metrics.radius import (hamming_radius_precision_recall, precision_recall_curve,
                                           precision_recall_curve_from_histograms,
                                           radius_precision_recall_from_histograms)
from lightning_hash.metrics.ranking import (map_from_histograms, mean_average_precision,
                                            mean_average_precision_first_k_hits, precision_at_k,
                                            precision_at_k_from_histograms, precision_recall_at_k,
                                            precision_recall_at_k_from_histograms, recall_at_k,
                                            recall_at_k_from_histograms)

__all__ = [
    "DEFAULT_TIE_BREAK",
    "hamming_distance",
    "mean_average_precision",
    "mean_average_precision_first_k_hits",
    "precision_at_k",
    "recall_at_k",
    "precision_recall_at_k",
    "hamming_radius_precision_recall",
    "precision_recall_curve",
    "DistanceHistograms",
    "distance_histograms",
    "map_from_histograms",
    "precision_at_k_from_histograms",
    "recall_at_k_from_histograms",
    "precision_recall_at_k_from_histograms",
    "radius_precision_recall_from_histograms",
    "precision_recall_curve_from_histograms",
]
