"""``tie_break="index"``: one stable sort of the small integer distances per query (ties by database index)."""

from __future__ import annotations

import threading
from typing import Optional

import torch
from torch import Tensor

from . import _products
from ._checks import _Problem
from ._products import _distance_features, _parallel_map, _query_ranges, _relevance, _tile, _tile_product


_SORT_BUDGET_CPU = 1 << 24  # bytes of per-chunk key + relevance buffers in the sort path (cache-sized)
_SORT_BUDGET_GPU = 1 << 30
# Tests set this to run the batched (GPU) code path of the index tie-break on the CPU.
_FORCE_BATCHED_SORT = False


def _values_from_sorted(rs: Tensor, total: Tensor, what: str, k: Optional[int], inv_rank: Tensor) -> Tensor:
    """Per-row metric values (float64) from relevance in ranked order ``rs`` (uint8 [rows, L]) and the total
    number of relevant items per row (int64 [rows]). Works for any device; rows may be a single row."""
    length = rs.shape[1]
    if what == "p_at_k":
        return rs.sum(1, dtype=torch.int64).double() / k
    if what == "r_at_k":
        found = rs.sum(1, dtype=torch.int64).double()
        return torch.where(total > 0, found / total.clamp(min=1).double(), torch.zeros_like(found))
    hits = torch.cumsum(rs, 1, dtype=torch.int32)  # number of relevant items up to each rank
    if what == "ap_hits":
        limit = torch.clamp(total, max=k)
        hits.masked_fill_(hits > limit[:, None].to(hits.dtype), 0)
        denom = limit.double()
    elif what == "ap_ranks":
        denom = hits[:, -1].double()
    else:
        denom = total.double()
    num = torch.mv(hits.mul_(rs).double(), inv_rank[:length])  # sum over relevant ranks of hits / rank
    return torch.where(denom > 0, num / denom.clamp(min=1), torch.zeros_like(num))


def _row_value(rs: Tensor, rel_row: Tensor, what: str, k: Optional[int], inv_rank: Tensor) -> tuple[float, int]:
    """One query's value and number of relevant items from its ranked relevance ``rs`` (uint8 [L], CPU); the
    1-D version of :func:`_values_from_sorted` (row reductions of 2-D tensors are slow on CPU)."""
    length = rs.shape[0]
    if what == "p_at_k":
        return int(torch.count_nonzero(rs)) / k, int(torch.count_nonzero(rel_row))
    if what == "r_at_k":
        total = int(torch.count_nonzero(rel_row))
        return (int(torch.count_nonzero(rs)) / total if total else 0.0), total
    hits = torch.cumsum(rs, 0, dtype=torch.int32)
    total = int(hits[-1]) if length == rel_row.shape[0] else int(torch.count_nonzero(rel_row))
    if what == "ap_hits":
        denom = min(total, k)
        if denom < total:
            hits.masked_fill_(hits > denom, 0)
    elif what == "ap_ranks":
        denom = int(hits[-1])
    else:
        denom = total
    if denom == 0:
        return 0.0, total
    return float(torch.dot(hits.mul_(rs).double(), inv_rank[:length])) / denom, total


def _index_metric(problem: _Problem, what: str, k: Optional[int]) -> tuple[Tensor, Tensor]:
    """Per-query values [Q] (float64) and numbers of relevant items [Q] with tie_break="index".

    The ranking is the stable sort of the per-query distances (ties keep ascending database index); the metric
    needs only the relevance flags in that order. Per chunk of queries the keys (distances, uint8 for up to
    255 bits) and relevance flags [rows, N] are built tile by tile; on CPU each query is then sorted on its own
    (a 1-D sort of small integers is a fast radix sort; the 2-D sort is not), elsewhere the chunk is sorted at once.
    """
    n_q, n_d, bits, device, lab = problem.n_query, problem.n_db, problem.bits, problem.device, problem.labels
    length = n_d if what in ("ap_all", "ap_hits") else min(k, n_d)
    inv_rank = 1.0 / torch.arange(1, n_d + 1, dtype=torch.float64, device=device)
    values = torch.empty(n_q, dtype=torch.float64, device=device)
    totals = torch.empty(n_q, dtype=torch.int64, device=device)
    batched = device.type != "cpu" or _FORCE_BATCHED_SORT
    qf, df = _distance_features(problem)
    key_dtype = torch.uint8 if bits <= 255 else (torch.int16 if bits <= 32767 else torch.int32)
    budget = _SORT_BUDGET_CPU if device.type == "cpu" else _SORT_BUDGET_GPU
    if device.type == "cpu":
        budget //= max(1, torch.get_num_threads())
    per_row = n_d * (key_dtype.itemsize + 1) + (26 * n_d if batched else 0)
    n_cols = min(n_d, _products._TILE_COLS if device.type == "cpu" else 1 << 16)
    tile_rows = max(1, _tile(device) // n_cols)

    local = threading.local()  # per-worker buffers, reused across chunks (fresh pages cost page faults)

    def chunk(bounds: tuple[int, int]) -> None:
        q0, q1 = bounds
        if getattr(local, "key", None) is None or local.key.shape[0] < q1 - q0:
            local.key = torch.empty(q1 - q0, n_d, dtype=key_dtype, device=device)
            local.rel = torch.empty(q1 - q0, n_d, dtype=torch.uint8, device=device)
        key, rel = local.key[:q1 - q0], local.rel[:q1 - q0]
        for r0 in range(q0, q1, tile_rows):
            r1 = min(q1, r0 + tile_rows)
            for n0 in range(0, n_d, n_cols):
                n1 = min(n_d, n0 + n_cols)
                key[r0 - q0:r1 - q0, n0:n1] = _tile_product(local, qf[r0:r1], df[n0:n1])
                rel[r0 - q0:r1 - q0, n0:n1] = _relevance(lab, r0, r1, n0, n1)
        if batched:
            perm = torch.sort(key, dim=1, stable=True).indices[:, :length]
            total = rel.sum(1, dtype=torch.int64)
            values[q0:q1] = _values_from_sorted(torch.gather(rel, 1, perm), total, what, k, inv_rank)
            totals[q0:q1] = total
            return
        row_values, row_totals = [], []
        if pack == 1:
            for key_row, rel_row in zip(key, rel):
                ranked = rel_row.index_select(0, torch.argsort(key_row, stable=True)[:length])
                value, total = _row_value(ranked, rel_row, what, k, inv_rank)
                row_values.append(value)
                row_totals.append(total)
        for i0 in range(0, q1 - q0 if pack > 1 else 0, pack):
            # several short rows in one sort: key + (bits + 1) * row sorts by (row, distance, index)
            i1 = min(q1 - q0, i0 + pack)
            packed = key[i0:i1].to(pack_dtype).add_(pack_offsets[:i1 - i0, None])
            ranked = rel[i0:i1].reshape(-1).index_select(0, torch.argsort(packed.view(-1), stable=True))
            for j in range(i1 - i0):
                value, total = _row_value(ranked[j * n_d:j * n_d + length], rel[i0 + j], what, k, inv_rank)
                row_values.append(value)
                row_totals.append(total)
        values[q0:q1] = torch.tensor(row_values, dtype=torch.float64)
        totals[q0:q1] = torch.tensor(row_totals, dtype=torch.int64)

    # torch uses its radix sort only for 1-D integer tensors of at least 32768 elements (else a comparison sort,
    # ~15x slower): shorter rows are sorted several at a time
    pack = 1 if n_d >= 32768 else min(-(-32768 // n_d), max(1, 32767 // (bits + 1)))
    pack_dtype = torch.uint8 if pack * (bits + 1) <= 256 else (torch.int16 if pack * (bits + 1) <= 32767
                                                                 else torch.int32)
    pack_offsets = (bits + 1) * torch.arange(pack, dtype=pack_dtype, device=device)
    rows = max(pack, min(n_q, budget // max(1, per_row)))
    _parallel_map(chunk, _query_ranges(n_q, rows, device), device)
    return values, totals
