"""Zero-shot learning benchmark files of Xian et al. ("xlsa17", the "proposed splits"): AWA1, AWA2, CUB, SUN, APY.

Files of one dataset (``xlsa17/data/<DS>/``)::

    res101.mat       features  2048 x N  ResNet-101 image features (one column per image)
                     labels    N x 1     class numbers 1..C
    att_splits.mat   allclasses_names  C x 1 cell of class names (label k names row k of the cell)
                     att               d x C class attributes (columns L2-normalised)
                     original_att      d x C the attributes before normalisation
                     trainval_loc, train_loc, val_loc, test_seen_loc, test_unseen_loc
                                       1-based row numbers into res101.mat (some releases omit train_loc /
                                       val_loc; those present are returned)

``trainval``, ``test_seen`` and ``test_unseen`` partition all N images. ``train`` and ``val`` (the
hyper-parameter split) together cover ``trainval`` *and* ``test_seen`` (checked on the AWA1, AWA2 and SUN
files), so they overlap ``test_seen``: do not use them beside it.

:func:`read_att_splits` reads the class side alone (``att_splits.mat``); :func:`read_xlsa17` reads both files.
Indices are converted to 0-based; labels to class indices 0..C-1; attribute matrices to ``[C, d]``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, class_indices, orient_rows
from .mat import cellstr, load_mat
from .semantics import ClassSemantics

__all__ = ["read_att_splits", "read_xlsa17", "XLSA17_LAYOUT", "XLSA17_SPLITS"]

XLSA17_SPLITS = ("trainval", "train", "val", "test_seen", "test_unseen")
XLSA17_LAYOUT = ("res101.mat (features 2048 x N, labels N x 1 with classes 1..C) and att_splits.mat "
                 "(allclasses_names C x 1 cell, att d x C, original_att d x C, trainval_loc / train_loc / val_loc / "
                 "test_seen_loc / test_unseen_loc 1-based row numbers)")


def read_att_splits(path: PathLike, *, num_items: Optional[int] = None) -> ClassSemantics:
    """Read an xlsa17 ``att_splits.mat``.

    Parameters
    ----------
    path:
        the ``att_splits.mat`` file.
    num_items:
        number of rows of the paired ``res101.mat``; when given, every index must lie in ``1..num_items``.

    Returns
    -------
    ClassSemantics
        ``class_names`` from ``allclasses_names``; ``vectors`` ``attributes`` (``att``) and
        ``original_attributes`` (``original_att``), each float32 ``[C, d]``; ``splits`` the ``*_loc`` arrays
        present, 0-based ``int64``, under the names ``trainval``, ``train``, ``val``, ``test_seen``,
        ``test_unseen``.

    Example
    -------
    >>> s = read_att_splits("../shared/data/semantics/xlsa17/AWA1/att_splits.mat")   # doctest: +SKIP
    >>> len(s.class_names), s.vectors["attributes"].shape, len(s.splits["test_unseen"])   # doctest: +SKIP
    (50, (50, 85), 5685)
    """
    data = load_mat(path, ["allclasses_names", "att", "trainval_loc", "test_seen_loc", "test_unseen_loc"],
                    optional=["original_att", "train_loc", "val_loc"], layout=XLSA17_LAYOUT)
    names = cellstr(data["allclasses_names"], str(path), "allclasses_names")
    c = len(names)
    vectors = {}
    for key, out in (("att", "attributes"), ("original_att", "original_attributes")):
        if key in data:
            vectors[out] = as_features(orient_rows(np.asarray(data[key]), c, str(path), key), str(path), key)
    splits: Dict[str, np.ndarray] = {}
    for name in XLSA17_SPLITS:
        key = f"{name}_loc"
        if key not in data:
            continue
        loc = np.asarray(data[key])
        if loc.ndim == 2 and 1 in loc.shape:
            loc = loc.reshape(-1)
        if loc.ndim != 1 or not np.issubdtype(loc.dtype, np.number):
            raise ValueError(f"{path}: '{key}' must be a column of row numbers, got {loc.dtype} {loc.shape}")
        if loc.size and loc.min() < 1:
            raise ValueError(f"{path}: '{key}' holds {loc.min()}; xlsa17 row numbers are 1-based (>= 1)")
        if num_items is not None and loc.size and loc.max() > num_items:
            raise ValueError(f"{path}: '{key}' refers to row {loc.max()} but the feature file has {num_items} rows")
        splits[name] = loc.astype(np.int64) - 1
    return ClassSemantics(class_names=names, vectors=vectors, splits=splits, source=str(path))


def read_xlsa17(root: PathLike, *, features_file: str = "res101.mat", splits_file: str = "att_splits.mat"
                ) -> DatasetArrays:
    """Read an xlsa17 dataset folder (``res101.mat`` + ``att_splits.mat``).

    Parameters
    ----------
    root:
        the dataset folder, e.g. ``xlsa17/data/AWA1``.
    features_file, splits_file:
        file names inside ``root`` (or absolute paths).

    Returns
    -------
    DatasetArrays
        modality ``image`` float32 ``[N, d]`` (the transposed ``features``); int64 labels ``[N]`` (``labels``
        - 1); class names ``allclasses_names``; ``class_semantics`` ``attributes`` and ``original_attributes``
        ``[C, d]``; ``fixed_splits`` ``trainval``, ``train``, ``val``, ``test_seen``, ``test_unseen`` (those
        present; 0-based). The unseen classes are the labels of the ``test_unseen`` rows.
    """
    root = Path(root).expanduser()
    fpath = root / features_file
    spath = root / splits_file
    data = load_mat(fpath, ["features", "labels"], layout=XLSA17_LAYOUT)
    lab = np.asarray(data["labels"])
    n = lab.size if (lab.ndim == 1 or (lab.ndim == 2 and 1 in lab.shape)) else -1
    sem = read_att_splits(spath, num_items=n if n >= 0 else None)
    labels = class_indices(lab, len(sem.class_names), str(fpath), "labels", base=1)
    feats = as_features(orient_rows(np.asarray(data["features"]), labels.shape[0], str(fpath), "features"),
                        str(fpath), "features")
    return DatasetArrays(modalities={"image": feats}, labels=labels, class_names=sem.class_names,
                         fixed_splits=dict(sem.splits), class_semantics=dict(sem.vectors),
                         source=f"{fpath}; {spath}")
