"""Wikipedia image-text set (Rasiwasia et al., ACM MM 2010) in its canonical feature release.

Files in ``root`` (the layout DJSRH's official code reads)::

    raw_features.mat             I_tr (2173 x 128) SIFT BoVW, T_tr (2173 x 10) LDA topics, I_te / T_te (693 rows)
    trainset_txt_img_cat.list    2173 lines "text_id<TAB>image_id<TAB>category(1..10)", row order of *_tr
    testset_txt_img_cat.list     693 lines, row order of *_te
    categories.list              the 10 category names, in category-number order

Returned rows are ``[train; test]`` (2,866 items). The standard protocol's fixed splits are returned as
``fixed_splits``: ``train`` = ``database`` = the 2,173 training pairs, ``query`` = the 693 test pairs.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from ..arrays import DatasetArrays
from ._common import PathLike, as_features, check_rows, read_lines, require_dir, require_file
from .mat import load_mat

__all__ = ["read_wiki", "WIKI_LAYOUT"]

WIKI_LAYOUT = ("a folder with raw_features.mat (I_tr, T_tr, I_te, T_te), trainset_txt_img_cat.list and "
               "testset_txt_img_cat.list (TAB-separated text_id, image_id, category 1..C; one line per row of the "
               "*_tr / *_te arrays) and categories.list (one category name per line)")


def _read_list(path: Path, num_classes: int) -> Tuple[List[str], List[str], np.ndarray]:
    text_ids, image_ids, cats = [], [], []
    for i, line in enumerate(read_lines(require_file(path, WIKI_LAYOUT)), start=1):
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}: line {i} has {len(parts)} fields, expected 3 (text_id, image_id, category): "
                             f"{line!r}")
        try:
            c = int(parts[2])
        except ValueError:
            raise ValueError(f"{path}: line {i}: category {parts[2]!r} is not an integer") from None
        if not 1 <= c <= num_classes:
            raise ValueError(f"{path}: line {i}: category {c} outside 1..{num_classes} (categories.list has "
                             f"{num_classes} names)")
        text_ids.append(parts[0])
        image_ids.append(parts[1])
        cats.append(c - 1)
    return text_ids, image_ids, np.asarray(cats, dtype=np.int64)


def read_wiki(root: PathLike) -> DatasetArrays:
    """Read the Wiki set (see the module docstring for the files).

    Parameters
    ----------
    root:
        folder holding ``raw_features.mat`` and the three ``.list`` files.

    Returns
    -------
    DatasetArrays
        modalities ``image`` (float32 ``[2866, 128]``) and ``text`` (float32 ``[2866, 10]``); int64 labels
        ``[2866]`` (category - 1); 10 class names; ``fixed_splits`` ``train`` and ``database`` (rows 0..2172),
        ``query`` (rows 2173..2865).

    Example
    -------
    >>> w = read_wiki("../shared/data/wiki")                          # doctest: +SKIP
    >>> len(w.fixed_splits["query"]), len(w.fixed_splits["database"]), w.num_classes   # doctest: +SKIP
    (693, 2173, 10)
    """
    root = require_dir(root, WIKI_LAYOUT)
    mat = root / "raw_features.mat"
    class_names = [ln.strip() for ln in read_lines(require_file(root / "categories.list", WIKI_LAYOUT))]
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"{root / 'categories.list'}: category names repeat: {class_names}")
    data = load_mat(mat, ["I_tr", "T_tr", "I_te", "T_te"], layout=WIKI_LAYOUT)
    _, _, y_tr = _read_list(root / "trainset_txt_img_cat.list", len(class_names))
    _, _, y_te = _read_list(root / "testset_txt_img_cat.list", len(class_names))
    blocks = {}
    for s, y, lst in (("tr", y_tr, "trainset_txt_img_cat.list"), ("te", y_te, "testset_txt_img_cat.list")):
        I = as_features(data[f"I_{s}"], str(mat), f"I_{s}")
        T = as_features(data[f"T_{s}"], str(mat), f"T_{s}")
        if I.ndim != 2 or T.ndim != 2:
            raise ValueError(f"{mat}: I_{s} and T_{s} must be 2-d feature matrices, got {I.shape} and {T.shape}")
        check_rows(str(root), **{f"I_{s}": I.shape[0], f"T_{s}": T.shape[0], lst: y.shape[0]})
        blocks[s] = (I, T, y)
    for j, m in ((0, "I"), (1, "T")):
        if blocks["tr"][j].shape[1] != blocks["te"][j].shape[1]:
            raise ValueError(f"{mat}: {m}_tr has {blocks['tr'][j].shape[1]} columns but {m}_te has "
                             f"{blocks['te'][j].shape[1]}")
    n_tr = blocks["tr"][2].shape[0]
    n_te = blocks["te"][2].shape[0]
    train = np.arange(n_tr, dtype=np.int64)
    return DatasetArrays(
        modalities={"image": np.concatenate([blocks["tr"][0], blocks["te"][0]]),
                    "text": np.concatenate([blocks["tr"][1], blocks["te"][1]])},
        labels=np.concatenate([y_tr, y_te]),
        class_names=class_names,
        fixed_splits={"train": train, "database": train.copy(), "query": np.arange(n_tr, n_tr + n_te, dtype=np.int64)},
        source=str(root),
    )
