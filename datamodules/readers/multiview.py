"""Multi-view ``.mat`` files: a cell array ``X`` of views of the same items plus a label column ``Y``.

This is the layout in which the multi-view clustering / cross-view retrieval community publishes its sets
(MNIST-USPS, MSRC-v5, 100Leaves, NGs, ORL, Caltech101-7 / -20, Handwritten, CUB-10, ...)::

    X   1 x V (or V x 1) cell; X{v} is n x d_v (or d_v x n, turned to n x d_v), dense or sparse, any numeric type
    Y   n x 1 (or 1 x n) class labels, usually 1..C (0..C-1 and numberings with gaps are read too)

Read here:

* any such file through :func:`read_multiview`: views ``view0``, ``view1``, ... (or ``view_names=[...]``), classes
  inferred from ``Y`` (see :func:`infer_classes`), ``views=[...]`` to keep only some views;
* **CUB-10** (``cub_googlenet_doc2vec_c10.mat``, UIMD release): ``X`` 1x2 cell, ``X{1}`` 600 x 1024 GoogLeNet
  image features, ``X{2}`` 600 x 300 doc2vec text features; ``Y`` 600 x 1 classes 1..10 -> modalities
  ``image`` and ``text``;
* **UCI handwritten digits** (``handwritten.mat``): ``X`` 1x6 cell of views of 2,000 digits, ``Y`` 2000 x 1
  labels (the published file numbers them 1..10 in the UCI order, i.e. 1 = digit 0; copies numbered 0..9
  are read the same) -> modalities named after the view, recognised by its width: ``pixel`` (240), ``fourier`` (76),
  ``profile`` (216, profile correlations), ``zernike`` (47), ``karhunen_loeve`` (64), ``morphological`` (6);
  class names ``"0"``..``"9"``. These names are :func:`read_handwritten`'s defaults on top of the general reader.

MATLAB v5 and v7.3 are both read. Every view becomes float32 (the handwritten pixel and profile views are stored
as integers). No split is published (``fixed_splits`` empty).
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, orient_rows
from .mat import cell_to_list, load_mat, to_dense

__all__ = ["read_multiview", "read_cub10", "read_handwritten", "HANDWRITTEN_VIEWS", "infer_classes",
           "resolve_views", "MULTIVIEW_LAYOUT"]

#: view width -> name, for the six UCI "multiple features" views
HANDWRITTEN_VIEWS = {240: "pixel", 76: "fourier", 216: "profile", 47: "zernike", 64: "karhunen_loeve",
                     6: "morphological"}
#: the ten UCI digit classes, in the file's order (label 1 = digit 0)
HANDWRITTEN_CLASSES = tuple(str(d) for d in range(10))
#: names a view cannot take: they are keys of every batch
_RESERVED_NAMES = ("label", "index", "semantic")

ViewSpec = Union[int, str]


def _layout(x_key: str, y_key: str) -> str:
    return (f"one .mat file (MATLAB v5 or v7.3) with {x_key!r}: a 1 x V (or V x 1) cell of n x d_v (or d_v x n) "
            f"views and {y_key!r}: n x 1 class labels")


MULTIVIEW_LAYOUT = _layout("X", "Y")


# --------------------------------------------------------------------------------------------- pieces
def infer_classes(y: Any, source: str = "<mat>", key: str = "Y",
                  label_base: Union[int, str] = "auto") -> Tuple[np.ndarray, List[int]]:
    """Class indices from 0 and the file's label value of each class.

    ``label_base="auto"`` (default): the classes are the distinct values of ``y`` in sorted order, so labels
    1..C become 0..C-1, 0..C-1 stay, and a numbering with gaps (``{1, 2, 5, 9}``) becomes 0..3 with the values
    ``[1, 2, 5, 9]`` recorded. Every class then has items. ``label_base=0`` / ``1``: the file's numbering is kept
    (index = value - base, ``max + 1`` classes, some possibly without items).

    >>> ids, values = infer_classes(np.array([[1], [5], [2], [5]]))
    >>> ids.tolist(), values
    ([0, 2, 1, 2], [1, 2, 5])
    """
    y = np.asarray(y)
    if y.ndim == 2 and 1 in y.shape:
        y = y.reshape(-1)
    if y.ndim != 1:
        raise ValueError(f"{source}: '{key}' must be one column of class labels (n x 1), got shape {y.shape}")
    if y.size == 0:
        raise ValueError(f"{source}: '{key}' holds no labels (the file has no items)")
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(f"{source}: '{key}' must hold integer class labels, got dtype {y.dtype}")
    if np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.complexfloating):
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y.real)):
            raise ValueError(f"{source}: '{key}' must hold integer class labels, found non-integer or NaN values")
        y = y.real
    y = y.astype(np.int64)
    if label_base == "auto":
        values, ids = np.unique(y, return_inverse=True)
        return ids.reshape(-1).astype(np.int64), [int(v) for v in values]
    if isinstance(label_base, bool) or label_base not in (0, 1):
        raise ValueError(f"label_base must be 0, 1 or 'auto', got {label_base!r}")
    ids = y - int(label_base)
    if ids.min() < 0:
        raise ValueError(f"{source}: '{key}' has label {int(y.min())} below the first class {label_base}")
    return ids, [int(v) + int(label_base) for v in range(int(ids.max()) + 1)]


def _check_view_names(names: Sequence[str], num_views: int, source: str, x_key: str) -> List[str]:
    if isinstance(names, (str, bytes)) or not isinstance(names, (Sequence, np.ndarray)):
        raise ValueError(f"view_names must be a list of names, one per view, got {names!r}")
    names = list(names)
    if len(names) != num_views:
        raise ValueError(f"{source}: '{x_key}' holds {num_views} views but {len(names)} view names were given "
                         f"({names}); give exactly one name per view, in the file's order")
    bad = [n for n in names if not isinstance(n, str) or not n or n in _RESERVED_NAMES]
    if bad:
        raise ValueError(f"view names must be non-empty strings other than {list(_RESERVED_NAMES)}; got {bad}")
    if len(set(names)) != len(names):
        raise ValueError(f"view names repeat: {names}")
    return names


def resolve_views(views: Optional[Sequence[ViewSpec]], names: Sequence[str], source: str = "<mat>") -> List[str]:
    """View names chosen by ``views`` (0-based positions in the file and/or names), in the order given.

    ``None`` chooses every view.

    >>> resolve_views([2, "view0"], ["view0", "view1", "view2"])
    ['view2', 'view0']
    """
    names = list(names)
    if views is None:
        return names
    if isinstance(views, (str, bytes, numbers.Integral)):
        views = [views]        # a single view given bare
    out: List[str] = []
    for v in views:
        if isinstance(v, bool):
            raise ValueError(f"views: {v!r} is neither a view position nor a view name")
        if isinstance(v, numbers.Integral):
            if not 0 <= int(v) < len(names):
                raise ValueError(f"{source}: views names position {v}, but the file has {len(names)} views "
                                 f"(positions 0..{len(names) - 1}: {names})")
            name = names[int(v)]
        elif isinstance(v, str):
            if v not in names:
                raise ValueError(f"{source}: views names the view {v!r}; the views are {names} (or their "
                                 f"positions 0..{len(names) - 1})")
            name = v
        else:
            raise ValueError(f"views: {v!r} is neither a view position nor a view name")
        if name in out:
            raise ValueError(f"views chooses the view {name!r} twice: {list(views)}")
        out.append(name)
    if not out:
        raise ValueError("views chooses no view; give at least one position or name")
    return out


def _load(path: PathLike, x_key: str, y_key: str) -> Tuple[Path, List[Any], np.ndarray]:
    """The file's raw views (MATLAB shapes, not yet oriented) and label column."""
    p = Path(path).expanduser()
    data = load_mat(p, [x_key, y_key], layout=_layout(x_key, y_key))
    views = cell_to_list(data[x_key], str(p), x_key)
    if not views:
        raise ValueError(f"{p}: '{x_key}' is an empty cell; it must hold one matrix per view")
    return p, views, np.asarray(data[y_key])


def _assemble(path: Path, raw_views: List[Any], y: np.ndarray, *, views: Optional[Sequence[ViewSpec]],
              view_names: Optional[Sequence[str]], class_names: Optional[Sequence[str]], x_key: str, y_key: str,
              label_base: Union[int, str]) -> DatasetArrays:
    src = str(path)
    if view_names is None:
        view_names = [f"view{i}" for i in range(len(raw_views))]
    names = _check_view_names(view_names, len(raw_views), src, x_key)
    chosen = resolve_views(views, names, src)
    labels, values = infer_classes(y, src, y_key, label_base)
    n = labels.shape[0]
    if class_names is None:
        class_names = [str(v) for v in values]
    else:
        if isinstance(class_names, (str, bytes)):
            raise ValueError(f"class_names must be a list of names, got {class_names!r}")
        class_names = [str(c) for c in class_names]
        if len(class_names) != len(values):
            shown = values if len(values) <= 12 else values[:5] + ["..."] + values[-5:]
            raise ValueError(f"{src}: {len(class_names)} class names given but '{y_key}' has {len(values)} classes "
                             f"(label values {shown}); give one name per class, in the order of the sorted labels")
    modalities = {}
    for name in chosen:
        i = names.index(name)
        key = f"{x_key}{{{i + 1}}}"
        modalities[name] = as_features(orient_rows(to_dense(raw_views[i]), n, src, key), src, key)
    return DatasetArrays(modalities=modalities, labels=labels, class_names=list(class_names), source=src)


# --------------------------------------------------------------------------------------------- readers
def read_multiview(path: PathLike, views: Optional[Sequence[ViewSpec]] = None,
                   view_names: Optional[Sequence[str]] = None, class_names: Optional[Sequence[str]] = None, *,
                   x_key: str = "X", y_key: str = "Y", label_base: Union[int, str] = "auto") -> DatasetArrays:
    """Read a multi-view ``.mat`` file (see the module docstring for the layout).

    Parameters
    ----------
    path:
        the ``.mat`` file (MATLAB v5 or v7.3).
    views:
        the views to return, by 0-based position in ``X`` and/or by name, in the order given (default: all).
    view_names:
        one modality name per view of the file, in its order (default ``view0``, ``view1``, ...); a list of
        another length raises ``ValueError``.
    class_names:
        one name per class, in the order of the sorted label values (default: the label values themselves,
        ``"1"``..``"C"`` for a file numbered 1..C).
    x_key, y_key:
        names of the view cell and of the label column.
    label_base:
        ``"auto"`` (default): classes are the distinct label values (see :func:`infer_classes`); ``0`` / ``1``:
        keep the file's numbering from that value.

    Returns
    -------
    DatasetArrays
        one float32 ``[n, d_v]`` modality per chosen view; int64 labels ``0..C-1``; no fixed splits.

    Example
    -------
    >>> a = read_multiview("Caltech101-7.mat", views=[3, 4])         # doctest: +SKIP
    >>> list(a.modalities), a.num_classes                           # doctest: +SKIP
    (['view3', 'view4'], 7)
    """
    p, raw_views, y = _load(path, x_key, y_key)
    return _assemble(p, raw_views, y, views=views, view_names=view_names, class_names=class_names, x_key=x_key,
                     y_key=y_key, label_base=label_base)


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


def handwritten_view_names(raw_views: Sequence[Any], n: int) -> List[str]:
    """The UCI names of the views, recognised by their width (a view of unknown width: ``view<i>``)."""
    names: List[str] = []
    for i, v in enumerate(raw_views):
        shape = np.shape(v)
        width = shape[1] if len(shape) == 2 and shape[0] == n else (shape[0] if len(shape) == 2 else -1)
        name = HANDWRITTEN_VIEWS.get(width, f"view{i}")
        names.append(name if name not in names else f"view{i}")
    return names


def read_handwritten(path: PathLike, views: Optional[Sequence[ViewSpec]] = None,
                     view_names: Optional[Sequence[str]] = None,
                     class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """UCI handwritten digits, six views (``handwritten.mat``; a folder holding it is accepted).

    :func:`read_multiview` with the UCI names as defaults: views named by their width (see
    :data:`HANDWRITTEN_VIEWS`), classes ``"0"``..``"9"`` (the file numbers them 1..10 or 0..9). A file with another
    number of classes needs ``class_names=`` (or the generic :func:`read_multiview`).

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
    p, raw_views, y = _load(p, "X", "Y")
    if view_names is None:
        view_names = handwritten_view_names(raw_views, int(np.asarray(y).size))
    if class_names is None:
        _, values = infer_classes(y, str(p), "Y")
        if len(values) != len(HANDWRITTEN_CLASSES):
            raise ValueError(f"{p}: 'Y' has {len(values)} classes, but handwritten names the 10 UCI digits. For "
                             "another multi-view file use the generic reader (read_multiview, the 'multiview' "
                             "DataModule: --data multiview --data-root FILE), or pass class_names=")
        class_names = HANDWRITTEN_CLASSES
    return _assemble(p, raw_views, y, views=views, view_names=view_names, class_names=class_names, x_key="X",
                     y_key="Y", label_base="auto")
