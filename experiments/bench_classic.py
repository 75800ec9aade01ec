#!/usr/bin/env python
"""Benchmark of the classic baselines through ``run.py``; prints markdown tables (recorded in docs/classic.md).

    python experiments/bench_classic.py                       # both grids, seed 0
    python experiments/bench_classic.py --seeds 0 1 2 --part cifar10
    python experiments/bench_classic.py --part wiki --output runs/bench_classic

Grids
-----
* ``cifar10``: LSH, SH, ITQ at 16/32/64 bits on CIFAR-10 GIST-512 (computed and cached by
  ``experiments/extract_gist.py``), standard protocol (1,000 test queries, 100 per class; the other 59,000 images
  are training set and database); mAP@all and P@5000, next to the thesis' Table 3.2 (Shen, DVB chapter).
* ``wiki``: CCA-ITQ, CVH, CMFH at 16/32/64/128 bits on Wiki (2,173 training pairs = database, 693 queries);
  image->text and text->image mAP@all (and mAP@50).

Each cell is one ``run.py`` run (``--logger none``), in this process, one after another; with several seeds the
cell shows the mean and the standard deviation over seeds (the seed draws the queries and the method's random
numbers). Every run's ``results.json`` stays under ``--output``; ``bench_classic.json`` there holds all figures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Shen's thesis, Table 3.2 (CIFAR-10, 512-d GIST): mAP and Precision@5000 at 16/32/64 bits.
THESIS_TABLE_3_2 = {
    "itq": {"mAP@all": (0.153, 0.163, 0.169), "P@5000": (0.177, 0.188, 0.198)},
    "sh": {"mAP@all": (0.127, 0.125, 0.125), "P@5000": (0.144, 0.143, 0.143)},
    "lsh": {"mAP@all": (0.129, 0.138, 0.149), "P@5000": (0.144, 0.143, 0.169)},
}
CIFAR_METHODS, CIFAR_BITS = ("lsh", "sh", "itq"), (16, 32, 64)
WIKI_METHODS, WIKI_BITS = ("cca_itq", "cvh", "cmfh"), (16, 32, 64, 128)
NAMES = {"lsh": "LSH", "sh": "SH", "itq": "ITQ", "cca_itq": "CCA-ITQ", "cvh": "CVH", "cmfh": "CMFH"}


def _run(argv: List[str]) -> Dict[str, float]:
    from lightning_hash.experiment import main
    return main(argv)["metrics"]


def _seeds_note(n_seeds: int) -> str:
    return "seed 0" if n_seeds == 1 else f"mean ± std over {n_seeds} seeds"


def _cell(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def bench_cifar10(seeds: Sequence[int], out: Path, threads: int) -> Dict:
    sys.path.insert(0, str(ROOT / "experiments"))
    from extract_gist import extract
    bundle = extract(threads=threads)
    figures: Dict = {}
    for method in CIFAR_METHODS:
        for bits in CIFAR_BITS:
            for seed in seeds:
                t0 = time.time()
                m = _run(["--method", method, "--data", str(bundle), "--set", "data.protocol=cifar10",
                          "--set", "method.eval_precision_at=[5000]", "--set", "method.eval_map_at=[]",
                          "--bits", str(bits), "--seed", str(seed), "--logger", "none", "--no-progress-bar",
                          "--output", str(out / "cifar10_gist" / method / f"{bits}bits" / f"seed{seed}")])
                cell = figures.setdefault(method, {}).setdefault(bits, {"mAP@all": [], "P@5000": []})
                cell["mAP@all"].append(m["test/mAP@all/image->image"])
                cell["P@5000"].append(m["test/P@5000/image->image"])
                print(f"[cifar10] {method} {bits} bits seed {seed}: mAP {cell['mAP@all'][-1]:.4f} "
                      f"P@5000 {cell['P@5000'][-1]:.4f} ({time.time() - t0:.0f} s)", flush=True)
    return {"bundle": str(bundle), "figures": figures}


def bench_wiki(seeds: Sequence[int], out: Path) -> Dict:
    figures: Dict = {}
    for method in WIKI_METHODS:
        for bits in WIKI_BITS:
            for seed in seeds:
                t0 = time.time()
                m = _run(["--method", method, "--data", "wiki", "--bits", str(bits), "--seed", str(seed),
                          "--logger", "none", "--no-progress-bar",
                          "--output", str(out / "wiki" / method / f"{bits}bits" / f"seed{seed}")])
                cell = figures.setdefault(method, {}).setdefault(bits, {})
                for task in ("image->text", "text->image"):
                    for metric in ("mAP@all", "mAP@50"):
                        cell.setdefault(f"{metric}/{task}", []).append(m[f"test/{metric}/{task}"])
                print(f"[wiki] {method} {bits} bits seed {seed}: I->T {cell['mAP@all/image->text'][-1]:.4f} "
                      f"T->I {cell['mAP@all/text->image'][-1]:.4f} ({time.time() - t0:.0f} s)", flush=True)
    return {"figures": figures}


def cifar10_table(res: Dict, n_seeds: int) -> str:
    fig = res["figures"]
    head = ("| method | " + " | ".join(f"mAP {b}" for b in CIFAR_BITS) + " | "
            + " | ".join(f"P@5000 {b}" for b in CIFAR_BITS) + " |")
    lines = [head, "|" + "---|" * (1 + 2 * len(CIFAR_BITS))]
    for method in CIFAR_METHODS:
        cells = []
        for metric in ("mAP@all", "P@5000"):
            for i, bits in enumerate(CIFAR_BITS):
                pub = THESIS_TABLE_3_2[method][metric][i]
                cells.append(f"{_cell(fig[method][bits][metric])} ({pub:.3f})")
        lines.append(f"| {NAMES[method]} | " + " | ".join(cells) + " |")
    note = (f"CIFAR-10 GIST-512, 1,000 queries / 59,000 database; ours ({_seeds_note(n_seeds)}) "
            "and, in brackets, thesis Table 3.2.")
    return note + "\n\n" + "\n".join(lines)


def wiki_table(res: Dict, n_seeds: int, metric: str = "mAP@all") -> str:
    fig = res["figures"]
    head = ("| method | " + " | ".join(f"I→T {b}" for b in WIKI_BITS) + " | "
            + " | ".join(f"T→I {b}" for b in WIKI_BITS) + " |")
    lines = [head, "|" + "---|" * (1 + 2 * len(WIKI_BITS))]
    for method in WIKI_METHODS:
        cells = [_cell(fig[method][b][f"{metric}/{task}"]) for task in ("image->text", "text->image")
                 for b in WIKI_BITS]
        lines.append(f"| {NAMES[method]} | " + " | ".join(cells) + " |")
    note = f"Wiki {metric}, 693 queries / 2,173 database ({_seeds_note(n_seeds)})."
    return note + "\n\n" + "\n".join(lines)


def main(argv=None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--part", choices=["all", "cifar10", "wiki"], default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--output", default="runs/bench_classic", help="folder of the runs and bench_classic.json")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    results: Dict = {"seeds": args.seeds}
    tables: List[str] = []
    if args.part in ("all", "cifar10"):
        results["cifar10"] = bench_cifar10(args.seeds, out, args.threads)
        tables.append(cifar10_table(results["cifar10"], len(args.seeds)))
    if args.part in ("all", "wiki"):
        results["wiki"] = bench_wiki(args.seeds, out)
        tables.append(wiki_table(results["wiki"], len(args.seeds)))
        tables.append(wiki_table(results["wiki"], len(args.seeds), metric="mAP@50"))
    results["seconds"] = round(time.time() - t0, 1)
    with open(out / "bench_classic.json", "w") as fh:
        json.dump(results, fh, indent=2, default=str)
    print("\n\n".join(tables))
    print(f"\n({results['seconds']:.0f} s; figures in {out / 'bench_classic.json'})")
    return results


if __name__ == "__main__":
    main()
