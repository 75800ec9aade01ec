"""Independent references for the retrieval metrics (thesis Appendix A), written without the library's code.

* :func:`ref_per_query` on an explicit ranking (``np.lexsort`` by (distance, index)) for the index tie break;
* :func:`ref_exhaustive`: the tie-aware expectation by brute force, the mean over *all* orderings of every tied
  group (tiny cases);
* :func:`ref_order_statistics`: the same expectation from the order statistics of the relevant items inside each
  tied group (a derivation different from the library's closed forms), for larger cases.

Used by ``tests/lightning_hash/metrics/test_metrics_functional.py`` and by the data tests that check figures
end to end (``tests/datamodules/test_multilabel_zero_shot.py``).
"""
from __future__ import annotations

import itertools
import math

import numpy as np



def ref_distance(q_bits: np.ndarray, d_bits: np.ndarray) -> np.ndarray:
    return (q_bits[:, None, :] != d_bits[None, :, :]).sum(-1)


def ref_relevance(q_labels: np.ndarray, d_labels: np.ndarray) -> np.ndarray:
    if q_labels.ndim == 1:
        return (q_labels[:, None] == d_labels[None, :]).astype(np.int64)
    return ((q_labels[:, None, :] * d_labels[None, :, :]).sum(-1) > 0).astype(np.int64)


def ref_from_ranking(rel_ranked: np.ndarray, what: str, k) -> float:
    """One query's metric from the relevance flags in ranked order (thesis App. A)."""
    rel_ranked = np.asarray(rel_ranked)
    n = len(rel_ranked)
    positions = [i + 1 for i in range(n) if rel_ranked[i]]
    if what == "ap":  # A.2 with N_c = N: sum over relevant ranks of P@rank, / |relevant|
        return 0.0 if not positions else sum((t + 1) / p for t, p in enumerate(positions)) / len(positions)
    if what == "ap_ranks":  # the same over the first k ranks, / |relevant among them|
        inside = [p for p in positions if p <= k]
        return 0.0 if not inside else sum((t + 1) / p for t, p in enumerate(inside)) / len(inside)
    if what == "ap_hits":  # DCMH calc_map_k: mean over the first min(k, R) relevant hits of t / rank_t
        hits = positions[:k]
        return 0.0 if not hits else sum((t + 1) / p for t, p in enumerate(hits)) / len(hits)
    if what == "p_at_k":  # A.1
        return sum(rel_ranked[:k]) / k
    if what == "r_at_k":  # relevant items among the first k over all relevant items
        return 0.0 if not positions else sum(rel_ranked[:k]) / len(positions)
    raise AssertionError(what)


def ref_index_order(dist_row: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(len(dist_row)), dist_row))


def ref_per_query(dist, rel, what, k, tie_break):
    out = []
    for i in range(dist.shape[0]):
        if tie_break == "index":
            out.append(ref_from_ranking(rel[i][ref_index_order(dist[i])], what, k))
        elif tie_break == "exhaustive":
            out.append(ref_exhaustive(dist[i], rel[i], what, k))
        else:
            out.append(ref_order_statistics(dist[i], rel[i], what, k))
    return np.array(out)


def ref_exhaustive(dist_row, rel_row, what, k) -> float:
    """Mean of the metric over every ordering of every tied group (all permutations)."""
    groups = [np.nonzero(dist_row == v)[0] for v in np.unique(dist_row)]
    values = [
        ref_from_ranking(rel_row[np.concatenate(order)], what, k)
        for order in itertools.product(*(itertools.permutations(g) for g in groups))
    ]
    return float(np.mean(values))


def _order_stat_pmf(p: int, t: int, n: int, r: int) -> float:
    """P(the t-th of r uniformly placed relevant items is at position p of n)."""
    return math.comb(p - 1, t - 1) * math.comb(n - p, r - t) / math.comb(n, r)


def ref_order_statistics(dist_row, rel_row, what, k) -> float:
    """Tie-aware expectation computed group by group from the distribution of the relevant items' positions.

    Inside a tied group of n items with r relevant, the relevant items occupy a uniformly random r-subset of the
    group's positions; the t-th relevant item is at position p with probability C(p-1, t-1) C(n-p, r-t) / C(n, r).
    """
    values = np.unique(dist_row)
    n_items = [int((dist_row == v).sum()) for v in values]
    n_rel = [int(rel_row[dist_row == v].sum()) for v in values]
    total = sum(n_rel)
    N = len(dist_row)

    def group_sum(n_before, r_before, n, r, t_max):
        """E[sum_{t <= t_max} (r_before + t) / (n_before + p_t)]."""
        return math.fsum((r_before + t) * _order_stat_pmf(p, t, n, r) / (n_before + p)
                         for t in range(1, t_max + 1) for p in range(t, n - r + t + 1))

    if what in ("ap", "ap_hits"):
        limit = total if what == "ap" else min(k, total)
        if limit == 0:
            return 0.0
        acc, n_before, r_before = [], 0, 0
        for n, r in zip(n_items, n_rel):
            take = min(r, limit - r_before)
            if take > 0:
                acc.append(group_sum(n_before, r_before, n, r, take))
            n_before, r_before = n_before + n, r_before + r
        return math.fsum(acc) / limit
    k_eff = min(k, N)
    n_before, r_before, s_before = 0, 0, []
    for n, r in zip(n_items, n_rel):
        if n_before + n >= k_eff:
            m = k_eff - n_before
            break
        s_before.append(group_sum(n_before, r_before, n, r, r))
        n_before, r_before = n_before + n, r_before + r
    if what == "p_at_k":
        return (r_before + m * r / n) / k
    if what == "r_at_k":
        return 0.0 if total == 0 else (r_before + m * r / n) / total
    # ap_ranks: X relevant items among the m retrieved positions of the cut group, X ~ hypergeometric; given X = x
    # they are a uniform x-subset of those m positions
    s_before = math.fsum(s_before)
    acc = []
    for x in range(max(0, m - (n - r)), min(m, r) + 1):
        px = math.comb(r, x) * math.comb(n - r, m - x) / math.comb(n, m)
        if r_before + x == 0:
            continue
        inner = math.fsum((r_before + t) * _order_stat_pmf(p, t, m, x) / (n_before + p)
                          for t in range(1, x + 1) for p in range(t, m - x + t + 1))
        acc.append(px * (s_before + inner) / (r_before + x))
    return math.fsum(acc)


def ref_mean(values: np.ndarray, has_rel: np.ndarray, empty_queries: str) -> float:
    if empty_queries == "skip":
        return float(values[has_rel].mean())
    return float(np.where(has_rel, values, 0.0).mean())


def ref_radius(dist, rel, radius, average):
    inside = dist <= radius
    hits = (inside & (rel > 0)).sum(1).astype(float)
    retrieved = inside.sum(1).astype(float)
    total = rel.sum(1).astype(float)
    if average == "micro":
        p = hits.sum() / retrieved.sum() if retrieved.sum() else 0.0
        r = hits.sum() / total.sum() if total.sum() else 0.0
        return p, r
    p = np.array([h / n if n else 0.0 for h, n in zip(hits, retrieved)])
    r = np.array([h / t if t else 0.0 for h, t in zip(hits, total)])
    return p.mean(), r.mean()
