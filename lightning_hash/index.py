"""An exact Hamming index over packed binary codes: k-nearest and range search, add, save/load.

Codes are stored packed, 8 bits per byte (``numpy.packbits``, most significant bit first), and padded with zero
bytes to whole 64-bit words so that the distance is one XOR and one popcount per word
(``numpy.bitwise_count`` when the installed numpy has it (numpy >= 2.0), else a 256-entry lookup table over the
bytes). Padding bits are 0 in every code, so they never add to a distance.

Search is exact and deterministic:

* ``search(queries, k)`` returns, per query, the ``k`` database items with the smallest Hamming distance,
  sorted by ascending distance and, among equal distances, by **ascending database id** (the order of
  ``add``). With fewer than ``k`` items in the index it returns all of them (``min(k, len(index))`` columns).
* ``range_search(queries, radius)`` returns, per query, every item with distance ``<= radius``, in the same
  (distance, id) order.

Memory stays bounded: queries are processed in blocks of ``query_block`` rows against database chunks of
``chunk_size`` rows, so the largest temporary is ``query_block x chunk_size`` words, whatever the database size.
k-nearest search keeps a running top-k per query and only looks at the items of a chunk that beat the query's
current k-th distance (strictly: a later id at an equal distance never displaces an earlier one).

>>> import numpy as np
>>> index = HammingIndex(bits=8)
>>> index.add(np.array([[1, 1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 0]]))
>>> ids, dist = index.search(np.array([[1, 1, 1, 1, 1, 1, 1, 0]]), k=2)
>>> ids.tolist(), dist.tolist()
([[1, 0]], [[1, 3]])
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple, Union

import numpy as np

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821

_LUT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
HAS_BITWISE_COUNT = hasattr(np, "bitwise_count")


def popcount(words: np.ndarray) -> np.ndarray:
    """Bits set per element of an unsigned integer array, as uint8 (same shape)."""
    if HAS_BITWISE_COUNT:
        return np.bitwise_count(words)
    as_bytes = words.view(np.uint8).reshape(words.shape + (words.dtype.itemsize,))
    return _LUT[as_bytes].sum(axis=-1, dtype=np.uint8)


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if hasattr(x, "detach"):   # torch.Tensor, without importing torch
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def to_bits(codes: ArrayLike, bits: int) -> np.ndarray:
    """``[n, bits]`` codes in {-1, +1} or {0, 1} (any numeric dtype) or bool, as a bool array (bit = value > 0).

    Real-valued outputs are refused rather than silently thresholded: binarise them with
    ``lightning_hash.codes.sign_codes`` first.
    """
    arr = _to_numpy(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be a 2-d array [n, bits], got shape {arr.shape}")
    if arr.shape[1] != bits:
        raise ValueError(f"codes have {arr.shape[1]} bits per row, the index holds {bits}-bit codes")
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"codes must be numeric or bool, got dtype {arr.dtype}")
    if arr.size:
        values = np.unique(arr)
        if not (set(values.tolist()) <= {-1, 1} or set(values.tolist()) <= {0, 1}):
            raise ValueError("codes must hold only {-1, +1} or only {0, 1} values (or be bool); binarise real-valued "
                             f"outputs with lightning_hash.codes.sign_codes first (found values {values[:6].tolist()})")
    return arr > 0


def pack_codes(codes: ArrayLike, bits: int) -> np.ndarray:
    """``[n, bits]`` binary codes -> ``[n, ceil(bits / 8)]`` uint8, most significant bit first."""
    return np.packbits(to_bits(codes, bits), axis=1)


def unpack_codes(packed: np.ndarray, bits: int) -> np.ndarray:
    """The inverse of :func:`pack_codes`, as {0, 1} uint8 ``[n, bits]``."""
    return np.unpackbits(packed, axis=1, count=bits)


class HammingIndex:
    """Exact Hamming-distance search over ``bits``-bit codes (see the module docstring for order and memory).

    Args:
        bits: code length.
        chunk_size: database rows compared at once.
        query_block: queries compared at once.
        threads: query blocks searched in parallel threads (numpy releases the GIL in its loops); results do
            not depend on it.
    """

    def __init__(self, bits: int, chunk_size: int = 16384, query_block: int = 64, threads: int = 1):
        if not isinstance(bits, (int, np.integer)) or bits <= 0:
            raise ValueError(f"bits must be a positive integer, got {bits!r}")
        if chunk_size <= 0 or query_block <= 0 or threads <= 0:
            raise ValueError("chunk_size, query_block and threads must be positive")
        self.threads = int(threads)
        self.bits = int(bits)
        self.nbytes = (self.bits + 7) // 8
        self.nwords = (self.nbytes + 7) // 8
        self.chunk_size = int(chunk_size)
        self.query_block = int(query_block)
        self._words = np.zeros((0, self.nwords), dtype=np.uint64)

    # ------------------------------------------------------------------ storage
    def __len__(self) -> int:
        return self._words.shape[0]

    @property
    def ntotal(self) -> int:
        return len(self)

    def _packed_to_words(self, packed: np.ndarray) -> np.ndarray:
        packed = np.asarray(packed)
        if packed.dtype != np.uint8 or packed.ndim != 2 or packed.shape[1] != self.nbytes:
            raise ValueError(f"packed codes must be uint8 [n, {self.nbytes}], got {packed.dtype} {packed.shape}")
        if self.bits % 8:   # bits past the code length must be zero, or they would count in distances
            tail = np.uint8((1 << (8 - self.bits % 8)) - 1)
            if np.any(packed[:, -1] & tail):
                raise ValueError("packed codes have bits set past the code length")
        padded = np.zeros((packed.shape[0], self.nwords * 8), dtype=np.uint8)
        padded[:, :self.nbytes] = packed
        return padded.view(np.uint64)

    def _as_words(self, codes: ArrayLike, packed: bool) -> np.ndarray:
        if packed:
            return self._packed_to_words(_to_numpy(codes))
        return self._packed_to_words(pack_codes(codes, self.bits))

    def add(self, codes: ArrayLike, packed: bool = False) -> None:
        """Append codes (``[n, bits]`` {-1,+1}/{0,1}/bool, or ``packed=True``: uint8 ``[n, ceil(bits/8)]``).
        They get the ids ``len(self) .. len(self) + n - 1``."""
        self._words = np.concatenate([self._words, self._as_words(codes, packed)])

    @property
    def packed_codes(self) -> np.ndarray:
        """The database as uint8 ``[n, ceil(bits/8)]`` (a copy)."""
        return np.ascontiguousarray(self._words.view(np.uint8)[:, :self.nbytes])

    def save(self, path: Union[str, Path]) -> None:
        """Write ``bits`` and the packed codes to a ``.npz`` file."""
        np.savez(path, bits=np.int64(self.bits), packed=self.packed_codes)

    @classmethod
    def load(cls, path: Union[str, Path], **kwargs) -> "HammingIndex":
        with np.load(path) as content:
            if "bits" not in content or "packed" not in content:
                raise ValueError(f"{path}: not a HammingIndex file (needs 'bits' and 'packed')")
            index = cls(int(content["bits"]), **kwargs)
            index.add(content["packed"], packed=True)
        return index

    # ------------------------------------------------------------------ distances
    def _distances(self, q: np.ndarray, db: np.ndarray) -> np.ndarray:
        """``[len(q), len(db)]`` Hamming distances between word arrays (uint8 up to 255 bits, else uint16)."""
        out = popcount(np.bitwise_xor(q[:, None, 0], db[None, :, 0]))
        if self.nwords > 1:
            out = out.astype(np.uint16)
            for w in range(1, self.nwords):
                out += popcount(q[:, None, w] ^ db[None, :, w])
        return out

    def distances(self, queries: ArrayLike, packed: bool = False) -> np.ndarray:
        """The full ``[n_queries, len(self)]`` distance matrix (for small sets and tests)."""
        q = self._as_words(queries, packed)
        return self._distances(q, self._words).astype(np.int64)

    # ------------------------------------------------------------------ search
    def search(self, queries: ArrayLike, k: int, packed: bool = False) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest items per query: ``(ids, distances)``, int64 ``[n_queries, min(k, len(self))]``,
        sorted by (distance, id)."""
        if not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        q = self._as_words(queries, packed)
        n, k = len(self), min(int(k), len(self))
        ids = np.zeros((q.shape[0], k), dtype=np.int64)
        dists = np.zeros((q.shape[0], k), dtype=np.int64)
        if k == 0:
            return ids, dists
        big = np.int64(n + 1)

        def block(qs: int) -> None:
            qb = q[qs:qs + self.query_block]
            m = qb.shape[0]
            # Running top-k as sortable keys distance * (n + 1) + id: ascending key = (distance, id) order.
            head = max(self.chunk_size, k)   # the first chunk holds at least k items
            first = self._distances(qb, self._words[:head]).astype(np.int64)
            keys = first * big + np.arange(first.shape[1], dtype=np.int64)
            if keys.shape[1] > k:
                keys = np.partition(keys, k - 1, axis=1)[:, :k]
            keys.sort(axis=1)
            tau = keys[:, -1] // big        # the current k-th distance per query
            for start in range(head, n, self.chunk_size):
                d = self._distances(qb, self._words[start:start + self.chunk_size])
                flat = np.flatnonzero(d < tau[:, None].astype(d.dtype))   # 1-d nonzero: much faster than 2-d
                if flat.size == 0:
                    continue
                rows, cols = np.divmod(flat, d.shape[1])
                cand = d.ravel()[flat].astype(np.int64) * big + (cols + start)
                keys = self._merge(keys, rows, cand, k)
                tau = keys[:, -1] // big
            ids[qs:qs + m], dists[qs:qs + m] = keys % big, keys // big

        starts = range(0, q.shape[0], self.query_block)
        if self.threads > 1 and len(starts) > 1:
            from concurrent.futures import ThreadPoolExecutor
            with ThreadPoolExecutor(self.threads) as pool:
                list(pool.map(block, starts))
        else:
            for qs in starts:
                block(qs)
        return ids, dists

    @staticmethod
    def _merge(keys: np.ndarray, rows: np.ndarray, cand: np.ndarray, k: int) -> np.ndarray:
        """Per row, the ``k`` smallest of its current keys and its candidates (sorted)."""
        m = keys.shape[0]
        counts = np.bincount(rows, minlength=m)
        width = k + int(counts.max())
        merged = np.full((m, width), np.iinfo(np.int64).max, dtype=np.int64)
        merged[:, :k] = keys
        order = np.argsort(rows, kind="stable")
        rows_sorted = rows[order]
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pos = np.arange(rows.size) - starts[rows_sorted]
        merged[rows_sorted, k + pos] = cand[order]
        touched = counts > 0
        sub = merged[touched]
        if sub.shape[1] > k:
            sub = np.partition(sub, k - 1, axis=1)[:, :k]
        sub.sort(axis=1)
        keys = keys.copy()
        keys[touched] = sub
        return keys

    def range_search(self, queries: ArrayLike, radius: int, packed: bool = False
                     ) -> List[Tuple[np.ndarray, np.ndarray]]:
        """Per query, ``(ids, distances)`` of every item within Hamming distance ``radius`` (inclusive), sorted by
        (distance, id)."""
        if not isinstance(radius, (int, np.integer)) or radius < 0:
            raise ValueError(f"radius must be a non-negative integer, got {radius!r}")
        q = self._as_words(queries, packed)
        found: List[List[Tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(q.shape[0])]
        for qs in range(0, q.shape[0], self.query_block):
            qb = q[qs:qs + self.query_block]
            for start in range(0, len(self), self.chunk_size):
                d = self._distances(qb, self._words[start:start + self.chunk_size])
                rows, cols = np.nonzero(d <= radius)
                for r in np.unique(rows):
                    sel = rows == r
                    found[qs + r].append((cols[sel] + start, d[r, cols[sel]].astype(np.int64)))
        out = []
        for parts in found:
            ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
            dist = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
            order = np.lexsort((ids, dist))
            out.append((ids[order].astype(np.int64), dist[order]))
        return out
