"""The ``dscmr`` DataModule: DSCMR-style split folders (Pascal Sentences, Wiki, NUS-WIDE, XMediaNet as published
by the DSCMR line of repositories; files described in :mod:`datamodules.readers.dscmr`).

>>> dm = DscmrDataModule(root="../shared/data/dscmr/pascal")          # doctest: +SKIP
>>> dm.setup(); len(dm.split.query), len(dm.split.database), [t.name for t in dm.tasks]   # doctest: +SKIP
(100, 100, ['image->text', 'text->image'])
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from . import protocols as _protocols
from .arrays import DatasetArrays
from .base import Split
from .datamodules import PathLike, _FileDataModule

__all__ = ["DscmrDataModule"]


class DscmrDataModule(_FileDataModule):
    """A DSCMR-style split folder: ``train_img.mat``, ``train_txt.mat``, ``train_img_lab.mat``, the ``test_*``
    trio and optionally the ``valid_*`` trio. Modalities ``image`` and ``text``; tasks image->text, text->image.

    Default protocol ``fixed``, served as published: training set = the train files, queries = the test files,
    and

    * ``database="test"`` (default, DSCMR's evaluation): the test queries search the test set (a copy of the
      test rows, since query and database rows are kept disjoint; see :mod:`datamodules.readers.dscmr`);
    * ``database="train"``: they search the training set.

    Validation queries: the valid files when the folder has them (searching a copy of the valid set, or the
    training set with ``database="train"``; ``n_val`` / ``val_pool`` do not apply then). Without valid files,
    ``database="train"`` draws them like Wiki (seeded, from the training set), while ``database="test"`` runs no
    validation unless ``n_val=`` is given (they would be drawn from the test database).

    Another ``protocol=`` draws its own split from the rows ``[train; valid; test]`` (no copies, ``database=``
    does not apply). ``class_names``: names in label order (default ``"0"`` ... ``"C-1"``); ``label_base=1`` for
    files numbering classes from 1 (refused by default).
    """

    name = "dscmr"
    default_protocol = "fixed"
    default_protocol_args = {"database": "database"}
    default_modalities = ("image", "text")
    layout = ("a DSCMR split folder: train_img.mat, train_txt.mat, train_img_lab.mat, test_img.mat, test_txt.mat, "
              "test_img_lab.mat (optionally the valid_* trio), one variable per file named like it")

    def __init__(self, root: Optional[PathLike] = None, database: Optional[str] = None,
                 class_names: Optional[Sequence[str]] = None, label_base: int = 0, **kwargs: Any) -> None:
        if database not in (None, "test", "train"):
            raise ValueError(f"dscmr: database must be 'test' (DSCMR: queries search the test set) or 'train', "
                             f"got {database!r}")
        super().__init__(root=root, **kwargs)
        if self.protocol != "fixed" and database is not None:
            raise ValueError(f"dscmr: database={database!r} chooses the database of the published split (protocol "
                             f"'fixed'); protocol '{self.protocol}' draws its own split, so leave database= out")
        self.database = database or "test"
        self.class_names_arg = None if class_names is None else [str(c) for c in class_names]
        self.label_base = label_base

    def _read(self) -> DatasetArrays:
        from .readers.dscmr import read_dscmr
        return read_dscmr(self._root(), database=self.database if self.protocol == "fixed" else None,
                          class_names=self.class_names_arg, label_base=self.label_base)

    def make_split(self, arrays: DatasetArrays) -> Split:
        if self.protocol != "fixed":
            return super().make_split(arrays)
        fixed = arrays.fixed_splits
        args = dict(self.protocol_args)
        published_val = "val" in fixed
        if published_val:
            given = sorted(k for k in ("n_val", "val_pool") if k in args)
            if given:
                raise ValueError(f"{arrays.source}: the folder publishes its validation set (valid_*.mat, "
                                 f"{len(fixed['val'])} rows), so {', '.join(given)} do not apply; leave them out")
            args["n_val"] = 0                   # replaced by the published valid rows below
        elif self.database == "test" and "n_val" not in args:
            args["n_val"] = 0                   # never draw validation queries from the test set unasked
        split = _protocols.make_split(self.protocol, arrays.labels, seed=self.seed, class_names=arrays.class_names,
                                      fixed_splits=fixed, **args)
        if published_val:
            split.val = fixed["val"].copy()
            split.val_database = fixed["val_database"].copy()
            split.params.update(n_val=int(split.val.size), val_pool="published",
                                val_database="a copy of the valid rows" if self.database == "test" else "train")
        split.params["dscmr_database"] = self.database
        return split
