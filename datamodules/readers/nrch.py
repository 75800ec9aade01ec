"""NRCH-style HDF5 files: the published training, query and database sets as nine datasets.

The layout that NRCH-style / DCMH-derived preparation scripts write with h5py (one file)::

    ImgTrain     TagTrain     LabTrain        image features, text (tag) features, 0/1 labels of the training set
    ImgQuery     TagQuery     LabQuery        ... of the query set
    ImgDataBase  TagDataBase  LabDataBase     ... of the retrieval database

Arrays are row-major, one row per item (``n x d``, labels ``n x C`` multi-hot). Some scripts write them
MATLAB-style transposed (``d x n``, ``C x n``); the orientation is detected by matching the row counts of the
image and text arrays against the label arrays, over the whole file (every set must fit it, with the same
feature sizes and number of classes), and a file that fits both orientations is refused (pass
``orientation=``). A MATLAB v7.3 ``.mat`` with these variables is read through
:func:`~datamodules.readers.mat.load_mat` (so that it is seen in MATLAB's shapes; sparse arrays are decoded).

The sets are stacked as ``[train; query; database]`` and returned as ``fixed_splits`` ``train``, ``query`` and
``database`` (consecutive row blocks). When the training items are also database items, these scripts store
them twice (once in ``*Train``, once in ``*DataBase``) and they appear twice here: kept as written, nothing is
merged or dropped (the training copies are never searched: the database is ``*DataBase``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..arrays import DatasetArrays
from ._common import MissingKeyError, PathLike, as_features, check_rows, decoding, multi_hot, require_file
from .mat import load_mat, to_dense

__all__ = ["read_nrch", "NRCH_LAYOUT", "NRCH_KEYS"]

#: published set -> (image, text, label) dataset names
NRCH_KEYS = {"train": ("ImgTrain", "TagTrain", "LabTrain"), "query": ("ImgQuery", "TagQuery", "LabQuery"),
             "database": ("ImgDataBase", "TagDataBase", "LabDataBase")}
_ALL_KEYS = [k for keys in NRCH_KEYS.values() for k in keys]

NRCH_LAYOUT = ("one HDF5 file (.h5 / .hdf5, or a MATLAB v7.3 .mat; or a folder holding exactly one) with the datasets "
               "ImgTrain, TagTrain, LabTrain, ImgQuery, TagQuery, LabQuery, ImgDataBase, TagDataBase, LabDataBase: "
               "image features, text features and 0/1 labels of the published training, query and database sets, "
               "one row per item (n x d, labels n x C; MATLAB-style transposed d x n is detected)")

_SUFFIXES = (".h5", ".hdf5", ".mat")
_HDF5 = "an HDF5 file"


def _is_hdf5(p: Path) -> bool:
    import h5py
    return bool(h5py.is_hdf5(str(p)))


def _keys(p: Path) -> List[str]:
    import h5py
    with decoding(p, _HDF5, NRCH_LAYOUT, errors=(KeyError,)):
        with h5py.File(p, "r") as f:
            return sorted(k for k in f.keys() if k not in ("#refs#", "#subsystem#"))


def _resolve(path: PathLike) -> Path:
    """The file: ``path`` itself, or the one HDF5 file (holding the nine datasets) in the folder ``path``."""
    p = Path(path).expanduser()
    if not p.is_dir():
        return require_file(p, NRCH_LAYOUT)
    files = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in _SUFFIXES)
    hdf5 = [q for q in files if _is_hdf5(q)]
    if len(hdf5) == 1:
        return hdf5[0]
    complete = [q for q in hdf5 if set(_ALL_KEYS) <= set(_keys(q))]
    if len(complete) == 1:
        return complete[0]
    if not hdf5:
        other = f" ({', '.join(q.name for q in files)} are not HDF5 / MATLAB v7.3 files)" if files else ""
        raise FileNotFoundError(f"{p}: holds no .h5 / .hdf5 / v7.3 .mat file{other}. Expected layout: {NRCH_LAYOUT}")
    which = complete if complete else hdf5
    raise FileNotFoundError(f"{p}: holds {len(which)} HDF5 files{' with these datasets' if complete else ''} "
                            f"({', '.join(q.name for q in which)}); pass the file itself. Expected layout: "
                            f"{NRCH_LAYOUT}")


def _is_matlab(p: Path) -> bool:
    with open(p, "rb") as fh:
        return fh.read(10) == b"MATLAB 7.3"


def _load(p: Path) -> Dict[str, np.ndarray]:
    found = _keys(p)
    missing = [k for k in _ALL_KEYS if k not in found]
    if missing:
        raise MissingKeyError(f"{p}: missing the datasets {missing}; datasets found: {found}. Expected layout: "
                              f"{NRCH_LAYOUT}")
    if _is_matlab(p):
        raw = load_mat(p, _ALL_KEYS, layout=NRCH_LAYOUT)
    else:
        import h5py
        raw = {}
        with decoding(p, _HDF5, NRCH_LAYOUT, errors=(KeyError,)):
            with h5py.File(p, "r") as f:
                for k in _ALL_KEYS:
                    if not isinstance(f[k], h5py.Dataset):
                        raise ValueError(f"{p}: '{k}' is an HDF5 group, expected a dataset (an array). Expected "
                                         f"layout: {NRCH_LAYOUT}")
                    raw[k] = f[k][()]
    out = {}
    for k, v in raw.items():
        arr = to_dense(v)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise ValueError(f"{p}: '{k}' must be a numeric array, got dtype {arr.dtype}")
        if arr.ndim != 2:
            raise ValueError(f"{p}: '{k}' must be a 2-d matrix (n x d, one row per item), got shape {arr.shape}")
        out[k] = arr
    return out


def _fits(data: Dict[str, np.ndarray], axis: int) -> bool:
    """Whether every set has one item per index of ``axis`` (0: rows, 1: columns) in its three arrays, with the
    same feature sizes and number of classes across the sets."""
    other = 1 - axis
    sizes = set()
    for keys in NRCH_KEYS.values():
        shapes = [data[k].shape for k in keys]
        if len({s[axis] for s in shapes}) != 1:
            return False
        sizes.add(tuple(s[other] for s in shapes))
    return len(sizes) == 1


def read_nrch(path: PathLike, *, orientation: str = "auto",
              class_names: Optional[Sequence[str]] = None) -> DatasetArrays:
    """Read an NRCH-style HDF5 file (see the module docstring for the layout).

    Parameters
    ----------
    path:
        the ``.h5`` / ``.hdf5`` / v7.3 ``.mat`` file, or a folder holding exactly one (or exactly one with the nine
        datasets).
    orientation:
        ``"auto"`` (detect), ``"rows"`` (``n x d``, one row per item, as h5py scripts write) or ``"columns"``
        (``d x n``, MATLAB-style transposed).
    class_names:
        the ``C`` class names (the file carries none); default ``"0"`` .. ``"C-1"``.

    Returns
    -------
    DatasetArrays
        modalities ``image`` and ``text`` (float32); labels float32 multi-hot ``[n, C]``, or int64 ``[n]`` when
        every item has exactly one label; ``fixed_splits`` ``train``, ``query``, ``database`` (consecutive rows,
        in that order).

    Example
    -------
    >>> a = read_nrch("mirflickr_nrch.h5")                            # doctest: +SKIP
    >>> {k: len(v) for k, v in a.fixed_splits.items()}               # doctest: +SKIP
    {'train': 10000, 'query': 2000, 'database': 18015}
    """
    if orientation not in ("auto", "rows", "columns"):
        raise ValueError(f"orientation must be 'auto', 'rows' or 'columns', got {orientation!r}")
    p = _resolve(path)
    data = _load(p)
    fits = [o for o, axis in (("rows", 0), ("columns", 1)) if _fits(data, axis)]
    listing = "; ".join(", ".join(f"{k} {data[k].shape}" for k in keys) for keys in NRCH_KEYS.values())
    if orientation == "auto":
        if not fits:
            raise ValueError(f"{p}: the array shapes fit neither one row per item (n x d) nor one column per item "
                             f"(d x n): each set's Img*, Tag* and Lab* must share their item count, and the three "
                             f"sets their feature sizes and number of classes ({listing})")
        if len(fits) == 2:
            raise ValueError(f"{p}: the array shapes fit both one row per item (n x d) and one column per item "
                             f"(d x n), so the orientation is ambiguous ({listing}); pass orientation='rows' or "
                             "'columns'")
        orientation = fits[0]
    elif orientation not in fits:
        raise ValueError(f"{p}: orientation={orientation!r}, but the array shapes do not fit it ({listing})")
    images, texts, labels, splits, start = [], [], [], {}, 0
    for split, (ki, kt, kl) in NRCH_KEYS.items():
        I, T, L = (data[k] if orientation == "rows" else data[k].T for k in (ki, kt, kl))
        n = L.shape[0]
        if n == 0:
            raise ValueError(f"{p}: the published {split} set is empty ({kl} has shape {data[kl].shape})")
        check_rows(str(p), **{ki: I.shape[0], kt: T.shape[0], kl: n})
        images.append(as_features(I, str(p), ki))
        texts.append(as_features(T, str(p), kt))
        labels.append(multi_hot(L, str(p), kl))
        splits[split] = np.arange(start, start + n, dtype=np.int64)
        start += n
    lab = np.concatenate(labels)
    C = lab.shape[1]
    if C > 0 and np.all(lab.sum(axis=1) == 1):   # one-hot: single-label class indices
        lab = np.argmax(lab, axis=1).astype(np.int64)
    if class_names is None:
        class_names = [str(i) for i in range(C)]
    elif len(class_names) != C:
        raise ValueError(f"{p}: class_names has {len(class_names)} names but the labels have {C} classes")
    return DatasetArrays(modalities={"image": np.concatenate(images), "text": np.concatenate(texts)},
                         labels=lab, class_names=list(class_names), fixed_splits=splits, source=str(p))
