"""torchmetrics ``Metric`` classes over :mod:`lightning_hash.metrics.functional`.

All classes share one state layout, so a ``MetricCollection(..., compute_groups=True)`` keeps a single copy of the
codes for all of them:

``query_codes``, ``query_labels``, ``query_indexes``, ``db_codes``, ``db_labels``, ``db_indexes``: lists of
tensors, ``dist_reduce_fx="cat"``. Codes are stored as uint8 bits, multi-hot labels as uint8, class-index labels
as int64, indexes as int64.

Usage: feed the query set and the database set with :meth:`update` (``role="query"`` / ``role="database"``), in
any number of batches and on any number of processes, then call :meth:`compute`. When ``indexes`` (the dataset row
index of every item) are given, ``compute`` orders each role's rows by index after the DDP gather and raises on
duplicates, so the result does not depend on how rows were sharded over processes. Without ``indexes`` the rows
are used in gather order (rank 0's rows first), which equals the dataset order for contiguous shards.

A single batch cannot be scored (the database is needed), so calling the metric (``forward``) only updates it and
returns ``None``.

Examples
--------
>>> import torch
>>> from torchmetrics import MetricCollection
>>> metrics = MetricCollection({"mAP@all": HammingMAP(), "P@2": HammingPrecisionAtK(2)}, compute_groups=True)
>>> metrics.update(torch.tensor([[1, 1]]), torch.tensor([0]), role="query")
>>> # distances 0 (relevant), 2, 1, 1 (relevant): rank 2 is a tie between items 2 and 3
>>> metrics.update(torch.tensor([[1, 1], [0, 0], [1, 0], [0, 1]]), torch.tensor([0, 1, 1, 0]), role="database")
>>> sorted((k, round(float(v), 4)) for k, v in metrics.compute().items())
[('P@2', 0.75), ('mAP@all', 0.9167)]
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from lightning_hash.metrics import _checks as C
from lightning_hash.metrics import functional as F

__all__ = ["HammingMAP", "HammingPrecisionAtK", "HammingRecallAtK", "HammingRadiusPrecisionRecall", "HammingPRCurve",
           "HammingRetrievalMetrics"]

_ROLES = {"query": "query", "database": "db"}


class _HammingRetrievalMetric(Metric):
    """Base class: the shared states, ``update`` and the gathering / ordering of rows in ``compute``."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for prefix in ("query", "db"):
            self.add_state(f"{prefix}_codes", default=[], dist_reduce_fx="cat")
            self.add_state(f"{prefix}_labels", default=[], dist_reduce_fx="cat")
            self.add_state(f"{prefix}_indexes", default=[], dist_reduce_fx="cat")

    def update(self, codes: Tensor, labels: Tensor, role: str, indexes: Optional[Tensor] = None) -> None:
        """Add a batch of query or database items.

        Parameters
        ----------
        codes : Tensor [n, bits]
            Binary codes (bool, {0, 1} or {-1, +1}).
        labels : Tensor
            Class indices [n] (integer) or multi-hot [n, C] (values in {0, 1}).
        role : {"query", "database"}
            Which set the batch belongs to.
        indexes : Tensor [n], optional
            Dataset row index of every item (long). Give them for every batch of a role or for none.
        """
        if role not in _ROLES:
            raise ValueError(f"role must be 'query' or 'database', got {role!r}")
        prefix = _ROLES[role]
        bits = C._codes_to_bits(codes, "codes")
        if not isinstance(labels, Tensor) or labels.dim() not in (1, 2):
            raise ValueError("labels must be a tensor of class indices [n] or multi-hot labels [n, C]")
        if labels.shape[0] != bits.shape[0]:
            raise ValueError(f"labels has {labels.shape[0]} rows but codes has {bits.shape[0]} rows")
        if labels.dim() == 1:
            if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
                raise ValueError(f"labels as a 1-D tensor must hold integer class indices, got dtype {labels.dtype}")
            labels = labels.long()
        else:
            if labels.is_floating_point() and bool(torch.isnan(labels).any()):
                raise ValueError("labels contains NaN")
            if labels.dtype != torch.bool and labels.numel() and not bool(((labels == 0) | (labels == 1)).all()):
                raise ValueError("labels must be multi-hot with values in {0, 1} (or class indices [n])")
            labels = labels.to(torch.uint8)
        earlier_labels = self._first("query_labels", "db_labels")
        if earlier_labels is not None and (earlier_labels.dim() != labels.dim() or (
                labels.dim() == 2 and earlier_labels.shape[1] != labels.shape[1])):
            raise ValueError(
                f"labels of shape {tuple(labels.shape)} do not match earlier labels of shape "
                f"{tuple(earlier_labels.shape)}"
            )
        earlier_codes = self._first("query_codes", "db_codes")
        if earlier_codes is not None and earlier_codes.shape[1] != bits.shape[1]:
            raise ValueError(f"codes have {bits.shape[1]} bits but earlier codes have {earlier_codes.shape[1]}")
        getattr(self, f"{prefix}_codes").append(bits.view(torch.uint8))
        getattr(self, f"{prefix}_labels").append(labels)
        if indexes is not None:
            if not isinstance(indexes, Tensor) or indexes.dim() != 1 or indexes.shape[0] != bits.shape[0]:
                raise ValueError(f"indexes must be a 1-D tensor with one entry per row ({bits.shape[0]})")
            if indexes.is_floating_point() or indexes.is_complex() or indexes.dtype == torch.bool:
                raise ValueError(f"indexes must be integer, got dtype {indexes.dtype}")
            getattr(self, f"{prefix}_indexes").append(indexes.long())

    def _first(self, *names: str) -> Optional[Tensor]:
        """The first stored tensor of the named states (to check that later batches match it), or None."""
        for name in names:
            state = getattr(self, name)
            if isinstance(state, Tensor) and state.numel():
                return state
            if isinstance(state, list) and state:
                return state[0]
        return None

    def forward(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102 - documented in the module docstring
        self.update(*args, **kwargs)

    def _rows(self, prefix: str, role: str) -> tuple[Tensor, Tensor]:
        codes, labels, indexes = (getattr(self, f"{prefix}_{name}") for name in ("codes", "labels", "indexes"))
        # after a DDP sync an empty list state may come back as an empty tensor
        if (isinstance(codes, list) and not codes) or (isinstance(codes, Tensor) and codes.numel() == 0):
            raise ValueError(f"no rows were given with role={role!r}: call update(codes, labels, role={role!r})")
        codes, labels = dim_zero_cat(codes), dim_zero_cat(labels)
        if (isinstance(indexes, list) and not indexes) or (isinstance(indexes, Tensor) and indexes.numel() == 0):
            return codes, labels
        indexes = dim_zero_cat(indexes)
        if indexes.shape[0] != codes.shape[0]:
            raise ValueError(
                f"indexes were given for {indexes.shape[0]} of {codes.shape[0]} {role} rows: give indexes for "
                f"every update of a role or for none"
            )
        order = torch.argsort(indexes, stable=True)
        ordered = indexes[order]
        if ordered.numel() > 1 and bool((ordered[1:] == ordered[:-1]).any()):
            dup = ordered[1:][ordered[1:] == ordered[:-1]][:5].tolist()
            raise ValueError(f"duplicate {role} indexes (e.g. {dup}): each item must be added exactly once")
        return codes[order], labels[order]

    def _inputs(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        q_codes, q_labels = self._rows("query", "query")
        d_codes, d_labels = self._rows("db", "database")
        return q_codes, d_codes, q_labels, d_labels


class HammingMAP(_HammingRetrievalMetric):
    """Mean average precision of Hamming ranking; see :func:`functional.mean_average_precision`.

    Parameters
    ----------
    top_k : int, optional
        ``None`` for mAP@all, ``K`` for mAP@K.
    tie_break : {"average", "index"}
        Default ``"average"`` (tie-aware, independent of database order).
    empty_queries : {"zero", "skip", "error"}
    top_k_mode : {"ranks", "hits"}
        ``"hits"``: DCMH's AP over the first K relevant hits.

    ``compute()`` returns a float64 scalar tensor.
    """

    def __init__(self, top_k: Optional[int] = None, tie_break: str = F.DEFAULT_TIE_BREAK,
                 empty_queries: str = "zero", top_k_mode: str = "ranks", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        C._check_choice("tie_break", tie_break, C._TIE_BREAKS)
        C._check_choice("empty_queries", empty_queries, C._EMPTY_QUERIES)
        C._check_choice("top_k_mode", top_k_mode, C._TOP_K_MODES)
        self.top_k = None if top_k is None else C._check_positive_int("top_k", top_k)
        self.tie_break, self.empty_queries, self.top_k_mode = tie_break, empty_queries, top_k_mode

    def compute(self) -> Tensor:
        return F.mean_average_precision(*self._inputs(), top_k=self.top_k, tie_break=self.tie_break,
                                        empty_queries=self.empty_queries, top_k_mode=self.top_k_mode)


class _AtK(_HammingRetrievalMetric):
    """A figure of the first ``k`` ranked items (P@k, R@k): the shared arguments and checks."""

    def __init__(self, k: int, tie_break: str = F.DEFAULT_TIE_BREAK, empty_queries: str = "zero",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        C._check_choice("tie_break", tie_break, C._TIE_BREAKS)
        C._check_choice("empty_queries", empty_queries, C._EMPTY_QUERIES)
        self.k = C._check_positive_int("k", k)
        self.tie_break, self.empty_queries = tie_break, empty_queries

    def _at_k(self, fn) -> Tensor:
        return fn(*self._inputs(), k=self.k, tie_break=self.tie_break, empty_queries=self.empty_queries)


class HammingPrecisionAtK(_AtK):
    """Mean precision of the top-``k`` ranked items; see :func:`functional.precision_at_k`.

    ``compute()`` returns a float64 scalar tensor.
    """

    def compute(self) -> Tensor:
        return self._at_k(F.precision_at_k)


class HammingRecallAtK(_AtK):
    """Mean recall of the top-``k`` ranked items; see :func:`functional.recall_at_k`.

    ``compute()`` returns a float64 scalar tensor.
    """

    def compute(self) -> Tensor:
        return self._at_k(F.recall_at_k)


class HammingRadiusPrecisionRecall(_HammingRetrievalMetric):
    """Precision and recall within a Hamming radius; see :func:`functional.hamming_radius_precision_recall`.

    ``compute()`` returns a dict ``{"P@r{radius}": precision, "R@r{radius}": recall}`` of float64 scalars (e.g.
    ``{"P@r2": ..., "R@r2": ...}``), so that a ``MetricCollection`` flattens it into loggable scalar entries under
    the metric names used in ``results.json``.
    """

    def __init__(self, radius: int = 2, average: str = "macro", empty_queries: str = "zero",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        radius = C._check_int("radius", radius, 0)
        C._check_choice("average", average, C._AVERAGES)
        C._check_choice("empty_queries", empty_queries, C._EMPTY_QUERIES)
        self.radius, self.average, self.empty_queries = radius, average, empty_queries

    def compute(self) -> dict[str, Tensor]:
        p, r = F.hamming_radius_precision_recall(*self._inputs(), radius=self.radius, average=self.average,
                                                 empty_queries=self.empty_queries)
        return {f"P@r{self.radius}": p, f"R@r{self.radius}": r}


class HammingPRCurve(_HammingRetrievalMetric):
    """Hamming-radius precision-recall curve; see :func:`functional.precision_recall_curve`.

    ``compute()`` returns a tuple ``(precision, recall)`` of float64 tensors of length ``bits + 1`` (radius 0..bits).
    """

    def __init__(self, average: str = "macro", empty_queries: str = "zero", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        C._check_choice("average", average, C._AVERAGES)
        C._check_choice("empty_queries", empty_queries, C._EMPTY_QUERIES)
        self.average, self.empty_queries = average, empty_queries

    def compute(self) -> tuple[Tensor, Tensor]:
        return F.precision_recall_curve(*self._inputs(), average=self.average, empty_queries=self.empty_queries)


class HammingRetrievalMetrics(_HammingRetrievalMetric):
    """Every figure of one retrieval task from one state, with the distance histograms computed once.

    A ``MetricCollection`` of the single-figure classes shares the codes (compute groups) but each member ranks
    the database again; this class computes :func:`functional.distance_histograms` once and derives every
    tie-aware figure from it (``tie_break="average"``), so evaluating 16 figures costs about one mAP@all. With
    ``tie_break="index"`` each ranking figure needs its own sort and is computed by its functional.

    Parameters
    ----------
    map_at : ranks K of ``mAP@K`` (``mAP@all`` is always computed).
    precision_at, recall_at : ranks K of ``P@K`` and ``R@K``.
    radius : Hamming radius of ``P@r{radius}`` / ``R@r{radius}`` (macro average).
    pr_curve : also the radius P-R curve (radius 0..bits) under ``"pr_curve"``.
    curve_at : ranks of the ranking P-R curve, under ``"rank_curve"`` as ``(ks, precision, recall)``.
    tie_break, empty_queries : as in :func:`functional.mean_average_precision`.

    ``compute()`` returns a dict of float64 scalars keyed ``mAP@all``, ``mAP@K``, ``P@K``, ``R@K``, ``P@rN``,
    ``R@rN``, plus ``pr_curve`` = (precision, recall) and ``rank_curve`` = (ks, precision, recall) when asked.

    Examples
    --------
    >>> import torch
    >>> m = HammingRetrievalMetrics(map_at=[2], precision_at=[2], recall_at=[2], radius=1)
    >>> m.update(torch.tensor([[1, 1]]), torch.tensor([0]), role="query")
    >>> m.update(torch.tensor([[1, 1], [0, 0], [1, 0], [0, 1]]), torch.tensor([0, 1, 1, 0]), role="database")
    >>> {k: round(float(v), 4) for k, v in m.compute().items()}
    {'mAP@all': 0.9167, 'mAP@2': 1.0, 'P@2': 0.75, 'R@2': 0.75, 'P@r1': 0.6667, 'R@r1': 1.0}
    """

    def __init__(self, map_at: Sequence[int] = (), precision_at: Sequence[int] = (), recall_at: Sequence[int] = (),
                 radius: Optional[int] = 2, pr_curve: bool = False, curve_at: Sequence[int] = (),
                 tie_break: str = F.DEFAULT_TIE_BREAK, empty_queries: str = "zero", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        C._check_choice("tie_break", tie_break, C._TIE_BREAKS)
        C._check_choice("empty_queries", empty_queries, C._EMPTY_QUERIES)
        self.map_at = [C._check_positive_int("map_at entry", k) for k in map_at]
        self.precision_at = [C._check_positive_int("precision_at entry", k) for k in precision_at]
        self.recall_at = [C._check_positive_int("recall_at entry", k) for k in recall_at]
        self.radius = None if radius is None else C._check_int("radius", radius, 0)
        self.pr_curve = bool(pr_curve)
        self.curve_at = [C._check_positive_int("curve_at entry", k) for k in curve_at]
        self.tie_break, self.empty_queries = tie_break, empty_queries

    def compute(self) -> Dict[str, Any]:
        inputs = self._inputs()
        empty = self.empty_queries
        h = F.distance_histograms(*inputs)   # the radius figures always come from it; with "average", all do
        out: Dict[str, Any] = {}
        if self.tie_break == "average":
            out["mAP@all"] = F.map_from_histograms(h, empty_queries=empty)
            for k in self.map_at:
                out[f"mAP@{k}"] = F.map_from_histograms(h, top_k=k, empty_queries=empty)
            for k in self.precision_at:
                out[f"P@{k}"] = F.precision_at_k_from_histograms(h, k, empty)
            for k in self.recall_at:
                out[f"R@{k}"] = F.recall_at_k_from_histograms(h, k, empty)
        else:
            kw = dict(tie_break="index", empty_queries=empty)
            out["mAP@all"] = F.mean_average_precision(*inputs, **kw)
            for k in self.map_at:
                out[f"mAP@{k}"] = F.mean_average_precision(*inputs, top_k=k, **kw)
            for k in self.precision_at:
                out[f"P@{k}"] = F.precision_at_k(*inputs, k=k, **kw)
            for k in self.recall_at:
                out[f"R@{k}"] = F.recall_at_k(*inputs, k=k, **kw)
        if self.radius is not None:
            p, r = F.radius_precision_recall_from_histograms(h, self.radius, empty_queries=empty)
            out[f"P@r{self.radius}"], out[f"R@r{self.radius}"] = p, r
        if self.pr_curve:
            out["pr_curve"] = F.precision_recall_curve_from_histograms(h, empty_queries=empty)
        if self.curve_at:
            if self.tie_break == "average":
                p, r = F.precision_recall_at_k_from_histograms(h, self.curve_at, empty)
            else:
                p, r = F.precision_recall_at_k(*inputs, ks=self.curve_at, tie_break="index", empty_queries=empty)
            out["rank_curve"] = (list(self.curve_at), p, r)
        return out

