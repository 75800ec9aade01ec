"""The concrete DataModules, one per dataset (registry names in brackets).

=====================  ==========================================  =========================  =====================
DataModule             data                                        default modalities/tasks   default protocol
=====================  ==========================================  =========================  =====================
Digits [digits]        sklearn's 1,797 8x8 digits, embedded        image<->text               class-balanced 300
                       (also ``sentence``, ``sketch``; attributes                             queries / 1,000
                       and class-name vectors; zero-shot 3,6,9)                               training items
Synthetic [synthetic]  seeded prototypes + noise, two linear       image<->text               random 10% queries
                       views of one latent
Wiki [wiki]            Wiki ``raw_features.mat`` + lists           image<->text               fixed: 2,173
                                                                                              train = database,
                                                                                              693 queries
Cifar10 [cifar10]      60,000 images (JPEG tree/tar or pickles)    image->image (pixels)      1,000 test queries
                                                                                              (100 / class),
                                                                                              59,000 train = db
Mnist [mnist]          MNIST IDX files                             image->image (pixels)      1,000 queries
                                                                                              (100 / class)
Cub10 [cub10]          CUB-200 10-class GoogLeNet + doc2vec        image<->text               class-balanced 100
Handwritten            UCI multi-feature digits, 6 views           two views (first two)      class-balanced 200
[handwritten]
Flickr [mirflickr,     DCMH/DJSRH ``*-lall/yall/iall.mat``         image<->text               DJSRH (2,000 / 5,000
nuswide]                                                                                      class-balanced);
                                                                                              ``protocol="dcmh"``
Xlsa17 [xlsa17]        ``res101.mat`` + ``att_splits.mat``         image->image on unseen     xlsa17 proposed split
Unified [unified]      one ``.mat`` with I/T/L _tr/_te/_db         image<->text               fixed (published)
Bundle [bundle]        documented ``.npz`` / ``.h5`` bundle         every modality             its published split
                                                                                              (train = database
                                                                                              when it has no
                                                                                              split_train), else
                                                                                              random 10%
=====================  ==========================================  =========================  =====================

Every DataModule takes the base arguments (``batch_size``, ``num_workers``, ``seed``, ``split_file``, ``protocol``,
``protocol_args`` or protocol keywords such as ``n_query=``, ``modalities``, ``tasks``, ...; see
:class:`~datamodules.base.RetrievalDataModule`). Those with class semantics take ``zero_shot=True`` (or
``unseen_classes=[...]`` / ``n_unseen=k``) for a zero-shot class hold-out; the tasks then run on unseen data.
File-based ones take ``root=`` (default ``../shared/data/<name>`` beside the repository, or
``$LIGHTNING_HASH_DATA/<name>``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np

from .arrays import DatasetArrays
from .base import RetrievalDataModule, Split
from .files import data_dir, default_root  # noqa: F401  (re-exported: datamodules.data_dir)
from .digits import DEFAULT_UNSEEN as DIGITS_UNSEEN

PathLike = Union[str, os.PathLike]

#: argument names that select the unseen classes (mutually exclusive), and likewise for validation classes
_EXCLUSIVE = (("unseen_classes", "n_unseen", "unseen_from"), ("val_classes", "n_val_classes", "val_classes_from"))


class _ZeroShotMixin:
    """Adds ``zero_shot=`` to a DataModule: switches the protocol to ``zero_shot`` with the dataset's defaults."""

    default_zero_shot_args: Dict[str, Any] = {}

    @classmethod
    def _zero_shot_kwargs(cls, zero_shot: bool, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        user = dict(kwargs.get("protocol_args") or {})
        user.update({k: v for k, v in kwargs.items() if k in _ALL_PROTOCOL_ARGS})
        wants = zero_shot or kwargs.get("protocol") == "zero_shot" or any(
            k in user for k in ("unseen_classes", "n_unseen", "unseen_from"))
        if not wants or kwargs.get("protocol") not in (None, "zero_shot"):
            return kwargs
        defaults = dict(cls.default_zero_shot_args)
        for group in _EXCLUSIVE:
            if any(k in user for k in group):
                for k in group:
                    defaults.pop(k, None)
        out = {k: v for k, v in kwargs.items() if k not in _ALL_PROTOCOL_ARGS and k != "protocol_args"}
        out["protocol"] = "zero_shot"
        out["protocol_args"] = {**defaults, **user}
        return out


def _protocol_arg_names() -> frozenset:
    from .protocols import PROTOCOLS, protocol_arguments
    return frozenset(a for p in PROTOCOLS for a in protocol_arguments(p))


_ALL_PROTOCOL_ARGS = _protocol_arg_names()


def _no_root(name: str, root: Any) -> None:
    if root is not None:
        raise ValueError(f"{name} is generated in memory and reads no files; do not pass root= (got {root!r})")


def _existing(path: Path, name: str, layout: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{name}: data not found at {path}. Expected {layout}. Pass root= (or set "
                                "LIGHTNING_HASH_DATA to the folder holding the datasets).")
    return path


# ============================================================================================ in memory
class ArraysDataModule(RetrievalDataModule):
    """A DataModule over a :class:`~datamodules.arrays.DatasetArrays` you already hold (your own data).

    >>> from datamodules.synthetic import make_synthetic
    >>> dm = ArraysDataModule(make_synthetic(n_items=100, n_classes=4), n_query=20)
    >>> dm.setup(); dm.tasks[0].name, len(dm.split.query)
    ('image->text', 20)
    """

    name = "arrays"
    default_protocol = "random"

    def __init__(self, arrays: DatasetArrays, name: str = "arrays", **kwargs: Any) -> None:
        if not isinstance(arrays, DatasetArrays):
            raise TypeError(f"arrays must be a DatasetArrays, got {type(arrays).__name__}")
        self._given = arrays
        super().__init__(**kwargs)
        self.name = name

    def load_arrays(self) -> DatasetArrays:
        return self._given


class DigitsDataModule(_ZeroShotMixin, RetrievalDataModule):
    """The embedded default: scikit-learn's handwritten digits with every modality (see :mod:`datamodules.digits`).

    Parameters
    ----------
    modalities: any of ``"image"``, ``"text"``, ``"sentence"``, ``"sketch"``, ``"regions"``; default ``("image",
        "text")``. E.g. ``("image",)`` single-modal (DVB), ``("regions", "sentence")`` (TVDB), ``("image", "sketch")`` (ZSIH:
        task sketch->image).
    zero_shot: hold out the unseen digits (default three, six, nine; ``unseen_classes=[...]`` or ``n_unseen=k``
        to change): training on seen digits only, 150 unseen test queries, database = the other unseen items.
    **kwargs: base DataModule arguments and protocol arguments (default protocol: class-balanced, 300 queries,
        1,000 training items drawn from the 1,497-item database).
    """

    name = "digits"
    default_protocol = "class_balanced"
    default_protocol_args = {"n_query": 300, "n_train": 1000}
    default_zero_shot_args = {"unseen_classes": list(DIGITS_UNSEEN), "n_query": 150, "database": "unseen"}
    default_modalities = ("image", "text")

    def __init__(self, zero_shot: bool = False, root: Any = None, **kwargs: Any) -> None:
        _no_root("digits", root)
        super().__init__(**self._zero_shot_kwargs(zero_shot, kwargs))

    def load_arrays(self) -> DatasetArrays:
        from .digits import cached_digits_arrays
        return cached_digits_arrays(regions="regions" in (self._modalities_arg or ()))

    def setup(self, stage: Optional[str] = None) -> None:
        from .digits import SENTENCE_VOCABULARY
        super().setup(stage)
        if "sentence" in self.modalities:
            self.vocabularies = {"sentence": list(SENTENCE_VOCABULARY)}


class SyntheticDataModule(_ZeroShotMixin, RetrievalDataModule):
    """Synthetic data with known structure (see :func:`datamodules.synthetic.make_synthetic`).

    The data are drawn with ``data_seed`` (fixed by default), the split with ``seed``.
    """

    name = "synthetic"
    default_protocol = "random"
    default_protocol_args = {"n_query": 0.1, "n_train": None}
    default_zero_shot_args = {"n_unseen": 2, "database": "unseen"}

    def __init__(self, n_items: int = 600, n_classes: int = 6, dims: Optional[Dict[str, int]] = None,
                 latent_dim: int = 8, noise: float = 0.3, view_noise: float = 0.0, multi_label: bool = False,
                 data_seed: int = 0, zero_shot: bool = False, root: Any = None, **kwargs: Any) -> None:
        _no_root("synthetic", root)
        self.generator_args = dict(n_items=n_items, n_classes=n_classes, dims=dims, latent_dim=latent_dim,
                                   noise=noise, view_noise=view_noise, multi_label=multi_label, seed=data_seed)
        super().__init__(**self._zero_shot_kwargs(zero_shot, kwargs))

    def load_arrays(self) -> DatasetArrays:
        from .synthetic import make_synthetic
        return make_synthetic(**self.generator_args)


# ============================================================================================ file based
class _FileDataModule(RetrievalDataModule):
    """A DataModule reading files under ``root`` (default: the shared data folder's ``<name>``)."""

    layout: str = "the published files"

    def __init__(self, root: Optional[PathLike] = None, backbone: Optional[str] = None,
                 backbone_args: Optional[Dict[str, Any]] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser() if root is not None else default_root(self.name)
        self.backbone, self.backbone_args = backbone, dict(backbone_args or {})

    def _root(self) -> Path:
        return _existing(self.root, self.name, self.layout)

    def _read(self) -> DatasetArrays:
        raise NotImplementedError

    def load_arrays(self) -> DatasetArrays:
        """The reader's arrays; with ``backbone=`` the raw ``image`` modality becomes timm backbone features
        (extracted once, cached on disk; see ``datamodules.readers.features``)."""
        arrays = self._read()
        if self.backbone is not None:
            from .readers import featurize
            image = arrays.modalities.get("image")
            if image is None or image.dtype != np.uint8 or image.ndim != 4:
                raise ValueError(f"{self.name}: backbone={self.backbone!r} needs raw uint8 images [n, H, W, C] in "
                                 f"modality 'image'; this data has {sorted(arrays.modalities)}"
                                 + ("" if image is None else f" (image {image.dtype} {image.shape})"))
            arrays = featurize(arrays, self.backbone, **self.backbone_args)
        return arrays


class WikiDataModule(_FileDataModule):
    """Wikipedia image-text (Rasiwasia et al. 2010): 2,173 train = database pairs, 693 queries, 10 classes.

    Modalities ``image`` (128-d SIFT BoVW) and ``text`` (10-d LDA topics); tasks image->text, text->image.
    """

    name = "wiki"
    default_protocol = "fixed"
    default_protocol_args = {"database": "database"}
    layout = "raw_features.mat, trainset_txt_img_cat.list, testset_txt_img_cat.list, categories.list"

    def _read(self) -> DatasetArrays:
        from .readers import read_wiki
        return read_wiki(self._root())


class Cifar10DataModule(_FileDataModule):
    """CIFAR-10, single-modal image->image with the hashing protocol (1,000 test queries, 100 per class).

    ``features``: ``"pixels"`` (default; 3,072-d vectors in [0, 1]) or ``"images"`` (``[3, 32, 32]`` tensors
    for a CNN backbone). ``cache``: the reader's decoded-image cache (see ``read_cifar10``).
    """

    name = "cifar10"
    default_protocol = "cifar10"
    default_flatten_images = True
    layout = "train/<class>/*.jpg + test/<class>/*.jpg, cifar10-jpeg.tar.gz, or the python pickle batches"

    def __init__(self, root: Optional[PathLike] = None, features: str = "pixels", cache: Union[bool, PathLike] = True,
                 **kwargs: Any) -> None:
        if features not in ("pixels", "images"):
            raise ValueError(f"features must be 'pixels' or 'images', got {features!r}")
        kwargs.setdefault("flatten_images", features == "pixels")
        super().__init__(root=root, **kwargs)
        self.features, self.cache = features, cache

    def _read(self) -> DatasetArrays:
        from .readers import read_cifar10
        return read_cifar10(self._root(), cache=self.cache)


class MnistDataModule(_ZeroShotMixin, _FileDataModule):
    """MNIST IDX files, image->image; 100 queries per class, the rest train and database.

    ``features``: ``"pixels"`` (784-d vectors, default) or ``"images"`` (``[1, 28, 28]``). The zero-shot mode
    holds out digits (default ``n_unseen=3``, seeded; or ``unseen_classes=["7", "8", "9"]``).
    """

    name = "mnist"
    default_protocol = "class_balanced"
    default_protocol_args = {"per_class_query": 100, "n_query": None, "n_train": None}
    default_zero_shot_args = {"n_unseen": 3, "n_query": 1000, "database": "unseen"}
    layout = "t10k-images-idx3-ubyte.gz + t10k-labels-idx1-ubyte.gz (and/or the train pair)"

    def __init__(self, root: Optional[PathLike] = None, features: str = "pixels", zero_shot: bool = False,
                 **kwargs: Any) -> None:
        if features not in ("pixels", "images"):
            raise ValueError(f"features must be 'pixels' or 'images', got {features!r}")
        kwargs.setdefault("flatten_images", features == "pixels")
        kwargs = self._zero_shot_kwargs(zero_shot, kwargs)
        super().__init__(root=root, **kwargs)
        self.features = features

    def _read(self) -> DatasetArrays:
        from .readers import read_mnist
        return read_mnist(self._root())


class Cub10DataModule(_ZeroShotMixin, _FileDataModule):
    """CUB-200 10-class subset: 600 image (GoogLeNet 1,024-d) / text (doc2vec 300-d) pairs, image<->text."""

    name = "cub10"
    default_protocol = "class_balanced"
    default_protocol_args = {"n_query": 100, "n_train": None}
    default_zero_shot_args = {"n_unseen": 3, "n_query": 60, "database": "unseen"}
    layout = "cub_googlenet_doc2vec_c10.mat (X: 1x2 cell of views, Y: labels)"

    def __init__(self, root: Optional[PathLike] = None, zero_shot: bool = False, **kwargs: Any) -> None:
        super().__init__(root=root, **self._zero_shot_kwargs(zero_shot, kwargs))

    def _file(self) -> Path:
        root = self._root()
        return root / "cub_googlenet_doc2vec_c10.mat" if root.is_dir() else root

    def _read(self) -> DatasetArrays:
        from .readers import read_cub10
        return read_cub10(self._file())


class HandwrittenDataModule(_ZeroShotMixin, _FileDataModule):
    """UCI handwritten multiple features: 2,000 digits in 6 views; cross-view retrieval between two of them.

    ``views``: the two (or more) views to serve, by name or 0-based position; default the first two views of the
    file. Single-view: ``views=("<name>",)``. ``view_names`` / ``class_names`` replace the UCI view names and the
    digit names (the reader's defaults; any other multi-view file: the ``multiview`` DataModule). A split whose
    queries outnumber the database (a file smaller than the default 200 queries allow) raises ``ValueError``
    saying what to change.
    """

    name = "handwritten"
    default_protocol = "class_balanced"
    default_protocol_args = {"n_query": 200, "n_train": None}
    default_zero_shot_args = {"n_unseen": 3, "n_query": 100, "database": "unseen"}
    layout = "handwritten.mat (X: 1x6 cell of views, Y: labels 0..9 or 1..10, detected)"

    def __init__(self, root: Optional[PathLike] = None, views: Optional[Sequence[Union[int, str]]] = None,
                 view_names: Optional[Sequence[str]] = None, class_names: Optional[Sequence[str]] = None,
                 zero_shot: bool = False, **kwargs: Any) -> None:
        modalities = kwargs.pop("modalities", None)
        if views is not None and modalities is not None:
            raise ValueError("give views= or modalities=, not both")
        views = tuple(views) if views is not None else modalities
        self.views = None if views is None else tuple(views)
        self.view_names = None if view_names is None else list(view_names)
        self.class_names_arg = None if class_names is None else list(class_names)
        super().__init__(root=root, **self._zero_shot_kwargs(zero_shot, kwargs))

    def _read(self) -> DatasetArrays:
        from .readers.multiview import read_handwritten, resolve_views
        root = self._root()
        path = root / "handwritten.mat" if root.is_dir() else root
        arrays = read_handwritten(path, view_names=self.view_names, class_names=self.class_names_arg)
        names = [m for m in arrays.modalities if m != "semantic"]
        self._modalities_arg = tuple(resolve_views(self.views, names, str(path)) if self.views is not None
                                     else names[:2])
        return arrays

    def make_split(self, arrays: DatasetArrays) -> Split:
        from .sizing import check_split_sizes
        split = super().make_split(arrays)
        check_split_sizes(self.name, split, arrays)
        return split


class FlickrDataModule(_FileDataModule):
    """MIRFlickr-25K / NUS-WIDE in the DCMH/DJSRH layout; image<->text, multi-label.

    Default protocol DJSRH (class-balanced per label: 2,000 queries, 5,000 training items; MIRFlickr with the
    official 80/200 per-label quotas); ``protocol="dcmh"`` for DCMH's (2,000 random queries, 10,000 training
    items from the database). ``image``: ``"auto"``, ``"raw"`` or ``"features"`` (the reader's choice of
    ``IAll`` images or ``XAll`` features); images are served as ``[3, H, W]`` in [0, 1].
    """

    name = "mirflickr"
    default_protocol = "djsrh"
    default_protocol_args = {"per_class_query": 80, "per_class_train": 200}
    layout = "mirflickr25k-lall.mat, mirflickr25k-yall.mat, mirflickr25k-iall.mat (or FLICKR-25K.mat)"

    def __init__(self, root: Optional[PathLike] = None, dataset: str = "mirflickr", image: str = "auto",
                 **kwargs: Any) -> None:
        if dataset not in ("mirflickr", "nuswide"):
            raise ValueError(f"dataset must be 'mirflickr' or 'nuswide', got {dataset!r}")
        self.dataset = dataset
        if dataset == "nuswide" and kwargs.get("protocol") in (None, "djsrh"):
            kwargs.setdefault("per_class_query", None)
            kwargs.setdefault("per_class_train", None)
        super().__init__(root=root if root is not None else default_root(dataset), **kwargs)
        self.name = dataset
        self.image = image

    def _read(self) -> DatasetArrays:
        from . import readers
        reader = readers.read_mirflickr if self.dataset == "mirflickr" else readers.read_nuswide
        return reader(self._root(), image=self.image)


class MirflickrDataModule(FlickrDataModule):
    """MIRFlickr-25K (see :class:`FlickrDataModule`), with the choice of the files read.

    ``features_file``: the image modality's file, e.g. ``mirflickr25k-iall-vgg.mat`` (the DCMH line's VGG
    features, ``XAll`` n x 4096) or ``mirflickr25k-iall-vgg-rand.mat`` (the shuffled -rand set, whose
    ``-lall-rand`` / ``-yall-rand`` files are then read); a bare name is looked up in ``root`` and its
    sub-folders. ``features_key``: its variable (default: the first of ``XAll``, ``IAll``, ``images``, ``I_all``
    it holds). ``labels_file`` / ``text_file``: the ``LAll`` / ``YAll`` files when they are not the standard
    names. ``file_set``: ``"auto"``, ``"plain"`` or ``"rand"`` (see ``datamodules.readers.flickr``). Without
    them the files found are read as before (``iall`` images, else the only features file).
    """

    name = "mirflickr"
    layout = ("mirflickr25k-lall.mat, mirflickr25k-yall.mat and mirflickr25k-iall.mat (images) or "
              "mirflickr25k-iall-vgg.mat / mirflickr25k-xall*.mat (XAll features), or the same names ending in "
              "-rand.mat; or FLICKR-25K.mat")

    def __init__(self, root: Optional[PathLike] = None, features_file: Optional[PathLike] = None,
                 features_key: Optional[str] = None, labels_file: Optional[PathLike] = None,
                 text_file: Optional[PathLike] = None, file_set: str = "auto", **kwargs: Any) -> None:
        if file_set not in ("auto", "plain", "rand"):
            raise ValueError(f"file_set must be 'auto', 'plain' or 'rand', got {file_set!r}")
        if features_file is not None and kwargs.get("image") == "raw":
            raise ValueError("image='raw' reads the raw IAll images, but features_file= names a features file; "
                             "give one of them")
        super().__init__(root=root, dataset="mirflickr", **kwargs)
        self.features_file, self.features_key = features_file, features_key
        self.labels_file, self.text_file, self.file_set = labels_file, text_file, file_set

    def _read(self) -> DatasetArrays:
        from .readers import read_mirflickr
        return read_mirflickr(self._root(), image=self.image, features_file=self.features_file,
                              features_key=self.features_key, labels_file=self.labels_file,
                              text_file=self.text_file, file_set=self.file_set)


class NuswideDataModule(FlickrDataModule):
    name = "nuswide"
    layout = "nus-wide-tc10-lall.mat, nus-wide-tc10-yall.mat, nus-wide-tc10-iall.mat (or NUS-WIDE.mat)"

    def __init__(self, root: Optional[PathLike] = None, **kwargs: Any) -> None:
        super().__init__(root=root, dataset="nuswide", **kwargs)


class Xlsa17DataModule(_FileDataModule):
    """Zero-shot retrieval on an xlsa17 dataset (AWA1, AWA2, CUB, SUN, APY) with its proposed split.

    Seen classes = the ``trainval`` classes, unseen = the ``test_unseen`` classes; training on ``trainval``;
    1,000 (at most a fifth) random unseen queries; database = the other unseen items (``database="all"``: plus
    every seen item, the SitNet/AgNet IBIR protocol). Validation queries come from ``test_seen`` (seen items not
    used for training). Task image->image on unseen data; ``class_queries="attributes"`` adds AgNet's
    attribute->image task. ``root``: the folder with ``res101.mat`` and ``att_splits.mat``.
    """

    name = "xlsa17"
    default_protocol = "xlsa17"
    layout = "res101.mat (features, labels) + att_splits.mat"

    def __init__(self, root: Optional[PathLike] = None, dataset: str = "AWA1", zero_shot: bool = True,
                 **kwargs: Any) -> None:
        if not zero_shot:   # accepted so that zero-shot configs (zero_shot: true) apply to xlsa17 unchanged
            raise ValueError("xlsa17 is a zero-shot dataset (its proposed split); zero_shot=False is not available")
        if root is None:
            first = default_root("xlsa17", dataset)
            root = first if first.exists() else default_root("semantics", "xlsa17", dataset)
        super().__init__(root=root, **kwargs)
        self.dataset = dataset

    @property
    def content_name(self) -> str:
        return f"xlsa17/{self.dataset}"

    def _read(self) -> DatasetArrays:
        from .readers import read_xlsa17
        return read_xlsa17(self._root())


class UnifiedDataModule(_FileDataModule):
    """One ``.mat`` in the unified split layout (``I_tr, T_tr, L_tr, I_te, T_te, L_te, I_db, T_db, L_db``)."""

    name = "unified"
    default_protocol = "fixed"
    default_protocol_args = {"database": "database"}
    layout = "a .mat with I_tr, T_tr, L_tr, I_te, T_te, L_te, I_db, T_db, L_db"

    def __init__(self, path: Optional[PathLike] = None, root: Optional[PathLike] = None, **kwargs: Any) -> None:
        if path is None and root is None:
            raise ValueError("unified: give path= (the .mat file)")
        super().__init__(root=path if path is not None else root, **kwargs)

    def _read(self) -> DatasetArrays:
        from .readers import read_unified
        return read_unified(self._root())


#: protocol arguments that name a published split (their string values are split names)
_SPLIT_ARGS = ("query_pool", "train_pool", "unseen_from", "val_classes_from")
#: the arguments of the ``fixed`` protocol that name published splits (``database`` also takes ``"rest"``)
_FIXED_SPLIT_ARGS = ("query", "train", "database")


class BundleDataModule(_ZeroShotMixin, _FileDataModule):
    """A user's own data in the documented ``.npz`` / ``.h5`` bundle (see ``datamodules.readers.read_bundle``).

    Published splits are used whenever the file carries any ``split_<name>`` arrays (protocol ``fixed``):

    * queries = ``split_query`` (required);
    * training set = ``split_train``, or, when the file has no ``split_train``, ``split_database``: the database
      doubles as the training set, as in the unsupervised / retrieval protocols of many hashing codes;
    * database = ``split_database``, or ``split_train`` when the file has no ``split_database``;
    * validation queries = ``split_val`` when present (their database: the test database without them), else
      drawn (seeded, ``n_val`` / ``val_pool``) from the database.

    A file whose split lacks ``split_query``, or has it without ``split_train`` and ``split_database``, raises
    ``ValueError`` naming the file, the split keys present and the ones missing; so do queries shared with the
    training set or the database (:meth:`Split.validate <datamodules.base.Split.validate>`). Without any split
    arrays a seeded random split is drawn (``n_query`` default 10%).

    A bundle's published split is never dropped silently. To draw another split from a file that publishes
    one, either give a protocol whose arguments use a published split as a pool (``protocol="cifar10"`` on a
    ``split_train`` + ``split_test`` bundle, ``query_pool="query"``, ``unseen_from="test_unseen"``, ...), or pass
    ``ignore_published_split=True`` (recorded in the split's ``params``); a protocol, sizes such as
    ``n_query=`` or zero-shot options without either are an error that says so.

    Parameters
    ----------
    path: the ``.npz`` / ``.h5`` file (``root=`` is accepted as a synonym).
    zero_shot: a zero-shot class hold-out (``unseen_classes=`` / ``n_unseen=`` ...), see the module docstring.
    ignore_published_split: draw the split with ``protocol`` (default ``random``) even though the file publishes one.
    check_index_base: refuse split indices that look 1-based (``read_bundle``); ``False`` when row 0 is
        deliberately in no split.
    """

    name = "bundle"
    default_protocol = "random"
    default_protocol_args = {"n_query": 0.1, "n_train": None}
    default_zero_shot_args = {"database": "unseen"}
    layout = "a .npz or .h5 bundle (modality arrays, labels, class_names, optional split indices)"

    def __init__(self, path: Optional[PathLike] = None, root: Optional[PathLike] = None, zero_shot: bool = False,
                 ignore_published_split: bool = False, check_index_base: bool = True, **kwargs: Any) -> None:
        if path is None and root is None:
            raise ValueError("bundle: give path= (the .npz / .h5 file)")
        if not isinstance(ignore_published_split, bool):
            raise ValueError(f"ignore_published_split must be True or False, got {ignore_published_split!r}")
        given = {**(kwargs.get("protocol_args") or {}), **kwargs}
        self._protocol_given = kwargs.get("protocol") is not None or zero_shot or any(
            k in given for k in ("unseen_classes", "n_unseen", "unseen_from"))
        self._sizes_given = sorted(k for k in given if k in _ALL_PROTOCOL_ARGS and k not in ("n_val", "val_pool"))
        self.ignore_published_split = ignore_published_split
        self.check_index_base = bool(check_index_base)
        self._published: Optional[Dict[str, Any]] = None   # how the published split is served, set by _read
        self._ignored: list = []                            # published splits set aside by ignore_published_split
        super().__init__(root=path if path is not None else root, **self._zero_shot_kwargs(zero_shot, kwargs))

    # ------------------------------------------------------------------ which splits the protocol names
    def _named_splits(self) -> set:
        """Published-split names the protocol's arguments (its table defaults included) refer to."""
        from .protocols import PROTOCOLS
        args = {**PROTOCOLS[self.protocol][1], **self.protocol_args}
        keys = _SPLIT_ARGS + (_FIXED_SPLIT_ARGS if self.protocol == "fixed" else ())
        return {v for k, v in args.items() if k in keys and isinstance(v, str) and v != "rest"}

    def _read(self) -> DatasetArrays:
        from .readers import read_bundle
        arrays = read_bundle(self._root(), split_names=sorted(self._named_splits()),
                             check_index_base=self.check_index_base)
        self._plan_split(arrays)
        return arrays

    def _plan_split(self, arrays: DatasetArrays) -> None:
        """Decide how the file's published split is served (see the class docstring); sets ``protocol``."""
        from .readers.bundle import RETRIEVAL_SPLITS
        fixed, src = arrays.fixed_splits, arrays.source
        present = ", ".join(f"split_{k} ({len(v)} rows)" for k, v in fixed.items())
        self._published, self._ignored = None, []
        if not fixed:
            if self.protocol == "fixed":
                raise ValueError(f"{src}: protocol 'fixed' serves a published split, but the file has no split_* "
                                 "arrays; leave protocol out to draw a seeded random split")
            return
        if self.ignore_published_split:
            self._ignored = sorted(fixed)
            return
        if self.protocol != "fixed" and (self._protocol_given or self._sizes_given):
            if self._protocol_given and self._named_splits() & set(fixed):
                return    # the protocol draws from the published rows (e.g. cifar10's query_pool='test')
            asked = " with ".join(x for x in (f"protocol '{self.protocol}'" if self._protocol_given else "",
                                              f"the arguments {self._sizes_given}" if self._sizes_given else "")
                                  if x)
            raise ValueError(
                f"{src} holds its own split ({present}), but {asked} would draw another and ignore it. Leave "
                "protocol/sizes out to use the published split, name a published split as the protocol's pool "
                "(e.g. query_pool='query'), or pass ignore_published_split=True to draw your own anyway")
        # serve the published split with the 'fixed' protocol
        user = dict(self.protocol_args) if self.protocol == "fixed" else {}
        if "query" not in fixed and "query" not in user:
            if "test" in fixed:
                how = ("draw the queries from split_test with protocol='cifar10' (100 per class) or "
                       "protocol='class_balanced', query_pool='test'")
            else:
                how = "pass ignore_published_split=True to draw a random split instead"
            raise ValueError(f"{src}: the published split is incomplete: it has {present} but no split_query (the "
                             "test queries), which every published retrieval split needs. Add split_query, or "
                             f"{how}")
        train = user.get("train", "train" if "train" in fixed else ("database" if "database" in fixed else None))
        database = user.get("database", "database" if "database" in fixed else None)
        if train is None:
            raise ValueError(f"{src}: the published split is incomplete: it has {present} but neither split_train "
                             "nor split_database, so there is no training set (it would be split_train, or "
                             "split_database when there is no split_train). Add one of them")
        val = "val" in fixed
        if val and any(k in self.protocol_args for k in ("n_val", "val_pool")):
            raise ValueError(f"{src} publishes its validation queries (split_val, {len(fixed['val'])} rows), so "
                             f"n_val / val_pool do not apply; leave them out")
        unused = sorted(set(fixed) - set(RETRIEVAL_SPLITS) - self._named_splits())
        if unused:
            warnings.warn(f"{src}: {', '.join(f'split_{k}' for k in unused)} not used: the published retrieval "
                          "split is split_train / split_query / split_database / split_val", stacklevel=3)
        self.protocol = "fixed"
        self.protocol_args = {**{k: v for k, v in self.protocol_args.items() if k in ("n_val", "val_pool")},
                              "query": user.get("query", "query"), "train": train, "database": database}
        if val:
            self.protocol_args["n_val"] = 0      # replaced by split_val in make_split
        def rows(spec: Any) -> str:
            if isinstance(spec, str):
                return "every item but the queries" if spec == "rest" else f"split_{spec}"
            return f"{len(spec)} explicit rows"

        origin = [f"query = {rows(self.protocol_args['query'])}",
                  f"train = {rows(train)}" + ("" if "train" in fixed or "train" in user
                                              else " (the file has no split_train)"),
                  f"database = {rows(database if database is not None else train)}"
                  + ("" if database is not None else " (the file has no split_database)")]
        if val:
            origin.append("val = split_val")
        self._published = {"origin": "; ".join(origin), "val": val}

    def make_split(self, arrays: DatasetArrays) -> Split:
        split = super().make_split(arrays)
        if self._published is not None:
            src = arrays.source
            if self._published["val"]:
                val = np.sort(np.asarray(arrays.fixed_splits["val"], dtype=np.int64))
                split.val, split.val_database = val, np.setdiff1d(split.database, val)
                split.params.update(n_val=int(val.size), val_pool="published")
                if split.val_database.size == 0:
                    raise ValueError(f"{src}: split_val covers the whole database, so the validation queries have "
                                     f"nothing to search ({self._published['origin']})")
            try:
                split.validate(arrays.num_items, arrays.labels)
            except ValueError as e:
                raise ValueError(f"{src}: the published split is inconsistent: {e} "
                                 f"({self._published['origin']})") from e
            split.params["published"] = self._published["origin"]
        elif self._ignored:
            split.params["published_split_ignored"] = [f"split_{k}" for k in self._ignored]
        return split
