#!/usr/bin/env python
"""Compare runs: a markdown/CSV table (mean +- std over seeds) and PNG plots from results.json files and
offline W&B runs.

    python experiments/compare.py runs/sweep_wiki [more folders, files or globs] --out docs/compare \\
        [--metrics mAP@50 mAP@all P@100] [--plot-metric mAP@50] [--paper lightning_hash/paper_figures.yaml] \\
        [--split test]

Inputs: each argument is a ``results.json`` file, an offline W&B run folder (``wandb/offline-run-*``, read with
``lightning_hash.wandb_utils.read_offline_run``: its config ``method``/``data``/``bits``/``seed`` and its
summary metrics), a folder (searched recursively for both), or a glob. A run folder holding both a
``results.json`` and its W&B run counts once (the ``results.json``, which also has the curves). Two records of
the same (method, data, bits, seed) are an error: mixing two sweeps by accident would bias the mean.

Outputs in ``--out``:

* ``results.csv``: one row per (method, data, bits, task, metric): ``mean``, ``std``, ``n`` (seeds), ``seeds``,
  ``paper`` (the paper's figure when ``--paper`` has it). ``std`` is the sample standard deviation over seeds
  (``ddof=1``; 0 with one seed).
* ``results.md``: per dataset and metric, one row per (method, bits), one column per task, ``mean ± std``,
  the paper's figure in brackets.
* ``<data>_<metric>_vs_bits.png``: the metric against code length, one panel per task, one line per method
  (error bars = std over seeds), the paper's figures as dashed lines with hollow markers.
* ``<data>_<bits>bits_pr.png`` and ``<data>_<bits>bits_precision_at_k.png``: the P-R curves (Hamming radius
  0..bits) and P@K curves from ``results.json`` ``curves``, averaged over seeds, one panel per task.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_METRICS = ["mAP@50", "mAP@all", "P@100"]


# ---------------------------------------------------------------------------------------------- reading
def _record_from_results(path: Path) -> Dict[str, Any]:
    content = json.loads(Path(path).read_text())
    missing = {"method", "data", "bits", "seed", "metrics"} - set(content)
    if missing:
        raise ValueError(f"{path}: not a run.py results.json (missing {sorted(missing)})")
    # the test figures and the validation figures of the same (validation-chosen) checkpoint, for --split val
    metrics = {**((content.get("model_selection") or {}).get("val_metrics") or {}), **content["metrics"]}
    return {"method": content.get("name") or content["method"], "data": content["data"],
            "bits": int(content["bits"]), "seed": int(content["seed"]), "metrics": metrics,
            "curves": content.get("curves") or {}, "source": str(path)}


def _record_from_wandb(folder: Path) -> Dict[str, Any]:
    from lightning_hash.wandb_utils import read_offline_run
    content = read_offline_run(folder)
    cfg, summary = content["config"], content["summary"]
    missing = {"method", "data", "bits", "seed"} - set(cfg)
    if missing:
        raise ValueError(f"{folder}: W&B run config lacks {sorted(missing)}")
    metrics = {k: float(v) for k, v in summary.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k.count("/") == 2}
    return {"method": cfg.get("name") or cfg["method"], "data": cfg["data"], "bits": int(cfg["bits"]),
            "seed": int(cfg["seed"]),
            "metrics": metrics, "curves": {}, "source": str(folder)}


def _expand(inputs: Iterable[str]) -> List[Path]:
    """results.json files and offline W&B run folders named by the inputs (files, folders, globs)."""
    found: List[Path] = []
    for item in inputs:
        matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))] or [Path(item)]
        for path in matches:
            if not path.exists():
                raise FileNotFoundError(f"compare.py: no such file or folder: {path}")
            if path.is_file():
                found.append(path)
            elif path.name.startswith("offline-run-"):
                found.append(path)
            else:
                found += sorted(path.rglob("results.json"))
                found += sorted(p for p in path.rglob("offline-run-*") if p.is_dir())
    return list(dict.fromkeys(found))


def collect(inputs: Iterable[str]) -> List[Dict[str, Any]]:
    """One record per run: ``method, data, bits, seed, metrics, curves, source``; ``method`` is the run's
    ``--name`` (the method itself unless the run was labelled as a variant)."""
    paths = _expand(inputs)
    with_results = {p.parent.resolve() for p in paths if p.is_file()}
    records = []
    for path in paths:
        if path.is_file():
            records.append(_record_from_results(path))
        else:
            run_folder = path.parent.parent.resolve()       # <run folder>/wandb/offline-run-*
            if run_folder in with_results:
                continue                                    # the results.json of the same run is read instead
            records.append(_record_from_wandb(path))
    seen: Dict[tuple, str] = {}
    for r in records:
        key = (r["method"], r["data"], r["bits"], r["seed"])
        if key in seen:
            raise ValueError(f"two runs of {key} (method, data, bits, seed): {seen[key]} and {r['source']}; "
                             "pass the folders of one sweep")
        seen[key] = r["source"]
    return records


def read_paper(path: Optional[str]) -> Dict[tuple, float]:
    """``{(method, data, metric, task, bits): value}`` from a paper-figures YAML file (none without a path)."""
    if not path:
        return {}
    from lightning_hash.experiment import paper_figures
    return paper_figures(Path(path))


# ---------------------------------------------------------------------------------------------- summary
def summarize(records: Sequence[Dict[str, Any]], metrics: Sequence[str] = DEFAULT_METRICS, split: str = "test",
              paper: Optional[Dict[tuple, float]] = None) -> List[Dict[str, Any]]:
    """Rows ``method, data, bits, task, metric, mean, std, n, seeds, paper``, sorted; ``std`` with ``ddof=1``
    (``None`` for a single seed: one run has no spread to report)."""
    groups: Dict[tuple, List[tuple]] = defaultdict(list)
    for r in records:
        for key, value in r["metrics"].items():
            parts = key.split("/")
            if len(parts) != 3 or parts[0] != split or parts[1] not in metrics:
                continue
            groups[(r["method"], r["data"], r["bits"], parts[2], parts[1])].append((r["seed"], float(value)))
    rows = []
    for (method, data, bits, task, metric), values in groups.items():
        values.sort()
        x = np.array([v for _, v in values])
        rows.append({"method": method, "data": data, "bits": bits, "task": task, "metric": metric,
                     "mean": float(x.mean()), "std": float(x.std(ddof=1)) if len(x) > 1 else None, "n": len(x),
                     "seeds": " ".join(str(s) for s, _ in values),
                     "paper": (paper or {}).get((method, data, metric, task, bits))})
    metric_order = {m: i for i, m in enumerate(metrics)}
    rows.sort(key=lambda r: (r["data"], metric_order[r["metric"]], r["method"], r["bits"], r["task"] == "mean",
                             r["task"]))
    return rows


def write_csv(rows: Sequence[Dict[str, Any]], path: Path) -> None:
    fields = ["method", "data", "bits", "task", "metric", "mean", "std", "n", "seeds", "paper"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "paper": "" if r["paper"] is None else r["paper"],
                             "std": "" if r["std"] is None else r["std"]})


def markdown(rows: Sequence[Dict[str, Any]], split: str = "test") -> str:
    out = []
    by_table: Dict[tuple, List[Dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_table[(r["data"], r["metric"])].append(r)
    for (data, metric), items in by_table.items():
        tasks = list(dict.fromkeys(r["task"] for r in items))
        cells: Dict[tuple, Dict[str, str]] = defaultdict(dict)
        seeds: Dict[tuple, int] = {}
        for r in items:
            text = f"{r['mean']:.3f}" + ("" if r["std"] is None else f" ± {r['std']:.3f}")
            if r["paper"] is not None:
                text += f" ({r['paper']:.3f})"
            cells[(r["method"], r["bits"])][r["task"]] = text
            seeds[(r["method"], r["bits"])] = r["n"]
        paper_note = "; the paper's figure in brackets" if any(r["paper"] is not None for r in items) else ""
        out.append(f"**{data}, {split} {metric}** (mean ± std over seeds{paper_note})\n")
        out.append("| method | bits | seeds | " + " | ".join(tasks) + " |")
        out.append("|---|---|---|" + "---|" * len(tasks))
        for (method, bits), per_task in cells.items():
            out.append(f"| {method} | {bits} | {seeds[(method, bits)]} | "
                       + " | ".join(per_task.get(t, "-") for t in tasks) + " |")   # no figure: "-", never blank
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- plots
def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_metric_vs_bits(rows: Sequence[Dict[str, Any]], data: str, metric: str, path: Path,
                        paper: Optional[Dict[tuple, float]] = None) -> None:
    plt = _plt()
    items = [r for r in rows if r["data"] == data and r["metric"] == metric and r["task"] != "mean"]
    tasks = list(dict.fromkeys(r["task"] for r in items))
    methods = list(dict.fromkeys(r["method"] for r in items))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, task in zip(axes[0], tasks):
        for i, method in enumerate(methods):
            pts = sorted((r["bits"], r["mean"], r["std"]) for r in items if r["task"] == task and r["method"] == method)
            color = colors[i % len(colors)]
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] or 0.0 for p in pts], marker="o", capsize=3,
                        color=color, label=method)
            reported = sorted((b, v) for (m, d, me, t, b), v in (paper or {}).items()
                              if (m, d, me, t) == (method, data, metric, task))
            if reported:
                ax.plot([b for b, _ in reported], [v for _, v in reported], "--", marker="o", mfc="none",
                        color=color, label=f"{method} (paper)")
        bits = sorted({r["bits"] for r in items} | {b for (m, d, me, t, b) in (paper or {})
                                                    if (m, d, me, t) in {(x, data, metric, task) for x in methods}})
        ax.set_xscale("log", base=2)
        ax.set_xticks(bits, [str(b) for b in bits])
        _label_axis(ax, "bits", metric, f"{data}: {task}")
    _save_figure(plt, fig, axes, path)


def _label_axis(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)


def _save_figure(plt, fig, axes, path: Path) -> None:
    """Legend on the first panel, then write ``path`` and free the figure."""
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mean_curve(curves: List[Dict[str, Any]], x: str, y: str):
    """Seeds' curves averaged point by point (same x grid), else the first seed's curve."""
    xs = [np.asarray(c[x], dtype=float) for c in curves if c.get(x) and c.get(y)]
    ys = [np.asarray(c[y], dtype=float) for c in curves if c.get(x) and c.get(y)]
    if not xs:
        return None
    if all(len(a) == len(xs[0]) for a in xs) and (x != "k" or all(np.array_equal(a, xs[0]) for a in xs)):
        return np.mean(xs, axis=0), np.mean(ys, axis=0), len(xs)
    return xs[0], ys[0], 1


def plot_curves(records: Sequence[Dict[str, Any]], data: str, bits: int, kind: str, path: Path) -> bool:
    """``kind``: ``pr`` (precision against recall) or ``precision_at_k``. False when no record has curves."""
    x, y, xlabel, ylabel = (("pr_recall", "pr_precision", "recall", "precision") if kind == "pr"
                            else ("k", "precision_at_k", "K (retrieved items)", "precision@K"))
    items = [r for r in records if r["data"] == data and r["bits"] == bits and r["curves"]]
    if not items:
        return False
    plt = _plt()
    tasks = list(dict.fromkeys(t for r in items for t in r["curves"]))
    methods = list(dict.fromkeys(r["method"] for r in items))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for method in methods:
            curve = _mean_curve([r["curves"][task] for r in items if r["method"] == method and task in r["curves"]],
                                x, y)
            if curve is not None:
                ax.plot(curve[0], curve[1], marker=".", label=f"{method} (n={curve[2]})")
        if kind == "precision_at_k":
            ax.set_xscale("log")
        _label_axis(ax, xlabel, ylabel, f"{data}, {bits} bits: {task}")
    _save_figure(plt, fig, axes, path)
    return True


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


# ---------------------------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="results.json files, offline W&B run folders, folders or globs")
    p.add_argument("--out", default="compare", help="output folder")
    p.add_argument("--metrics", nargs="+", default=DEFAULT_METRICS)
    p.add_argument("--plot-metric", default=None, help="metric drawn against bits (default: the first of --metrics)")
    p.add_argument("--paper", default=None, help="paper figures YAML, e.g. lightning_hash/paper_figures.yaml")
    p.add_argument("--split", default="test")
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args(argv)

    records = collect(args.inputs)
    if not records:
        raise SystemExit(f"compare.py: no results.json or offline W&B runs under {args.inputs}")
    paper = read_paper(args.paper)
    rows = summarize(records, args.metrics, args.split, paper)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "results.csv")
    table = markdown(rows, args.split)
    (out / "results.md").write_text(table)
    images = []
    if not args.no_plots:
        plot_metric = args.plot_metric or args.metrics[0]
        for data in sorted({r["data"] for r in records}):
            path = out / f"{_safe(data)}_{_safe(plot_metric)}_vs_bits.png"
            if any(r["data"] == data and r["metric"] == plot_metric for r in rows):
                plot_metric_vs_bits(rows, data, plot_metric, path, paper)
                images.append(path)
            for bits in sorted({r["bits"] for r in records if r["data"] == data}):
                for kind in ("pr", "precision_at_k"):
                    path = out / f"{_safe(data)}_{bits}bits_{kind}.png"
                    if plot_curves(records, data, bits, kind, path):
                        images.append(path)
    print(table)
    print(f"{len(records)} runs -> {out / 'results.csv'}, {out / 'results.md'}, {len(images)} plots")
    return {"records": records, "rows": rows, "images": [str(i) for i in images]}


if __name__ == "__main__":
    main()
