"""The generic multi-view DataModule [multiview]: any ``.mat`` file with a view cell ``X`` and labels ``Y``.

The layout multi-view sets are published in (MNIST-USPS, MSRC-v5, 100Leaves, NGs, ORL, Caltech101-7 / -20,
Handwritten, ...; see :mod:`datamodules.readers.multiview`)::

    X   1 x V (or V x 1) cell of n x d_v (or d_v x n) views;   Y   n x 1 labels (1..C, 0..C-1 or with gaps)

``root`` (``--data-root``) is the ``.mat`` file, or a folder holding exactly one. Views are named ``view0``,
``view1``, ... (``view_names=[...]``: one name per view); ``views=[i, j]`` (positions and/or names) chooses the
modalities served, default the first two (cross-view retrieval ``view0<->view1``). Classes come from ``Y`` (their
number and numbering), named by their label values unless ``class_names=[...]`` is given.

Default split, sized from the data (no fixed count that a small file cannot hold): class-balanced, queries
``per_class_query = max(1, min(round(0.1 n / C), m // 2))`` per class, where ``m`` is the size of the smallest class
(about 10% of the data, and never more than half of a class), the rest is the database and the training set.
Zero-shot (``zero_shot=True``): ``n_unseen = max(1, min(C - 1, round(0.3 C)))`` unseen classes drawn from the
classes present in the file. Any size given (``n_query=``, ``per_class_query=``, ``n_unseen=``, ...) replaces
these. A split whose queries outnumber the database raises ``ValueError`` saying what to change
(:func:`check_split_sizes`, also applied by ``handwritten``).

Command line::

    python experiments/run.py --method cca_itq --data multiview --data-root data/Caltech101-7.mat \\
        --set data.views=[3,4] --set method.modalities=[view3,view4]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Union

import numpy as np  # noqa: F401 (the doctests use it)

from . import protocols as _protocols
from .arrays import DatasetArrays
from .datamodules import PathLike, _FileDataModule, _ZeroShotMixin
from .sizing import QUERY_FRACTION, _class_counts, check_split_sizes, default_per_class_query  # noqa: F401
from .split import Split

__all__ = ["MultiviewDataModule", "sized_protocol_args", "default_per_class_query", "check_split_sizes", "QUERY_FRACTION",
           "UNSEEN_FRACTION"]

#: default share of the classes held out as unseen in zero-shot mode
UNSEEN_FRACTION = 0.3
_QUERY_SIZES = ("n_query", "per_class_query")
_UNSEEN_SOURCES = ("unseen_classes", "n_unseen", "unseen_from")


def sized_protocol_args(protocol: str, args: Mapping[str, Any], arrays: DatasetArrays) -> Dict[str, Any]:
    """``args`` completed with the sizes drawn from the data (see the module docstring) where none was given.

    >>> from datamodules.arrays import DatasetArrays
    >>> a = DatasetArrays({"v": np.zeros((210, 2))}, np.repeat(np.arange(7), 30), [str(c) for c in range(7)])
    >>> sized_protocol_args("class_balanced", {"n_train": None}, a)
    {'n_train': None, 'per_class_query': 3, 'n_query': None}
    """
    out = dict(args)
    if protocol == "class_balanced" and not any(k in out for k in _QUERY_SIZES):
        out["per_class_query"] = default_per_class_query(arrays)
        out["n_query"] = None           # = per_class_query x classes (replaces the table's default 10%)
    if protocol == "zero_shot" and not any(k in out for k in _UNSEEN_SOURCES):
        num_classes = int((_class_counts(arrays) > 0).sum())
        if num_classes < 2:
            raise ValueError(f"{arrays.source}: a zero-shot split needs at least two classes with items; the data has "
                             f"{num_classes}")
        out["n_unseen"] = max(1, min(num_classes - 1, int(round(UNSEEN_FRACTION * num_classes))))
    return out


def _mat_file(root: Path, layout: str) -> Path:
    if root.is_file():
        return root
    files = sorted(p for p in root.glob("*.mat") if p.is_file())
    if len(files) != 1:
        found = [p.name for p in files] or "none"
        raise FileNotFoundError(f"multiview: {root} is a folder; give the .mat file itself as root (--data-root "
                                f"FILE), or a folder holding exactly one .mat file (found: {found}). Expected "
                                f"{layout}")
    return files[0]


class MultiviewDataModule(_ZeroShotMixin, _FileDataModule):
    """Any multi-view ``.mat`` file (``X`` cell of views, ``Y`` labels): cross-view retrieval between two views.

    Parameters
    ----------
    root: the ``.mat`` file (``--data-root``), or a folder holding exactly one.
    views: the views to serve, by 0-based position and/or name, in that order (default the first two; one view
        for single-view retrieval). ``--set data.views=[0,2]``.
    view_names: one modality name per view of the file (default ``view0``, ``view1``, ...).
    class_names: one name per class in the order of the sorted labels (default the label values).
    x_key, y_key: the variables holding the views and the labels.
    zero_shot: hold out unseen classes (default ``n_unseen`` about 30% of the classes present).
    **kwargs: base DataModule and protocol arguments (default protocol: class-balanced, sized from the data; see
        the module docstring).
    """

    name = "multiview"
    default_protocol = "class_balanced"
    default_protocol_args = {"n_train": None}
    default_zero_shot_args = {"database": "unseen"}
    layout = ("one .mat file with X: a 1 x V cell of n x d_v views (or d_v x n) and Y: n x 1 labels (MATLAB v5 or "
              "v7.3)")

    def __init__(self, root: Optional[PathLike] = None, views: Optional[Sequence[Union[int, str]]] = None,
                 view_names: Optional[Sequence[str]] = None, class_names: Optional[Sequence[str]] = None,
                 x_key: str = "X", y_key: str = "Y", zero_shot: bool = False, **kwargs: Any) -> None:
        modalities = kwargs.pop("modalities", None)
        if views is not None and modalities is not None:
            raise ValueError("give views= or modalities=, not both")
        chosen = views if views is not None else modalities
        if isinstance(chosen, (str, int)):
            chosen = [chosen]
        self.views = None if chosen is None else list(chosen)
        self.view_names = None if view_names is None else list(view_names)
        self.class_names_arg = None if class_names is None else list(class_names)
        self.x_key, self.y_key = x_key, y_key
        super().__init__(root=root, **self._zero_shot_kwargs(zero_shot, kwargs))

    def _read(self) -> DatasetArrays:
        from .readers.multiview import read_multiview, resolve_views
        path = _mat_file(self._root(), self.layout)
        arrays = read_multiview(path, view_names=self.view_names, class_names=self.class_names_arg,
                                x_key=self.x_key, y_key=self.y_key)
        names = list(arrays.modalities)
        self._modalities_arg = tuple(resolve_views(self.views, names, str(path)) if self.views is not None
                                     else names[:2])
        return arrays

    def make_split(self, arrays: DatasetArrays) -> Split:
        args = sized_protocol_args(self.protocol, self.protocol_args, arrays)
        split = _protocols.make_split(self.protocol, arrays.labels, seed=self.seed, class_names=arrays.class_names,
                                      fixed_splits=arrays.fixed_splits, **args)
        check_split_sizes(self.name, split, arrays)
        return split
