"""DataModules for two published cross-modal hashing layouts (registry names in brackets).

=====================  ==========================================  =========================  =====================
DataModule             data                                        default modalities/tasks   default protocol
=====================  ==========================================  =========================  =====================
Seph [seph]            SePH/RoPH ``.mat``: struct ``data`` (X1,    image<->text               fixed: train =
                       X2, Y, d x n) + struct ``split``                                       database = ind_train,
                       (ind_train, ind_test, 1-based)                                         queries = ind_test;
                                                                                              ``database="all"``
Nrch [nrch]            one HDF5 with Img/Tag/Lab x Train/Query/    image<->text               fixed: the published
                       DataBase                                                               train, query and
                                                                                              database sets
=====================  ==========================================  =========================  =====================

Both read one file: ``root=`` (or ``path=``) is the file, or a folder holding exactly one (default
``../shared/data/<name>``, or ``$LIGHTNING_HASH_DATA/<name>``). See :mod:`datamodules.readers.seph` and
:mod:`datamodules.readers.nrch` for the layouts.

>>> dm = SephDataModule(root="mirflickr_seph.mat", batch_size=128)            # doctest: +SKIP
>>> dm = SephDataModule(root="mirflickr_seph.mat", database="all")            # doctest: +SKIP
>>> dm = NrchDataModule(root="mirflickr.h5")                                  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

from .arrays import DatasetArrays
from .datamodules import PathLike, _FileDataModule

__all__ = ["SephDataModule", "NrchDataModule"]


def _database(value: Any) -> Any:
    """``database=`` of the SePH module: ``"train"`` -> the published ``database`` (= ``ind_train``), ``"all"`` ->
    the ``fixed`` protocol's ``"rest"`` (every item that is not a query); anything else unchanged."""
    return {"train": "database", "all": "rest"}.get(value, value) if isinstance(value, str) else value


class SephDataModule(_FileDataModule):
    """A SePH/RoPH struct file: ``data.X1`` (image), ``data.X2`` (text), ``data.Y`` (labels), ``split``.

    Protocol ``fixed``: training set ``ind_train``, queries ``ind_test``, database ``ind_train`` (the usual protocol
    for these files). ``database="all"``: every item that is not a query (``ind_train`` plus the items in neither
    index); any other ``fixed`` protocol value (a published split name, ``"rest"``) is passed through. Tasks image->text and text->image.

    Parameters
    ----------
    root / path: the ``.mat`` file, or a folder holding exactly one ``.mat`` with a ``data`` variable.
    split_path: a separate ``.mat`` holding the ``split`` struct (default: ``data.split`` or the top-level
        ``split`` of the same file).
    class_names: names of the ``C`` label columns (default ``"0"`` .. ``"C-1"``).
    database: ``"train"`` (default, ``ind_train``), ``"all"`` (every non-query item), or a ``fixed`` protocol value.
    """

    name = "seph"
    default_protocol = "fixed"
    default_protocol_args = {"database": "database"}
    layout = ("a SePH/RoPH .mat (struct data with X1, X2, Y as d x n, and struct split with 1-based ind_train, "
              "ind_test, as data.split or a top-level split)")

    def __init__(self, root: Optional[PathLike] = None, path: Optional[PathLike] = None,
                 split_path: Optional[PathLike] = None, class_names: Optional[Sequence[str]] = None,
                 database: Optional[str] = None, **kwargs: Any) -> None:
        if path is not None and root is not None:
            raise ValueError("seph: give root= or path= (the .mat file), not both")
        if database is not None:
            kwargs["database"] = _database(database)
        if isinstance(kwargs.get("protocol_args"), dict) and "database" in kwargs["protocol_args"]:
            kwargs["protocol_args"] = {**kwargs["protocol_args"],
                                       "database": _database(kwargs["protocol_args"]["database"])}
        super().__init__(root=path if path is not None else root, **kwargs)
        self.split_path = split_path
        self.class_names_arg = None if class_names is None else list(class_names)

    def _read(self) -> DatasetArrays:
        from .readers.seph import read_seph
        return read_seph(self._root(), split_path=self.split_path, class_names=self.class_names_arg)


class NrchDataModule(_FileDataModule):
    """An NRCH-style HDF5 file with ``Img*``, ``Tag*``, ``Lab*`` for ``Train``, ``Query`` and ``DataBase``.

    Protocol ``fixed``: the published training, query and database sets (rows stacked train, query, database; a
    training set that is also in the database is stored, and kept, twice). Tasks image->text and text->image.

    Parameters
    ----------
    root / path: the ``.h5`` / ``.hdf5`` / v7.3 ``.mat`` file, or a folder holding exactly one.
    orientation: ``"auto"`` (detected from the row counts), ``"rows"`` (``n x d``) or ``"columns"`` (``d x n``).
    class_names: names of the ``C`` label columns (default ``"0"`` .. ``"C-1"``).
    """

    name = "nrch"
    default_protocol = "fixed"
    default_protocol_args = {"database": "database"}
    layout = ("one HDF5 file with ImgTrain, TagTrain, LabTrain, ImgQuery, TagQuery, LabQuery, ImgDataBase, "
              "TagDataBase, LabDataBase")

    def __init__(self, root: Optional[PathLike] = None, path: Optional[PathLike] = None, orientation: str = "auto",
                 class_names: Optional[Sequence[str]] = None, **kwargs: Any) -> None:
        if path is not None and root is not None:
            raise ValueError("nrch: give root= or path= (the HDF5 file), not both")
        if orientation not in ("auto", "rows", "columns"):
            raise ValueError(f"orientation must be 'auto', 'rows' or 'columns', got {orientation!r}")
        super().__init__(root=path if path is not None else root, **kwargs)
        self.orientation = orientation
        self.class_names_arg = None if class_names is None else list(class_names)

    def _read(self) -> DatasetArrays:
        from .readers.nrch import read_nrch
        return read_nrch(self._root(), orientation=self.orientation, class_names=self.class_names_arg)
