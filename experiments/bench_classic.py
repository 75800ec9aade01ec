#!/usr/bin/env python
"""Benchmark of the single-modal classic baselines on CIFAR-10 GIST through ``run.py`` (docs/classic.md).

    python experiments/bench_classic.py --seeds 0 1 2 3 4

The Wiki table of the cross-modal baselines is a grid file run by the one benchmark runner:
``python experiments/bench.py experiments/grids/classic_wiki.yaml --seeds 0 1 2 3 4``.

Grids
-----
* ``cifar10``: LSH, SH, ITQ at 16/32/64 bits on CIFAR-10 GIST-512 (computed and cached by
  ``experiments/extract_gist.py``), standard protocol (1,000 test queries, 100 per class; the other 59,000 images
  are training set and database); mAP@all and P@5000, next to the thesis' Table 3.2 (Shen, DVB chapter).

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

#: published figures: lightning_hash/paper_figures.yaml (Shen's thesis, Table 3.2), data name "cifar10_gist"
PAPER_DATA = "cifar10_gist"
CIFAR_METHODS, CIFAR_BITS = ("lsh", "sh", "itq"), (16, 32, 64)
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


def cifar10_table(res: Dict, n_seeds: int) -> str:
    from lightning_hash.experiment import paper_figures
    fig, paper = res["figures"], paper_figures()
    head = ("| method | " + " | ".join(f"mAP {b}" for b in CIFAR_BITS) + " | "
            + " | ".join(f"P@5000 {b}" for b in CIFAR_BITS) + " |")
    lines = [head, "|" + "---|" * (1 + 2 * len(CIFAR_BITS))]
    for method in CIFAR_METHODS:
        cells = []
        for metric in ("mAP@all", "P@5000"):
            for i, bits in enumerate(CIFAR_BITS):
                pub = paper.get((method, PAPER_DATA, metric, "image->image", bits))
                cells.append(_cell(fig[method][bits][metric]) + ("" if pub is None else f" ({pub:.3f})"))
        lines.append(f"| {NAMES[method]} | " + " | ".join(cells) + " |")
    note = (f"CIFAR-10 GIST-512, 1,000 queries / 59,000 database; ours ({_seeds_note(n_seeds)}) "
            "and, in brackets, thesis Table 3.2.")
    return note + "\n\n" + "\n".join(lines)


def main(argv=None) -> Dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
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
    results["cifar10"] = bench_cifar10(args.seeds, out, args.threads)
    tables.append(cifar10_table(results["cifar10"], len(args.seeds)))
    results["seconds"] = round(time.time() - t0, 1)
    with open(out / "bench_classic.json", "w") as fh:
        json.dump(results, fh, indent=2, default=str)
    print("\n\n".join(tables))
    print(f"\n({results['seconds']:.0f} s; figures in {out / 'bench_classic.json'})")
    return results


if __name__ == "__main__":
    main()
