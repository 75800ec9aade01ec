#!/usr/bin/env python
"""VSB2-Net zero-shot benchmark (recorded in docs/vsb2net.md): VSB2-Net, its ablations, the slides' variants and
the baselines, on the zero-shot splits built for AgNet (``experiments/bench_agnet.py``).

    OMP_NUM_THREADS=1 python experiments/bench_vsb2net.py --datasets cub10 cifar10          # the main table
    OMP_NUM_THREADS=1 python experiments/bench_vsb2net.py --param-study --datasets cub10      # alpha x beta, 64 bits
    OMP_NUM_THREADS=1 python experiments/bench_vsb2net.py --tune --datasets digits cub10      # on seen val classes

Datasets (every split seeded with ``--seed`` and written to ``<output>/<dataset>/split_*.json``):

* ``cub10``: as AgNet's benchmark: 3 unseen classes (``n_unseen=3``), 60 unseen image queries, database = the
  other 540 images (``database="all"``); TBIR: the 3 unseen class texts (mean doc2vec = the "word vectors").
* ``cifar10``: GIST-512 (``experiments/extract_gist.py``'s cached bundle), 2 unseen classes (``n_unseen=2``),
  10,000 random seen training images, 1,000 unseen queries, database = the other 59,000 images; TBIR: the 2
  unseen class-name word2vec vectors against the 12,000 unseen images.
* ``digits``: the embedded default, unseen three/six/nine (as ``run.py --method vsb2net``).

Rows (``--methods``): ``random``; ``vsb2net_nosem`` (no-semantics supervised baseline, same networks);
``agnet_noattr`` (AgNet's no-attribute baseline); ``vsb2net``; its ablations ``vsb2net-rec`` (reconstruction
module off), ``vsb2net-cls`` (classification module off), ``vsb2net-bary`` (beta = 0: no barycentre margin);
``mini_vsb2net`` (both modules off); the slides' variants ``vsb2g`` (global reconstruction), ``vsb2g_sem``
(reconstruct the word vector) and ``mini_sitnet`` (SitNet's mapping mode).

Each cell trains a fixed number of epochs and evaluates the last model (no checkpoint selection). ``--tune``
holds ``--val-classes`` seen classes out of training and reports the validation figures only (unseen-class
queries are never read); ``--param-study`` trains VSB2-Net at 64 bits for alpha, beta in {1, 0.1, 0.01}.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: per dataset: epochs, batch size, the class-semantics entry holding the word vectors
SETTINGS: Dict[str, Dict[str, Any]] = {
    "digits": dict(epochs=20, batch_size=32, text_key="word_vectors"),
    "cub10": dict(epochs=30, batch_size=32, text_key="class_text"),
    "cifar10": dict(epochs=8, batch_size=64, text_key="word_vectors"),
}
#: row name -> (registered method, constructor overrides)
ROWS: Dict[str, Any] = {
    "random": ("random", {}),
    "agnet_noattr": ("agnet_noattr", {}),
    "vsb2net_nosem": ("vsb2net_nosem", {}),
    "vsb2net": ("vsb2net", {}),
    "vsb2net-rec": ("vsb2net", {"mu_rec": 0.0}),
    "vsb2net-cls": ("vsb2net", {"mu_cls": 0.0}),
    "vsb2net-bary": ("vsb2net", {"beta": 0.0}),
    "mini_vsb2net": ("mini_vsb2net", {}),
    "vsb2g": ("vsb2g", {}),
    "vsb2g_sem": ("vsb2g_sem", {}),
    "mini_sitnet": ("mini_sitnet", {}),
}
DEFAULT_ROWS = ("random", "vsb2net_nosem", "vsb2net", "vsb2net-rec", "vsb2net-cls", "mini_vsb2net", "vsb2g",
                "mini_sitnet")
PARAM_GRID = (1.0, 0.1, 0.01)
#: rows that read no word vector: evaluated on image->image (IBIR) only
NO_WORD_VECTORS = ("vsb2net_nosem",)


def build_dm(name: str, seed: int, out: Path, n_val_classes: int = 0, batch_size: int = 32, tbir: bool = True):
    """The AgNet benchmark's zero-shot DataModule for ``name`` (``n_val_classes`` > 0: hold seen classes out;
    ``tbir=False``: no class-query task, for the rows that read no word vector)."""
    import datamodules
    from datamodules.datamodules import ArraysDataModule, default_root
    from datamodules.readers import read_bundle, read_cub10
    from datamodules.zero_shot_semantics import cifar10_class_semantics, cub10_class_semantics

    tag = f"_val{n_val_classes}" if n_val_classes else ""
    split_file = out / name / f"split_seed{seed}{tag}.json"
    split_file.parent.mkdir(parents=True, exist_ok=True)
    common = dict(batch_size=batch_size, eval_batch_size=1000, seed=seed, split_file=str(split_file),
                  modalities=["image"], standardize=True)
    text = "class_text" if name == "cub10" else "word_vectors"
    if tbir:
        common.update(class_queries=text, class_query_database="class_items")
    val = dict(n_val_classes=n_val_classes) if n_val_classes else {}
    if name == "digits":
        dm = datamodules.create("digits", zero_shot=True, database="all", **val, **common)
    elif name == "cub10":
        arrays = cub10_class_semantics(read_cub10(default_root("cub10")))
        dm = ArraysDataModule(arrays, name="cub10", protocol="zero_shot",
                              protocol_args=dict(n_unseen=3, n_query=60, database="all", **val), **common)
    elif name == "cifar10":
        from extract_gist import cached_bundle
        arrays = cifar10_class_semantics(read_bundle(cached_bundle()), default_root("semantics", "sketch_word2vec"))
        dm = ArraysDataModule(arrays, name="cifar10", protocol="zero_shot",
                              protocol_args=dict(n_unseen=2, n_query=1000, n_train=10000, database="all", **val),
                              **common)
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(SETTINGS)}")
    dm.setup("fit")
    return dm


def run_cell(dm, dataset: str, row: str, bits: int, seed: int, overrides: Optional[Dict[str, Any]] = None,
             stage: str = "test", epochs: Optional[int] = None) -> Dict[str, float]:
    """Train one cell and return the ``stage`` ("test" or "val") figures plus ``seconds``."""
    import pytorch_lightning as pl
    from lightning_hash import methods
    from lightning_hash.benchmarking import fit_and_evaluate

    cfg = SETTINGS[dataset]
    method, kw = ROWS[row]
    kw = {**kw, **(overrides or {})}
    pl.seed_everything(seed, verbose=False)
    epochs = cfg["epochs"] if epochs is None else epochs
    if method == "random":
        model, epochs = methods.create("random", bits=bits, seed=seed), 0
    elif method == "agnet_noattr":
        model = methods.create(method, bits=bits, image_dim=dm.input_dims["image"], num_classes=dm.num_classes,
                               text_key=cfg["text_key"], optimizer="adam", lr=1e-3, stage1_epochs=0)
    else:
        model = methods.create(method, bits=bits, image_dim=dm.input_dims["image"], num_classes=dm.num_classes,
                               text_key=cfg["text_key"], **kw)
    return fit_and_evaluate(model, dm, epochs, stage=stage)


def _summary(res: Dict[str, float], stage: str, dm) -> Dict[str, Optional[float]]:
    tbir = [t.name for t in dm.tasks if t.query_set == "classes"]
    return dict(tbir_mAP=res.get(f"{stage}/mAP@all/{tbir[0]}") if tbir else None,
                ibir_mAP=res.get(f"{stage}/mAP@all/image->image"), ibir_P_r2=res.get(f"{stage}/P@r2/image->image"),
                ibir_mAP50=res.get(f"{stage}/mAP@50/image->image"), seconds=res["seconds"])


fmt = lambda v: "-" if v is None else f"{v:.3f}"


def report(files: List[str]) -> str:
    """One markdown table from result files of this script: a row per method, per dataset and code length the
    IBIR mAP@all and (after a slash) the TBIR mAP@all."""
    rows: Dict[str, Dict[Any, str]] = {}
    cols: List[Any] = []
    for f in files:
        for r in json.loads(Path(f).read_text()):
            col = (r["dataset"], r["bits"])
            if col not in cols:
                cols.append(col)
            name = r["row"] + ("" if not r.get("overrides") else
                               " (" + ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) + ")")
            rows.setdefault(name, {})[col] = fmt(r["ibir_mAP"]) + (f" / {fmt(r['tbir_mAP'])}" if r["tbir_mAP"]
                                                                     is not None else "")
    head = "| method | " + " | ".join(f"{d} {b}" for d, b in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for name, cells in rows.items():
        lines.append(f"| {name} | " + " | ".join(cells.get(c, "") for c in cols) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["cub10", "cifar10"], choices=sorted(SETTINGS))
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 48, 64])
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_ROWS), choices=sorted(ROWS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None, help="override the per-dataset epochs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="constructor override for every VSB2-Net row (YAML value), e.g. --set margin=0.25")
    p.add_argument("--param-study", action="store_true",
                   help="VSB2-Net at the largest --bits for alpha, beta in {1, 0.1, 0.01} (the slides' study)")
    p.add_argument("--tune", nargs="*", default=None, metavar="KEY=V1,V2",
                   help="grid over constructor values on the seen validation classes, e.g. margin=0.25,0.5")
    p.add_argument("--val-classes", type=int, default=2, help="seen classes held out for --tune")
    p.add_argument("--output", default="runs/bench_vsb2net")
    p.add_argument("--report", nargs="+", default=None, metavar="JSON",
                   help="print one table (IBIR / TBIR mAP@all) from result files of this script and exit")
    args = p.parse_args(argv)
    if args.report:
        print(report(args.report))
        return 0
    from lightning_hash.benchmarking import prepare_benchmark
    from lightning_hash.experiment import load_yaml
    out = prepare_benchmark(args.output)
    base = {}
    for item in args.set:
        key, _, value = item.partition("=")
        base[key] = load_yaml(value)
    results: List[Dict[str, Any]] = []
    mode = "tune" if args.tune is not None else "param_study" if args.param_study else "table"
    log_file = out / f"bench_vsb2net_{mode}_{'-'.join(args.datasets)}_seed{args.seed}.json"
    for ds in args.datasets:
        bs = SETTINGS[ds]["batch_size"]
        if mode == "tune":
            dm = build_dm(ds, args.seed, out, n_val_classes=args.val_classes, batch_size=bs)
            stage = "val"
            grid_keys = [t.partition("=")[0] for t in args.tune]
            grid_vals = [[load_yaml(v) for v in t.partition("=")[2].split(",")] for t in args.tune]
            cells = [(row, bits, {**base, **dict(zip(grid_keys, combo))})
                     for bits in args.bits for combo in itertools.product(*grid_vals) for row in args.methods]
        elif mode == "param_study":
            dm = build_dm(ds, args.seed, out, batch_size=bs)
            stage = "test"
            cells = [("vsb2net", max(args.bits), {**base, "alpha": a, "beta": b})
                     for a in PARAM_GRID for b in PARAM_GRID]
        else:
            dm = build_dm(ds, args.seed, out, batch_size=bs)
            stage = "test"
            cells = [(row, bits, dict(base)) for bits in args.bits for row in args.methods]
        print(f"## {ds}: unseen {dm.unseen_classes}, val classes "
              f"{dm.split.extra.get('val_classes', []).tolist() if 'val_classes' in dm.split.extra else []}, "
              f"sizes {dm.split.sizes()}", flush=True)
        dm_ibir = None
        for row, bits, kw in cells:
            kw = kw if ROWS[row][0] not in ("random", "agnet_noattr") else {}
            if ROWS[row][0] in NO_WORD_VECTORS:        # same split file, IBIR task only
                if dm_ibir is None:
                    dm_ibir = build_dm(ds, args.seed, out, n_val_classes=args.val_classes if mode == "tune" else 0,
                                       batch_size=bs, tbir=False)
                    assert (dm_ibir.split.query == dm.split.query).all() and (dm_ibir.split.train == dm.split.train).all()
                r = run_cell(dm_ibir, ds, row, bits, args.seed, kw, stage=stage, epochs=args.epochs)
            else:
                r = run_cell(dm, ds, row, bits, args.seed, kw, stage=stage, epochs=args.epochs)
            rec = dict(dataset=ds, row=row, bits=bits, seed=args.seed, stage=stage, overrides=kw,
                       unseen=dm.unseen_classes, **_summary(r, stage, dm))
            results.append(rec)
            print(json.dumps(rec), flush=True)
            log_file.write_text(json.dumps(results, indent=1))
    print(f"\n| dataset | bits | method | overrides | {mode == 'tune' and 'val' or 'test'} TBIR mAP | IBIR mAP | "
          "IBIR mAP@50 | IBIR P@r2 | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        ov = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "-"
        print(f"| {r['dataset']} | {r['bits']} | {r['row']} | {ov} | {fmt(r['tbir_mAP'])} | {fmt(r['ibir_mAP'])} | "
              f"{fmt(r['ibir_mAP50'])} | {fmt(r['ibir_P_r2'])} | {r['seconds']} |")
    if mode == "param_study":
        for ds in args.datasets:
            for key, what in (("ibir_mAP", "IBIR mAP@all"), ("tbir_mAP", "TBIR mAP@all")):
                print(f"\n{ds}, {max(args.bits)} bits, {what} (rows alpha, columns beta)")
                print(param_grid([r for r in results if r["dataset"] == ds], key))
    return 0


def param_grid(results: List[Dict[str, Any]], key: str) -> str:
    """The slides' parameter-study layout: rows alpha, columns beta, in {1, 0.1, 0.01}."""
    cell = {(r["overrides"]["alpha"], r["overrides"]["beta"]): r[key] for r in results}
    lines = ["| alpha \\ beta | " + " | ".join(f"{b:g}" for b in PARAM_GRID) + " |", "|---" * 4 + "|"]
    for a in PARAM_GRID:
        lines.append(f"| {a:g} | " + " | ".join(fmt(cell.get((a, b))) for b in PARAM_GRID) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
