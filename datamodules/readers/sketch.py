"""Sketch-image feature files in the layout of the official ZSIH release.

Release: github.com/ymcidence/Zero-Shot-Sketch-Image-Hashing.

Layout (the release's README: "a lazy data format, i.e. .mat files"; images and sketches "saved separately into two
files")::

    <image file>.mat    feat   N_im x d_im   features of the images (AlexNet fc7, 4096-d, in the release)
                        label  N_im x 1      class numbers (or N_im x C one-hot)
                        wv     N_im x k      the word vector of each item's class (300-d word2vec)   [optional]
    <sketch file>.mat   feat   N_sk x d_sk
                        label  N_sk x 1      (or one-hot)
                        wv     N_sk x k                                                              [optional]

The official training pair of files is row-aligned (row ``i`` of both files has the same class, which its loader
asserts); test files need not be. MATLAB v5 and v7.3 files are both read (:func:`~datamodules.readers.mat.load_mat`).

:func:`read_sketch_features` returns a :class:`SketchImageArrays`: the two item pools (images, sketches) with
their own features and labels (they are different items in different numbers, so they are not one row-aligned
``DatasetArrays``), class names, and the class word vectors collected from ``wv`` (one vector per class;
inconsistent vectors within a class raise ``ValueError``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from ._common import PathLike, as_features, orient_rows, require_file
from .mat import load_mat, to_dense

__all__ = ["SketchImageArrays", "read_sketch_features", "read_zsih_mat", "class_vectors_from_items",
           "SKETCH_FEATURE_LAYOUT"]

SKETCH_FEATURE_LAYOUT = ("a .mat file (MATLAB v5 or v7.3) per modality with 'feat' (n x d features), 'label' "
                         "(n x 1 class numbers or n x C one-hot) and optionally 'wv' (n x k class word vectors)")


@dataclass
class SketchImageArrays:
    """Two item pools of a sketch-based image retrieval set.

    Attributes
    ----------
    image, sketch: ``float32 [N_im, d_im]`` / ``[N_sk, d_sk]`` features (or raw ``uint8`` images).
    image_labels, sketch_labels: ``int64`` class indices (``0 .. C-1``).
    class_names: the ``C`` classes in index order.
    class_semantics: name -> ``float32 [C, k]`` (``"word_vectors"`` from the files' ``wv``, when present).
    source: the files read.
    """

    image: np.ndarray
    sketch: np.ndarray
    image_labels: np.ndarray
    sketch_labels: np.ndarray
    class_names: List[str]
    class_semantics: Dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.image_labels = np.asarray(self.image_labels, dtype=np.int64)
        self.sketch_labels = np.asarray(self.sketch_labels, dtype=np.int64)
        c = len(self.class_names)
        for name, feats, labels in (("image", self.image, self.image_labels), ("sketch", self.sketch,
                                                                               self.sketch_labels)):
            if labels.ndim != 1 or feats.shape[0] != labels.shape[0]:
                raise ValueError(f"{self.source}: {name} features have {feats.shape[0]} rows but {labels.shape} labels")
            if labels.size and (labels.min() < 0 or labels.max() >= c):
                raise ValueError(f"{self.source}: {name} labels must lie in [0, {c}) for {c} class names, found "
                                 f"[{labels.min()}, {labels.max()}]")
            if np.issubdtype(feats.dtype, np.floating) and not np.isfinite(feats).all():
                raise ValueError(f"{self.source}: {name} features hold NaN/inf")
        for name, sem in self.class_semantics.items():
            if sem.ndim != 2 or sem.shape[0] != c:
                raise ValueError(f"{self.source}: class semantics '{name}' have shape {sem.shape}, expected [{c}, k]")


def _labels(raw: np.ndarray, n: int, source: str) -> np.ndarray:
    y = np.asarray(to_dense(raw))
    if y.ndim == 2 and y.shape[1] == n and y.shape[0] != n:
        y = y.T
    if y.ndim == 2 and y.shape[0] == n and y.shape[1] > 1:        # one-hot rows
        if not np.isin(y, (0, 1)).all() or not np.all(y.sum(axis=1) == 1):
            raise ValueError(f"{source}: 'label' has {y.shape[1]} columns but is not one-hot (one 1 per row)")
        return y.argmax(axis=1).astype(np.int64)
    y = y.reshape(-1)
    if y.shape[0] != n:
        raise ValueError(f"{source}: 'label' has {y.shape[0]} entries but 'feat' has {n} rows")
    if not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"{source}: 'label' must hold integer class numbers")
    return y.astype(np.int64)


def read_zsih_mat(path: PathLike) -> Dict[str, Optional[np.ndarray]]:
    """One file of the official layout: ``{"feat": float32 [n, d], "label": raw class numbers int64 [n] (one-hot
    rows decoded to their column), "wv": float32 [n, k] or None}``."""
    p = require_file(path, SKETCH_FEATURE_LAYOUT)
    data = load_mat(p, ["feat", "label"], optional=["wv"], layout=SKETCH_FEATURE_LAYOUT)
    y_raw = np.asarray(to_dense(data["label"]))
    n = int(max(y_raw.shape)) if y_raw.ndim == 2 and 1 in y_raw.shape else int(y_raw.shape[0])
    feat = np.asarray(to_dense(data["feat"]))
    if feat.ndim == 2 and feat.shape[0] != n and feat.shape[1] == n:
        n = feat.shape[1]
    elif feat.ndim == 2 and y_raw.ndim == 2 and y_raw.shape[1] > 1:
        n = feat.shape[0]
    feat = as_features(orient_rows(feat, n, str(p), "feat"), str(p), "feat")
    labels = _labels(data["label"], n, str(p))
    wv = data.get("wv")
    if wv is not None:
        wv = as_features(orient_rows(to_dense(wv), n, str(p), "wv"), str(p), "wv")
    return {"feat": feat, "label": labels, "wv": wv}


def class_vectors_from_items(labels: np.ndarray, vectors: np.ndarray, num_classes: int, source: str,
                             tolerance: float = 1e-4) -> np.ndarray:
    """One vector per class from per-item vectors (``wv``): ``float32 [C, k]``, a NaN row for a class without items.

    Raises ``ValueError`` when the items of one class carry different vectors (beyond ``tolerance``).
    """
    out = np.full((num_classes, vectors.shape[1]), np.nan, dtype=np.float32)
    for c in np.unique(labels):
        rows = vectors[labels == c]
        if np.abs(rows - rows[0]).max() > tolerance * max(1.0, float(np.abs(rows[0]).max())):
            raise ValueError(f"{source}: the items of class {c} carry different word vectors in 'wv'; a class word "
                             "vector must be the same for every item of the class")
        out[c] = rows[0]
    return out


def read_sketch_features(image_files: Union[PathLike, Sequence[PathLike]],
                         sketch_files: Union[PathLike, Sequence[PathLike]], *,
                         class_names: Optional[Sequence[str]] = None, label_base: Union[int, str] = "auto",
                         ) -> SketchImageArrays:
    """Read image and sketch feature files of the official ZSIH layout (several files per modality are stacked,
    e.g. the release's train and test files).

    Parameters
    ----------
    image_files, sketch_files: one path or a list of paths per modality.
    class_names: names of the classes in class-number order (default: the numbers as strings).
    label_base: number of the first class (0, 1, or ``"auto"``: 0 when a 0 occurs in either modality, else 1).

    Returns
    -------
    SketchImageArrays
        ``class_semantics["word_vectors"]`` from ``wv`` when every file has it (classes without items get NaN
        rows, so a missing vector cannot go unnoticed downstream).

    Example
    -------
    >>> arrays = read_sketch_features("feat_img_alex.mat", "feat_sk.mat")          # doctest: +SKIP
    >>> arrays.image.shape, arrays.class_semantics["word_vectors"].shape          # doctest: +SKIP
    ((60502, 4096), (125, 300))
    """
    def as_list(files) -> List[Path]:
        if isinstance(files, (str, bytes, os.PathLike)):
            return [Path(files)]
        return [Path(f) for f in files]

    parts = {m: [read_zsih_mat(f) for f in as_list(files)] for m, files in (("image", image_files),
                                                                            ("sketch", sketch_files))}
    for m, files in parts.items():
        if not files:
            raise ValueError(f"read_sketch_features: no {m} file given")
        widths = {f["feat"].shape[1] for f in files}
        if len(widths) != 1:
            raise ValueError(f"read_sketch_features: the {m} files have different feature widths {sorted(widths)}")
    raw = {m: np.concatenate([f["label"] for f in files]) for m, files in parts.items()}
    if label_base == "auto":
        label_base = 0 if any((r == 0).any() for r in raw.values()) else 1
    label_base = int(label_base)
    labels = {m: r - label_base for m, r in raw.items()}
    top = max(int(l.max()) for l in labels.values()) + 1
    if min(int(l.min()) for l in labels.values()) < 0:
        raise ValueError(f"read_sketch_features: class numbers below label_base={label_base}")
    if class_names is None:
        class_names = [str(i + label_base) for i in range(top)]
    elif len(class_names) < top:
        raise ValueError(f"read_sketch_features: {len(class_names)} class names given but the labels reach class "
                         f"{top - 1 + label_base}")
    source = "; ".join(str(f) for files in (image_files, sketch_files) for f in as_list(files))
    semantics: Dict[str, np.ndarray] = {}
    all_wv = [f["wv"] for files in parts.values() for f in files]
    if all(w is not None for w in all_wv):
        widths = {w.shape[1] for w in all_wv}
        if len(widths) != 1:
            raise ValueError(f"{source}: 'wv' widths differ between files: {sorted(widths)}")
        lab = np.concatenate([labels["image"], labels["sketch"]])
        wv = np.concatenate([np.concatenate([f["wv"] for f in parts["image"]]),
                             np.concatenate([f["wv"] for f in parts["sketch"]])])
        semantics["word_vectors"] = class_vectors_from_items(lab, wv, len(class_names), source)
    feats = {m: np.concatenate([f["feat"] for f in files]) for m, files in parts.items()}
    return SketchImageArrays(image=feats["image"], sketch=feats["sketch"], image_labels=labels["image"],
                             sketch_labels=labels["sketch"], class_names=list(class_names),
                             class_semantics=semantics, source=source)
