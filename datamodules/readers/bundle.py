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
``split_<name>``            ``[k]`` integer 0-based row indices of a published split (optional). The names
                            are ``train``, ``query``, ``database``, ``val`` (the retrieval split), or
                            ``test``, ``trainval``, ``test_seen``, ``test_unseen`` (the splits other
                            readers publish: CIFAR-10/MNIST, xlsa17); see "Published splits" below
``semantic_<name>``         ``[C, d]`` class-level vectors, e.g. ``semantic_attributes``,
                            ``semantic_word_vectors`` (optional, any number)
anything else               a **modality**, named by its key (``image``, ``text``, ``sketch``, ...):
                            ``[n, d]`` features (read as float32) or ``[n, H, W, C]`` uint8 images (kept
                            uint8); at least one is required
==========================  ===============================================================================

Strings are stored as numpy unicode arrays in ``.npz`` (no pickled objects: the file is read with
``allow_pickle=False``) and as UTF-8 string datasets in HDF5. :func:`write_bundle` writes this format.

Published splits
----------------
Each ``split_<name>`` must be a non-empty 1-d integer array of distinct row indices in ``[0, n)``, and splits
that look 1-based (no split lists row 0 and the smallest index is 1) are refused unless ``check_index_base=False``;
anything else
(float or boolean arrays, an empty array, a row listed twice, a negative or out-of-range index, a key whose name
is not one of the names above, such as ``split_querry``) is an error naming the file and the key, with the
closest known name when there is one. A split under another name is accepted only when a protocol argument
names it (``read_bundle(path, split_names=["mine"])``; the DataModule passes e.g. ``query_pool="mine"`` on).

The :class:`~datamodules.datamodules.BundleDataModule` serves a bundle's published split whenever it carries
one: queries = ``split_query``; training set = ``split_train``, or ``split_database`` when there is no
``split_train`` (the database doubles as the training set, as in many hashing codes' unsupervised and
retrieval protocols); database = ``split_database``, or ``split_train`` when there is no ``split_database``;
validation queries = ``split_val`` when present, else drawn (seeded) from the database. ``split_query`` and at
least one of ``split_train`` / ``split_database`` are required; a split naming only some of them is an error
saying what is there and what is missing, and so are queries shared with the training set or the database.
Drawing another split from such a file needs ``ignore_published_split=True``, or a protocol that uses a
published split as its pool (``protocol="cifar10"`` on ``split_train`` + ``split_test``, ``query_pool=...``).

A truncated or corrupt file (or another format under a ``.npz`` / ``.h5`` name) raises
:class:`~datamodules.readers._common.DamagedFileError`, a ``ValueError`` naming the file.

Example
-------
>>> import numpy as np
>>> np.savez("mine.npz", image=np.random.rand(100, 512), text=np.random.rand(100, 300),
...          labels=np.arange(100) % 5, class_names=np.array(list("abcde")),
...          split_query=np.arange(10), split_database=np.arange(10, 100))          # doctest: +SKIP
>>> read_bundle("mine.npz").modalities.keys()                                     # doctest: +SKIP
dict_keys(['image', 'text'])
>>> dm = BundleDataModule(path="mine.npz"); dm.setup()                             # doctest: +SKIP
>>> len(dm.split.query), len(dm.split.database), len(dm.split.train)              # doctest: +SKIP
(10, 90, 90)

(the training set is ``split_database``, as the file has no ``split_train``.)
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, damaged_file, decoding, missing_key, multi_hot, require_file

__all__ = ["read_bundle", "write_bundle", "BUNDLE_LAYOUT", "RETRIEVAL_SPLITS", "POOL_SPLITS", "KNOWN_SPLITS"]

#: the retrieval split a bundle publishes, as the BundleDataModule serves it
RETRIEVAL_SPLITS = ("train", "query", "database", "val")
#: names other readers publish and built-in protocols take as pools (CIFAR-10 / MNIST ``test``: the ``cifar10``
#: protocol's ``query_pool``; xlsa17's ``trainval``, ``test_seen``, ``test_unseen``: the ``xlsa17`` protocol)
POOL_SPLITS = ("test", "trainval", "test_seen", "test_unseen")
#: every ``split_<name>`` a bundle may carry without a protocol argument naming it
KNOWN_SPLITS = RETRIEVAL_SPLITS + POOL_SPLITS

BUNDLE_LAYOUT = ("one .npz or .h5 file with 'labels' ([n] class indices or [n, C] 0/1), optional 'class_names' "
                 "([C] strings), optional 'split_<name>' (0-based row indices) and 'semantic_<name>' ([C, d]) "
                 "arrays, and one array per modality (any other key, [n, d] or [n, H, W, C] uint8)")


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _load(path: Path) -> Dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        what = "a .npz (zip) archive"
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic not in _ZIP_MAGIC:
            raise damaged_file(path, what, f"it does not start with a zip header (first bytes {magic!r})",
                               BUNDLE_LAYOUT)
        out = {}
        with decoding(path, what, BUNDLE_LAYOUT):
            with np.load(path, allow_pickle=False) as z:
                for k in z.files:
                    try:
                        out[k] = z[k]
                    except ValueError as e:
                        if "pickle" in str(e):
                            raise ValueError(f"{path}: '{k}' cannot be read without unpickling ({e}); store "
                                             "strings as numpy unicode arrays, not object arrays") from None
                        raise damaged_file(path, what, e, BUNDLE_LAYOUT) from e
        return out
    if suffix in (".h5", ".hdf5", ".hdf"):
        import h5py

        out, groups = {}, []
        with decoding(path, "an HDF5 file", BUNDLE_LAYOUT, errors=(KeyError,)):
            with h5py.File(path, "r") as f:
                for k, obj in f.items():
                    if not isinstance(obj, h5py.Dataset):
                        groups.append(k)
                    elif obj.dtype.kind in "SO":
                        out[k] = np.asarray(obj.asstr()[()], dtype=str)
                    else:
                        out[k] = obj[()]
        if groups:
            raise ValueError(f"{path}: {', '.join(repr(g) for g in groups)} "
                             f"{'is an HDF5 group' if len(groups) == 1 else 'are HDF5 groups'}; a bundle holds only "
                             f"top-level arrays. Expected layout: {BUNDLE_LAYOUT}")
        return out
    raise ValueError(f"{path}: unknown bundle extension {suffix!r}; use .npz or .h5. Expected layout: {BUNDLE_LAYOUT}")


def _split_rows(src: str, key: str, v: np.ndarray, n: int) -> np.ndarray:
    """One ``split_<name>`` array as ``int64`` rows (order kept), or a ``ValueError`` naming file and key."""
    if v.ndim != 1:
        raise ValueError(f"{src}: '{key}' must be a 1-d array of row indices, got shape {v.shape}")
    if v.dtype == bool:
        raise ValueError(f"{src}: '{key}' is a boolean mask; store the row indices instead "
                         "(np.flatnonzero(mask))")
    if not np.issubdtype(v.dtype, np.integer):
        raise ValueError(f"{src}: '{key}' must hold integer row indices, got dtype {v.dtype}; store it as an "
                         "integer array (e.g. rows.astype(np.int64))")
    if v.size == 0:
        raise ValueError(f"{src}: '{key}' is empty; a published split lists at least one row (leave the key out "
                         "when there is no such split)")
    lo, hi = int(v.min()), int(v.max())
    if lo < 0 or hi >= n:
        hint = " (the indices look 1-based: subtract 1)" if lo >= 1 and hi == n else ""
        bad = int(((v < 0) | (v >= n)).sum())
        raise ValueError(f"{src}: '{key}' has {bad} row indices outside [0, {n}) (range {lo}..{hi}; {n} items, "
                         f"indices are 0-based){hint}")
    rows = v.astype(np.int64)
    uniq, counts = np.unique(rows, return_counts=True)
    if uniq.size != rows.size:
        dup = uniq[counts > 1]
        raise ValueError(f"{src}: '{key}' lists {dup.size} rows more than once (e.g. {dup[:5].tolist()}); a split "
                         "lists each row once")
    return rows


def _unknown_split(src: str, key: str, accepted: Sequence[str]) -> ValueError:
    """The error for a ``split_*`` key of an unknown name, or a key spelt like one (``split-query``)."""
    spelt = key.startswith("split_")
    name = key[len("split_"):] if spelt else re.sub(r"^splits?[^a-z0-9]*", "", key.lower())
    close = difflib.get_close_matches(name.lower(), accepted, n=1, cutoff=0.6)
    hint = f"; did you mean 'split_{close[0]}'?" if close else "."
    known = ", ".join(f"split_{k}" for k in accepted)
    if not spelt:
        return ValueError(f"{src}: key '{key}' looks like a published split but split keys are spelt "
                          f"'split_<name>'{hint} Known split keys: {known}")
    return ValueError(f"{src}: unknown split key '{key}'{hint} Known split keys: {known}. A split under another "
                      f"name is read only when a protocol argument names it (e.g. query_pool='{name}')")


def _check_zero_based(src: str, splits: Dict[str, np.ndarray], n: int) -> None:
    """Refuse split indices that look 1-based (MATLAB): no split lists row 0 and the smallest index is 1."""
    if not splits:
        return
    lo = min(int(v.min()) for v in splits.values())
    hi = max(int(v.max()) for v in splits.values())
    if lo == 1:
        raise ValueError(f"{src}: the published splits ({', '.join('split_' + k for k in splits)}) never list row 0 "
                         f"and their smallest index is 1 (largest {hi}, {n} items): they look 1-based (MATLAB), "
                         "but bundle indices are 0-based and would select the wrong items. Subtract 1 from them; "
                         "if row 0 is deliberately in no split, pass check_index_base=False "
                         "(--set data.check_index_base=false)")


def read_bundle(path: PathLike, *, split_names: Iterable[str] = (), check_index_base: bool = True) -> DatasetArrays:
    """Read a generic bundle (see the module docstring for the format).

    Parameters
    ----------
    path:
        the ``.npz`` / ``.h5`` file.
    split_names:
        further ``split_<name>`` names to accept besides :data:`KNOWN_SPLITS` (names a protocol argument
        refers to, e.g. a custom ``query_pool``).
    check_index_base:
        refuse splits that look 1-based: no split lists row 0 and the smallest index is 1 (a 1-based split
        whose largest index is below ``n`` would otherwise pass, shifted by one row). ``False`` when row 0 is
        deliberately in no split.

    Returns
    -------
    DatasetArrays
        one modality per non-reserved key; labels int64 ``[n]`` or float32 ``[n, C]``; ``fixed_splits`` from
        ``split_<name>``; ``class_semantics`` from ``semantic_<name>``.

    Raises
    ------
    FileNotFoundError, KeyError
        no such file; no ``labels``.
    DamagedFileError
        (a ``ValueError``) a truncated or corrupt file, or not a ``.npz`` / HDF5 file.
    ValueError
        a malformed array: labels, modalities, or a split (unknown name, empty, duplicate or out-of-range rows,
        not integer).
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
    accepted: List[str] = list(KNOWN_SPLITS) + [s for s in split_names if s not in KNOWN_SPLITS]
    modalities, splits, semantics = {}, {}, {}
    for k, v in data.items():
        if k in ("labels", "class_names"):
            continue
        v = np.asarray(v)
        if k.startswith("split_"):
            if k[len("split_"):] not in accepted:
                raise _unknown_split(src, k, accepted)
            splits[k[len("split_"):]] = _split_rows(src, k, v, n)
        elif k.lower().startswith("split"):      # split-query, Split_query, splits_query, splitquery, ...
            raise _unknown_split(src, k, accepted)
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
    if check_index_base:
        _check_zero_based(src, splits, n)
    return DatasetArrays(modalities=modalities, labels=labels, class_names=class_names, fixed_splits=splits,
                         class_semantics=semantics, source=src)


def write_bundle(path: PathLike, arrays: DatasetArrays, *, split_names: Iterable[str] = ()) -> Path:
    """Write ``arrays`` as a bundle (``.npz`` uncompressed, or ``.h5``), readable by :func:`read_bundle`.

    Modality names must not be ``labels``/``class_names`` nor start with ``split``/``semantic_``. The published
    splits must pass the checks :func:`read_bundle` applies (known names, or names listed in ``split_names``,
    which must then be given to :func:`read_bundle` too; non-empty, distinct, in range), so that nothing is
    written that cannot be read back.
    """
    path = Path(path).expanduser()
    for k in arrays.modalities:
        if k in ("labels", "class_names") or k.lower().startswith("split") or k.startswith("semantic_"):
            raise ValueError(f"modality name {k!r} is reserved by the bundle format")
    accepted = list(KNOWN_SPLITS) + [s for s in split_names if s not in KNOWN_SPLITS]
    for name, rows in arrays.fixed_splits.items():
        if name not in accepted:
            raise _unknown_split(str(path), f"split_{name}", accepted)
        _split_rows(str(path), f"split_{name}", np.asarray(rows), arrays.num_items)
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
