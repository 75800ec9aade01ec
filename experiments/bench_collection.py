"""Benchmark: the cost of a test-time evaluation (every figure of one task) against one mAP@all, in one run.

Three ways to get the figures of one task (``run.py``'s test set: mAP@all, mAP@50, P@100, P@r2, R@r2, the
radius P-R curve and P@K / R@K at the 12 ranks of ``P_AT_K_CURVE``):

* ``one mAP@all``: ``HammingMAP`` alone (the unit);
* ``per-task metric``: ``HammingRetrievalMetrics`` as ``HashingModule`` builds it (the distance histograms once);
* ``collection``: a ``MetricCollection`` of the single-figure classes (compute groups share the codes, but each
  member ranks the database again), which is what the evaluation loop used before.

Data: random +-1 codes, random 24-label multi-hot labels, ``--queries`` x ``--database`` x ``--bits``. Each
figure of the per-task metric is checked against the collection's (1e-9).

    OMP_NUM_THREADS=1 python experiments/bench_collection.py --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torchmetrics import MetricCollection  # noqa: E402

from lightning_hash.metrics import (HammingMAP, HammingPrecisionAtK, HammingPRCurve,  # noqa: E402
                                    HammingRadiusPrecisionRecall, HammingRecallAtK, HammingRetrievalMetrics)
from lightning_hash.module import P_AT_K_CURVE  # noqa: E402


def _data(n_q: int, n_d: int, bits: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    codes = lambda n: torch.randint(0, 2, (n, bits), generator=g).float() * 2 - 1  # noqa: E731
    labels = lambda n: (torch.rand(n, 24, generator=g) < 0.15).float()  # noqa: E731
    return codes(n_q), labels(n_q), codes(n_d), labels(n_d)


def _timed(metric, data, repeat: int):
    qc, ql, dc, dl = data
    metric.update(qc, ql, role="query")
    metric.update(dc, dl, role="database")
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = metric.compute()
        best = min(best, time.perf_counter() - start)
        for m in (metric.values() if isinstance(metric, MetricCollection) else [metric]):
            m._computed = None   # torchmetrics caches compute(); time a fresh one each repeat
    return best, out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--database", type=int, default=20000)
    p.add_argument("--bits", type=int, default=64)
    p.add_argument("--repeat", type=int, default=3, help="best of this many computes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = _data(args.queries, args.database, args.bits, args.seed)

    t_one, _ = _timed(HammingMAP(), data, args.repeat)
    t_task, task = _timed(HammingRetrievalMetrics(map_at=[50], precision_at=[100], radius=2, pr_curve=True,
                                                  curve_at=P_AT_K_CURVE), data, args.repeat)
    members = {"mAP@all": HammingMAP(), "mAP@50": HammingMAP(top_k=50), "r2": HammingRadiusPrecisionRecall(2),
               "pr_curve": HammingPRCurve()}
    for k in P_AT_K_CURVE:
        members[f"P@{k}"] = HammingPrecisionAtK(k)
        members[f"R@{k}"] = HammingRecallAtK(k)
    t_coll, coll = _timed(MetricCollection(members, compute_groups=True), data, args.repeat)

    diff = max(abs(float(task[k]) - float(coll[k])) for k in ("mAP@all", "mAP@50", "P@100", "P@r2", "R@r2"))
    ks, p_at, r_at = task["rank_curve"]
    diff = max(diff, *(abs(float(p_at[i]) - float(coll[f"P@{k}"])) for i, k in enumerate(ks)),
               *(abs(float(r_at[i]) - float(coll[f"R@{k}"])) for i, k in enumerate(ks)))
    if diff > 1e-9:
        raise SystemExit(f"the per-task metric and the collection disagree by {diff:.2e}")
    figures = 5 + 2 * len(P_AT_K_CURVE) + 1
    print(f"Q = {args.queries}, N = {args.database}, {args.bits} bits, {args.threads} thread(s), torch "
          f"{torch.__version__}; {figures} figures per task (max abs diff {diff:.1e})")
    print("| evaluation | seconds | / one mAP@all |")
    print("|---|---|---|")
    for name, t in (("one mAP@all", t_one), ("per-task metric (HammingRetrievalMetrics)", t_task),
                    ("collection of single-figure metrics", t_coll)):
        print(f"| {name} | {t:.3f} | {t / t_one:.2f}x |")
    return {"one": t_one, "task": t_task, "collection": t_coll, "diff": diff}


if __name__ == "__main__":
    main()
