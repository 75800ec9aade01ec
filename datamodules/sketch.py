"""Sketch-based image retrieval DataModules (Sketchy, TU-Berlin) for ZSIH, on features in the official ZSIH layout.

Images and sketches are different items in different numbers, so this DataModule holds two item pools and numbers
their rows in one index space: rows ``0 .. N_im - 1`` are the images, rows ``N_im .. N_im + N_sk - 1`` the
sketches; ``split.json`` records rows in that space and ``describe()`` gives both pool sizes.

Protocols (seeded, recorded in the split file)
----------------------------------------------
``split="zero_shot"`` (default; thesis section 5.4.2):

* unseen classes: ``unseen="random"`` draws ``n_unseen`` classes with the seed (Sketchy 25 of 125, TU-Berlin 30
  of 250) among the classes with at least ``min_unseen_images`` images (TU-Berlin: 400, the thesis' rule;
  Sketchy: 0); ``unseen="eccv18"``: the 21 classes of Yelamarthi et al. (ECCV 2018) listed in
  ``semantics/sketch_word2vec/zeroshot_classes_sketchy.txt``; or an explicit list of class names.
* train: every image and sketch of the seen classes (minus the validation items); test queries: the unseen
  sketches (``n_query`` to subsample); test database: every unseen image. Evaluation is sketch->image on the
  unseen classes only (mAP@all and P@100 through the shared loop; ``eval_map_at`` etc. are the method's).
* validation (model selection, never the test queries): ``n_val_classes`` seen classes held out of training
  (their sketches query their images), or, with ``n_val_classes=0`` (default), ``n_val`` seen sketches held out
  of training querying the seen images.

``split="conventional"`` (category-level SBIR, Table 5.3, the DSH protocol): ``per_class_query`` sketches per
class are the queries (Sketchy 50, TU-Berlin 10), every image is the database and, with the other sketches,
the training set; validation: ``n_val`` held-out training sketches against the images.

Batches
-------
Training: ``{"image": [B, d_im], "sketch": [B, d_sk], "label": multi-hot of the image's class, "sketch_label":
multi-hot of the sketch's class, "index": the image's row}``; every image is paired with a sketch of its own class,
drawn afresh each epoch as a pure function of ``(seed, epoch)`` (a per-class permutation of the training sketches),
so runs are reproducible and resumable. Evaluation sets hold one kind of item: ``{"sketch" | "image", "label",
"index"}``.

Class word vectors: ``dataset="sketchy" | "tuberlin"`` reads the 300-d word2vec of the class names from
``word_vectors_root`` (default ``../shared/data/semantics/sketch_word2vec``); without it, the files' ``wv``. Class
names come from ``class_names=`` or, when the files carry ``wv``, from matching each class's vector to the
vocabulary. A class without a word vector is a ``KeyError`` naming it.
"""
from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from lightning_hash.stats import standardization

from .arrays import DatasetArrays, multi_hot
from .base import RetrievalDataModule, RetrievalTask, Split, distributed_context
from .readers.sketch import SketchImageArrays, read_sketch_features

PathLike = Union[str, os.PathLike]

#: per dataset: classes, default unseen count, the >= images rule, conventional queries per class
SKETCH_DATASETS: Dict[str, Dict[str, int]] = {
    "sketchy": dict(num_classes=125, n_unseen=25, min_unseen_images=0, per_class_query=50),
    "tuberlin": dict(num_classes=250, n_unseen=30, min_unseen_images=400, per_class_query=10),
}
ECCV18_FILE = "zeroshot_classes_sketchy.txt"


def _rng(seed: int, stream: int) -> np.random.RandomState:
    return np.random.RandomState(np.array([int(seed), stream], dtype=np.uint32))


# ============================================================================================== the protocol
def sketch_split(image_labels: np.ndarray, sketch_labels: np.ndarray, class_names: Sequence[str], *,
                 split: str = "zero_shot", unseen: Union[str, Sequence[str]] = "random", n_unseen: Optional[int] = None,
                 min_unseen_images: int = 0, eccv18_classes: Optional[Sequence[str]] = None,
                 n_query: Optional[int] = None, per_class_query: Optional[int] = None, n_val_classes: int = 0,
                 n_val: Optional[int] = None, seed: int = 0) -> Split:
    """Seeded split of an image pool and a sketch pool (rows: images first, then sketches); see the module docstring.

    >>> im, sk = np.repeat(np.arange(4), 5), np.repeat(np.arange(4), 3)
    >>> s = sketch_split(im, sk, list("abcd"), unseen=["d"], n_val=2)
    >>> s.unseen_classes.tolist(), len(s.query), len(s.database), len(s.val)
    ([3], 3, 5, 2)
    """
    im, sk = np.asarray(image_labels, dtype=np.int64), np.asarray(sketch_labels, dtype=np.int64)
    n_im, C = len(im), len(class_names)
    lab = np.concatenate([im, sk])
    im_rows, sk_rows = np.arange(n_im), n_im + np.arange(len(sk))
    im_count = np.bincount(im, minlength=C)
    sk_count = np.bincount(sk, minlength=C)
    vrng = _rng(seed, 2)
    params: Dict[str, Any] = dict(split=split, seed=int(seed))

    def pick(pool: np.ndarray, k: Optional[int], what: str) -> np.ndarray:
        if k is None:
            return pool
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 0 < k <= len(pool):
            raise ValueError(f"sketch split: {what} must be an integer in [1, {len(pool)}], got {k!r}")
        rng = _rng(seed, 0) if what == "n_query" else vrng       # test queries: stream 0, validation: stream 2
        return np.sort(rng.permutation(pool)[:k])

    if split == "conventional":
        per = int(per_class_query or 0)
        if per <= 0:
            raise ValueError("sketch split: the conventional protocol needs per_class_query >= 1")
        qrng = _rng(seed, 0)
        query = []
        for c in range(C):
            rows = sk_rows[sk == c]
            if len(rows) <= per:
                raise ValueError(f"sketch split: class {class_names[c]!r} has {len(rows)} sketches, not more than "
                                 f"per_class_query={per}")
            query.append(qrng.permutation(rows)[:per])
        query = np.sort(np.concatenate(query))
        rest = np.setdiff1d(sk_rows, query)
        val = pick(rest, n_val if n_val is not None else min(len(query), len(rest) // 10), "n_val")
        train = np.concatenate([im_rows, np.setdiff1d(rest, val)])
        params.update(per_class_query=per, n_val=len(val))
        return Split(train=train, val=val, val_database=im_rows, query=query, database=im_rows, protocol="sketch",
                     seed=int(seed), params=params, num_items=len(lab), class_names=list(class_names))
    if split != "zero_shot":
        raise ValueError(f"sketch split: split must be 'zero_shot' or 'conventional', got {split!r}")

    # unseen classes
    crng = _rng(seed, 1)
    if isinstance(unseen, str) and unseen == "random":
        if n_unseen is None:
            raise ValueError("sketch split: unseen='random' needs n_unseen")
        eligible = np.flatnonzero((im_count >= int(min_unseen_images)) & (im_count > 0) & (sk_count > 0))
        if not 0 < int(n_unseen) <= len(eligible) or int(n_unseen) >= C:
            raise ValueError(f"sketch split: n_unseen={n_unseen} but {len(eligible)} classes have at least "
                             f"{min_unseen_images} images (and sketches) of {C}")
        unseen_ids = np.sort(crng.permutation(eligible)[:int(n_unseen)])
    else:
        names = list(eccv18_classes or []) if isinstance(unseen, str) and unseen == "eccv18" else list(unseen)
        if isinstance(unseen, str) and unseen not in ("random", "eccv18"):
            raise ValueError(f"sketch split: unseen must be 'random', 'eccv18' or a list of class names, "
                             f"got {unseen!r}")
        lookup = {n: i for i, n in enumerate(class_names)}
        missing = [n for n in names if n not in lookup]
        if missing or not names:
            raise ValueError(f"sketch split: unseen classes {missing or names} are not among the classes "
                             f"{list(class_names)[:10]}...")
        unseen_ids = np.sort(np.array([lookup[n] for n in names], dtype=np.int64))
        small = [class_names[c] for c in unseen_ids if im_count[c] < int(min_unseen_images)]
        if small:
            raise ValueError(f"sketch split: unseen classes {small} have fewer than {min_unseen_images} images")
    empty = [class_names[c] for c in unseen_ids if im_count[c] == 0 or sk_count[c] == 0]
    if empty:
        raise ValueError(f"sketch split: unseen classes {empty} have no images or no sketches")
    seen = np.setdiff1d(np.arange(C), unseen_ids)
    vcls = np.sort(crng.permutation(seen)[:int(n_val_classes)]) if n_val_classes else np.zeros(0, np.int64)
    train_cls = np.setdiff1d(seen, vcls)
    is_unseen = np.isin(lab, unseen_ids)
    query = pick(sk_rows[is_unseen[n_im:]], n_query, "n_query")
    database = im_rows[is_unseen[:n_im]]
    if vcls.size:
        val = sk_rows[np.isin(sk, vcls)]
        val_db = im_rows[np.isin(im, vcls)]
        train = np.concatenate([im_rows[np.isin(im, train_cls)], sk_rows[np.isin(sk, train_cls)]])
    else:
        seen_sk = sk_rows[np.isin(sk, seen)]
        val = pick(seen_sk, n_val if n_val is not None else max(1, min(len(query), len(seen_sk) // 10)), "n_val")
        val_db = im_rows[np.isin(im, seen)]
        train = np.concatenate([val_db, np.setdiff1d(seen_sk, val)])
    untrained = [class_names[c] for c in train_cls if not (np.any(im[train[train < n_im]] == c)
                                                          and np.any(lab[train[train >= n_im]] == c))]
    if untrained:
        raise ValueError(f"sketch split: seen classes {untrained} have no training images or sketches")
    params.update(unseen=unseen if isinstance(unseen, str) else "explicit", n_unseen=int(len(unseen_ids)),
                  min_unseen_images=int(min_unseen_images), n_query=int(len(query)), n_val_classes=int(vcls.size),
                  n_val=int(len(val)))
    extra = {"val_classes": vcls} if vcls.size else {}
    return Split(train=np.sort(train), val=val, val_database=val_db, query=query, database=database,
                 seen_classes=seen, unseen_classes=unseen_ids, extra=extra, protocol="sketch", seed=int(seed),
                 params=params, num_items=len(lab), class_names=list(class_names))


# ============================================================================================== datasets
def _multi_hot(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Float multi-hot batch labels (:func:`datamodules.arrays.multi_hot`)."""
    return torch.from_numpy(multi_hot(np.asarray(labels), num_classes).astype(np.float32))


class _Pools:
    """The two feature pools in the joint row space, with optional z-scoring per pool."""

    def __init__(self, arrays: SketchImageArrays, standardize: Dict[str, Tuple[np.ndarray, np.ndarray]]) -> None:
        self.arrays, self.n_im = arrays, arrays.image.shape[0]
        self.labels = np.concatenate([arrays.image_labels, arrays.sketch_labels])
        self.C = len(arrays.class_names)
        self.std = {k: (torch.from_numpy(m), torch.from_numpy(s)) for k, (m, s) in standardize.items()}

    def features(self, kind: str, rows: np.ndarray) -> torch.Tensor:
        src = self.arrays.image if kind == "image" else self.arrays.sketch
        local = rows if kind == "image" else rows - self.n_im
        t = torch.from_numpy(np.ascontiguousarray(src[local], dtype=np.float32))
        if kind in self.std:
            m, s = self.std[kind]
            t = (t - m) / s
        return t


class SketchEvalDataset(Dataset):
    """Rows of one kind (all images or all sketches): ``{kind: features, "label", "index"}``."""

    def __init__(self, pools: _Pools, rows: np.ndarray) -> None:
        self.pools, self.rows = pools, np.asarray(rows, dtype=np.int64)
        kinds = set(np.where(self.rows < pools.n_im, "image", "sketch").tolist())
        if len(kinds) > 1:
            raise ValueError("SketchEvalDataset: an evaluation set mixes images and sketches")
        self.kind = kinds.pop() if kinds else "image"

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, positions: Sequence[int]) -> Dict[str, torch.Tensor]:
        rows = self.rows[np.asarray(positions, dtype=np.int64)]
        return {self.kind: self.pools.features(self.kind, rows),
                "label": _multi_hot(self.pools.labels[rows], self.pools.C), "index": torch.from_numpy(rows.copy())}

    def __getitem__(self, position: int) -> Dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}


class PairedSketchDataset(Dataset):
    """Training pairs: every training image with a training sketch of its class, re-drawn each epoch.

    Positions ``k`` of the sampler encode the epoch: image ``k % n`` in epoch ``k // n`` (see
    :class:`EpochTaggedSampler`), so the pairing is a pure function of ``(seed, epoch)`` even in worker processes.
    """

    def __init__(self, pools: _Pools, train_rows: np.ndarray, seed: int) -> None:
        self.pools, self.seed = pools, int(seed)
        rows = np.asarray(train_rows, dtype=np.int64)
        self.images = rows[rows < pools.n_im]
        self.sketches = rows[rows >= pools.n_im]
        im_lab, sk_lab = pools.labels[self.images], pools.labels[self.sketches]
        lacking = sorted({pools.arrays.class_names[c] for c in np.unique(im_lab) if not np.any(sk_lab == c)})
        if lacking:
            raise ValueError(f"PairedSketchDataset: training classes {lacking} have images but no sketch to pair")
        self._by_class = {int(c): self.sketches[sk_lab == c] for c in np.unique(im_lab)}
        self._rank = np.zeros(len(self.images), dtype=np.int64)
        for c in np.unique(im_lab):
            where = np.flatnonzero(im_lab == c)
            self._rank[where] = np.arange(len(where))
        self._cache: Dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.images)

    def partners(self, epoch: int) -> np.ndarray:
        """The sketch row paired with each training image in ``epoch``."""
        if epoch not in self._cache:
            out = np.empty(len(self.images), dtype=np.int64)
            im_lab = self.pools.labels[self.images]
            for c, sk in self._by_class.items():
                perm = np.random.RandomState(np.array([self.seed, epoch, c], dtype=np.uint32)).permutation(len(sk))
                where = im_lab == c
                out[where] = sk[perm[self._rank[where] % len(sk)]]
            self._cache = {epoch: out}
        return self._cache[epoch]

    def __getitems__(self, positions: Sequence[int]) -> Dict[str, torch.Tensor]:
        pos = np.asarray(positions, dtype=np.int64)
        n = len(self.images)
        epochs, idx = pos // n, pos % n
        im_rows = self.images[idx]
        sk_rows = np.empty(len(pos), dtype=np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            sk_rows[sel] = self.partners(int(e))[idx[sel]]
        labels = self.pools.labels
        return {"image": self.pools.features("image", im_rows), "sketch": self.pools.features("sketch", sk_rows),
                "label": _multi_hot(labels[im_rows], self.pools.C),
                "sketch_label": _multi_hot(labels[sk_rows], self.pools.C), "index": torch.from_numpy(im_rows.copy())}

    def __getitem__(self, position: int) -> Dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}


class EpochTaggedSampler(DistributedSampler):
    """``DistributedSampler(shuffle=True, seed=seed)`` whose positions carry the epoch (``i + epoch * n``)."""

    def __iter__(self):
        n = len(self.dataset)
        return (int(i) + self.epoch * n for i in super().__iter__())


# ============================================================================================== the DataModule
class SketchDataModule(RetrievalDataModule):
    """Sketch-based image retrieval on features in the official ZSIH layout (module docstring).

    Parameters
    ----------
    root: folder holding the feature files (default ``../shared/data/<dataset>``); ``image_files`` /
        ``sketch_files`` default to its ``feat_img*.mat`` / ``feat_sk*.mat`` (the release's names).
    image_files, sketch_files: explicit file(s) per modality (several are stacked).
    arrays: a :class:`~datamodules.readers.sketch.SketchImageArrays` already in memory (instead of files).
    dataset: ``"sketchy"`` or ``"tuberlin"`` (defaults of the split and word vectors), or ``None``.
    split: ``"zero_shot"`` or ``"conventional"``.
    unseen: ``"random"``, ``"eccv18"`` (Sketchy) or a list of class names; n_unseen, min_unseen_images: the
        draw (defaults per dataset: Sketchy 25 / 0, TU-Berlin 30 / 400).
    n_query, n_val_classes, n_val, per_class_query: see the module docstring.
    class_names: class names in class-number order (list, or a text file with one per line).
    word_vectors_root: the ``sketch_word2vec`` folder.
    **kwargs: base DataModule arguments (``batch_size``, ``seed``, ``split_file``, ``standardize`` ...).
    """

    name = "sketch"

    def __init__(self, root: Optional[PathLike] = None, image_files: Union[None, PathLike, Sequence[PathLike]] = None,
                 sketch_files: Union[None, PathLike, Sequence[PathLike]] = None,
                 arrays: Optional[SketchImageArrays] = None, dataset: Optional[str] = None,
                 split: str = "zero_shot", unseen: Union[str, Sequence[str]] = "random",
                 n_unseen: Optional[int] = None, min_unseen_images: Optional[int] = None,
                 n_query: Optional[int] = None, n_val_classes: int = 0, n_val: Optional[int] = None,
                 per_class_query: Optional[int] = None, class_names: Union[None, PathLike, Sequence[str]] = None,
                 word_vectors_root: Optional[PathLike] = None, zero_shot: Optional[bool] = None,
                 **kwargs: Any) -> None:
        modalities = kwargs.pop("modalities", None)
        if modalities is not None and tuple(modalities) != ("image", "sketch"):
            raise ValueError(f"{type(self).__name__} serves modalities ('image', 'sketch'), got {list(modalities)}")
        for bad in ("protocol", "protocol_args", "tasks", "class_queries"):
            if bad in kwargs:
                raise ValueError(f"{type(self).__name__} draws its own sketch split and serves image/sketch with the "
                                 f"task sketch->image; {bad}= does not apply")
        super().__init__(**kwargs)
        if dataset is not None and dataset not in SKETCH_DATASETS:
            raise ValueError(f"dataset must be one of {sorted(SKETCH_DATASETS)} or None, got {dataset!r}")
        if zero_shot is not None:
            split = "zero_shot" if zero_shot else "conventional"
        if split not in ("zero_shot", "conventional"):
            raise ValueError(f"split must be 'zero_shot' or 'conventional', got {split!r}")
        d = SKETCH_DATASETS.get(dataset or "", {})
        from .datamodules import default_root
        self.dataset = dataset
        if dataset:
            self.name = dataset
        self.root = Path(root).expanduser() if root is not None else (default_root(dataset) if dataset else None)
        self.image_files, self.sketch_files, self._given = image_files, sketch_files, arrays
        self.word_vectors_root = (Path(word_vectors_root) if word_vectors_root is not None
                                  else default_root("semantics", "sketch_word2vec"))
        self.class_names_arg = class_names
        self.protocol = "sketch"
        self.protocol_args = dict(split=split, unseen=unseen if isinstance(unseen, str) else list(unseen),
                                  n_unseen=n_unseen if n_unseen is not None else d.get("n_unseen"),
                                  min_unseen_images=int(min_unseen_images if min_unseen_images is not None
                                                        else d.get("min_unseen_images", 0)),
                                  n_query=n_query, n_val_classes=int(n_val_classes), n_val=n_val,
                                  per_class_query=per_class_query if per_class_query is not None
                                  else d.get("per_class_query"))
        self.pools: Optional[SketchImageArrays] = None
        self.eccv18: Optional[List[str]] = None

    # ------------------------------------------------------------------ reading
    def load_sketch_arrays(self) -> SketchImageArrays:
        """The two pools, with class names and the class word vectors resolved (module docstring)."""
        if self._given is not None:
            arrays = self._given
        else:
            im, sk = self.image_files, self.sketch_files
            if im is None or sk is None:
                if self.root is None or not self.root.is_dir():
                    raise FileNotFoundError(f"{self.name}: no feature files: give image_files= and sketch_files=, or "
                                            f"root= a folder with feat_img*.mat and feat_sk*.mat (looked in "
                                            f"{self.root})")
                im = im if im is not None else sorted(self.root.glob("feat_img*.mat"))
                sk = sk if sk is not None else sorted(self.root.glob("feat_sk*.mat"))
                if not im or not sk:
                    raise FileNotFoundError(f"{self.root}: expected feat_img*.mat and feat_sk*.mat (the official ZSIH "
                                            "feature layout: 'feat', 'label', 'wv')")
            names = self.class_names_arg
            if isinstance(names, (str, os.PathLike)):
                names = [ln.strip() for ln in Path(names).read_text().splitlines() if ln.strip()]
            arrays = read_sketch_features(im, sk, class_names=names)
        return self._attach_word_vectors(arrays)

    def _attach_word_vectors(self, arrays: SketchImageArrays) -> SketchImageArrays:
        from .readers import read_sketch_word2vec
        from .readers._common import MissingKeyError
        if self.dataset is None:
            if "word_vectors" not in arrays.class_semantics:
                raise MissingKeyError(f"{arrays.source}: no class word vectors: the files have no 'wv' and no "
                                      "dataset= ('sketchy' / 'tuberlin') names a word2vec table")
            self._check_vectors(arrays, arrays.class_semantics["word_vectors"], arrays.source)
            return arrays
        table = read_sketch_word2vec(self.word_vectors_root, self.dataset)
        vocab, W = table.class_names, table.vectors["word_vectors"]
        names = list(arrays.class_names)
        if self.class_names_arg is None and "word_vectors" in arrays.class_semantics:
            names = _names_from_vectors(arrays.class_semantics["word_vectors"], vocab, W, names)
        lookup = {n: i for i, n in enumerate(vocab)}
        missing = [n for n in names if n not in lookup]
        if missing:
            raise MissingKeyError(f"{table.source}: no word vector for class(es) {missing[:10]} (of {len(missing)}); "
                                  "pass class_names= spelled as in the vocabulary")
        arrays.class_names = names
        arrays.class_semantics = {**arrays.class_semantics, "word_vectors": W[[lookup[n] for n in names]]}
        f = Path(self.word_vectors_root) / ECCV18_FILE
        if self.dataset == "sketchy" and f.is_file():
            self.eccv18 = [ln.strip() for ln in f.read_text().splitlines() if ln.strip()]
        return arrays

    @staticmethod
    def _check_vectors(arrays: SketchImageArrays, W: np.ndarray, source: str) -> None:
        from .readers._common import MissingKeyError
        bad = [arrays.class_names[c] for c in range(W.shape[0]) if not np.isfinite(W[c]).all() or not np.any(W[c])]
        if bad:
            raise MissingKeyError(f"{source}: no word vector for class(es) {bad[:10]} (no item of them carries 'wv')")

    # ------------------------------------------------------------------ setup
    def setup(self, stage: Optional[str] = None) -> None:
        """Read the pools, read or draw (and record) the split, build the datasets. Idempotent."""
        if self._ready:
            return
        pools = self.load_sketch_arrays()
        self.pools = pools
        n_im = pools.image.shape[0]
        kind = np.concatenate([np.zeros(n_im, np.float32), np.ones(pools.sketch.shape[0], np.float32)])[:, None]
        self.arrays = DatasetArrays(modalities={"kind": kind},
                                    labels=np.concatenate([pools.image_labels, pools.sketch_labels]),
                                    class_names=list(pools.class_names), source=pools.source)
        self.modalities = ("image", "sketch")
        self.class_names = list(pools.class_names)
        self.class_semantics = {k: torch.as_tensor(np.asarray(v, dtype=np.float32))
                                for k, v in pools.class_semantics.items()}
        self.split = self._resolve_split(self.arrays)
        self.split.class_names = self.split.class_names or list(self.class_names)
        self._build()
        self._ready = True

    def make_split(self, arrays: DatasetArrays) -> Split:
        args = dict(self.protocol_args)
        if args["unseen"] == "eccv18" and not getattr(self, "eccv18", None):
            raise FileNotFoundError(f"unseen='eccv18' needs dataset='sketchy' and "
                                    f"{self.word_vectors_root / ECCV18_FILE}")
        n_im = self.pools.image.shape[0]
        return sketch_split(arrays.labels[:n_im], arrays.labels[n_im:], arrays.class_names, seed=self.seed,
                            eccv18_classes=getattr(self, "eccv18", None), **args)

    def _build(self) -> None:
        pools, split = self.pools, self.split
        n_im = pools.image.shape[0]
        self._labels = self.arrays.multi_hot()
        self.input_dims = {k: int(a.shape[1]) if a.ndim == 2 else tuple(a.shape[1:])
                           for k, a in (("image", pools.image), ("sketch", pools.sketch))}
        std: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        if self.standardize:
            for kind, src, rows in (("image", pools.image, split.train[split.train < n_im]),
                                    ("sketch", pools.sketch, split.train[split.train >= n_im] - n_im)):
                mean, s = standardization(src[rows])
                std[kind] = (mean.astype(np.float32), s.astype(np.float32))
        self._pools = _Pools(pools, std)
        self.tasks = [RetrievalTask("sketch", "image")]
        self.train_dataset = PairedSketchDataset(self._pools, split.train, self.seed)

    def _dataset(self, rows: np.ndarray) -> Dataset:
        return SketchEvalDataset(self._pools, rows)

    def eval_dataset(self, stage: str, set_name: str) -> Dataset:
        return self._dataset(self.eval_rows(stage, set_name))

    def train_dataloader(self) -> DataLoader:
        """Shuffled image positions (a pure function of ``(seed, epoch)``), each paired with a sketch of its class."""
        self._require_setup()
        rank, world = distributed_context()
        sampler = EpochTaggedSampler(self.train_dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed,
                                     drop_last=False)
        return self._loader(self.train_dataset, sampler, self.batch_size, self.drop_last)

    def describe(self) -> Dict[str, Any]:
        out = super().describe()
        out.update(num_images=int(self.pools.image.shape[0]), num_sketches=int(self.pools.sketch.shape[0]))
        return out


class SketchyDataModule(SketchDataModule):
    """Sketchy (extended): 125 classes; zero-shot 100/25 random (seeded) or ``unseen="eccv18"`` (21 classes)."""

    name = "sketchy"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dataset", "sketchy")
        super().__init__(**kwargs)


class TuberlinDataModule(SketchDataModule):
    """TU-Berlin (extended): 250 classes; zero-shot 220/30 random among classes with >= 400 images."""

    name = "tuberlin"

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("dataset", "tuberlin")
        super().__init__(**kwargs)


def _names_from_vectors(W_items: np.ndarray, vocab: List[str], W: np.ndarray, fallback: List[str]) -> List[str]:
    """Class names by matching each class's vector (from ``wv``) to the vocabulary's (cosine > 0.999).

    Some vocabulary entries share one vector (Sketchy's ``crab`` / ``hermit_crab``: a synonym stood in for a
    missing word); among several matches the entry at the class's own position wins, else the first one not
    taken by another class. A class without a match keeps its number.
    """
    a = W_items / np.maximum(np.linalg.norm(W_items, axis=1, keepdims=True), 1e-12)
    b = W / np.maximum(np.linalg.norm(W, axis=1, keepdims=True), 1e-12)
    out: List[str] = []
    for c in range(a.shape[0]):
        if not np.isfinite(a[c]).all():
            out.append(fallback[c])
            continue
        matches = np.flatnonzero(b @ a[c] > 0.999).tolist()
        if not matches:
            out.append(fallback[c])
        elif c in matches:
            out.append(vocab[c])
        else:
            free = [j for j in matches if vocab[j] not in out]
            out.append(vocab[(free or matches)[0]])
    return out
