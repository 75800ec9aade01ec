"""Ranking metrics: mAP (@all, @K by ranks or by hits), P@K, R@K and the ranking precision-recall curve."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor

from ._checks import (DEFAULT_TIE_BREAK, _EMPTY_QUERIES, _TIE_BREAKS, _TOP_K_MODES, _check_choice, _check_ks,
                      _check_positive_int, _mean_over_queries, _prepare)
from ._index_order import _index_metric
from ._tie_aware import _ap_all_average, _ap_hits_average, _ap_ranks_average, _expected_hits_at_k, _log_factorials
from .histograms import DistanceHistograms, _check_histograms, distance_histograms


def map_from_histograms(h: DistanceHistograms, top_k: Optional[int] = None, top_k_mode: str = "ranks",
                        empty_queries: str = "zero") -> Tensor:
    """Tie-aware mAP@all / mAP@K from :func:`distance_histograms` (see :func:`mean_average_precision`)."""
    h = _check_histograms(h)
    _check_choice("top_k_mode", top_k_mode, _TOP_K_MODES)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    if top_k is not None:
        top_k = _check_positive_int("top_k", top_k)
    T, R = h.all, h.relevant
    if top_k is None or (top_k >= h.n_db and top_k_mode == "ranks"):
        values = _ap_all_average(T, R)
    else:
        lf = _log_factorials(h.n_db, T.device)
        values = (_ap_ranks_average if top_k_mode == "ranks" else _ap_hits_average)(T, R, top_k, lf)
    return _mean_over_queries(values, h.totals > 0, empty_queries)


def precision_at_k_from_histograms(h: DistanceHistograms, k: int, empty_queries: str = "zero") -> Tensor:
    """Tie-aware P@k from :func:`distance_histograms` (see :func:`precision_at_k`)."""
    h = _check_histograms(h)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    k = _check_positive_int("k", k)
    return _mean_over_queries(_expected_hits_at_k(h.all, h.relevant, k) / k, h.totals > 0, empty_queries)


def recall_at_k_from_histograms(h: DistanceHistograms, k: int, empty_queries: str = "zero") -> Tensor:
    """Tie-aware R@k from :func:`distance_histograms` (see :func:`recall_at_k`)."""
    h = _check_histograms(h)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    k = _check_positive_int("k", k)
    totals = h.totals
    found = _expected_hits_at_k(h.all, h.relevant, k)
    values = torch.where(totals > 0, found / totals.clamp(min=1), torch.zeros_like(found))
    return _mean_over_queries(values, totals > 0, empty_queries)


def precision_recall_at_k_from_histograms(h: DistanceHistograms, ks: Sequence[int],
                                          empty_queries: str = "zero") -> tuple[Tensor, Tensor]:
    """The ranking P-R curve (P@k and R@k for each k of ``ks``) from :func:`distance_histograms`."""
    ks = _check_ks(ks)
    p = torch.stack([precision_at_k_from_histograms(h, k, empty_queries) for k in ks])
    r = torch.stack([recall_at_k_from_histograms(h, k, empty_queries) for k in ks])
    return p, r


def mean_average_precision(
    query_codes: Tensor,
    db_codes: Tensor,
    query_labels: Tensor,
    db_labels: Tensor,
    top_k: Optional[int] = None,
    tie_break: str = DEFAULT_TIE_BREAK,
    empty_queries: str = "zero",
    top_k_mode: str = "ranks",
) -> Tensor:
    """Mean average precision of Hamming ranking (mAP@all or mAP@K).

    For one query with R relevant database items, ranked by Hamming distance (thesis App. A, eq. A.2),
    ``AP = (1 / R) * sum_{k=1}^{N} P@k * rel(k)`` and mAP is the mean over queries (eq. A.3).

    Parameters
    ----------
    query_codes, db_codes : Tensor [Q, bits], [N, bits]
        Binary codes: bool, {0, 1} or {-1, +1} (float or int); same number of bits; same device.
    query_labels, db_labels : Tensor
        Class indices ``[n]`` (integer) or multi-hot ``[n, C]`` (values in {0, 1}); a database item is relevant to
        a query when they share at least one label.
    top_k : int, optional
        ``None``: AP over the whole ranked database (mAP@all). ``K``: with ``top_k_mode="ranks"`` (default), AP over
        the first K ranks normalised by the number of relevant items among those K (DJSRH ``calculate_top_map``,
        DeepHash-pytorch ``CalcTopMap``, torchmetrics ``RetrievalMAP(top_k=K)``); a query whose relevant items all
        rank below K scores 0. ``K > N`` is the same as mAP@all.
    tie_break : {"average", "index"}
        ``"average"`` (default): exact expected AP over all orderings of items at equal distance (tie-aware AP,
        McFee & Lanckriet 2009; He et al., CVPR 2018). It does not depend on the order of the database and equals
        the mean of what random tie orders give. ``"index"``: tied items ranked by ascending database index,
        reproducible but dependent on database order.
    empty_queries : {"zero", "skip", "error"}
        A query with no relevant item in the whole database counts as AP 0 (``"zero"``, DJSRH/DCMH code), is left
        out of the mean (``"skip"``, ZSIH/DVB code) or raises (``"error"``).
    top_k_mode : {"ranks", "hits"}
        ``"hits"`` selects DCMH's ``calc_map_k`` convention: AP over the first K *relevant hits*,
        ``(1 / min(K, R)) * sum_{t <= min(K, R)} t / rank_t``; see :func:`mean_average_precision_first_k_hits`.

    Returns
    -------
    Tensor
        float64 scalar on the codes' device.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([[1, 1, 1, 1]])
    >>> db = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0]])
    >>> # ranks: irrelevant (distance 0), relevant (1), relevant (4): AP = (1/2 + 2/3) / 2
    >>> mean_average_precision(q, db, torch.tensor([0]), torch.tensor([1, 0, 0]))
    tensor(0.5833, dtype=torch.float64)
    """
    _check_choice("tie_break", tie_break, _TIE_BREAKS)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    _check_choice("top_k_mode", top_k_mode, _TOP_K_MODES)
    if top_k is not None:
        top_k = _check_positive_int("top_k", top_k)
    if tie_break == "average":
        return map_from_histograms(distance_histograms(query_codes, db_codes, query_labels, db_labels), top_k,
                                   top_k_mode, empty_queries)
    problem = _prepare(query_codes, db_codes, query_labels, db_labels)
    if top_k is None or (top_k >= problem.n_db and top_k_mode == "ranks"):
        what = "ap_all"
    else:
        what = "ap_ranks" if top_k_mode == "ranks" else "ap_hits"
    return _index_figure(problem, what, top_k, empty_queries)


def _index_figure(problem, what: str, k: Optional[int], empty_queries: str) -> Tensor:
    """One figure with ``tie_break="index"``: the per-query values of the stable-sort path, averaged."""
    values, totals = _index_metric(problem, what, k)
    return _mean_over_queries(values, totals > 0, empty_queries)


def mean_average_precision_first_k_hits(
    query_codes: Tensor,
    db_codes: Tensor,
    query_labels: Tensor,
    db_labels: Tensor,
    k: int,
    tie_break: str = DEFAULT_TIE_BREAK,
    empty_queries: str = "zero",
) -> Tensor:
    """DCMH-style mAP over the first ``k`` relevant hits (``calc_map_k`` of the DCMH PyTorch code).

    Per query ``AP = (1 / min(k, R)) * sum_{t=1}^{min(k, R)} t / rank_t`` where ``rank_t`` is the rank of the t-th
    relevant item. Unlike mAP@K over ranks, the cut-off counts relevant items, not positions, so it can look far
    down the ranking. Same as ``mean_average_precision(..., top_k=k, top_k_mode="hits")``; with ``k >= R`` it is
    the full AP. DCMH's code counts queries without relevant items as 0 (``empty_queries="zero"``) and orders
    ties by ``torch.sort`` (use ``tie_break="index"`` for a reproducible equivalent).

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([[1, 1]])
    >>> db = torch.tensor([[0, 0], [1, 1], [1, 0]])
    >>> mean_average_precision_first_k_hits(q, db, torch.tensor([0]), torch.tensor([0, 1, 0]), k=1,
    ...                                     tie_break="index")
    tensor(0.5000, dtype=torch.float64)
    """
    k = _check_positive_int("k", k)
    return mean_average_precision(query_codes, db_codes, query_labels, db_labels, top_k=k, tie_break=tie_break,
                                  empty_queries=empty_queries, top_k_mode="hits")


def precision_at_k(
    query_codes: Tensor,
    db_codes: Tensor,
    query_labels: Tensor,
    db_labels: Tensor,
    k: int,
    tie_break: str = DEFAULT_TIE_BREAK,
    empty_queries: str = "zero",
) -> Tensor:
    """Mean precision of the top-``k`` Hamming-ranked database items (thesis App. A, eq. A.1).

    ``P@k = |relevant items among the first k ranks| / k``, averaged over queries. The denominator is always
    ``k`` as in eq. A.1, also when ``k`` exceeds the database size (then P@k = R / k). With
    ``tie_break="average"`` the items of the distance group cut by rank k count with their expected relevance
    ``(k - n_before) * r / n``; with ``"index"`` the lowest database indices of that group are taken.
    ``empty_queries`` as in :func:`mean_average_precision` (such a query has P@k = 0).

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([[1, 1]])
    >>> db = torch.tensor([[1, 1], [1, 1], [0, 0]])
    >>> precision_at_k(q, db, torch.tensor([0]), torch.tensor([0, 1, 0]), k=1)
    tensor(0.5000, dtype=torch.float64)
    """
    _check_choice("tie_break", tie_break, _TIE_BREAKS)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    k = _check_positive_int("k", k)
    return _at_k("p_at_k", query_codes, db_codes, query_labels, db_labels, k, tie_break, empty_queries)


def _at_k(what: str, query_codes, db_codes, query_labels, db_labels, k: int, tie_break: str,
          empty_queries: str) -> Tensor:
    """P@k (``what="p_at_k"``) or R@k (``"r_at_k"``), either tie break."""
    if tie_break == "average":
        h = distance_histograms(query_codes, db_codes, query_labels, db_labels)
        fn = precision_at_k_from_histograms if what == "p_at_k" else recall_at_k_from_histograms
        return fn(h, k, empty_queries)
    return _index_figure(_prepare(query_codes, db_codes, query_labels, db_labels), what, k, empty_queries)


def recall_at_k(
    query_codes: Tensor,
    db_codes: Tensor,
    query_labels: Tensor,
    db_labels: Tensor,
    k: int,
    tie_break: str = DEFAULT_TIE_BREAK,
    empty_queries: str = "zero",
) -> Tensor:
    """Mean recall of the top-``k`` Hamming-ranked database items: ``R@k = |relevant in the first k| / R``.

    The companion of :func:`precision_at_k` (same ranking, same tie conventions: with ``tie_break="average"`` the
    group cut by rank k counts with its expected relevance); ``R`` is the query's number of relevant database
    items, and a query without any has R@k = 0 (``empty_queries="zero"``), is left out (``"skip"``) or raises.
    ``k >= N`` gives 1 for every query with a relevant item.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([[1, 1]])
    >>> db = torch.tensor([[1, 1], [0, 1], [0, 0]])
    >>> recall_at_k(q, db, torch.tensor([0]), torch.tensor([0, 1, 0]), k=1)   # 1 of the 2 relevant items
    tensor(0.5000, dtype=torch.float64)
    """
    _check_choice("tie_break", tie_break, _TIE_BREAKS)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    k = _check_positive_int("k", k)
    return _at_k("r_at_k", query_codes, db_codes, query_labels, db_labels, k, tie_break, empty_queries)


def precision_recall_at_k(
    query_codes: Tensor,
    db_codes: Tensor,
    query_labels: Tensor,
    db_labels: Tensor,
    ks: Sequence[int],
    tie_break: str = DEFAULT_TIE_BREAK,
    empty_queries: str = "zero",
) -> tuple[Tensor, Tensor]:
    """The ranking-based precision-recall curve: P@k and R@k (:func:`precision_at_k`, :func:`recall_at_k`) at
    each rank k of ``ks``, as float64 tensors ``[len(ks)]`` (the curve the field's repositories plot next to the
    Hamming-radius one, :func:`precision_recall_curve`).

    Examples
    --------
    >>> import torch
    >>> p, r = precision_recall_at_k(torch.tensor([[1, 1]]), torch.tensor([[1, 1], [0, 1], [0, 0]]),
    ...                              torch.tensor([0]), torch.tensor([0, 1, 0]), ks=[1, 2, 3])
    >>> p, r
    (tensor([1.0000, 0.5000, 0.6667], dtype=torch.float64), tensor([0.5000, 0.5000, 1.0000], dtype=torch.float64))
    """
    _check_choice("tie_break", tie_break, _TIE_BREAKS)
    _check_choice("empty_queries", empty_queries, _EMPTY_QUERIES)
    ks = _check_ks(ks)
    if tie_break == "average":
        return precision_recall_at_k_from_histograms(
            distance_histograms(query_codes, db_codes, query_labels, db_labels), ks, empty_queries)
    problem = _prepare(query_codes, db_codes, query_labels, db_labels)
    p, r = (torch.stack([_index_figure(problem, what, k, empty_queries) for k in ks]) for what in ("p_at_k", "r_at_k"))
    return p, r
