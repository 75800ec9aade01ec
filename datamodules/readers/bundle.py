"""A documented generic bundle for users' own data: one ``.npz`` or ``.h5`` file.

Specification (version 1)
-------------------------
A bundle is a flat set of named arrays (top-level arrays of an ``.npz``; top-level datasets of an HDF5 file
``.h5`` / ``.hdf5``, stored in C/row-major order as numpy writes them: no MATLAB transposition is applied).
``n`` is the number of items, ``C`` the number of classes.

==========================  ===============================================================================
key                         content
==========================  ===============================================================================
``labels`` (required)       ``[n]`` integer class indices ``0..C-1``, or ``[n, C]`` 0/1 multi-hot matrix
``class_names``             ``[C]`` strings (optional; default ``"0"``, ``"1"``, ...). For ``[n]`` labels
                            without names, ``C = max(labels) + 1``
``split_<name>``            ``[k]`` integer 0-based row indices of a published split, e.g. ``split_train``,
                            ``split_query``, ``split_database``, ``split_val`` (optional, any number)
``semantic_<name>``         ``[C, d]`` class-level vectors, e.g. ``semantic_attributes``,
                            ``semantic_word_vectors`` (optional, any number)
anything else               a **modality**, named by its key (``image``, ``text``, ``sketch``, ...):
                            ``[n, d]`` features (read as float32) or ``[n, H, W, C]`` uint8 images (kept
                            uint8); at least one is required
==========================  ===============================================================================

Strings are stored as numpy unicode arrays in ``.npz`` (no pickled objects: the file is read with
``allow_pickle=False``) and as UTF-8 string datasets in HDF5. :func:`write_bundle` writes this format.

Example
-------
>>> import numpy as np
>>> np.savez("mine.npz", image=np.random.rand(100, 512), text=np.random.rand(100, 300),
...          labels=np.arange(100) % 5, class_names=np.array(list("abcde")),
...          split_query=np.arange(10), split_database=np.arange(10, 100))          # doctest: +SKIP
>>> read_bundle("mine.npz").modalities.keys()                                     # doctest: +SKIP
dict_keys(['image', 'text'])
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, missing_key, multi_hot, require_file

__all__ = ["read_bundle", "write_bundle", "BUNDLE_LAYOUT"]

BUNDLE_LAYOUT = ("one .npz or .h5 file with 'labels' ([n] class indices or [n, C] 0/1), optional 'class_names' "
                 "([C] strings), optional 'split_<name>' (0-based row indices) and 'semantic_<name>' ([C, d]) "
                 "arrays, and one array per modality (any other key, [n, d] or [n, H, W, C] uint8)")


def _load(path: Path) -> Dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except ValueError as e:
            raise ValueError(f"{path}: cannot read without unpickling ({e}); store strings as numpy unicode "
                             "arrays, not object arrays") from None
    if suffix in (".h5", ".hdf5", ".hdf"):
        import h5py

        out = {}
        with h5py.File(path, "r") as f:
            for k, obj in f.items():
                if not isinstance(obj, h5py.Dataset):
                    raise ValueError(f"{path}: '{k}' is an HDF5 group; a bundle holds only top-level arrays. "
                                     f"Expected layout: {BUNDLE_LAYOUT}")
                if obj.dtype.kind in "SO":
                    out[k] = np.asarray(obj.asstr()[()], dtype=str)
                else:
                    out[k] = obj[()]
        return out
    raise ValueError(f"{path}: unknown bundle extension {suffix!r}; use .npz or .h5. Expected layout: {BUNDLE_LAYOUT}")


def read_bundle(path: PathLike) -> DatasetArrays:
    """Read a generic bundle (see the module docstring for the format).

    Returns
    -------
    DatasetArrays
        one modality per non-reserved key; labels int64 ``[n]`` or float32 ``[n, C]``; ``fixed_splits`` from
        ``split_<name>``; ``class_semantics`` from ``semantic_<name>``.
    """
    path = require_file(path, BUNDLE_LAYOUT)
    data = _load(path)
    src = str(path)
    if "labels" not in data:
        raise missing_key(path, "labels", data.keys(), BUNDLE_LAYOUT)
    labels = np.asarray(data["labels"])
    if labels.ndim == 1:
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{src}: 1-d 'labels' must be integer class indices, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
    elif labels.ndim == 2:
        labels = multi_hot(labels, src, "labels")
    else:
        raise ValueError(f"{src}: 'labels' must be [n] or [n, C], got shape {labels.shape}")
    n = labels.shape[0]
    if "class_names" in data:
        names = np.asarray(data["class_names"])
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise ValueError(f"{src}: 'class_names' must be a 1-d array of strings, got {names.dtype} {names.shape}")
        class_names = [x.decode() if isinstance(x, bytes) else str(x) for x in names.tolist()]
    else:
        c = labels.shape[1] if labels.ndim == 2 else (int(labels.max()) + 1 if n else 0)
        class_names = [str(i) for i in range(c)]
    modalities, splits, semantics = {}, {}, {}
    for k, v in data.items():
        if k in ("labels", "class_names"):
            continue
        v = np.asarray(v)
        if k.startswith("split_"):
            if v.ndim != 1 or not np.issubdtype(v.dtype, np.integer):
                raise ValueError(f"{src}: '{k}' must be a 1-d integer array of row indices, got {v.dtype} {v.shape}")
            splits[k[len("split_"):]] = v.astype(np.int64)
        elif k.startswith("semantic_"):
            semantics[k[len("semantic_"):]] = as_features(v, src, k)
        elif v.ndim >= 3 and v.dtype == np.uint8:
            modalities[k] = v
        else:
            if v.ndim not in (1, 2):
                raise ValueError(f"{src}: modality '{k}' must be [n, d] features or [n, H, W, C] uint8 images, "
                                 f"got {v.dtype} {v.shape}")
            modalities[k] = as_features(v if v.ndim == 2 else v[:, None], src, k)
    if not modalities:
        raise ValueError(f"{src}: no modality arrays (keys found: {sorted(data)}). Expected layout: {BUNDLE_LAYOUT}")
    return DatasetArrays(modalities=modalities, labels=labels, class_names=class_names, fixed_splits=splits,
                         class_semantics=semantics, source=src)


def write_bundle(path: PathLike, arrays: DatasetArrays) -> Path:
    """Write ``arrays`` as a bundle (``.npz`` uncompressed, or ``.h5``), readable by :func:`read_bundle`.

    Modality names must not be ``labels``/``class_names`` nor start with ``split_``/``semantic_``.
    """
    path = Path(path).expanduser()
    for k in arrays.modalities:
        if k in ("labels", "class_names") or k.startswith(("split_", "semantic_")):
            raise ValueError(f"modality name {k!r} is reserved by the bundle format")
    out = dict(arrays.modalities)
    out["labels"] = arrays.labels
    out["class_names"] = np.asarray(arrays.class_names, dtype=str)
    out.update({f"split_{k}": np.asarray(v, dtype=np.int64) for k, v in arrays.fixed_splits.items()})
    out.update({f"semantic_{k}": v for k, v in arrays.class_semantics.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".npz":
        with open(path, "wb") as f:
            np.savez(f, **out)
    elif path.suffix.lower() in (".h5", ".hdf5", ".hdf"):
        import h5py

        with h5py.File(path, "w") as f:
            for k, v in out.items():
                if k == "class_names":
                    f.create_dataset(k, data=list(arrays.class_names), dtype=h5py.string_dtype("utf-8"))
                else:
                    f.create_dataset(k, data=v)
    else:
        raise ValueError(f"{path}: bundle files end in .npz or .h5")
    return path
