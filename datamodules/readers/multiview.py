"""Multi-view ``.mat`` files: a cell array ``X`` of views of the same items plus a label column ``Y``.

Read here:

* **CUB-10** (``cub_googlenet_doc2vec_c10.mat``, UIMD release): ``X`` 1x2 cell, ``X{1}`` 600 x 1024 GoogLeNet
  image features, ``X{2}`` 600 x 300 doc2vec text features; ``Y`` 600 x 1 classes 1..10 -> modalities
  ``image`` and ``text``;
* **UCI handwritten digits** (``handwritten.mat``): ``X`` 1x6 cell of views of 2,000 digits, ``Y`` 2000 x 1
  labels (the published file numbers them 1..10 in the UCI order, i.e. 1 = digit 0; copies numbered 0..9
  are read the same) -> modalities named after the view, recognised by its width: ``pixel`` (240), ``fourier`` (76),
  ``profile`` (216, profile correlations), ``zernike`` (47), ``karhunen_loeve`` (64), ``morphological`` (6);
* any other file of this shape through :func:`read_multiview` (views ``view0``, ``view1``, ... by default).

MATLAB v5 and v7.3 are both read. Views stored ``d x n`` are turned to ``n x d``. Every view becomes float32
(the handwritten pixel and profile views are stored as integers). No split is published (``fixed_splits`` empty).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, class_indices, orient_rows
from .mat import cell_to_list, load_mat, to_dense

__all__ = ["read_multiview", "read_cub10", "read_handwritten", "HANDWRITTEN_VIEWS"]

#: view width -> name, for the six UCI "multiple features" views
HANDWRITTEN_VIEWS = {240: "pixel", 76: "fourier", 216: "profile", 47: "zernike", 64: "karhunen_loeve",
                     6: "morphological"}


def _layout(x_key: str, y_key: str) -> str:
    return f"one .mat file (MATLAB v5 or v7.3) with {x_key!r}: a 1 x V cell of n x d_v views and {y_key!r}: n x 1 labels"


def read_multiview(path: PathLike, *, view_names: Optional[Sequence[str]] = None, x_key: str = "X",
                   y_key: str = "Y", label_base: Union[int, str] = "auto",
                   class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """Read a multi-view ``.mat`` file.

    Parameters
    ----------
    path:
        the ``.mat`` file.
    view_names:
        one modality name per view (default ``view0``, ``view1``, ...).
    x_key, y_key:
        names of the view cell and of the label column.
    label_base:
        number of the first class in ``Y``: 0, 1 or ``"auto"`` (0 when it occurs, else 1).
    class_names:
        class names in index order (default ``"0"``, ``"1"``, ... for 0-based files, ``"1"``, ``"2"``, ... for
        1-based ones, i.e. the numbers used in the file).

    Returns
    -------
    DatasetArrays
        one float32 ``[n, d_v]`` modality per view; int64 labels; no fixed splits.
    """
    data = load_mat(path, [x_key, y_key], layout=_layout(x_key, y_key))
    return _from_loaded(path, data, view_names, x_key, y_key, label_base, class_names)


def _from_loaded(path, data, view_names, x_key, y_key, label_base, class_names) -> DatasetArrays:
    views = cell_to_list(data[x_key], str(path), x_key)
    if view_names is None:
        view_names = [f"view{i}" for i in range(len(views))]
    if len(view_names) != len(views):
        raise ValueError(f"{path}: '{x_key}' holds {len(views)} views but {len(view_names)} view names were given")
    if len(set(view_names)) != len(view_names):
        raise ValueError(f"view names repeat: {list(view_names)}")
    y = np.asarray(data[y_key])
    if y.ndim == 2 and 1 not in y.shape:
        raise ValueError(f"{path}: '{y_key}' must be one column of class numbers, got shape {y.shape}")
    if label_base == "auto":
        label_base = 0 if (y == 0).any() else 1
    labels = class_indices(y, None, str(path), y_key, label_base)
    n = labels.shape[0]
    modalities = {}
    for name, v in zip(view_names, views):
        key = f"{x_key}{{{list(view_names).index(name) + 1}}}"
        modalities[name] = as_features(orient_rows(to_dense(v), n, str(path), key), str(path), key)
    num_classes = int(labels.max()) + 1 if n else 0
    if class_names is None:
        class_names = [str(i + label_base) for i in range(num_classes)]
    elif len(class_names) < num_classes:
        raise ValueError(f"{path}: {len(class_names)} class names given but '{y_key}' has {num_classes} classes")
    return DatasetArrays(modalities=modalities, labels=labels, class_names=list(class_names), source=str(path))


def read_cub10(path: PathLike, *, class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """CUB-10 image-text pairs (``cub_googlenet_doc2vec_c10.mat``; a folder holding it is accepted).

    Returns
    -------
    DatasetArrays
        ``image`` float32 ``[600, 1024]``, ``text`` float32 ``[600, 300]``; int64 labels 0..9 (``Y`` - 1);
        class names ``"1"``..``"10"`` (the file does not name the birds) unless ``class_names`` is given.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "cub_googlenet_doc2vec_c10.mat"
    return read_multiview(p, view_names=("image", "text"), label_base="auto", class_names=class_names)


def read_handwritten(path: PathLike) -> DatasetArrays:
    """UCI handwritten digits, six views (``handwritten.mat``; a folder holding it is accepted).

    Returns
    -------
    DatasetArrays
        six float32 modalities named by :data:`HANDWRITTEN_VIEWS` (``pixel`` 240, ``fourier`` 76, ``profile``
        216, ``zernike`` 47, ``karhunen_loeve`` 64, ``morphological`` 6; a view of unknown width is named
        ``view<i>``); int64 labels 0..9, class names ``"0"``..``"9"``.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "handwritten.mat"
    layout = _layout("X", "Y")
    data = load_mat(p, ["X", "Y"], layout=layout)
    views = cell_to_list(data["X"], str(p), "X")
    n = np.asarray(data["Y"]).size
    names = []
    for i, v in enumerate(views):
        shape = np.shape(v)
        width = shape[1] if len(shape) == 2 and shape[0] == n else (shape[0] if len(shape) == 2 else -1)
        name = HANDWRITTEN_VIEWS.get(width, f"view{i}")
        names.append(name if name not in names else f"view{i}")
    # the published file numbers the digits 1..10 (1 = digit 0, the UCI order), other copies 0..9: detect
    return _from_loaded(p, data, names, "X", "Y", "auto", [str(d) for d in range(10)])
