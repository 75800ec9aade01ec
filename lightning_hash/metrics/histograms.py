"""Per-query distance histograms: one pass over the database for every tie-aware and radius metric.

:func:`distance_histograms` counts, per query, the database items and the relevant ones at each Hamming distance
0..bits; every tie-aware ranking figure and every radius figure is a function of these counts
(:mod:`.ranking`, :mod:`.radius`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import Tensor

from . import _products
from ._checks import _prepare, _Problem
from ._products import _distance_features, _int8_pieces, _parallel_map, _query_ranges, _relevance, _tile, _tile_product


_MAX_FUSED_BINS = 1 << 15


def _map_histograms(problem: _Problem, fn) -> list:
    """``[fn(T, R) for each query chunk]`` where T and R are float64 [rows, bits + 1] per-query counts of all
    items and of relevant items at each Hamming distance 0..bits.

    The counts come from one exact integer product per tile (queries x database columns) giving the key
    ``distance + step * relevance + row * n_bins`` and one ``bincount`` of the keys, so memory does not grow with
    the database size. For multi-hot labels with a small label overlap the relevance is folded into
    the same product: ``key = d + a * b * overlap`` (query label columns scaled by a, database label columns
    by b, a * b > bits) and bins with overlap >= 1 are relevant.
    """
    bits, device, lab = problem.bits, problem.device, problem.labels
    n_q, n_d = problem.n_query, problem.n_db
    fuse = False
    if lab.kind == "dot" and bits + 1 <= 127 * 127:
        # smallest a * b >= bits + 1 with int8 factors: the number of bins per overlap level
        a, b = min(((a, -(-(bits + 1) // a)) for a in range(1, 128) if -(-(bits + 1) // a) <= 127),
                   key=lambda ab: (ab[0] * ab[1], ab[0]))
        fuse = a * b * (lab.max_overlap + 1) <= _MAX_FUSED_BINS
    if fuse:  # key = d + a*b*overlap
        step = a * b
        n_bins = step * (lab.max_overlap + 1)
    else:  # key = d + (bits + 1) * relevant
        step = bits + 1
        n_bins = 2 * step
    # a chunk of up to 127 queries is counted by one bincount per tile: the product also adds the offset
    # r * n_bins of the query's row r in the chunk (q side: r, database side: n_bins in int8 pieces)
    rows = max(1, min(127, _tile(device) // min(n_d, _products._TILE_COLS), (1 << 21) // n_bins))
    ranges = _query_ranges(n_q, rows, device)
    rows = ranges[0][1] - ranges[0][0]
    n_off = -(-n_bins // 127)
    row_in_chunk = (torch.arange(n_q, device=device) % rows).to(torch.int8)[:, None].expand(n_q, n_off)
    bin_pieces = _int8_pieces(torch.full((1,), n_bins, device=device), n_off).expand(n_d, n_off)
    q_extra, d_extra = [row_in_chunk], [bin_pieces]
    if fuse:
        q_extra.insert(0, lab.query * a)
        d_extra.insert(0, lab.db * b)
    qf, df = _distance_features(problem, torch.cat(q_extra, 1), torch.cat(d_extra, 1))
    n_cols = min(n_d, _products._TILE_COLS if device.type == "cpu" else 1 << 16)

    local = threading.local()

    def chunk(bounds: tuple[int, int]):
        q0, q1 = bounds
        size = (q1 - q0) * n_bins
        hist = torch.zeros(size, dtype=torch.int64, device=device)
        for n0 in range(0, n_d, n_cols):
            n1 = min(n_d, n0 + n_cols)
            key = _tile_product(local, qf[q0:q1], df[n0:n1])
            if not fuse:
                key.add_(_relevance(lab, q0, q1, n0, n1), alpha=step)
            hist += torch.bincount(key.view(-1), minlength=size)
        hist = hist.view(q1 - q0, -1, step)[:, :, :bits + 1].double()  # [q, overlap levels, bits + 1]
        return fn(hist.sum(1), hist[:, 1:].sum(1))

    return _parallel_map(chunk, ranges, device)


@dataclass(frozen=True)
class DistanceHistograms:
    """Per query, the number of database items (``all``) and of relevant items (``relevant``) at each Hamming
    distance 0..bits: float64 ``[Q, bits + 1]``. Every tie-aware ranking metric (mAP@all, mAP@K, P@K, R@K, the
    ranking P-R curve) and every radius metric (P@r, R@r, the radius P-R curve) is a function of these counts
    alone, so one :func:`distance_histograms` call serves them all (``*_from_histograms``)."""

    all: Tensor
    relevant: Tensor

    @property
    def bits(self) -> int:
        return self.all.shape[1] - 1

    @property
    def n_db(self) -> int:
        return int(self.all[0].sum()) if self.all.shape[0] else 0

    @property
    def totals(self) -> Tensor:
        """Relevant database items per query, float64 [Q]."""
        return self.relevant.sum(1)


def distance_histograms(query_codes: Tensor, db_codes: Tensor, query_labels: Tensor,
                        db_labels: Tensor) -> DistanceHistograms:
    """The per-query distance histograms of all and of relevant database items (one pass, exact counts).

    Same inputs and conventions as :func:`mean_average_precision`.

    Examples
    --------
    >>> import torch
    >>> h = distance_histograms(torch.tensor([[1, 1]]), torch.tensor([[1, 1], [0, 1], [0, 0]]),
    ...                         torch.tensor([0]), torch.tensor([0, 1, 0]))
    >>> h.all, h.relevant
    (tensor([[1., 1., 1.]], dtype=torch.float64), tensor([[1., 0., 1.]], dtype=torch.float64))
    >>> from lightning_hash.metrics.ranking import map_from_histograms
    >>> round(float(map_from_histograms(h)), 6)   # relevant at ranks 1 and 3: (1 + 2/3) / 2
    0.833333
    """
    problem = _prepare(query_codes, db_codes, query_labels, db_labels)
    parts = _map_histograms(problem, lambda T, R: (T, R))
    return DistanceHistograms(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))


def _check_histograms(h: object) -> DistanceHistograms:
    if not isinstance(h, DistanceHistograms):
        raise ValueError(f"expected DistanceHistograms (from distance_histograms), got {type(h).__name__}")
    return h
