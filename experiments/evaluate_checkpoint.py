#!/usr/bin/env python
"""Test another checkpoint of finished runs on their recorded splits, beside the figures the runs reported.

    python experiments/evaluate_checkpoint.py RUN [RUN ...] [--checkpoint last|best|PATH] [--metric mAP@all]
                                              [--json FILE]

``RUN``: a run folder (or its ``results.json``) written by ``run.py``; its configuration and ``split.json``
rebuild the exact DataModule and split (``retrieve.load_run``). ``--checkpoint last`` (default) tests the model
at the end of training (``checkpoints/last.ckpt``): what a benchmark that skips model selection would report.
This is a diagnostic (how much the validation-chosen checkpoint changes a figure); it never rewrites a run, and
the run's own figure (from its validation-chosen checkpoint) stays the one to report.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def checkpoint_path(results: Dict[str, Any], folder: Path, which: str) -> str:
    """``last`` / ``best`` / a path, checked to exist."""
    from lightning_hash.experiment import LAST_CHECKPOINT

    selection = results.get("model_selection") or {}
    path = {"last": str(folder / "checkpoints" / f"{LAST_CHECKPOINT}.ckpt"),
            "best": selection.get("best_checkpoint")}.get(which, which)
    if not path or not Path(path).is_file():
        raise FileNotFoundError(f"evaluate_checkpoint.py: {folder}: no {which!r} checkpoint at {path!r}")
    return path


def evaluate(run: str, which: str = "last") -> Dict[str, Any]:
    """``{name, bits, checkpoint, reported, tested}``: the run's test metrics and those of ``which``."""
    import pytorch_lightning as pl
    from retrieve import load_run

    folder = Path(run) if Path(run).is_dir() else Path(run).parent
    results = json.loads((folder / "results.json").read_text())
    ckpt = checkpoint_path(results, folder, which)
    _, model, dm = load_run(str(folder), ckpt)
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, deterministic=True)
    tested = {k: float(v) for k, v in trainer.test(model, datamodule=dm, verbose=False)[0].items()}
    return {"run": str(folder), "name": results.get("name") or results["method"], "bits": results["bits"],
            "seed": results["seed"], "checkpoint": ckpt, "reported": results["metrics"], "tested": tested}


def main(argv: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders or their results.json")
    p.add_argument("--checkpoint", default="last", help="last (default), best, or a checkpoint file")
    p.add_argument("--metric", default="mAP@all", help="the metric to print per task")
    p.add_argument("--json", default=None, help="write every figure to this file (not into the runs)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    rows = [evaluate(r, args.checkpoint) for r in args.runs]
    print(f"| run | bits | seed | task | {args.metric} reported (validation-chosen) | {args.metric} {args.checkpoint} |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        for key in sorted(k for k in r["tested"] if k.split("/")[1:2] == [args.metric]):
            rep = r["reported"].get(key)
            print(f"| {r['name']} | {r['bits']} | {r['seed']} | {key.split('/')[2]} | "
                  f"{'-' if rep is None else f'{rep:.3f}'} | {r['tested'][key]:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
