#!/usr/bin/env python
"""A benchmark is data: "run this grid, print this table", through the one runner.

    python experiments/bench.py experiments/grids/classic_wiki.yaml [--seeds 0 1 2] [--output DIR] [--reuse]

A grid file (YAML) holds:

* ``description``: what the table measures (printed above it);
* ``runs``: ``run.py`` flags (``{flag: value or [values]}``, the ``--sweep`` layout; ``set: {key: value}`` for
  ``--set``); every list is an axis of the grid and each point is one ordinary ``run.py`` run
  (:func:`lightning_hash.experiment.main`: split recorded, checkpoint chosen on validation queries,
  ``results.json``), in ``<output>/<method>/<data>/<bits>bits/seed<seed>``;
* ``per_method``: ``{method: {set: {key: value}}}``, ``--set`` values for one method's runs only (added to
  ``runs.set``; e.g. a constructor argument the other methods do not take); keyed by a registered method it
  also applies to that method's variants, keyed by a variant's label to that variant only;
* ``per_data``: ``{data: {set: {...}, per_method: {method: {set: {...}}}}}``, the same for one dataset's runs
  (its modalities, split sizes, epochs; ``per_method`` inside it: one method's settings on that dataset), so
  one grid can hold several datasets;
* ``variants``: ``{label: {method: <registered method>, set: {key: value}}}``: a configuration of a method under
  its own label (an ablation, a setting of a parameter study); ``runs.method`` lists labels beside methods, and
  each variant runs as ``run.py --method <method> --name <label>`` with its ``set`` added, in
  ``<output>/<label>/...``, and is its own row of the table. ``{base: <label>, set: {...}}`` starts from another
  variant (its method and settings, then these);
* ``table``: ``metrics`` (metric names as in ``results.json``), optionally ``tasks`` and ``split`` (``test``, the
  default, or ``val``: the validation figures of each run's chosen checkpoint, what a tuning grid compares; the
  test figures of such a grid are not to be read for the choice);
* ``paper``: ``true`` to put the papers' figures (``lightning_hash/paper_figures.yaml``) in brackets beside ours;
  a data name (e.g. ``cifar10_vgg16``) to take the figures filed under that name (a paper's features that a
  bundle stands in for) beside the runs on whatever data the grid ran.

The table is :func:`compare.markdown` over the runs' ``results.json`` (mean ± std over seeds). ``--reuse`` reads
the finished runs already in ``--output`` instead of refusing them (a run folder is never overwritten).
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

GRID_KEYS = {"description", "runs", "per_method", "per_data", "variants", "table", "paper"}


def read_grid(path: str) -> Dict[str, Any]:
    """The grid file, checked: known top-level keys, a ``runs`` mapping with ``method``, ``table.metrics``."""
    from lightning_hash.experiment import load_yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"grid file not found: {p}")
    grid = load_yaml(p.read_text()) or {}
    if not isinstance(grid, dict):
        raise ValueError(f"{p}: a grid file is a mapping with keys {sorted(GRID_KEYS)}")
    unknown = set(grid) - GRID_KEYS
    if unknown:
        raise ValueError(f"{p}: unknown keys {sorted(unknown)}; a grid file has {sorted(GRID_KEYS)}")
    runs, table = grid.get("runs"), grid.get("table")
    if not isinstance(runs, dict) or "method" not in runs:
        raise ValueError(f"{p}: 'runs' must be a mapping of run.py flags with at least 'method'")
    if not isinstance(table, dict) or not table.get("metrics"):
        raise ValueError(f"{p}: 'table' must name the 'metrics' to print")
    if set(table) - {"metrics", "tasks", "split"} or table.get("split", "test") not in ("test", "val"):
        raise ValueError(f"{p}: 'table' holds 'metrics', optionally 'tasks' and 'split' (test, or val: the "
                         f"validation figures of each run's chosen checkpoint, for tuning), got {table}")
    methods = runs["method"] if isinstance(runs["method"], list) else [runs["method"]]
    check_variants(p, grid.get("variants"), methods)
    datas = runs.get("data") if isinstance(runs.get("data"), list) else [runs.get("data")]
    check_per_method(p, "per_method", grid.get("per_method"), methods, grid.get("variants") or {})
    for name, extra in (grid.get("per_data") or {}).items():
        if name not in datas or not isinstance(extra, dict) or set(extra) - {"set", "per_method"}:
            raise ValueError(f"{p}: per_data.{name} must be one of runs.data {datas} holding 'set' and/or "
                             "'per_method'")
        check_per_method(p, f"per_data.{name}.per_method", extra.get("per_method"), methods,
                         grid.get("variants") or {})
    for reserved in ("output", "resume", "sweep", "overwrite"):
        if reserved in runs:
            raise ValueError(f"{p}: runs.{reserved} is set by bench.py (use --output / --reuse)")
    return grid


def check_per_method(path: Path, where: str, per_method: Any, labels: Sequence[str],
                     variants: Dict[str, Any]) -> None:
    """``{method: {set: {...}}}`` keyed by a label of ``runs.method`` or the registered method of a variant."""
    allowed = list(labels) + sorted({resolve_variant(variants, v, path)["method"] for v in variants})
    for name, extra in (per_method or {}).items():
        if name not in allowed or not isinstance(extra, dict) or set(extra) - {"set"}:
            raise ValueError(f"{path}: {where}.{name} must be one of runs.method {list(labels)} (or a variant's "
                             "method) holding only 'set'")


def check_variants(path: Path, variants: Any, labels: Sequence[str]) -> None:
    """Each variant: a folder-name label that is not itself a method, ``method`` a registered method, only
    ``method`` and ``set``; every variant is used in ``runs.method`` (an unused one is a typo)."""
    from lightning_hash import methods
    from lightning_hash.experiment import RUN_NAME

    if variants is None:
        return
    if not isinstance(variants, dict):
        raise ValueError(f"{path}: 'variants' must map labels to {{method: ..., set: {{...}}}}")
    registered = set(methods.available())
    for label, spec in variants.items():
        where = f"{path}: variants.{label}"
        if not RUN_NAME.fullmatch(str(label)) or label in registered:
            raise ValueError(f"{where}: a label is a folder name (letters, digits, _ . + -) that is not a method's "
                             "own name")
        if (not isinstance(spec, dict) or set(spec) - {"method", "base", "set"}
                or ("method" in spec) == ("base" in spec)
                or spec.get("method", next(iter(registered))) not in registered):
            raise ValueError(f"{where} must hold 'method' (one of {sorted(registered)}) or 'base' (another "
                             "variant), and optionally 'set'")
        if not isinstance(spec.get("set") or {}, dict):
            raise ValueError(f"{where}.set must map --set keys to values")
        if label not in labels:
            raise ValueError(f"{where} is not listed in runs.method {list(labels)}")
    for label in variants:
        resolve_variant(variants, label, path)


def resolve_variant(variants: Dict[str, Any], label: str, path: Any = "grid") -> Dict[str, Any]:
    """``{method, set}`` of a variant, following ``base`` (the base's settings first)."""
    chain: List[str] = []
    while "base" in variants[label]:
        chain.append(label)
        label = variants[label]["base"]
        if label not in variants or label in chain:
            raise ValueError(f"{path}: variants.{chain[-1]}.base '{label}' is "
                             f"{'not a variant' if label not in variants else 'a cycle: ' + ' -> '.join(chain)}")
    merged: Dict[str, Any] = dict(variants[label].get("set") or {})
    for name in reversed(chain):
        merged.update(variants[name].get("set") or {})
    return {"method": variants[label]["method"], "set": merged}


def grid_points(runs: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every combination of the list-valued flags (``set`` values are never axes)."""
    axes = [k for k, v in runs.items() if isinstance(v, list) and k != "set"]
    points = []
    for values in itertools.product(*(runs[k] for k in axes)):
        point = dict(runs)
        point.update(zip(axes, values))
        points.append(point)
    return points


def point_argv(point: Dict[str, Any]) -> List[str]:
    """``run.py`` flags of one grid point (the ``--sweep`` conventions: ``true`` is a bare flag)."""
    import json

    argv: List[str] = []
    for key, value in point.items():
        if key == "set":
            argv += [a for k, v in (value or {}).items() for a in ("--set", f"{k}={json.dumps(v)}")]
            continue
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        else:
            argv += [flag, str(value)]
    return argv


def point_settings(grid: Dict[str, Any], point: Dict[str, Any]) -> Dict[str, Any]:
    """A grid point as ``run.py`` flags: a variant becomes its method plus ``name``, and the ``--set`` values of
    ``per_data``, ``per_method`` and the variant are merged into ``set`` (later ones win: the dataset's, the
    method's, the label's, the dataset's for the method, for the label, then the variant's own)."""
    variants = grid.get("variants") or {}
    per_method, per_data = grid.get("per_method") or {}, grid.get("per_data") or {}
    label = point["method"]
    spec = resolve_variant(variants, label) if label in variants else {"method": label, "set": {}}
    data_entry = per_data.get(point.get("data")) or {}
    extra: Dict[str, Any] = dict(data_entry.get("set") or {})
    for table_ in (per_method, data_entry.get("per_method") or {}):
        for key in dict.fromkeys((spec["method"], label)):   # the method's settings, then the label's
            extra.update((table_.get(key) or {}).get("set") or {})
    extra.update(spec["set"])
    if label in variants:
        point = {**point, "method": spec["method"], "name": label}
    if extra:
        point = {**point, "set": {**(point.get("set") or {}), **extra}}
    return point


def grid_runs(grid: Dict[str, Any], output: Path, seeds: Optional[Sequence[int]] = None
              ) -> List[Tuple[List[str], Path]]:
    """``(run.py argv, run folder)`` of every point, in grid order. Each point's configuration is resolved as
    ``run.py`` resolves it (:func:`lightning_hash.experiment.resolve_config`: unknown keys and wrong types are
    errors), so a bad grid stops here, before any run starts."""
    from lightning_hash.experiment import build_parser, default_output, resolve_config

    runs = dict(grid["runs"])
    if seeds is not None:
        runs["seed"] = list(seeds)
    out = []
    for point in grid_points(runs):
        argv = point_argv(point_settings(grid, point))
        args = build_parser().parse_args(argv)
        args.method, args.bits, args.seed = args.method[0], (args.bits or [None])[0], args.seed[0]
        out.append((argv, default_output(resolve_config(args), str(output))))
    return out


def run_grid(grid: Dict[str, Any], output: Path, seeds: Optional[Sequence[int]] = None, reuse: bool = False,
             callbacks: Sequence = (), table_only: bool = False) -> List[Path]:
    """Run every point (or reuse its finished run); the run folders, in grid order. ``table_only``: run
    nothing, return the finished runs and say which points are missing."""
    from lightning_hash.experiment import main

    folders = []
    for argv, folder in grid_runs(grid, output, seeds):
        if table_only:
            if not (folder / "results.json").is_file():
                print(f"[bench] not run yet: {folder}", flush=True)
                continue
        elif reuse and (folder / "results.json").is_file():
            print(f"[bench] reusing {folder}", flush=True)
        else:
            main(argv + ["--output", str(folder)], callbacks=callbacks)
        folders.append(folder)
    return folders


def table(grid: Dict[str, Any], folders: Sequence[Path]) -> str:
    import compare

    from lightning_hash.experiment import PAPER_FIGURES

    records = compare.collect([str(f / "results.json") for f in folders])
    paper = compare.read_paper(str(PAPER_FIGURES)) if grid.get("paper") else None
    if isinstance(grid.get("paper"), str):   # the figures filed under that data name, beside every run's data
        datas = {r["data"] for r in records}
        paper = {(m, d, me, t, b): v for (m, pd, me, t, b), v in paper.items() if pd == grid["paper"] for d in datas}
    split = grid["table"].get("split", "test")
    rows = compare.summarize(records, metrics=list(grid["table"]["metrics"]), split=split,
                             paper=paper if split == "test" else None)
    tasks = grid["table"].get("tasks")
    if tasks:
        rows = [r for r in rows if r["task"] in tasks]
    return compare.markdown(rows, split)


def main(argv: Optional[Sequence[str]] = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("grid", help="grid file (YAML), e.g. experiments/grids/classic_wiki.yaml")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="override the grid's seeds")
    p.add_argument("--output", default=None, help="root of the run folders (default runs/bench/<grid name>)")
    p.add_argument("--reuse", action="store_true", help="read finished runs already in --output")
    p.add_argument("--table-only", action="store_true", help="run nothing: the table of the finished runs in "
                                                             "--output, naming the points not run yet")
    p.add_argument("--data", default=None, help="the data of every run (a grid whose data is a file you make, "
                                                "e.g. extracted features, says 'data: REQUIRED')")
    args = p.parse_args(argv)
    grid = read_grid(args.grid)
    if args.data is not None:
        grid["runs"]["data"] = args.data
    if grid["runs"].get("data") == "REQUIRED":
        raise SystemExit(f"{args.grid}: this grid runs on a file you make (see its header); pass it with --data FILE")
    output = Path(args.output or Path("runs") / "bench" / Path(args.grid).stem)
    folders = run_grid(grid, output, args.seeds, args.reuse, table_only=args.table_only)
    text = (grid.get("description") or "").strip() + "\n\n" + table(grid, folders)
    print(text)
    return text


if __name__ == "__main__":
    main()
