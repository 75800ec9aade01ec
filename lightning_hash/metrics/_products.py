"""Exact integer products and the tiling of the query x database work (CPU pool or one device).

Hamming distances come from ``d(u, v) = |u| + |v| - 2 u.v``, an integer matrix product of the bits computed in
float32 (exact: small integers, partial sums far below 2**24). The work is cut into tiles of queries x database
columns so that memory does not grow with the database; on CPU, chunks of queries run in a pool of
single-threaded workers.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

if TYPE_CHECKING:  # annotations only (the checks import this module)
    from ._checks import _Labels, _Problem


# Tile sizes (elements of the query x database block that exists at once) and the cap on the per-row
# histogram width for the fused label key; chosen so that one tile stays in the CPU caches.
_CPU_TILE = 127 * 8192  # queries x database columns per CPU tile (127 rows: the int8 row offset)
_TILE_COLS = 8192  # database columns per CPU tile
_GPU_TILE = 1 << 25


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


def _row_counts(x: Tensor) -> Tensor:
    """int64 row sums of a non-negative int8 matrix [n, m] with m small (a product: row reductions are slow)."""
    if x.shape[1] == 0:
        return torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    ones = torch.ones(8, x.shape[1], dtype=torch.int8, device=x.device)
    return _exact_mm(x, ones)[:, 0].long()


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


def _tile(device: torch.device) -> int:
    return _CPU_TILE if device.type == "cpu" else _GPU_TILE


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
