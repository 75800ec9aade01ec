"""The "unified split" ``.mat`` layout used by many cross-modal hashing codes (UCCH, DGCPN, DJSRH re-releases).

One MATLAB file (v5 or v7.3) holds the three published sets, each as an image, a text and a label array::

    I_tr, T_tr, L_tr    training set        (image features n x d or raw images, text n x V, labels)
    I_te, T_te, L_te    test set = queries
    I_db, T_db, L_db    retrieval database

Labels are either an ``n x C`` 0/1 matrix (multi-label, returned float32 multi-hot) or one column of class
numbers (returned as ``int64`` class indices; numbering from 0 or 1 is detected, see ``label_base``).

The rows are stacked as ``[train; query; database]`` and the published sets are returned as
``fixed_splits`` ``train``, ``query`` and ``database`` (row indices). When the training items are also in the
database the file stores them twice, and they appear twice here: nothing is merged or dropped. An empty set
is an error naming its keys; a truncated or corrupt file raises ``DamagedFileError`` (a ``ValueError``) from
:func:`~datamodules.readers.mat.load_mat`.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Union

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_modality, check_rows, labels_auto
from .mat import load_mat, to_dense

__all__ = ["read_unified", "UNIFIED_LAYOUT"]

UNIFIED_LAYOUT = ("one .mat file (MATLAB v5 or v7.3) with I_tr, T_tr, L_tr (training set), I_te, T_te, L_te (test "
                  "queries) and I_db, T_db, L_db (retrieval database); I_* image features (n x d) or images, "
                  "T_* text features (n x V), L_* labels (n x C 0/1 or one column of class numbers)")

_SETS = (("tr", "train"), ("te", "query"), ("db", "database"))


def _num_items(L: np.ndarray, T: np.ndarray) -> int:
    """Items in one block: the length of a label column, or the label-matrix axis that the text matrix shares."""
    L = np.asarray(L)
    if L.ndim == 1 or (L.ndim == 2 and 1 in L.shape):
        return int(L.size)
    if L.shape[0] not in T.shape and L.shape[1] in T.shape:
        return int(L.shape[1])
    return int(L.shape[0])


def read_unified(path: PathLike, *, image_layout: str = "auto", label_base: Union[int, str] = "auto",
                 class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """Read a unified-split ``.mat`` file.

    Parameters
    ----------
    path:
        the ``.mat`` file.
    image_layout:
        axis order of raw 4-d image arrays (``"auto"``, ``"HWCN"``, ``"NHWC"``, ``"NCHW"``, ...).
    label_base:
        for single-column labels, the number of the first class: 0, 1 or ``"auto"`` (0 if it occurs, else 1).
    class_names:
        names of the classes (the file carries none); default ``class_00``, ``class_01``, ...

    Returns
    -------
    DatasetArrays
        modalities ``image`` and ``text``; labels float32 multi-hot ``[n, C]`` or int64 ``[n]``;
        ``fixed_splits`` ``train``, ``query``, ``database`` (consecutive row blocks in that order).

    Example
    -------
    >>> arrays = read_unified("mir_cnn_twt.mat")                      # doctest: +SKIP
    >>> {k: len(v) for k, v in arrays.fixed_splits.items()}          # doctest: +SKIP
    {'train': 10000, 'query': 2000, 'database': 18015}
    """
    keys = [f"{m}_{s}" for s, _ in _SETS for m in ("I", "T", "L")]
    data = load_mat(path, keys, layout=UNIFIED_LAYOUT)
    images, texts, labels, splits = [], [], [], {}
    start = 0
    label_blocks = []
    for s, split in _SETS:
        L = to_dense(data[f"L_{s}"])
        T = to_dense(data[f"T_{s}"])
        n = _num_items(L, T)
        if n == 0:
            raise ValueError(f"{path}: the published {split} set is empty (L_{s} has shape {np.asarray(L).shape}); "
                             "a unified file holds non-empty I_tr/T_tr/L_tr, I_te/T_te/L_te and I_db/T_db/L_db")
        label_blocks.append((s, L, n))
    # label base is decided over all blocks together, so that the three sets number classes the same way
    single = [np.asarray(L).ndim == 1 or 1 in np.asarray(L).shape for _, L, _ in label_blocks]
    if any(single) and not all(single):
        raise ValueError(f"{path}: label arrays mix single-column and multi-label forms "
                         f"({', '.join(f'L_{s}: {np.asarray(L).shape}' for s, L, _ in label_blocks)})")
    if all(single) and label_base == "auto":
        label_base = 0 if any((np.asarray(L) == 0).any() for _, L, _ in label_blocks) else 1
    for (s, L, n), (_, split) in zip(label_blocks, _SETS):
        lab = labels_auto(L, n, str(path), f"L_{s}", label_base)
        img = as_modality(to_dense(data[f"I_{s}"]), n, str(path), f"I_{s}", image_layout)
        txt = as_modality(to_dense(data[f"T_{s}"]), n, str(path), f"T_{s}")
        check_rows(str(path), **{f"I_{s}": img.shape[0], f"T_{s}": txt.shape[0], f"L_{s}": lab.shape[0]})
        images.append(img)
        texts.append(txt)
        labels.append(lab)
        splits[split] = np.arange(start, start + n, dtype=np.int64)
        start += n
    for name, blocks in (("I", images), ("T", texts)):
        if len({b.shape[1:] for b in blocks}) > 1:
            raise ValueError(f"{path}: {name}_tr, {name}_te and {name}_db have different shapes per item "
                             f"({[b.shape for b in blocks]})")
    if labels[0].ndim == 2 and len({b.shape[1] for b in labels}) > 1:
        raise ValueError(f"{path}: L_tr, L_te and L_db have different numbers of classes {[b.shape for b in labels]}")
    label_arr = np.concatenate(labels)
    num_classes = label_arr.shape[1] if label_arr.ndim == 2 else int(label_arr.max()) + 1
    if class_names is None:
        class_names = [f"class_{i:02d}" for i in range(num_classes)]
    elif len(class_names) < num_classes or (label_arr.ndim == 2 and len(class_names) != num_classes):
        raise ValueError(f"{path}: class_names has {len(class_names)} names but the labels have {num_classes} classes")
    modalities: Dict[str, np.ndarray] = {"image": np.concatenate(images), "text": np.concatenate(texts)}
    return DatasetArrays(modalities=modalities, labels=label_arr, class_names=list(class_names),
                         fixed_splits=splits, source=str(path))
