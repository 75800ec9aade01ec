#!/usr/bin/env python
"""AgNet zero-shot benchmark (recorded in docs/agnet.md): AgNet, the no-attribute baseline and random codes.

    OMP_NUM_THREADS=1 python experiments/bench_agnet.py                          # cub10 + cifar10, 16/32/64
    OMP_NUM_THREADS=1 python experiments/bench_agnet.py --datasets digits --bits 64

Datasets (every split seeded with ``--seed`` and written to ``<output>/<dataset>/split.json``):

* ``cub10``: 600 GoogLeNet/doc2vec pairs, 3 unseen classes drawn with the seed (``n_unseen=3``); IBIR: 60
  unseen image queries, database = the other 540 images (seen included); TBIR: the 3 unseen class texts (mean
  doc2vec) against the 180 unseen images. Class attributes: see ``datamodules/zero_shot_semantics.py``.
* ``cifar10``: GIST-512 (``experiments/extract_gist.py``'s cached bundle), 2 unseen classes drawn with the seed;
  10,000 random seen training images (the paper's IBIR protocol), 1,000 unseen queries, database = the other
  59,000 images; TBIR: the 2 unseen class-name word2vec vectors against the 12,000 unseen images.
* ``digits``: the embedded default, unseen three/six/nine (as ``run.py --method agnet``).

Each cell trains a fixed number of epochs and tests the last model (no checkpoint selection, validation off:
the validation queries of a zero-shot split are seen classes, and the benchmark must stay short).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: per dataset: epochs (stage 1 + stage 2 for AgNet; noattr trains ``noattr_epochs``) and method settings
SETTINGS: Dict[str, Dict[str, Any]] = {
    "digits": dict(stage1=20, epochs=40, noattr_epochs=20, text_key="word_vectors"),
    "cub10": dict(stage1=30, epochs=60, noattr_epochs=30, text_key="class_text"),
    "cifar10": dict(stage1=10, epochs=20, noattr_epochs=10, text_key="word_vectors"),
}
METHODS = ("random", "agnet_noattr", "agnet")


def build_dm(name: str, seed: int, out: Path, n_val_classes: int = 0):
    import datamodules
    from datamodules.datamodules import ArraysDataModule, default_root
    from datamodules.readers import read_bundle, read_cub10
    from datamodules.zero_shot_semantics import cifar10_class_semantics, cub10_class_semantics

    tag = f"_val{n_val_classes}" if n_val_classes else ""
    split_file = out / name / f"split_seed{seed}{tag}.json"
    common = dict(batch_size=32, eval_batch_size=1000, seed=seed, split_file=str(split_file),
                  modalities=["image"], class_query_database="class_items", standardize=True)
    if name == "digits":
        extra = dict(n_val_classes=n_val_classes) if n_val_classes else {}
        dm = datamodules.create("digits", zero_shot=True, database="all", class_queries="word_vectors", **extra,
                                **common)
    elif name == "cub10":
        arrays = cub10_class_semantics(read_cub10(default_root("cub10")))
        dm = ArraysDataModule(arrays, name="cub10", protocol="zero_shot", class_queries="class_text",
                              protocol_args=dict(n_unseen=3, n_query=60, database="all",
                                                  n_val_classes=n_val_classes), **common)
    elif name == "cifar10":
        from extract_gist import cached_bundle
        arrays = cifar10_class_semantics(read_bundle(cached_bundle()), default_root("semantics", "sketch_word2vec"))
        dm = ArraysDataModule(arrays, name="cifar10", protocol="zero_shot", class_queries="word_vectors",
                              protocol_args=dict(n_unseen=2, n_query=1000, n_train=10000, database="all",
                                                  n_val_classes=n_val_classes), **common)
    else:
        raise ValueError(f"unknown dataset {name!r}")
    dm.setup("fit")
    return dm


#: the model-selection grid (``--select-on-val``): epochs are multiples of SETTINGS; every cell is scored on the
#: validation classes (seen classes held out of training), never on the unseen test classes
GRID: Dict[str, List[Dict[str, float]]] = {
    "agnet": [dict(stage1_scale=s, weight_decay=wd, attributes=a) for a in ("binary", "soft") for s in (0.2, 1.0)
              for wd in (0.0, 1e-3)],
    "agnet_noattr": [dict(epochs_scale=s, weight_decay=wd) for s in (0.34, 1.0) for wd in (0.0, 1e-3)],
}


def cell_settings(dataset: str, method: str, choice: Dict[str, float]) -> Dict[str, Any]:
    """Epochs and optimiser settings of one cell from the dataset's SETTINGS and a grid choice."""
    cfg = SETTINGS[dataset]
    wd = float(choice.get("weight_decay", 0.0))
    if method == "agnet":
        stage1 = max(1, round(cfg["stage1"] * choice.get("stage1_scale", 1.0)))
        # "binary": the dataset's binary attributes; "soft": the class text vectors min-max scaled per dimension
        # to [0, 1] as soft BCE targets (attribute_targets="auto")
        key = cfg["text_key"] if choice.get("attributes", "binary") == "soft" else "attributes"
        return dict(stage1=stage1, epochs=stage1 + cfg["epochs"] - cfg["stage1"], weight_decay=wd, attribute_key=key)
    return dict(stage1=0, epochs=max(1, round(cfg["noattr_epochs"] * choice.get("epochs_scale", 1.0))),
                weight_decay=wd)


def run_cell(dm, dataset: str, method: str, bits: int, seed: int, choice: Optional[Dict[str, float]] = None,
             validate: bool = False) -> Dict[str, float]:
    import pytorch_lightning as pl
    from lightning_hash import methods
    from lightning_hash.benchmarking import fit_and_evaluate

    cfg = SETTINGS[dataset]
    pl.seed_everything(seed, verbose=False)
    if method == "random":
        model = methods.create("random", bits=bits, seed=seed)
        epochs = 0
    else:
        cell = cell_settings(dataset, method, choice or {})
        model = methods.create(method, bits=bits, image_dim=dm.input_dims["image"], num_classes=dm.num_classes,
                               text_key=cfg["text_key"], optimizer="adam", lr=1e-3, stage1_epochs=cell["stage1"],
                               weight_decay=cell["weight_decay"],
                               attribute_key=cell.get("attribute_key", "attributes"))
        epochs = cell["epochs"]
    return fit_and_evaluate(model, dm, epochs, stage="val" if validate else "test")


def select_on_val(dataset: str, method: str, bits: int, seed: int, n_val_classes: int, out: Path,
                  log: List[Dict[str, Any]], unseen: List[str]) -> Dict[str, float]:
    """The grid choice with the best ``val/mAP@all/mean`` (IBIR and TBIR on the validation classes)."""
    dm = build_dm(dataset, seed, out, n_val_classes=n_val_classes)
    if list(dm.unseen_classes) != list(unseen):
        raise RuntimeError(f"{dataset}: the validation split's unseen classes {dm.unseen_classes} differ from the "
                           f"test split's {unseen}")
    best, best_score = None, -np.inf
    for choice in GRID[method]:
        r = run_cell(dm, dataset, method, bits, seed, choice, validate=True)
        score = r["val/mAP@all/mean"]
        row = dict(dataset=dataset, method=method, bits=bits, seed=seed, choice=choice,
                   val_classes=[dm.class_names[c] for c in dm.split.extra["val_classes"]],
                   val_mAP_mean=score, seconds=r["seconds"])
        log.append(row)
        print("select", json.dumps(row), flush=True)
        if score > best_score:
            best, best_score = choice, score
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["cub10", "cifar10"], choices=sorted(SETTINGS))
    p.add_argument("--bits", nargs="+", type=int, default=[16, 32, 64])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", default="runs/bench_agnet")
    p.add_argument("--select-on-val", type=int, default=0, metavar="N_VAL_CLASSES",
                   help="hold out N seen classes as validation classes and pick each method's epochs and weight "
                        "decay from GRID on them (at --select-bits), then retrain on all seen classes and test")
    p.add_argument("--select-bits", type=int, default=32)
    args = p.parse_args(argv)
    from lightning_hash.benchmarking import prepare_benchmark
    out = prepare_benchmark(args.output)
    results: List[Dict[str, Any]] = []
    selection_log: List[Dict[str, Any]] = []
    for ds in args.datasets:
        dm = build_dm(ds, args.seed, out)
        tbir = [t.name for t in dm.tasks if t.query_set == "classes"][0]
        print(f"## {ds}: unseen {dm.unseen_classes}, sizes {dm.split.sizes()}", flush=True)
        chosen: Dict[str, Any] = {}
        if args.select_on_val:
            for method in args.methods:
                if method in GRID:
                    chosen[method] = select_on_val(ds, method, args.select_bits, args.seed, args.select_on_val, out,
                                                   selection_log, dm.unseen_classes)
                    (out / "selection.json").write_text(json.dumps(selection_log, indent=1))
        for bits in args.bits:
            for method in args.methods:
                r = run_cell(dm, ds, method, bits, args.seed, chosen.get(method))
                row = dict(dataset=ds, method=method, bits=bits, seed=args.seed, unseen=dm.unseen_classes,
                           choice=chosen.get(method),
                           tbir_mAP=r.get(f"test/mAP@all/{tbir}"), ibir_mAP=r.get("test/mAP@all/image->image"),
                           ibir_P_r2=r.get("test/P@r2/image->image"), ped_image=r.get("test/PED/image"),
                           ped_text=r.get(f"test/PED/{SETTINGS[ds]['text_key']}"), seconds=r["seconds"])
                results.append(row)
                print(json.dumps(row), flush=True)
                (out / "bench_agnet.json").write_text(json.dumps(results, indent=1))
    print("\n| dataset | bits | method | TBIR mAP | IBIR mAP | IBIR P@r2 | PED image (unseen) | PED text (unseen) |")
    print("|---|---|---|---|---|---|---|---|")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    for r in results:
        print(f"| {r['dataset']} | {r['bits']} | {r['method']} | {fmt(r['tbir_mAP'])} | {fmt(r['ibir_mAP'])} | "
              f"{fmt(r['ibir_P_r2'])} | {fmt(r['ped_image'])} | {fmt(r['ped_text'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
