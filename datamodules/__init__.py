"""Data layer of lightning-hash: readers for published formats, seeded recorded splits, DataModules.

The registry::

    >>> import datamodules
    >>> dm = datamodules.create("digits", batch_size=64, seed=0)      # the embedded default, no files
    >>> dm.setup(); [t.name for t in dm.tasks]
    ['image->text', 'text->image']
    >>> "wiki" in datamodules.available()
    True

``create(name_or_path, **kwargs)`` takes a registered name or a path to a ``.npz`` / ``.h5`` bundle (served by
``bundle``). See :mod:`datamodules.datamodules` for the table of datasets, :mod:`datamodules.base` for the
batch and split contract and :mod:`datamodules.protocols` for the split protocols.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Type, Union

from .arrays import DatasetArrays
from .base import ContiguousShardSampler, RetrievalDataModule, RetrievalTask, Split
from .datamodules import (ArraysDataModule, BundleDataModule, Cifar10DataModule, Cub10DataModule, DigitsDataModule,
                          HandwrittenDataModule, MirflickrDataModule, MnistDataModule, NuswideDataModule,
                          SyntheticDataModule, UnifiedDataModule, WikiDataModule, Xlsa17DataModule, data_dir)

__all__ = ["DatasetArrays", "RetrievalDataModule", "RetrievalTask", "Split", "ContiguousShardSampler",
           "ArraysDataModule", "create", "available", "register", "get", "data_dir", "BUNDLE_SUFFIXES"]

BUNDLE_SUFFIXES = (".npz", ".h5", ".hdf5")

_REGISTRY: Dict[str, Type[RetrievalDataModule]] = {}


def register(name: str) -> Callable[[Type[RetrievalDataModule]], Type[RetrievalDataModule]]:
    """Class decorator adding a DataModule to the registry under ``name``."""
    def wrap(cls: Type[RetrievalDataModule]) -> Type[RetrievalDataModule]:
        if not (isinstance(cls, type) and issubclass(cls, RetrievalDataModule)):
            raise TypeError(f"register('{name}'): {cls!r} is not a RetrievalDataModule subclass")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a DataModule is already registered as '{name}': {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls
    return wrap


for _name, _cls in (("digits", DigitsDataModule), ("synthetic", SyntheticDataModule), ("wiki", WikiDataModule),
                    ("cifar10", Cifar10DataModule), ("mnist", MnistDataModule), ("cub10", Cub10DataModule),
                    ("handwritten", HandwrittenDataModule), ("mirflickr", MirflickrDataModule),
                    ("nuswide", NuswideDataModule), ("xlsa17", Xlsa17DataModule), ("unified", UnifiedDataModule),
                    ("bundle", BundleDataModule)):
    register(_name)(_cls)

from .captions import CaptionsDataModule, CocoDataModule, IaprDataModule  # noqa: E402  (TVDB's image-sentence sets)

for _name, _cls in (("captions", CaptionsDataModule), ("coco", CocoDataModule), ("iapr", IaprDataModule)):
    register(_name)(_cls)

from .sketch import SketchyDataModule, TuberlinDataModule  # noqa: E402  (ZSIH's sketch-image sets)

for _name, _cls in (("sketchy", SketchyDataModule), ("tuberlin", TuberlinDataModule)):
    register(_name)(_cls)
from .dscmr import DscmrDataModule  # noqa: E402  (DSCMR split folders)

register("dscmr")(DscmrDataModule)

from .seph import NrchDataModule, SephDataModule  # noqa: E402  (SePH/RoPH struct files, NRCH-style HDF5)

for _name, _cls in (("seph", SephDataModule), ("nrch", NrchDataModule)):
    register(_name)(_cls)

from .multiview import MultiviewDataModule  # noqa: E402  (generic multi-view .mat files)

register("multiview")(MultiviewDataModule)


def available() -> List[str]:
    """The registered DataModule names, sorted."""
    return sorted(_REGISTRY)


def get(name: str) -> Type[RetrievalDataModule]:
    """The DataModule class registered as ``name`` (``ValueError`` listing the valid names otherwise)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset '{name}'; valid names: {', '.join(available())}, or a path to a "
                         f"{'/'.join(BUNDLE_SUFFIXES)} bundle")
    return _REGISTRY[name]


def create(name_or_path: Union[str, os.PathLike], **kwargs: Any) -> RetrievalDataModule:
    """A DataModule by registry name, or the ``bundle`` DataModule for a path to a ``.npz`` / ``.h5`` file.

    Raises ``ValueError`` (listing the valid names) for an unknown name and ``FileNotFoundError`` for a bundle
    path that does not exist.
    """
    text = os.fspath(name_or_path)
    if text in _REGISTRY:
        return _REGISTRY[text](**kwargs)
    if Path(text).suffix.lower() in BUNDLE_SUFFIXES:
        if not Path(text).is_file():
            raise FileNotFoundError(f"bundle file not found: {text}")
        if "path" in kwargs or "root" in kwargs:
            raise ValueError(f"create('{text}') takes the bundle path as its first argument; do not also pass "
                             "path= or root=")
        return BundleDataModule(path=text, **kwargs)
    get(text)  # raises the ValueError listing the names
    raise AssertionError("unreachable")
