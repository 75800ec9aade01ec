"""Benchmark: lightning_hash.metrics vs the per-query numpy mAP loop of common hashing repos.

The reference is the loop that DJSRH (``calculate_map``) and DeepHash-pytorch (``CalcTopMap``) use: for every
query, labels -> relevance by a dot product, Hamming distances by ``0.5 * (bits - q @ B.T)``, ``np.argsort`` of the
distances (numpy's default sort: tie order unspecified), then ``mean(count / tindex)`` over the relevant ranks.
It is timed on all queries. Ours is timed with ``tie_break="average"`` (tie-aware, per-distance counts) and
``tie_break="index"`` (stable sort per query).

Agreement is checked on the first ``--check-queries`` queries: ours with ``tie_break="index"`` against the same
numpy loop with a stable argsort (``kind="stable"``, i.e. ties by index), and ours with ``tie_break="average"``
against a per-query numpy tie-aware reference (explicit sums over each tied group). Both must agree to 1e-6.

Data: random +-1 codes and random multi-hot labels over 24 classes (as MIRFlickr-25K): every item carries each
label with probability 0.15 and at least one label.

Memory: "ref peak" is the tracemalloc peak of the numpy loop (numpy allocations are traced); "ours peak" is the
peak of the process resident set size, sampled every 2 ms during a second, untimed call, above the resident size
before it, after freed heap memory is returned to the OS (on CUDA: ``torch.cuda.max_memory_allocated``). The
large-N row runs in a fresh subprocess and also reports that process's whole peak RSS (inputs included).

Threads: ``--threads`` sets torch's threads and limits numpy's BLAS threads (threadpoolctl) to the same number.

Examples
--------
Full table (about 5 minutes on 2 CPU cores; the table in docs/metrics.md)::

    python experiments/bench_metrics.py --threads 1

Quick check::

    python experiments/bench_metrics.py --quick

One row::

    python experiments/bench_metrics.py --sizes 100000 --bits 64 --large 0
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_hash.metrics import functional as F  # noqa: E402

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
    threadpool_limits = None

N_LABELS = 24


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------


def make_data(n_query: int, n_db: int, bits: int, seed: int):
    rng = np.random.default_rng(seed)

    def labels(n):
        lab = (rng.random((n, N_LABELS), dtype=np.float32) < 0.15).astype(np.float32)
        empty = lab.sum(1) == 0
        lab[np.nonzero(empty)[0], rng.integers(0, N_LABELS, int(empty.sum()))] = 1.0
        return lab

    q_codes = (rng.integers(0, 2, (n_query, bits), dtype=np.int8) * 2 - 1).astype(np.float32)
    d_codes = (rng.integers(0, 2, (n_db, bits), dtype=np.int8) * 2 - 1).astype(np.float32)
    return q_codes, d_codes, labels(n_query), labels(n_db)


# ----------------------------------------------------------------------------------------------------------------
# numpy references
# ----------------------------------------------------------------------------------------------------------------


def reference_map(q_codes, d_codes, q_labels, d_labels, kind=None) -> float:
    """The per-query loop of DJSRH ``calculate_map`` / DeepHash-pytorch ``CalcTopMap`` (top_k = N)."""
    num_query = q_labels.shape[0]
    bits = q_codes.shape[1]
    total = 0.0
    for i in range(num_query):
        gnd = (np.dot(q_labels[i, :], d_labels.transpose()) > 0).astype(np.float32)
        tsum = int(np.sum(gnd))
        if tsum == 0:
            continue
        hamm = 0.5 * (bits - np.dot(q_codes[i, :], d_codes.transpose()))
        ind = np.argsort(hamm) if kind is None else np.argsort(hamm, kind=kind)
        gnd = gnd[ind]
        count = np.linspace(1, tsum, tsum)
        tindex = np.asarray(np.where(gnd == 1)).squeeze(0) + 1.0
        total += float(np.mean(count / tindex))
    return total / num_query


def reference_tie_aware_map(q_codes, d_codes, q_labels, d_labels) -> float:
    """Per-query tie-aware AP: for a tied group of n items (r relevant) after n_lt items (r_lt relevant), the
    expected precision sum is (r/n) sum_{j=1}^{n} [r_lt + 1 + (j-1)(r-1)/(n-1)] / (n_lt + j), summed explicitly."""
    bits = q_codes.shape[1]
    values = []
    for i in range(q_labels.shape[0]):
        rel = np.dot(q_labels[i], d_labels.T) > 0
        dist = np.rint(0.5 * (bits - np.dot(q_codes[i], d_codes.T))).astype(np.int64)
        n_d = np.bincount(dist, minlength=bits + 1)
        r_d = np.bincount(dist, weights=rel, minlength=bits + 1)
        total, acc, n_lt, r_lt = r_d.sum(), 0.0, 0, 0.0
        for n, r in zip(n_d, r_d):
            if r > 0:
                j = np.arange(1, n + 1, dtype=np.float64)
                frac = (r - 1) / (n - 1) if n > 1 else 0.0
                acc += r / n * np.sum((r_lt + 1 + (j - 1) * frac) / (n_lt + j))
            n_lt, r_lt = n_lt + n, r_lt + r
        values.append(acc / total if total else 0.0)
    return float(np.mean(values))


# ----------------------------------------------------------------------------------------------------------------
# measurement helpers
# ----------------------------------------------------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_free_memory() -> None:
    """Return freed heap memory to the OS (glibc), so that RSS growth measures what a call needs."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the RSS growth is then a lower bound
        pass


class PeakRSS:
    """Peak resident set size above the size at entry, sampled every 2 ms by a background thread."""

    def __enter__(self):
        gc.collect()
        _release_free_memory()
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        self.extra = self.peak - self.base


def time_ours(fn, device):
    """(value, wall seconds, process CPU seconds, peak memory)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start, cpu = time.perf_counter(), time.process_time()
        value = float(fn())
        torch.cuda.synchronize()
        return value, time.perf_counter() - start, time.process_time() - cpu, torch.cuda.max_memory_allocated()
    start, cpu = time.perf_counter(), time.process_time()
    value = float(fn())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with PeakRSS() as mem:  # a second run for the memory: the sampling thread would perturb the timing
        fn()
    return value, seconds, cpu, mem.extra


def time_reference(fn):
    """(value, wall seconds, process CPU seconds, tracemalloc peak)."""
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return value, seconds, cpu, peak


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


# ----------------------------------------------------------------------------------------------------------------
# runs
# ----------------------------------------------------------------------------------------------------------------


def run_row(n_query, n_db, bits, args, device, with_reference=True) -> dict:
    qc, dc, ql, dl = make_data(n_query, n_db, bits, args.seed)
    tq, td = torch.from_numpy(qc).to(device), torch.from_numpy(dc).to(device)
    tql, tdl = torch.from_numpy(ql).to(device), torch.from_numpy(dl).to(device)
    row = {"queries": n_query, "database": n_db, "bits": bits}
    # warm-up (first-call costs) on a slice
    F.mean_average_precision(tq[:4], td[:2048], tql[:4], tdl[:2048])
    F.mean_average_precision(tq[:4], td[:2048], tql[:4], tdl[:2048], tie_break="index")
    for tb in ("average", "index"):
        value, seconds, cpu, mem = time_ours(lambda: F.mean_average_precision(tq, td, tql, tdl, tie_break=tb),
                                             device)
        row[f"ours_{tb}_s"], row[f"ours_{tb}_cpu_s"] = seconds, cpu
        row[f"ours_{tb}_map"], row[f"ours_{tb}_peak"] = value, mem
    if not with_reference:
        return row
    value, seconds, cpu, mem = time_reference(lambda: reference_map(qc, dc, ql, dl))
    row["ref_s"], row["ref_cpu_s"], row["ref_map"], row["ref_peak"] = seconds, cpu, value, mem
    for tb in ("average", "index"):
        row[f"ratio_{tb}"] = seconds / row[f"ours_{tb}_s"]
        row[f"cpu_ratio_{tb}"] = cpu / row[f"ours_{tb}_cpu_s"]
    c = min(args.check_queries, n_query)
    ref_stable = reference_map(qc[:c], dc, ql[:c], dl, kind="stable")
    ref_tie = reference_tie_aware_map(qc[:c], dc, ql[:c], dl)
    ours_index = float(F.mean_average_precision(tq[:c], td, tql[:c], tdl, tie_break="index"))
    ours_average = float(F.mean_average_precision(tq[:c], td, tql[:c], tdl, tie_break="average"))
    row["diff_index_vs_stable_ref"] = abs(ours_index - ref_stable)
    row["diff_average_vs_tie_aware_ref"] = abs(ours_average - ref_tie)
    row["agree"] = max(row["diff_index_vs_stable_ref"], row["diff_average_vs_tie_aware_ref"]) < 1e-6
    return row


def run_large_in_subprocess(args) -> dict:
    cmd = [sys.executable, __file__, "--_large-child", "--queries", str(args.queries), "--sizes", str(args.large),
           "--bits", str(args.large_bits), "--threads", str(args.threads), "--device", args.device,
           "--seed", str(args.seed)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_table(rows, args, device):
    print()
    print(f"device: {device_description(device)}; torch {torch.__version__}, numpy {np.__version__}; "
          f"torch threads = numpy BLAS threads = {args.threads}; Q = {args.queries}; "
          f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("times: wall seconds (process CPU seconds); speed-up = reference / ours, wall (CPU)")
    header = ("| bits | N | numpy ref | ours tie-aware | speed-up | ours index | speed-up | mAP tie-aware | "
              "max abs diff (check) | ref peak | ours peak (tie-aware / index) |")
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for r in rows:
        avg = f"{r['ours_average_s']:.3f} ({r['ours_average_cpu_s']:.3f})"
        idx = f"{r['ours_index_s']:.3f} ({r['ours_index_cpu_s']:.3f})"
        peaks = f"{mib(r['ours_average_peak'])} / {mib(r['ours_index_peak'])}"
        if "ref_s" in r:
            diff = max(r["diff_index_vs_stable_ref"], r["diff_average_vs_tie_aware_ref"])
            print(f"| {r['bits']} | {r['database']:,} | {r['ref_s']:.2f} ({r['ref_cpu_s']:.2f}) | {avg} | "
                  f"{r['ratio_average']:.1f}x ({r['cpu_ratio_average']:.1f}x) | {idx} | "
                  f"{r['ratio_index']:.1f}x ({r['cpu_ratio_index']:.1f}x) | {r['ours_average_map']:.4f} | "
                  f"{diff:.1e} | {mib(r['ref_peak'])} | {peaks} |")
        else:
            extra = f"; whole process peak RSS {mib(r['process_peak_rss'])}" if "process_peak_rss" in r else ""
            print(f"| {r['bits']} | {r['database']:,} | - | {avg} | - | {idx} | - | {r['ours_average_map']:.4f} | "
                  f"- | - | {peaks}{extra} |")


def device_description(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--sizes", type=str, default="20000,100000,200000", help="database sizes, comma separated")
    parser.add_argument("--bits", type=str, default="16,32,64,128", help="code lengths, comma separated")
    parser.add_argument("--large", type=int, default=1_000_000, help="database size of the ours-only row (0: skip)")
    parser.add_argument("--large-bits", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads, also the limit of numpy's BLAS threads (default: all cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--check-queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="defaults Q=500, N=20000, 64 bits, large row N=200000 (explicit options still win)")
    parser.add_argument("--json", type=str, default=None, help="also write the rows to this JSON file")
    parser.add_argument("--_large-child", action="store_true", help=argparse.SUPPRESS)
    if "--quick" in (sys.argv[1:] if argv is None else argv):
        parser.set_defaults(queries=500, sizes="20000", bits="64", large=200_000)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    limits = threadpool_limits(limits=args.threads) if threadpool_limits else None
    try:
        if args._large_child:
            row = run_row(args.queries, int(args.sizes), int(args.bits), args, device, with_reference=False)
            row["process_peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            print(json.dumps(row))
            return
        rows = []
        for bits in (int(b) for b in args.bits.split(",")):
            for n_db in (int(n) for n in args.sizes.split(",")):
                row = run_row(args.queries, n_db, bits, args, device)
                rows.append(row)
                print(json.dumps(row), flush=True)
        if args.large:
            row = run_large_in_subprocess(args)
            rows.append(row)
            print(json.dumps(row), flush=True)
        print_table(rows, args, device)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        if not all(r.get("agree", True) for r in rows):
            raise SystemExit("ours and the numpy references disagree (see the rows above)")
    finally:
        if limits is not None:
            limits.restore_original_limits()


if __name__ == "__main__":
    main()
