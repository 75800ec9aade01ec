#!/usr/bin/env python
"""DJSRH on Wiki (features as published) at 16/32/64/128 bits, next to the paper's mAP@50.

    python experiments/bench_djsrh_wiki.py [--bits 16 32 64 128] [--seed 0] [--output runs/bench_djsrh_wiki]

Each bit length is one ordinary ``run.py`` run (official Wiki settings from lightning_hash/configs/djsrh.yaml:
beta = lambda1 = lambda2 = 0.3, LR 0.01/0.01, 200 epochs, batch 32); the script prints a markdown table of
test mAP@50 and mAP@all for image->text and text->image, with the random-code reference measured the same way.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightning_hash.experiment import main as run, paper_figures  # noqa: E402

#: DJSRH's Table 1 (mAP@50), from lightning_hash/paper_figures.yaml
PAPER = paper_figures()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64, 128])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="runs/bench_djsrh_wiki")
    p.add_argument("--data-root", default=None)
    p.add_argument("--max-epochs", type=int, default=None, help="default: the config's 200")
    args = p.parse_args()
    rows = []
    for bits in args.bits:
        for method in ("djsrh", "random"):
            argv = ["--method", method, "--data", "wiki", "--bits", str(bits), "--seed", str(args.seed),
                    "--logger", "csv", "--no-progress-bar", "--output", f"{args.output}/{method}/{bits}bits"]
            if args.data_root:
                argv += ["--data-root", args.data_root]
            if args.max_epochs and method == "djsrh":
                argv += ["--max-epochs", str(args.max_epochs)]
            start = time.time()
            res = run(argv)
            rows.append((method, bits, res["metrics"], time.time() - start))
    print("\n| method | bits | I->T mAP@50 (paper) | I->T mAP@all | T->I mAP@50 (paper) | T->I mAP@all | seconds |")
    print("|---|---|---|---|---|---|---|")
    for method, bits, m, secs in rows:
        def cell(task, metric):
            return f"{m[f'test/{metric}/{task}']:.3f}"
        paper = (lambda t: f" ({PAPER[(method, 'wiki', 'mAP@50', t, bits)]:.3f})"
                 if (method, "wiki", "mAP@50", t, bits) in PAPER else "")
        print(f"| {method} | {bits} | {cell('image->text', 'mAP@50')}{paper('image->text')} | "
              f"{cell('image->text', 'mAP@all')} | {cell('text->image', 'mAP@50')}{paper('text->image')} | "
              f"{cell('text->image', 'mAP@all')} | {secs:.0f} |")


if __name__ == "__main__":
    main()
