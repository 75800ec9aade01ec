"""SePH / RoPH struct files: one ``.mat`` with a struct ``data`` (features per column) and a struct ``split``.

The layout of the data released with Semantics-Preserving Hashing (Lin et al., CVPR 2015) and read as-is by the
RoPH code (Ding et al.)::

    data.X1             d1 x n   image features, one column per item (MATLAB orientation)
    data.X2             d2 x n   text features (often sparse)
    data.Y              C x n    labels, 0/1 (multi-label, or one-hot), often sparse
    split.ind_train     1-based MATLAB column indices of the training items
    split.ind_test      1-based MATLAB column indices of the test items (the queries)

``split`` is either a field of ``data`` (``data.split``) or a top-level variable of the same file (public code
reading these files takes it as a separate argument, ``get_data(data, split)``); both are accepted, and a
file holding both must hold the same indices in each. ``split_path=`` reads ``split`` from another ``.mat``.
MATLAB v5 (scipy) and v7.3 (HDF5) files both work, through :func:`~datamodules.readers.mat.load_mat`.

A file re-saved with one row per item (``X1`` n x d1, ``Y`` n x C) is read too; when both orientations fit
(square matrices) the published one (columns) wins. Returned rows are the file's items, in file order (every
item, also those in neither index). The published protocol of these files is returned as ``fixed_splits``:
``train`` = ``ind_train``, ``query`` = ``ind_test``, ``database`` = ``ind_train`` (searching the training set,
the usual protocol for these files). The DataModule's ``database="all"`` searches every item that is not a query
instead (``ind_train`` plus the items in neither index: a retrieval set from which the training items were drawn).

Indices are converted to 0-based rows; an index outside ``1..n``, a smallest index 0 (a 0-based file), a
non-integer, a repeated index or a training item that is also a query is an error naming the file and the field.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ..arrays import DatasetArrays
from ._common import MissingKeyError, PathLike, as_features, check_rows, multi_hot, require_file
from .mat import load_mat, mat_keys, to_dense

__all__ = ["read_seph", "SEPH_LAYOUT"]

SEPH_LAYOUT = ("one .mat file (MATLAB v5 or v7.3; or a folder holding exactly one) with a struct 'data' holding X1 "
               "(d1 x n image features, one column per item), X2 (d2 x n text features) and Y (C x n 0/1 labels, "
               "dense or sparse), and a struct 'split' with ind_train and ind_test (1-based MATLAB indices), either "
               "as data.split or as a top-level variable 'split'")

_FEATURES = (("X1", "image"), ("X2", "text"))


def _struct(value: Any, source: Path, key: str) -> Dict[str, Any]:
    """The fields of a scalar MATLAB struct: a ``dict`` (v7.3 through h5py) or a 1x1 record array (v5, scipy)."""
    if isinstance(value, dict):
        return value
    arr = value if isinstance(value, np.ndarray) else None
    if arr is not None and arr.dtype.names:
        if arr.size != 1:
            raise ValueError(f"{source}: '{key}' is a {'x'.join(map(str, arr.shape))} struct array; expected one "
                             f"(1x1) struct. Expected layout: {SEPH_LAYOUT}")
        rec = arr.reshape(-1)[0]
        return {name: rec[name] for name in arr.dtype.names}
    what = f"{type(value).__name__} {getattr(value, 'dtype', '')} {getattr(value, 'shape', '')}"
    raise ValueError(f"{source}: '{key}' must be a MATLAB struct, got {what}. Expected layout: {SEPH_LAYOUT}")


def _field(fields: Dict[str, Any], name: str, source: Path, struct: str) -> Any:
    if name not in fields:
        raise MissingKeyError(f"{source}: struct '{struct}' has no field '{name}'; fields found: {sorted(fields)}. "
                              f"Expected layout: {SEPH_LAYOUT}")
    return fields[name]


def _matrix(value: Any, source: Path, key: str) -> np.ndarray:
    arr = to_dense(value)
    if arr.dtype == object:
        raise ValueError(f"{source}: '{key}' must be a numeric matrix, got a cell/struct value of shape {arr.shape}")
    if arr.ndim != 2:
        raise ValueError(f"{source}: '{key}' must be a 2-d matrix (one column per item), got shape {arr.shape}")
    return arr


def _item_axis(Y: np.ndarray, X: Sequence[Tuple[str, np.ndarray]], source: Path) -> Tuple[int, int]:
    """``(n, axis)``: items are the columns of ``Y`` and of the features (the published orientation, which wins
    when both fit), or, for a file re-saved with one row per item, their rows."""
    for axis in (1, 0):
        n = Y.shape[axis]
        if all(x.shape[axis] == n for _, x in X):
            return int(n), axis
    listing = ", ".join(f"data.{k}: {x.shape}" for k, x in X)
    raise ValueError(f"{source}: data.Y has shape {Y.shape} (C x n) but the features do not have one column per "
                     f"item ({listing}); every matrix must be d x n with the same n")


def _indices(value: Any, n: int, source: Path, key: str) -> np.ndarray:
    """0-based rows from a vector of 1-based MATLAB indices (refusing 0-based, out-of-range, repeated ones)."""
    arr = to_dense(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{source}: '{key}' must be a numeric vector of 1-based indices, got dtype {arr.dtype}")
    if arr.ndim > 2 or (arr.ndim == 2 and 1 not in arr.shape):
        raise ValueError(f"{source}: '{key}' must be a vector of 1-based indices, got shape {arr.shape}")
    if arr.dtype == bool:
        raise ValueError(f"{source}: '{key}' is a logical mask; expected a vector of 1-based indices")
    arr = arr.reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{source}: '{key}' is empty; the published split needs at least one index")
    if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
        raise ValueError(f"{source}: '{key}' must hold integer indices, found non-integer or NaN values")
    idx = arr.astype(np.int64)
    lo, hi = int(idx.min()), int(idx.max())
    if lo == 0:
        raise ValueError(f"{source}: '{key}' has the index 0: it looks 0-based, but these files hold 1-based MATLAB "
                         f"indices 1..{n} (n = {n} items). Convert it to 1-based (add 1) before reading")
    if lo < 0 or hi > n:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{source}: '{key}' has the index {bad}, outside the 1-based range 1..{n} (n = {n} items "
                         f"in data.Y)")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{source}: '{key}' lists {idx.size - np.unique(idx).size} indices more than once")
    return idx - 1


def _labels(Y: np.ndarray, source: Path) -> np.ndarray:
    """``int64`` class indices when every item has exactly one label (one-hot), else ``float32`` multi-hot."""
    L = multi_hot(Y, str(source), "data.Y")
    if L.shape[1] > 0 and L.shape[0] > 0 and np.all(L.sum(axis=1) == 1):
        return np.argmax(L, axis=1).astype(np.int64)
    return L


def _resolve(path: PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        return require_file(p, SEPH_LAYOUT)
    mats = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() == ".mat")
    if len(mats) > 1:   # several: the ones holding a 'data' variable
        with_data = [q for q in mats if "data" in mat_keys(q, SEPH_LAYOUT)]
        mats = with_data if with_data else mats
    if len(mats) != 1:
        what = "no .mat file" if not mats else f"{len(mats)} candidate .mat files ({', '.join(q.name for q in mats)})"
        raise FileNotFoundError(f"{p}: holds {what}; pass the .mat file itself. Expected layout: {SEPH_LAYOUT}")
    return mats[0]


def read_seph(path: PathLike, *, split_path: Optional[PathLike] = None,
              class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """Read a SePH/RoPH struct file (see the module docstring for the layout).

    Parameters
    ----------
    path:
        the ``.mat`` file, or a folder holding exactly one ``.mat`` with a ``data`` variable.
    split_path:
        a separate ``.mat`` holding the ``split`` struct (top-level ``split``, or top-level ``ind_train`` /
        ``ind_test``); default: ``data.split`` or the top-level ``split`` of ``path``.
    class_names:
        the ``C`` class names (the file carries none); default ``"0"`` .. ``"C-1"``.

    Returns
    -------
    DatasetArrays
        modalities ``image`` (float32 ``[n, d1]``, from ``X1``) and ``text`` (float32 ``[n, d2]``, from ``X2``);
        labels float32 multi-hot ``[n, C]``, or int64 ``[n]`` when ``Y`` is one-hot; ``fixed_splits`` ``train``
        = ``database`` = ``ind_train - 1`` and ``query`` = ``ind_test - 1`` (in file order).

    Example
    -------
    >>> a = read_seph("mirflickr_seph.mat")                           # doctest: +SKIP
    >>> {k: len(v) for k, v in a.fixed_splits.items()}               # doctest: +SKIP
    {'train': 5000, 'query': 836, 'database': 5000}
    """
    p = _resolve(path)
    top = load_mat(p, ["data"], optional=["split"], layout=SEPH_LAYOUT)
    data = _struct(top["data"], p, "data")
    X = [(k, _matrix(_field(data, k, p, "data"), p, f"data.{k}")) for k, _ in _FEATURES]
    Y = _matrix(_field(data, "Y", p, "data"), p, "data.Y")
    n, axis = _item_axis(Y, X, p)
    rows_of = (lambda a: a.T) if axis == 1 else (lambda a: a)     # -> one row per item

    # ---- the split: data.split and/or a top-level split (or a separate file)
    candidates = []
    if "split" in data:
        candidates.append(("data.split", _struct(data["split"], p, "data.split"), p))
    if "split" in top:
        candidates.append(("split", _struct(top["split"], p, "split"), p))
    if split_path is not None:
        sp = require_file(split_path, SEPH_LAYOUT)
        extra = load_mat(sp, None, layout=SEPH_LAYOUT)
        if "split" in extra:
            candidates = [("split", _struct(extra["split"], sp, "split"), sp)]
        elif "ind_train" in extra and "ind_test" in extra:
            candidates = [("", {"ind_train": extra["ind_train"], "ind_test": extra["ind_test"]}, sp)]
        else:
            raise MissingKeyError(f"{sp}: no variable 'split' (nor 'ind_train' and 'ind_test'); keys found: "
                                  f"{sorted(extra)}. Expected layout: {SEPH_LAYOUT}")
    if not candidates:
        raise MissingKeyError(f"{p}: no split: neither data.split nor a top-level 'split' variable (data has fields "
                              f"{sorted(data)}; the file has variables {sorted(top)}). Pass split_path= for a "
                              f"separate file. Expected layout: {SEPH_LAYOUT}")
    splits = []
    for name, fields, src in candidates:
        prefix = f"{name}." if name else ""
        rows = {}
        for f in ("ind_train", "ind_test"):
            if f not in fields:
                raise MissingKeyError(f"{src}: '{name or 'the split'}' has no field '{f}'; fields found: "
                                      f"{sorted(fields)}. Expected layout: {SEPH_LAYOUT}")
            rows[f] = _indices(fields[f], n, src, prefix + f)
        splits.append((name, rows, src))
    if len(splits) == 2 and any(not np.array_equal(splits[0][1][f], splits[1][1][f])
                                for f in ("ind_train", "ind_test")):
        raise ValueError(f"{p}: data.split and the top-level 'split' hold different indices; remove one of them")
    name, rows, src = splits[0]
    train, query = rows["ind_train"], rows["ind_test"]
    both = np.intersect1d(train, query)
    if both.size:
        raise ValueError(f"{src}: {both.size} items are in both ind_train and ind_test (1-based, e.g. "
                         f"{(both[:5] + 1).tolist()}); the training items and the queries must be disjoint")

    # ---- arrays, one row per item
    labels = _labels(rows_of(Y), p)
    modalities = {m: as_features(rows_of(x), str(p), f"data.{k}") for (k, x), (_, m) in zip(X, _FEATURES)}
    check_rows(str(p), **{"data.X1": modalities["image"].shape[0], "data.X2": modalities["text"].shape[0],
                          "data.Y": labels.shape[0]})
    C = Y.shape[1 - axis]
    if class_names is None:
        class_names = [str(i) for i in range(C)]
    elif len(class_names) != C:
        raise ValueError(f"{p}: class_names has {len(class_names)} names but data.Y has {C} classes")
    return DatasetArrays(modalities=modalities, labels=labels, class_names=list(class_names),
                         fixed_splits={"train": train, "query": query, "database": train.copy()}, source=str(p))
