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
"""

from __future__ import annotations

import operator
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

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

#: Default tie handling of the ranking metrics (see the module docstring for why).
DEFAULT_TIE_BREAK = "average"

_TIE_BREAKS = ("average", "index")
_EMPTY_QUERIES = ("zero", "skip", "error")
_TOP_K_MODES = ("ranks", "hits")
_AVERAGES = ("macro", "micro")

# Tile sizes (elements of the query x database block that exists at once) and the cap on the per-row
# histogram width for the fused label key; chosen so that one tile stays in the CPU caches.
_CPU_TILE = 127 * 8192  # queries x database columns per CPU tile (127 rows: the int8 row offset)
_TILE_COLS = 8192  # database columns per CPU tile
_GPU_TILE = 1 << 25
_SORT_BUDGET_CPU = 1 << 24  # bytes of per-chunk key + relevance buffers in the sort path (cache-sized)
_SORT_BUDGET_GPU = 1 << 30
_BOUNDARY_BUDGET = 1 << 22  # float64 elements per sub-chunk of the tie-aware boundary computations
_MAX_FUSED_BINS = 1 << 15
_MAX_ONE_HOT_CLASSES = 128
# Tests set this to run the batched (GPU) code path of the index tie-break on the CPU.
_FORCE_BATCHED_SORT = False


# --------------------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------------------


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _check_int(name: str, value: object, minimum: int) -> int:
    """An integer (Python, numpy or 0-d integer tensor; not bool) >= minimum, else ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _check_positive_int(name: str, value: object) -> int:
    return _check_int(name, value, 1)


def _codes_to_bits(codes: object, name: str) -> Tensor:
    """Validate binary codes [n, bits] (bool, {0, 1} or {-1, +1}) and return them as int8 bits in {0, 1}."""
    if not isinstance(codes, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape [n, bits], got {type(codes).__name__}")
    if codes.dim() != 2:
        raise ValueError(f"{name} must have shape [n, bits], got shape {tuple(codes.shape)}")
    if codes.shape[1] == 0:
        raise ValueError(f"{name} has 0 bits (shape {tuple(codes.shape)})")
    if codes.is_complex():
        raise ValueError(f"{name} must be real (bool, {{0,1}} or {{-1,+1}}), got dtype {codes.dtype}")
    if codes.dtype == torch.bool:
        return codes.to(torch.int8)
    if codes.numel() == 0:
        return codes.to(torch.int8)
    ones = codes == 1
    if bool(torch.logical_or(ones, codes == -1).all()) or bool(torch.logical_or(ones, codes == 0).all()):
        return ones.view(torch.int8)  # {-1, +1} or {0, 1}
    if codes.is_floating_point() and bool(torch.isnan(codes).any()):
        raise ValueError(f"{name} contains NaN")
    raise ValueError(
        f"{name} must be binary: bool, values in {{0, 1}} or values in {{-1, +1}} (apply sign() or > 0 first); "
        f"found other values"
    )


def _row_counts(x: Tensor) -> Tensor:
    """int64 row sums of a non-negative int8 matrix [n, m] with m small (a product: row reductions are slow)."""
    if x.shape[1] == 0:
        return torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    ones = torch.ones(8, x.shape[1], dtype=torch.int8, device=x.device)
    return _exact_mm(x, ones)[:, 0].long()


@dataclass
class _Labels:
    """Relevance definition: ``dot`` (multi-hot, relevant iff overlap > 0) or ``eq`` (class indices)."""

    kind: str
    query: Tensor  # dot: int8 [Q, C]; eq: int64 [Q]
    db: Tensor  # dot: int8 [N, C]; eq: int64 [N]
    max_overlap: int  # dot only: an upper bound of the label overlap of a pair


def _prepare_labels(query_labels: object, db_labels: object, n_query: int, n_db: int, device) -> _Labels:
    for name, lab, n in (("query_labels", query_labels, n_query), ("db_labels", db_labels, n_db)):
        if not isinstance(lab, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor ([n] class indices or [n, C] multi-hot)")
        if lab.dim() not in (1, 2):
            raise ValueError(f"{name} must be [n] class indices or [n, C] multi-hot, got shape {tuple(lab.shape)}")
        if lab.shape[0] != n:
            codes_name = "query_codes" if name == "query_labels" else "db_codes"
            raise ValueError(f"{name} has {lab.shape[0]} rows but {codes_name} has {n} rows")
        if lab.device != device:
            raise ValueError(f"{name} is on {lab.device} but the codes are on {device}")
    if query_labels.dim() != db_labels.dim():
        raise ValueError(
            f"query_labels ({query_labels.dim()}-D) and db_labels ({db_labels.dim()}-D) must both be class indices "
            f"[n] or both multi-hot [n, C]"
        )
    if query_labels.dim() == 1:
        for name, lab in (("query_labels", query_labels), ("db_labels", db_labels)):
            if lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
                raise ValueError(f"{name} as a 1-D tensor must hold integer class indices, got dtype {lab.dtype}")
        q, d = query_labels.long(), db_labels.long()
        classes, inverse = torch.unique(torch.cat([q, d]), return_inverse=True)
        n_classes = classes.numel()
        if 0 < n_classes <= _MAX_ONE_HOT_CLASSES:
            one_hot = torch.nn.functional.one_hot(inverse, n_classes).to(torch.int8)
            return _Labels("dot", one_hot[:n_query], one_hot[n_query:], 1)
        return _Labels("eq", q, d, 1)
    if query_labels.shape[1] != db_labels.shape[1]:
        raise ValueError(
            f"query_labels has {query_labels.shape[1]} label columns but db_labels has {db_labels.shape[1]}"
        )
    out = []
    for name, lab in (("query_labels", query_labels), ("db_labels", db_labels)):
        if lab.is_complex():
            raise ValueError(f"{name} must be multi-hot with values in {{0, 1}}, got dtype {lab.dtype}")
        if lab.dtype == torch.bool:
            out.append(lab.view(torch.int8))
            continue
        ones = lab == 1
        if lab.numel() and not bool(torch.logical_or(ones, lab == 0).all()):
            if lab.is_floating_point() and bool(torch.isnan(lab).any()):
                raise ValueError(f"{name} contains NaN")
            raise ValueError(f"{name} must be multi-hot with values in {{0, 1}} (or class indices [n])")
        out.append(ones.view(torch.int8))
    ql, dl = out
    max_q = int(_row_counts(ql).max()) if ql.numel() else 0
    max_d = int(_row_counts(dl).max()) if dl.numel() else 0
    return _Labels("dot", ql, dl, min(max_q, max_d))


@dataclass
class _Problem:
    """Validated inputs on one device."""

    q_codes: Tensor  # int8 bits in {0, 1} [Q, B]
    d_codes: Tensor  # int8 bits in {0, 1} [N, B]
    labels: _Labels
    bits: int
    device: torch.device

    @property
    def n_query(self) -> int:
        return self.q_codes.shape[0]

    @property
    def n_db(self) -> int:
        return self.d_codes.shape[0]


def _prepare_codes(query_codes: object, db_codes: object) -> tuple[Tensor, Tensor]:
    q = _codes_to_bits(query_codes, "query_codes")
    d = _codes_to_bits(db_codes, "db_codes")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query_codes have {q.shape[1]} bits but db_codes have {d.shape[1]} bits")
    if q.device != d.device:
        raise ValueError(f"query_codes are on {q.device} but db_codes are on {d.device}")
    if d.shape[0] == 0:
        raise ValueError("db_codes is empty: the database needs at least one item")
    if q.shape[0] == 0:
        raise ValueError("query_codes is empty: at least one query is needed")
    if q.device.type == "mps":  # no float64 on MPS: compute on the CPU
        q, d = q.cpu(), d.cpu()
    return q, d


def _prepare(query_codes, db_codes, query_labels, db_labels) -> _Problem:
    q, d = _prepare_codes(query_codes, db_codes)
    if isinstance(query_labels, Tensor) and query_labels.device.type == "mps":
        query_labels = query_labels.cpu()
    if isinstance(db_labels, Tensor) and db_labels.device.type == "mps":
        db_labels = db_labels.cpu()
    labels = _prepare_labels(query_labels, db_labels, q.shape[0], d.shape[0], q.device)
    return _Problem(q, d, labels, q.shape[1], q.device)


# --------------------------------------------------------------------------------------------------------------
# exact integer products
# --------------------------------------------------------------------------------------------------------------

def _exact_mm(a: Tensor, b: Tensor, out: Optional[Tensor] = None, work: Optional[Tensor] = None) -> Tensor:
    """``a @ b.T`` for matrices of small integers (int8, or float32 holding integers), exactly, as int32.

    The product runs in float32 with autocast off, which is exact here: every entry is an integer of magnitude
    <= 127 (exactly representable in fp32, tf32 and bf16), products are accumulated in fp32 and all partial sums
    are integers far below 2**24. Pass float32 operands to avoid a conversion per call, and ``work`` (a float32
    buffer of the output's shape) with ``out`` to reuse memory across calls.

    Deliberately not ``torch._int_mm`` (int8 x int8 -> int32), although it is about 2x faster on CPU: it is a
    private op that is silently wrong on supported releases. On CPU (the oneDNN path, seen on torch 2.14.1) it
    leaves the output uninitialised when the inner dimension is 1 (1-bit codes, one label column), and
    pytorch/pytorch#195066 reports garbage output for a size-1 dimension with stride 0. A probe cannot cover
    every shape and stride it would be called with, so the library does not use it.
    """
    af = a if a.dtype == torch.float32 else a.float()
    bf = b if b.dtype == torch.float32 else b.float()
    with torch.autocast(device_type=a.device.type, enabled=False):
        prod = torch.mm(af, bf.t()) if work is None else torch.mm(af, bf.t(), out=work)
    if prod.device.type != "cpu":
        prod.round_()  # exact already; a guard against reduced-precision accumulation settings on accelerators
    if out is None:
        return prod.to(torch.int32)
    return out.copy_(prod)


def _int8_pieces(values: Tensor, n_pieces: int) -> Tensor:
    """Split non-negative integers [n] into ``n_pieces`` int8 columns (each <= 127) that sum to them."""
    offsets = 127 * torch.arange(n_pieces, device=values.device)
    return (values[:, None] - offsets[None, :]).clamp(0, 127).to(torch.int8)


def _distance_features(problem: _Problem, q_extra: Optional[Tensor] = None,
                       d_extra: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """float32 features (small integers) with ``qf @ df.T == hamming distance (+ q_extra @ d_extra.T)``.

    With bits u, v in {0, 1}: d(u, v) = |u| + |v| - 2 u.v, so the query side holds [-2u, 1, |u|] and the database
    side [v, |v|, 1] (the popcounts split into int8 pieces).
    """
    n_pieces = -(-problem.bits // 127)
    q01, d01 = problem.q_codes, problem.d_codes
    q_parts = [q01 * -2] + ([q_extra] if q_extra is not None else []) + [
        q01.new_ones(q01.shape[0], n_pieces), _int8_pieces(_row_counts(q01), n_pieces)]
    d_parts = [d01] + ([d_extra] if d_extra is not None else []) + [
        _int8_pieces(_row_counts(d01), n_pieces), d01.new_ones(d01.shape[0], n_pieces)]
    # float32 once here, so the tile products need no conversion (see _exact_mm)
    return torch.cat(q_parts, 1).float().contiguous(), torch.cat(d_parts, 1).float().contiguous()


def hamming_distance(query_codes: Tensor, db_codes: Tensor) -> Tensor:
    """Hamming distances between every query code and every database code.

    Parameters
    ----------
    query_codes : Tensor [Q, bits]
        Binary codes: ``bool``, values in {0, 1} (float or int) or values in {-1, +1} (float or int).
    db_codes : Tensor [N, bits]
        Database codes, same number of bits, any of the same encodings.

    Returns
    -------
    Tensor
        int64 [Q, N], the number of differing bits, computed in exact integer arithmetic.

    Examples
    --------
    >>> import torch
    >>> hamming_distance(torch.tensor([[1., -1., 1.]]), torch.tensor([[1, 0, 1], [0, 1, 0]]))
    tensor([[0, 3]])
    """
    q, d = _prepare_codes(query_codes, db_codes)
    problem = _Problem(q, d, None, q.shape[1], q.device)  # type: ignore[arg-type]
    qf, df = _distance_features(problem)
    out = torch.empty(q.shape[0], d.shape[0], dtype=torch.int64, device=q.device)
    rows = max(1, (1 << 22) // d.shape[0])
    for q0 in range(0, q.shape[0], rows):
        out[q0:q0 + rows] = _exact_mm(qf[q0:q0 + rows], df)
    return out


def _tile(device: torch.device) -> int:
    return _CPU_TILE if device.type == "cpu" else _GPU_TILE


# --------------------------------------------------------------------------------------------------------------
# per-query histograms: counts of all / relevant database items at each distance 0..bits
# --------------------------------------------------------------------------------------------------------------


def _parallel_map(fn, items: list, device: torch.device) -> list:
    """``[fn(x) for x in items]``; on CPU the items run in a pool of single-threaded workers (one per torch
    thread). The work per item is a stream of small ops, and OpenMP inside each of them costs more than it gains
    (and collapses when other processes load the cores)."""
    workers = torch.get_num_threads() if device.type == "cpu" else 1
    if workers <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    # grad / inference mode are thread-local: the workers must run in the caller's mode, or tensors created by
    # the caller under inference mode (Lightning's test loop) cannot be written by them
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def run(x):
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(x)

    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            return list(pool.map(run, items))
    finally:
        torch.set_num_threads(workers)


def _query_ranges(n_q: int, rows: int, device: torch.device) -> list[tuple[int, int]]:
    """Split the queries into chunks of at most ``rows``, and into at least two per CPU worker when possible."""
    if device.type == "cpu":
        rows = min(rows, max(16, -(-n_q // (2 * torch.get_num_threads()))))
    rows = max(1, rows)
    return [(q0, min(n_q, q0 + rows)) for q0 in range(0, n_q, rows)]


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
    rows = max(1, min(127, _tile(device) // min(n_d, _TILE_COLS), (1 << 21) // n_bins))
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
    n_cols = min(n_d, _TILE_COLS if device.type == "cpu" else 1 << 16)

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


def _scratch(local: threading.local, shape: tuple[int, int], device: torch.device,
             dtype: torch.dtype = torch.int32) -> Tensor:
    """A contiguous buffer of ``shape`` and ``dtype`` from a per-worker scratch area (reused: fresh pages fault)."""
    size = shape[0] * shape[1]
    name = f"scratch_{dtype}"
    if getattr(local, name, None) is None or getattr(local, name).numel() < size:
        setattr(local, name, torch.empty(size, dtype=dtype, device=device))
    return getattr(local, name)[:size].view(shape)


def _tile_product(local: threading.local, qf: Tensor, df: Tensor) -> Tensor:
    """``_exact_mm(qf, df)`` into this worker's reused int32 / float32 buffers."""
    shape = (qf.shape[0], df.shape[0])
    return _exact_mm(qf, df, out=_scratch(local, shape, qf.device),
                     work=_scratch(local, shape, qf.device, torch.float32))


def _relevance(lab: _Labels, q0: int, q1: int, n0: int, n1: int) -> Tensor:
    """Relevance (0 / 1, bool or int32) [q1 - q0, n1 - n0] of a tile."""
    if lab.kind == "eq":
        return lab.query[q0:q1, None] == lab.db[None, n0:n1]
    return _exact_mm(lab.query[q0:q1], lab.db[n0:n1]).clamp_(max=1)  # overlap >= 0; clamp beats a bool compare


# --------------------------------------------------------------------------------------------------------------
# closed forms of the tie-aware (expected over tie orders) quantities
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# index tie-break: one stable sort of the (small integer) distances per query
# --------------------------------------------------------------------------------------------------------------


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
    n_cols = min(n_d, _TILE_COLS if device.type == "cpu" else 1 << 16)
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


# --------------------------------------------------------------------------------------------------------------
# reductions
# --------------------------------------------------------------------------------------------------------------


def _check_empty(has_relevant: Tensor, empty_queries: str) -> None:
    if empty_queries == "zero":
        return
    n_empty = int((~has_relevant).sum())
    if empty_queries == "error" and n_empty:
        raise ValueError(
            f"{n_empty} of {has_relevant.numel()} queries have no relevant database item (empty_queries='error'); "
            f"use empty_queries='zero' to count them as 0 or 'skip' to leave them out"
        )
    if n_empty == has_relevant.numel():
        raise ValueError(
            "no query has a relevant database item, so the mean over non-empty queries is undefined "
            "(empty_queries='skip')"
        )


def _mean_over_queries(values: Tensor, has_relevant: Tensor, empty_queries: str) -> Tensor:
    _check_empty(has_relevant, empty_queries)
    if empty_queries == "skip":
        return values[has_relevant].mean()
    return torch.where(has_relevant, values, torch.zeros_like(values)).mean()


def _expected_hits_at_k(T: Tensor, R: Tensor, k: int) -> Tensor:
    """Expected number of relevant items among the first k ranks (ties in random order), float64 [Q]."""
    n_lt, n_le, r_lt, _ = _cumulative(T, R)
    k_eff = min(k, int(T[0].sum()))
    g = _first_reaching(n_le, float(k_eff))
    take = lambda x: x.gather(1, g[:, None]).squeeze(1)  # noqa: E731
    n, r, nb, rb = take(T), take(R), take(n_lt), take(r_lt)
    return rb + (k_eff - nb) * r / n.clamp(min=1)


# --------------------------------------------------------------------------------------------------------------
# distance histograms: one pass over the database for every tie-aware and radius metric
# --------------------------------------------------------------------------------------------------------------


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


def _check_ks(ks: object) -> list:
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise ValueError(f"ks must be a sequence of positive ranks, got {ks!r}")
    ks = [_check_positive_int("ks entry", k) for k in ks]
    if not ks:
        raise ValueError("ks is empty: give at least one rank")
    return ks


# --------------------------------------------------------------------------------------------------------------
# public metrics
# --------------------------------------------------------------------------------------------------------------


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
    values, totals = _index_metric(problem, what, top_k)
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
    problem = _prepare(query_codes, db_codes, query_labels, db_labels)
    values, totals = _index_metric(problem, what, k)
    return _mean_over_queries(values, totals > 0, empty_queries)


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
    out = []
    for what in ("p_at_k", "r_at_k"):
        values = []
        for k in ks:
            v, totals = _index_metric(problem, what, k)
            values.append(_mean_over_queries(v, totals > 0, empty_queries))
        out.append(torch.stack(values))
    return out[0], out[1]


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
