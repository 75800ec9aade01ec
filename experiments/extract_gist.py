#!/usr/bin/env python
"""GIST-512 for all 60,000 CIFAR-10 images, cached as a data bundle that ``run.py --data`` reads.

    python experiments/extract_gist.py                      # ../shared/data/cifar10, 2 threads
    python experiments/extract_gist.py --root PATH --threads 2 --batch-size 128 [--force] [--out FILE.npz]

The descriptor is :func:`lightning_hash.features.gist` with its reference parameters (32x32 grey image, 4 scales
x 8 orientations, 4x4 blocks; see that module). The images are read with ``datamodules.readers.read_cifar10``
(JPEG tree, ``cifar10-jpeg.tar.gz`` or the python pickles). The result is written in the documented bundle
layout (``datamodules/readers/bundle.py``) to the user cache::

    $LIGHTNING_HASH_CACHE (default ~/.cache/lightning_hash)/gist/cifar10-gist512-<key>.npz
        image        float32 [60000, 512]   the GIST descriptors (served as modality "image")
        labels       int64   [60000]
        class_names  [10] strings
        split_train  the 50,000 published training images; split_test: the 10,000 test images

``<key>`` hashes the decoded image pixels, the labels and the GIST parameters, so a changed dataset or parameter
gives a new file and an existing file is reused (``--force`` recomputes). Evaluate on it with the standard
CIFAR-10 hashing protocol (1,000 test queries, 100 per class; the other 59,000 images are training set and
database)::

    python experiments/run.py --method itq --data <printed path> --set data.protocol=cifar10 --bits 32

The last line printed is the bundle path (for scripts: ``path=$(python experiments/extract_gist.py | tail -1)``).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

GIST_VERSION = "v2"  # v2: exact 2*pi wrap of the Gabor angles (v1 rounded it to float32)


def _content_key(images, labels, params) -> str:
    import numpy as np
    h = hashlib.blake2b(digest_size=10)
    h.update(f"{images.shape}|{images.dtype.str}|{GIST_VERSION}|{sorted(params.items())!r}\n".encode())
    flat = np.ascontiguousarray(images).reshape(-1).view(np.uint8)
    step = 1 << 24
    for i in range(0, flat.size, step):
        h.update(flat[i:i + step].data)
    h.update(np.ascontiguousarray(labels).astype(np.int64).tobytes())
    return h.hexdigest()


def cache_path(root=None) -> Path:
    """Where the bundle for the CIFAR-10 files under ``root`` lives (computing nothing)."""
    return extract(root=root, dry_run=True)


def cached_bundle(root=None) -> Path:
    """The existing GIST bundle of the CIFAR-10 files under ``root``; ``FileNotFoundError`` saying how to make it."""
    path = cache_path(root)
    if not path.is_file():
        raise FileNotFoundError(f"no CIFAR-10 GIST-512 bundle at {path}; run `python experiments/extract_gist.py` "
                                "first (about a minute on 2 cores)")
    return path


def extract(root=None, threads: int = 2, batch_size: int = 128, force: bool = False, out=None,
            dry_run: bool = False, verbose: bool = True) -> Path:
    """Compute (or reuse) the CIFAR-10 GIST bundle; returns its path."""
    import numpy as np
    import torch

    from datamodules import data_dir
    from datamodules.readers import default_cache_dir, read_cifar10, write_bundle
    from datamodules.arrays import DatasetArrays
    from lightning_hash.features import GIST_DEFAULTS, gist

    root = Path(root).expanduser() if root is not None else (data_dir() / "cifar10").resolve()
    t0 = time.time()
    arrays = read_cifar10(root)
    images = arrays.modalities["image"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{root}: expected uint8 [n, 32, 32, 3] CIFAR-10 images, got {images.dtype} {images.shape}")
    params = dict(GIST_DEFAULTS)
    key = _content_key(images, arrays.labels, params)
    path = default_cache_dir() / "gist" / f"cifar10-gist{4 * 8 * 16}-{key}.npz"
    if dry_run:
        return path
    t_read = time.time() - t0
    if path.is_file() and not force:
        if verbose:
            print(f"cached: {path} (images read in {t_read:.1f} s; --force recomputes)")
    else:
        torch.set_num_threads(int(threads))
        if verbose:
            print(f"computing GIST-512 for {len(images)} images from {root} on {torch.get_num_threads()} thread(s), "
                  f"batch {batch_size} ...", flush=True)
        t1 = time.time()
        feats = gist(images, batch_size=batch_size, **params).numpy()
        t_gist = time.time() - t1
        if not np.all(np.isfinite(feats)):
            raise ValueError("GIST produced non-finite values; this is a bug, please report it")
        bundle = DatasetArrays(modalities={"image": feats.astype(np.float32)}, labels=arrays.labels,
                               class_names=list(arrays.class_names), fixed_splits=dict(arrays.fixed_splits),
                               source=str(root))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + f".tmp{os.getpid()}.npz")
        write_bundle(tmp, bundle)
        os.replace(tmp, path)
        if verbose:
            print(f"GIST: {len(images)} images in {t_gist:.1f} s ({len(images) / t_gist:.0f} images/s) on "
                  f"{torch.get_num_threads()} thread(s); reading the images took {t_read:.1f} s")
            print(f"wrote {path}")
    if out is not None:
        out = Path(out).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.resolve() != path.resolve():
            import shutil
            shutil.copyfile(path, out)
            path = out
    return path


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root", default=None, help="CIFAR-10 folder or archive (default: ../shared/data/cifar10)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=128, help="images per FFT batch")
    p.add_argument("--force", action="store_true", help="recompute even when the cache file exists")
    p.add_argument("--out", default=None, help="also copy the bundle to this .npz path")
    args = p.parse_args(argv)
    if args.threads < 1 or args.batch_size < 1:
        p.error("--threads and --batch-size must be positive")
    try:
        path = extract(root=args.root, threads=args.threads, batch_size=args.batch_size, force=args.force,
                       out=args.out)
    except (FileNotFoundError, ValueError) as e:
        print(f"extract_gist.py: error: {e}", file=sys.stderr)
        raise SystemExit(2)
    print(path)
    return path


if __name__ == "__main__":
    main()
