"""Hamming-radius metrics: precision and recall within a radius, and the radius precision-recall curve."""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import _AVERAGES, _EMPTY_QUERIES, _check_choice, _check_empty, _check_int
from .histograms import DistanceHistograms, _check_histograms, distance_histograms


def _precision_recall_from_counts(retrieved: Tensor, hits: Tensor, totals: Tensor, average: str,
                                  empty_queries: str) -> tuple[Tensor, Tensor]:
    has_rel = totals > 0
    _check_empty(has_rel, empty_queries)
    if empty_queries == "skip":
        retrieved, hits, totals = retrieved[has_rel], hits[has_rel], totals[has_rel]
    if average == "micro":
        n_ret, n_hit, n_rel = retrieved.sum(0), hits.sum(0), totals.sum()
        precision = torch.where(n_ret > 0, n_hit / n_ret.clamp(min=1), torch.zeros_like(n_hit))
        recall = n_hit / n_rel if float(n_rel) > 0 else torch.zeros_like(n_hit)
        return precision, recall
    precision = torch.where(retrieved > 0, hits / retrieved.clamp(min=1), torch.zeros_like(hits))
    recall = torch.where(totals[:, None] > 0, hits / totals[:, None].clamp(min=1), torch.zeros_like(hits))
    return precision.mean(0), recall.mean(0)


def radius_precision_recall_from_histograms(h: DistanceHistograms, radius: int = 2, average: str = "macro",
                                            empty_queries: str = "zero") -> tuple[Tensor, Tensor]:
    """Precision and recall within a Hamming radius from :func:`distance_histograms`
    (see :func:`hamming_radius_precision_recall`)."""
    h = _check_histograms(h)
    radius = _check_int("radius", radius, 0)
    p, r = precision_recall_curve_from_histograms(h, average, empty_queries)
    col = min(radius, h.bits)
    return p[col], r[col]


def precision_recall_curve_from_histograms(h: DistanceHistograms, average: str = "macro",
                                           empty_queries: str = "zero") -> tuple[Tensor, Tensor]:
    """The radius P-R curve (radius 0..bits) from :func:`distance_histograms` (see :func:`precision_recall_curve`)."""
    h = _check_histograms(h)
    _check_choice("average", average, _AVERAGES)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    return _precision_recall_from_counts(h.all.cumsum(1), h.relevant.cumsum(1), h.totals, average, empty_queries)


def hamming_radius_precision_recall(
    query_codes: Tensor,
    db_codes: Tensor,
    query_labels: Tensor,
    db_labels: Tensor,
    radius: int = 2,
    average: str = "macro",
    empty_queries: str = "zero",
) -> tuple[Tensor, Tensor]:
    """Precision and recall of the database items within Hamming distance ``<= radius`` (HD2 for radius 2).

    Per query (thesis App. A, eq. A.4): precision = |relevant within radius| / |within radius| and recall =
    |relevant within radius| / |relevant|. ``average="macro"`` (default) averages these over queries; a query
    with nothing inside the radius has precision 0 (it is counted, not skipped). ``average="micro"`` pools all
    query-database pairs first (DCMH's ``calcPreRecRadiusLabel``): precision = total relevant pairs within radius
    / total pairs within radius (0 if there are none), recall = total relevant pairs within radius / total
    relevant pairs. Queries without relevant items follow ``empty_queries`` (``"zero"``: recall 0 and kept;
    ``"skip"``: removed from both measures; ``"error"``: raise). Ties play no role. Radii above ``bits`` retrieve
    everything.

    Returns
    -------
    (Tensor, Tensor)
        precision and recall, float64 scalars.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([[1, 1, 1]])
    >>> db = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
    >>> hamming_radius_precision_recall(q, db, torch.tensor([0]), torch.tensor([0, 0, 1]), radius=2)
    (tensor(1., dtype=torch.float64), tensor(1., dtype=torch.float64))
    """
    _check_choice("average", average, _AVERAGES)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    radius = _check_int("radius", radius, 0)
    return radius_precision_recall_from_histograms(
        distance_histograms(query_codes, db_codes, query_labels, db_labels), radius, average, empty_queries)


def precision_recall_curve(
    query_codes: Tensor,
    db_codes: Tensor,
    query_labels: Tensor,
    db_labels: Tensor,
    average: str = "macro",
    empty_queries: str = "zero",
) -> tuple[Tensor, Tensor]:
    """Hamming-radius precision-recall curve: precision and recall of the items within radius r for r = 0..bits.

    Entry r equals :func:`hamming_radius_precision_recall` with ``radius=r`` and the same ``average`` and
    ``empty_queries``; see there for the conventions. With ``average="macro"`` queries that retrieve nothing at a
    small radius count as precision 0, which pulls the left end of the curve down; ``average="micro"`` (DCMH's
    ``calcPreRecRadiusLabel``, which DCMH and its successors plot) pools all pairs instead. Note that the DPSH /
    DCMH-pytorch ``pr_curve`` helper uses a third convention (precision averaged only over queries with non-zero
    precision) that is not offered here.

    Returns
    -------
    (Tensor, Tensor)
        precision [bits + 1] and recall [bits + 1], float64; recall at r = bits is 1 for every query with a
        relevant item.

    Examples
    --------
    >>> import torch
    >>> p, r = precision_recall_curve(torch.tensor([[1, 1]]), torch.tensor([[1, 1], [0, 0]]),
    ...                               torch.tensor([0]), torch.tensor([0, 1]))
    >>> p, r
    (tensor([1.0000, 1.0000, 0.5000], dtype=torch.float64), tensor([1., 1., 1.], dtype=torch.float64))
    """
    _check_choice("average", average, _AVERAGES)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    return precision_recall_curve_from_histograms(
        distance_histograms(query_codes, db_codes, query_labels, db_labels), average, empty_queries)
