"""DSCMR-style split folders (Zhen et al., CVPR 2019, "Deep Supervised Cross-modal Retrieval").

The layout in which the DSCMR line of repositories publishes Pascal Sentences, Wiki, NUS-WIDE and XMediaNet
features: one folder per dataset, one ``.mat`` file per array, each holding one variable named like the file::

    train_img.mat       train_img        n_tr x d_img   image features (Pascal Sentences: 800 x 4096 VGG-19)
    train_txt.mat       train_txt        n_tr x d_txt   text features  (Pascal Sentences: 800 x 300)
    train_img_lab.mat   train_img_lab    n_tr x 1       class indices from 0 (int64 in the published files)
    test_img.mat        test_img         n_te x d_img
    test_txt.mat        test_txt         n_te x d_txt
    test_img_lab.mat    test_img_lab     n_te x 1
    valid_img.mat, valid_txt.mat, valid_img_lab.mat      optional validation set (all three or none)
    train_txt_lab.mat, test_txt_lab.mat, valid_txt_lab.mat   optional; checked equal to the image labels

Files may be MATLAB v5 (scipy) or v7.3 (HDF5); :func:`~datamodules.readers.mat.load_mat` undoes the v7.3
transposition. Labels may be stored ``n x 1``, ``1 x n`` or as integer-valued floats; labels that look
1-based (no 0, smallest 1, largest = the number of classes) or that are not integers are refused with an error
naming the file and the variable (``label_base=1`` reads files that really number classes from 1). A feature
file stored ``d x n`` (e.g. re-saved from Python with h5py) is turned to ``n x d`` when only its second axis
matches the labels.

Rows and splits
---------------
Rows are ``[train; valid (when present); test]``, then the copies the chosen protocol needs (below).
``fixed_splits``: ``train`` (the training rows), ``query`` (the test rows), ``database``, and, when the valid
files exist, ``val`` (the valid rows) and ``val_database``.

DSCMR evaluates the test queries against the test set itself (``evaluate.py`` ranks the test texts for each test
image). This library keeps query and database rows disjoint, so with ``database="test"`` (the default, DSCMR's
protocol) the test block is stored a second time after the published blocks and ``database`` names that copy;
each query then meets its own pair in the other modality exactly as in DSCMR's evaluation (a same-modality task
would also meet the query's own copy). The valid block is copied likewise for ``val_database``. With
``database="train"`` the training rows are the database (and the ``val_database``); nothing is copied. With
``database=None`` there is no ``database`` / ``val_database`` split and nothing is copied (for protocols that
draw their own split from ``[train; valid; test]``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, class_indices, require_dir
from .mat import load_mat, to_dense

__all__ = ["read_dscmr", "DSCMR_LAYOUT", "DSCMR_FILES", "DSCMR_DATABASES"]

DSCMR_LAYOUT = ("a folder with train_img.mat, train_txt.mat, train_img_lab.mat, test_img.mat, test_txt.mat, "
                "test_img_lab.mat (optionally valid_img.mat, valid_txt.mat, valid_img_lab.mat, and *_txt_lab.mat "
                "equal to the image labels), each holding one variable named like the file: features n x d, "
                "labels n x 1 class indices from 0")

#: the required files, in reading order
DSCMR_FILES = tuple(f"{s}_{k}.mat" for s in ("train", "test") for k in ("img", "txt", "img_lab"))
_VALID_FILES = tuple(f"valid_{k}.mat" for k in ("img", "txt", "img_lab"))
#: accepted values of ``database``
DSCMR_DATABASES = ("test", "train", None)


def _listing(root: Path, limit: int = 40) -> str:
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not entries:
        return "nothing (the folder is empty)"
    more = f", ... ({len(entries) - limit} more)" if len(entries) > limit else ""
    return ", ".join(entries[:limit]) + more


def _check_files(root: Path) -> bool:
    """Raise ``FileNotFoundError`` naming the missing files and listing the folder; return whether the valid
    set is present."""
    missing = [f for f in DSCMR_FILES if not (root / f).is_file()]
    valid_present = [f for f in _VALID_FILES if (root / f).is_file()]
    if valid_present and len(valid_present) < len(_VALID_FILES):
        missing += [f for f in _VALID_FILES if f not in valid_present]
    if missing:
        hint = ""
        subs = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "train_img.mat").is_file())
        if subs:
            hint = (f" (the DSCMR files are one level down, in {', '.join(f'{d}/' for d in subs)}: pass root= "
                    f"one of them, e.g. {str(root / subs[0])!r})")
        why = (f" (the valid set is all of {', '.join(_VALID_FILES)} or none of them; found "
               f"{', '.join(valid_present)})" if valid_present and any(f in _VALID_FILES for f in missing) else "")
        raise FileNotFoundError(f"{root}: missing {', '.join(missing)}{why}; the folder holds: {_listing(root)}"
                                f"{hint}. Expected layout: {DSCMR_LAYOUT}")
    return bool(valid_present)


def _load(root: Path, stem: str) -> Tuple[Path, np.ndarray]:
    path = root / f"{stem}.mat"
    return path, to_dense(load_mat(path, [stem], layout=DSCMR_LAYOUT)[stem])


def _labels(root: Path, stem: str, label_base: int) -> Tuple[Path, np.ndarray]:
    path, raw = _load(root, stem)
    if np.asarray(raw).size == 0:
        raise ValueError(f"{path}: '{stem}' holds no labels (shape {np.asarray(raw).shape}); the published "
                         f"{stem.split('_')[0]} set must not be empty")
    return path, class_indices(raw, None, str(path), stem, base=label_base)


def _features(root: Path, stem: str, n: int, lab_path: Path, lab_key: str) -> np.ndarray:
    path, raw = _load(root, stem)
    arr = np.asarray(raw)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{path}: '{stem}' must be a 2-d feature matrix (n x d), got shape {arr.shape}")
    if arr.shape[0] != n and arr.shape[1] == n:      # stored d x n (e.g. written from Python with h5py)
        arr = arr.T
    if arr.shape[0] != n:
        raise ValueError(f"{path} ('{stem}', shape {tuple(raw.shape)}) has {arr.shape[0]} rows but {lab_path} "
                         f"('{lab_key}') has {n} labels; a features file and its labels file must have one row per "
                         "item")
    return as_features(arr, str(path), stem)


def read_dscmr(root: PathLike, *, database: Optional[str] = "test", class_names: Optional[Sequence[str]] = None,
               label_base: int = 0) -> DatasetArrays:
    """Read one DSCMR-style split folder (see the module docstring for the files).

    Parameters
    ----------
    root:
        the folder holding ``train_img.mat`` ... ``test_img_lab.mat``.
    database:
        ``"test"`` (default, DSCMR's protocol): the test queries search the test set (stored as a copy, see the
        module docstring); ``"train"``: they search the training set; ``None``: no database split.
    class_names:
        names of the classes in label order (the files carry none); default ``"0"``, ``"1"``, ... ``"C-1"``
        with ``C`` = largest label + 1.
    label_base:
        ``0`` (the published files) or ``1`` for files whose classes are numbered from 1.

    Returns
    -------
    DatasetArrays
        modalities ``image`` and ``text`` (float32 ``[n, d]``); int64 labels; ``fixed_splits`` ``train``,
        ``query`` and (unless ``database=None``) ``database``, plus ``val`` / ``val_database`` when the valid
        files exist.

    Example
    -------
    >>> a = read_dscmr("../shared/data/dscmr/pascal")                # doctest: +SKIP
    >>> {k: len(v) for k, v in a.fixed_splits.items()}, a.num_classes  # doctest: +SKIP
    ({'train': 800, 'query': 100, 'database': 100}, 20)
    """
    if database not in DSCMR_DATABASES:
        raise ValueError(f"database must be 'test' (DSCMR: the test set), 'train' or None, got {database!r}")
    if label_base not in (0, 1) or isinstance(label_base, bool):
        raise ValueError(f"label_base must be 0 (the published DSCMR files) or 1, got {label_base!r}")
    root = require_dir(root, DSCMR_LAYOUT)
    sets = ["train"] + (["valid"] if _check_files(root) else []) + ["test"]

    labels: Dict[str, np.ndarray] = {}
    label_paths: Dict[str, Path] = {}
    for s in sets:
        label_paths[s], labels[s] = _labels(root, f"{s}_img_lab", label_base)
        if (root / f"{s}_txt_lab.mat").is_file():       # some releases: text labels, equal to the image labels
            tpath, tlab = _labels(root, f"{s}_txt_lab", label_base)
            if tlab.shape != labels[s].shape or not np.array_equal(tlab, labels[s]):
                diff = ("different lengths" if tlab.shape != labels[s].shape else
                        f"{int((tlab != labels[s]).sum())} rows differ, first at row "
                        f"{int(np.argmax(tlab != labels[s]))}")
                raise ValueError(f"{tpath} ('{s}_txt_lab', {tlab.size} labels) and {label_paths[s]} ('{s}_img_lab', "
                                 f"{labels[s].size} labels) must hold the same labels: {diff}")
    every = np.concatenate([labels[s] for s in sets])
    if label_base == 0 and every.size:
        lo, hi, distinct = int(every.min()), int(every.max()), int(np.unique(every).size)
        if lo == 1 and (hi == distinct or (class_names is not None and hi == len(class_names))):
            files = ", ".join(f"{label_paths[s]} ('{s}_img_lab')" for s in sets)
            raise ValueError(f"{files}: the class labels look 1-based (MATLAB numbering): no label is 0, the "
                             f"smallest is 1 and the largest is {hi} with {distinct} classes. DSCMR files number "
                             "classes from 0; pass label_base=1 if these files really number them from 1")
    num_classes = int(every.max()) + 1 if every.size else 0
    if class_names is None:
        names: List[str] = [str(c) for c in range(num_classes)]
    else:
        names = [str(c) for c in class_names]
        if len(set(names)) != len(names):
            raise ValueError(f"class_names repeat: {names}")
        if len(names) < num_classes:
            raise ValueError(f"{root}: class_names has {len(names)} names but the labels reach class "
                             f"{num_classes - 1} (classes numbered from 0 need {num_classes} names)")

    blocks: Dict[str, Dict[str, np.ndarray]] = {}
    for s in sets:
        n = labels[s].shape[0]
        lab_path, lab_key = label_paths[s], f"{s}_img_lab"
        blocks[s] = {m: _features(root, f"{s}_{stem}", n, lab_path, lab_key)
                     for m, stem in (("image", "img"), ("text", "txt"))}
    for m, stem in (("image", "img"), ("text", "txt")):
        dims = {s: blocks[s][m].shape[1] for s in sets}
        if len(set(dims.values())) > 1:
            raise ValueError(f"{root}: {', '.join(f'{s}_{stem}.mat has {d} columns' for s, d in dims.items())}; "
                             f"every {m} features file must have the same feature size")

    order = list(sets)
    if database == "test":
        order.append("test")              # the copy the test queries search (DSCMR: test against test)
        if "valid" in sets:
            order.append("valid")         # the copy the validation queries search
    starts, start = [], 0
    for s in order:
        starts.append(start)
        start += labels[s].shape[0]

    def rows(i: int) -> np.ndarray:
        return np.arange(starts[i], starts[i] + labels[order[i]].shape[0], dtype=np.int64)

    fixed: Dict[str, np.ndarray] = {"train": rows(0), "query": rows(sets.index("test"))}
    if "valid" in sets:
        fixed["val"] = rows(1)
    if database == "test":
        fixed["database"] = rows(len(sets))
        if "valid" in sets:
            fixed["val_database"] = rows(len(sets) + 1)
    elif database == "train":
        fixed["database"] = fixed["train"].copy()
        if "valid" in sets:
            fixed["val_database"] = fixed["train"].copy()
    return DatasetArrays(
        modalities={m: np.concatenate([blocks[s][m] for s in order]) for m in ("image", "text")},
        labels=np.concatenate([labels[s] for s in order]).astype(np.int64),
        class_names=names,
        fixed_splits=fixed,
        source=str(root),
    )
