"""Closed forms of the tie-aware quantities: the exact expectation over all orders of tied items.

Each function takes the per-query histograms ``T`` (all items) and ``R`` (relevant items) at each distance,
float64 ``[Q, bits + 1]``, and returns per-query values ``[Q]``.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor


_BOUNDARY_BUDGET = 1 << 22  # float64 elements per sub-chunk of the tie-aware boundary computations


def _harmonic_diff(lo: Tensor, hi: Tensor) -> Tensor:
    """sum_{j = lo + 1}^{hi} 1 / j for float64 tensors of integers, hi >= lo >= 0."""
    return torch.special.digamma(hi + 1) - torch.special.digamma(lo + 1)


def _cumulative(T: Tensor, R: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n_le, r_le = T.cumsum(1), R.cumsum(1)
    return n_le - T, n_le, r_le - R, r_le


def _group_expected(T: Tensor, R: Tensor, n_lt: Tensor, r_lt: Tensor) -> Tensor:
    """Expected sum of precision@rank over the relevant items of each distance group, ties in random order.

    A group of n items, r of them relevant, fills ranks n_lt + 1 .. n_lt + n after r_lt relevant items. A relevant
    item sits at in-group position j with probability 1 / n, and then E[# other relevant items before it] =
    (j - 1)(r - 1)/(n - 1), so the expected sum is
    (r / n) * sum_j [r_lt + 1 + (j - 1)(r - 1)/(n - 1)] / (n_lt + j)
    = (r / n) * [(r_lt + 1) * A + (r - 1)/(n - 1) * B] with A = sum_j 1/(n_lt + j), B = n - (n_lt + 1) * A.
    """
    A = _harmonic_diff(n_lt, n_lt + T)
    B = T - (n_lt + 1) * A
    frac = torch.where(T > 1, (R - 1) / (T - 1).clamp(min=1), torch.zeros_like(T))
    out = R / T.clamp(min=1) * ((r_lt + 1) * A + frac * B)
    return torch.where(R > 0, out, torch.zeros_like(out))


def _log_factorials(n: int, device) -> Tensor:
    return torch.lgamma(torch.arange(n + 2, dtype=torch.float64, device=device) + 1)


def _log_binom(lf: Tensor, n: Tensor, k: Tensor) -> Tensor:
    """log C(n, k) for integer-valued int64 tensors with 0 <= k <= n (callers mask the rest)."""
    return lf[n] - lf[k] - lf[n - k]


def _ap_all_average(T: Tensor, R: Tensor) -> Tensor:
    n_lt, _, r_lt, r_le = _cumulative(T, R)
    total = r_le[:, -1]
    s = _group_expected(T, R, n_lt, r_lt).sum(1)
    return torch.where(total > 0, s / total.clamp(min=1), torch.zeros_like(s))


def _first_reaching(cum: Tensor, level) -> Tensor:
    """Index of the first column with cum >= level (per row); rows that never reach it give the last column."""
    reached = cum >= (level if isinstance(level, Tensor) else torch.full_like(cum[:, :1], float(level)))
    idx = torch.argmax(reached.to(torch.int8), dim=1)
    return torch.where(reached.any(1), idx, torch.full_like(idx, cum.shape[1] - 1))


def _row_chunks(n_rows: int, width: int) -> Iterator[tuple[int, int]]:
    step = max(1, _BOUNDARY_BUDGET // max(1, width))
    for s in range(0, n_rows, step):
        yield s, min(n_rows, s + step)


def _ap_ranks_average(T: Tensor, R: Tensor, k: int, lf: Tensor) -> Tensor:
    """Expected AP@k (ranks convention), ties in random order.

    Groups fully inside the first k ranks contribute their expected sums; the group cut by rank k (n items, r
    relevant, m = k - n_lt of its positions retrieved) contributes X ~ Hypergeometric(n, r, m) relevant items,
    and given X = x their expected precision sum is (x/m) [(r_lt + 1) A_m + (x - 1)/(m - 1) B_m]. The normaliser
    (relevant items retrieved) is r_lt + x, so AP@k = sum_x P(X = x) (S_before + g(x)) / (r_lt + x).
    """
    n_rows, cols = T.shape
    k = min(k, int(T[0].sum()))
    n_lt, n_le, r_lt, r_le = _cumulative(T, R)
    expected = _group_expected(T, R, n_lt, r_lt)
    g = _first_reaching(n_le, float(k))
    before = torch.arange(cols, device=T.device)[None, :] < g[:, None]
    s_before = (expected * before).sum(1)
    take = lambda x: x.gather(1, g[:, None]).squeeze(1)  # noqa: E731
    n, r, nb, rb = take(T), take(R), take(n_lt), take(r_lt)
    m = k - nb
    lo = (m - (n - r)).clamp(min=0)
    hi = torch.minimum(m, r)
    out = torch.zeros(n_rows, dtype=torch.float64, device=T.device)
    width = int((hi - lo).max()) + 1
    A = _harmonic_diff(nb, nb + m)
    B = m - (nb + 1) * A
    for s, e in _row_chunks(n_rows, width):
        x = lo[s:e, None] + torch.arange(width, dtype=torch.float64, device=T.device)[None, :]
        valid = x <= hi[s:e, None]
        xs = torch.where(valid, x, lo[s:e, None])
        ni, ri, mi = (v[s:e, None].long() for v in (n, r, m))
        xi = xs.long()
        logp = _log_binom(lf, ri.expand_as(xi), xi) + _log_binom(lf, (ni - ri).expand_as(xi), mi - xi) \
            - _log_binom(lf, ni, mi)
        p = torch.where(valid, torch.exp(logp - logp.max(1, keepdim=True).values), torch.zeros_like(logp))
        p = p / p.sum(1, keepdim=True)
        mm = m[s:e, None]
        frac = torch.where(mm > 1, (xs - 1) / (mm - 1).clamp(min=1), torch.zeros_like(xs))
        gx = xs / mm * ((rb[s:e, None] + 1) * A[s:e, None] + frac * B[s:e, None])
        denom = rb[s:e, None] + xs
        val = torch.where(denom > 0, (s_before[s:e, None] + gx) / denom.clamp(min=1), torch.zeros_like(gx))
        out[s:e] = (p * val).sum(1)
    return out


def _hypergeom_cdf_over_draws(lf: Tensor, t: Tensor, pop: Tensor, succ: Tensor, draws: Tensor) -> Tensor:
    """P(X <= t) for X ~ Hypergeometric(population pop, successes succ, draws), on a grid.

    ``t``, ``pop``, ``succ`` are int64 [rows, 1]; ``draws`` is int64 [rows, width] with values in [-1, width - 1].
    Uses F(t; 0) = 1 (t >= 0) and F(t; j + 1) = F(t; j) - P(X_j = t) (succ - t) / (pop - j): the mass at t moves
    up when the next draw is a success. Entries with draws < 0 or draws > pop are 0 (callers mask them).
    """
    rows, width = draws.shape
    j = torch.arange(width, dtype=torch.int64, device=draws.device)[None, :].expand(rows, width)
    ok = (t >= 0) & (t <= succ) & (j - t >= 0) & (j - t <= pop - succ) & (j < pop)
    zero = torch.zeros((), dtype=torch.int64, device=draws.device)
    s_, t_, f_, j_, p_ = (torch.where(ok, v.expand(rows, width), zero) for v in (succ, t, pop - succ, j, pop))
    logp = _log_binom(lf, s_, t_) + _log_binom(lf, f_, j_ - t_) - _log_binom(lf, p_, j_)
    step = torch.where(ok, torch.exp(logp) * (succ - t) / (pop - j).clamp(min=1), torch.zeros_like(logp))
    cdf = 1.0 - (torch.cumsum(step, 1) - step)  # F(t; j), j = 0..width-1
    cdf = torch.where(t >= 0, cdf, torch.zeros_like(cdf))
    res = cdf.gather(1, draws.clamp(0, width - 1))
    return torch.where((draws >= 0) & (draws <= pop), res, torch.zeros_like(res))


def _ap_hits_average(T: Tensor, R: Tensor, k: int, lf: Tensor) -> Tensor:
    """Expected DCMH-style AP over the first k relevant hits, ties in random order.

    AP = (1 / min(k, R)) * sum_{t <= min(k, R)} t / pos_t. If k >= R this is the full AP. Otherwise the group
    holding the k-th relevant item (n items, r relevant, c relevant before it, only m = k - c < r of its hits
    counted) contributes, summing over its positions p = 1..n,
    (r / n) * sum_p [(c + 1) F(m - 1; n - 1, r - 1, p - 1) + (p - 1)(r - 1)/(n - 1) F(m - 2; n - 2, r - 2, p - 2)]
    / (n_lt + p), where F(t; pop, succ, draws) is the hypergeometric CDF (the item at p is relevant and among the
    first m hits iff at most m - 1 other relevant items precede it; E[X 1{X <= t}] = draws*succ/pop *
    F(t - 1; pop - 1, succ - 1, draws - 1)).
    """
    n_rows, cols = T.shape
    n_lt, n_le, r_lt, r_le = _cumulative(T, R)
    total = r_le[:, -1]
    expected = _group_expected(T, R, n_lt, r_lt)
    full = total <= k
    out = torch.where(total > 0, expected.sum(1) / total.clamp(min=1), torch.zeros_like(total))
    rows = torch.nonzero(~full).squeeze(1)
    if rows.numel() == 0:
        return out
    T_, R_, e_ = T[rows], R[rows], expected[rows]
    n_lt_, r_lt_, r_le_ = n_lt[rows], r_lt[rows], r_le[rows]
    g = _first_reaching(r_le_, float(k))
    before = torch.arange(cols, device=T.device)[None, :] < g[:, None]
    take = lambda x: x.gather(1, g[:, None]).squeeze(1)  # noqa: E731
    s_before = (e_ * before).sum(1)
    n, r, a, c = take(T_), take(R_), take(n_lt_), take(r_lt_)
    m = k - c
    s_group = take(e_)
    partial = m < r
    part_rows = torch.nonzero(partial).squeeze(1)
    if part_rows.numel():
        width = int(n[part_rows].max())
        for s, e in _row_chunks(part_rows.numel(), 2 * width):
            pr = part_rows[s:e]
            ni, ri, mi, ci, ai = (v[pr, None] for v in (n, r, m, c, a))
            nl, rl, ml = ni.long(), ri.long(), mi.long()
            p = torch.arange(1, width + 1, dtype=torch.int64, device=T.device)[None, :].expand(pr.numel(), width)
            f1 = _hypergeom_cdf_over_draws(lf, ml - 1, nl - 1, rl - 1, p - 1)
            f2 = _hypergeom_cdf_over_draws(lf, ml - 2, nl - 2, rl - 2, p - 2)
            pd = p.double()
            coef = (pd - 1) * (ri - 1) / (ni - 1).clamp(min=1)
            terms = ((ci + 1) * f1 + coef * f2) / (ai + pd)
            terms = torch.where(p <= nl, terms, torch.zeros_like(terms))
            s_group[pr] = (ri / ni).squeeze(1) * terms.sum(1)
    out[rows] = (s_before + s_group) / k
    return out


def _expected_hits_at_k(T: Tensor, R: Tensor, k: int) -> Tensor:
    """Expected number of relevant items among the first k ranks (ties in random order), float64 [Q]."""
    n_lt, n_le, r_lt, _ = _cumulative(T, R)
    k_eff = min(k, int(T[0].sum()))
    g = _first_reaching(n_le, float(k_eff))
    take = lambda x: x.gather(1, g[:, None]).squeeze(1)  # noqa: E731
    n, r, nb, rb = take(T), take(R), take(n_lt), take(r_lt)
    return rb + (k_eff - nb) * r / n.clamp(min=1)
