#!/usr/bin/env python
"""HammingIndex (lightning_hash/index.py) against faiss ``IndexBinaryFlat``: exact k-NN over the same codes.

    pip install -e ".[bench]"          # faiss-cpu
    python experiments/bench_index.py [--n 1000000] [--bits 64] [--queries 1000] [--k 100] [--threads 1] [--repeats 3]

Random codes (seeded), both indexes fed the same packed bytes. Checked: the distance matrices of the two
results are equal, and the id lists equal up to the order of items at equal distance (faiss does not specify a
tie order; ours is ascending id), i.e. per query the sets of ids strictly inside the k-th distance are equal and
every returned id really is at its reported distance. Times are the best of ``--repeats`` runs, faiss and ours
interleaved, both limited to ``--threads`` threads (ours: ``HammingIndex(threads=...)``, query blocks in parallel threads).
"""
import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    try:
        import faiss
    except ImportError:
        raise SystemExit("bench_index.py needs faiss: pip install faiss-cpu (or pip install -e '.[bench]')")
    from lightning_hash.index import HAS_BITWISE_COUNT, HammingIndex

    faiss.omp_set_num_threads(args.threads)
    if args.bits % 8:
        raise SystemExit("faiss IndexBinaryFlat needs bits to be a multiple of 8")
    rng = np.random.default_rng(args.seed)
    db = rng.integers(0, 256, size=(args.n, args.bits // 8), dtype=np.uint8)
    q = rng.integers(0, 256, size=(args.queries, args.bits // 8), dtype=np.uint8)

    fx = faiss.IndexBinaryFlat(args.bits)
    fx.add(db)
    ours = HammingIndex(args.bits, threads=args.threads)
    ours.add(db, packed=True)

    t_faiss, t_ours = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fd, fi = fx.search(q, args.k)
        t_faiss.append(time.perf_counter() - t)
        t = time.perf_counter()
        oi, od = ours.search(q, args.k, packed=True)
        t_ours.append(time.perf_counter() - t)

    # Checks: same distances; ids agree up to tie order; every id is at its reported distance.
    assert np.array_equal(od, fd.astype(np.int64)), "distances differ from faiss"
    kth = od[:, -1:]
    for i in range(len(q)):
        inside = od[i] < kth[i]
        assert set(oi[i][inside]) == set(fi[i][fd[i] < kth[i]]), f"query {i}: ids inside the k-th distance differ"
    sample = rng.choice(len(q), size=min(50, len(q)), replace=False)
    true = ours.distances(q[sample], packed=True)
    assert np.array_equal(np.take_along_axis(true, oi[sample], 1), od[sample])
    assert np.array_equal(np.take_along_axis(true, fi[sample].astype(np.int64), 1), od[sample])
    at_kth = int((od == kth).sum())

    bf, bo = min(t_faiss), min(t_ours)
    print(f"database {args.n:,} x {args.bits} bits, {args.queries:,} queries, k={args.k}, threads={args.threads}, "
          f"numpy {np.__version__} (bitwise_count: {HAS_BITWISE_COUNT}), faiss {faiss.__version__}")
    print(f"faiss IndexBinaryFlat: {bf:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in t_faiss)})")
    print(f"HammingIndex         : {bo:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in t_ours)})")
    print(f"ratio ours / faiss   : {bo / bf:.2f}x   (target <= 2x)")
    print(f"results: distances equal; ids equal up to tie order ({at_kth:,} of the {od.size:,} returned items lie at "
          "their query's k-th distance, where the tie order decides)")


if __name__ == "__main__":
    main()
