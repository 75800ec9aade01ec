"""Image-sentence DataModules for TVDB: MS-COCO and IAPR TC-12 protocols, and any captioned collection.

Served modalities (default ``("regions", "sentence")``):

``regions``   ``float32 [K + 1, D + 4]`` per item: the image's region sequence (K salient regions in decreasing
              attraction order, the whole image last), from :func:`lightning_hash.features.regions.extract_regions`
              (cached on disk; ``proposals="rpn"`` with Faster R-CNN weights, or the weight-free ``"grid"``
              fallback; ``feature`` a timm backbone name or ``"pixels:S"``), or read from ``regions_file``
              (``.npy`` ``[n_images, K + 1, D + 4]`` in the reader's image order) when given.
``sentence``  token ids ``[sentence_length]`` (``<eos>``, full stops removed, padded/truncated; see
              :mod:`datamodules.text`) of a vocabulary built from the TRAINING sentences only. The vocabulary is
              written beside the run's split file (``vocabulary.json``; or ``vocabulary_file``) and re-read
              when it exists (resume, test), and it travels in checkpoints with the split; after ``setup()``
              it is ``dm.vocabulary`` and ``dm.vocabularies["sentence"]``.

Items: ``captions="first"`` (default) one item per image with its first sentence (lowest caption id / first
line); ``captions="all"``: one item per (image, sentence) pair (an image's items share its regions and labels).

Protocols (thesis section 4.5.2, following DVSH):

* ``coco`` (:func:`coco_split`): gallery = every ``train2014`` image plus ``n_val_images`` = 5,000 random
  ``val2014`` images (about 87,000 with the 2014 files; the thesis says "around 85,000"); ``n_query`` = 5,000
  random gallery items are the queries, the rest of the gallery the database, ``n_train`` = 50,000 random
  database items the training set; validation queries are drawn from the database items not used for training.
  The other ``val2014`` images are in no set.
* ``iapr`` (:class:`IaprDataModule`): the table layout; only images carrying one of the ``top_classes`` = 22 most
  frequent labels are kept, with those 22 label columns (the thesis: 18,000 pairs); ``random`` protocol with
  2,200 queries and 5,000 training items drawn from the database (the rest of the gallery).

No MS-COCO or IAPR TC-12 files are available in this environment; the readers and protocols are tested on
small files written in the published layouts (``tests/datamodules/test_captions.py``).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from .arrays import DatasetArrays
from .base import Split, distributed_context
from .datamodules import PathLike, _FileDataModule
from .protocols import PROTOCOLS, STREAM_TEST, STREAM_VAL, _draw_val, _rng, _shuffled, _sorted, resolve_count
from .readers.captions import CaptionRecords, read_caption_table, read_coco_captions
from .text import DEFAULT_LENGTH, Vocabulary

VOCABULARY_FILE = "vocabulary.json"


# ============================================================================================== COCO protocol
def coco_split(labels: np.ndarray, *, fixed_splits: Optional[Mapping[str, np.ndarray]], n_query: Union[int, float] = 5000,
               n_train: Union[int, float] = 50000, n_val_images: Union[int, float] = 5000,
               train_subset: str = "train2014", val_subset: str = "val2014", n_val: Union[int, float, None] = None,
               val_pool: str = "auto", seed: int = 0, protocol: str = "coco") -> Split:
    """The DVSH/TVDB MS-COCO protocol (see the module docstring); ``fixed_splits`` name each image's subset.

    >>> fx = {"train2014": np.arange(0, 60), "val2014": np.arange(60, 100)}
    >>> s = coco_split(np.zeros(100, int), fixed_splits=fx, n_query=10, n_train=30, n_val_images=20)
    >>> len(s.query), len(s.database), len(s.train), len(np.intersect1d(s.query, np.arange(60, 100))) <= 10
    (10, 70, 30, True)
    """
    n = np.asarray(labels).shape[0]
    if not fixed_splits or train_subset not in fixed_splits or val_subset not in fixed_splits:
        found = sorted(fixed_splits) if fixed_splits else []
        raise KeyError(f"protocol '{protocol}' needs the published subsets '{train_subset}' and '{val_subset}'; "
                       f"the data has {found}")
    rng = _rng(seed, STREAM_TEST)
    val_images = np.asarray(fixed_splits[val_subset], dtype=np.int64)
    n_extra = resolve_count(n_val_images, len(val_images), "n_val_images", protocol)
    gallery = _sorted(np.concatenate([np.asarray(fixed_splits[train_subset], dtype=np.int64),
                                      _shuffled(rng, val_images)[:n_extra]]))
    q = resolve_count(n_query, len(gallery), "n_query", protocol)
    if q == 0 or q >= len(gallery):
        raise ValueError(f"protocol '{protocol}': n_query = {q} must lie in [1, {len(gallery)})")
    query = _sorted(_shuffled(rng, gallery)[:q])
    database = np.setdiff1d(gallery, query)
    t = resolve_count(n_train, len(database), "n_train", protocol)
    train = _sorted(_shuffled(rng, database)[:t])
    val, val_db, train, val_info = _draw_val(_rng(seed, STREAM_VAL), train, database, q, n_val, val_pool, protocol)
    params = dict(n_query=q, n_train=t, n_val_images=n_extra, gallery=len(gallery), **val_info)
    return Split(train=train, val=val, val_database=val_db, query=query, database=database, protocol=protocol,
                 seed=int(seed), params=params, num_items=n)


PROTOCOLS.setdefault("coco", (coco_split, dict(n_query=5000, n_train=50000, n_val_images=5000)))


# ============================================================================================== DataModules
class CaptionsDataModule(_FileDataModule):
    """Captioned images with category labels (COCO layout or the plain table), served for TVDB.

    Parameters
    ----------
    root: the dataset folder (COCO: the annotation JSONs; table: the folder of ``table_file``).
    layout: ``"coco"``, ``"table"`` or ``"auto"`` (``coco`` when ``captions_*.json`` files are present).
    table_file: the table's file name under ``root`` (or a path).
    splits: COCO subsets to read. image_root: folder of the images (default ``root``).
    captions: ``"first"`` or ``"all"`` (see the module docstring).
    sentence_length, min_count, max_vocab: tokenizer settings (:mod:`datamodules.text`).
    vocabulary_file: where the vocabulary is kept (default: ``vocabulary.json`` beside ``split_file``).
    regions_file: precomputed region sequences (``.npy``), else they are extracted from the images with
        ``k``, ``proposals``, ``feature``, ``saliency``, ``pad``, ``rpn_weights``, ``pretrained``, ``region_cache``
        (see :func:`lightning_hash.features.regions.extract_regions`).
    top_classes: keep only images with one of the most frequent ``top_classes`` labels (and those columns).
    unlabelled: images without any label: ``"drop"`` (with a warning and a record) or ``"error"``.
    **kwargs: base DataModule and protocol arguments.
    """

    name = "captions"
    default_protocol = "random"
    default_protocol_args = {"n_query": 0.1, "n_train": None}
    default_modalities = ("regions", "sentence")
    layout = "COCO caption/instance JSONs or a table (image_id, sentence, labels)"

    def __init__(self, root: Optional[PathLike] = None, layout: str = "auto", table_file: str = "captions.tsv",
                 splits: Sequence[str] = ("train2014", "val2014"), image_root: Optional[PathLike] = None,
                 captions: str = "first", sentence_length: int = DEFAULT_LENGTH, min_count: int = 1,
                 max_vocab: Optional[int] = None, vocabulary_file: Optional[PathLike] = None,
                 regions_file: Optional[PathLike] = None, k: int = 20, proposals: str = "grid",
                 feature: str = "pixels:8", saliency: str = "spectral_residual", pad: str = "whole",
                 rpn_weights: Optional[str] = "DEFAULT", pretrained: bool = True,
                 region_cache: Union[bool, PathLike] = True, top_classes: Optional[int] = None,
                 unlabelled: Optional[str] = None, **kwargs: Any) -> None:
        if layout not in ("auto", "coco", "table"):
            raise ValueError(f"layout must be 'auto', 'coco' or 'table', got {layout!r}")
        if captions not in ("first", "all"):
            raise ValueError(f"captions must be 'first' or 'all', got {captions!r}")
        if top_classes is not None and int(top_classes) < 1:
            raise ValueError(f"top_classes must be a positive integer or None, got {top_classes}")
        super().__init__(root=root, **kwargs)
        self.layout_choice, self.table_file, self.splits = layout, table_file, tuple(splits)
        self.image_root = image_root
        self.captions, self.sentence_length = captions, int(sentence_length)
        self.min_count, self.max_vocab = int(min_count), max_vocab
        self.vocabulary_file = Path(vocabulary_file) if vocabulary_file is not None else (
            self.split_file.with_name(VOCABULARY_FILE) if self.split_file is not None else None)
        self.regions_file = regions_file
        self.region_args = dict(k=int(k), proposals=proposals, feature=feature, saliency=saliency, pad=pad,
                                rpn_weights=rpn_weights, pretrained=pretrained, cache=region_cache)
        self.top_classes = top_classes
        self.unlabelled = unlabelled
        self.vocabulary: Optional[Vocabulary] = None
        self._pending_vocabulary: Optional[Vocabulary] = None
        self.records: Optional[CaptionRecords] = None
        self.region_info: Dict[str, Any] = {}

    # ------------------------------------------------------------------ reading
    def _records(self) -> CaptionRecords:
        root = self._root()
        layout = self.layout_choice
        if layout == "auto":
            folder = root if root.is_dir() else root.parent
            ann = folder / "annotations" if (folder / "annotations").is_dir() else folder
            layout = "coco" if any(ann.glob("captions_*.json")) else "table"
        if layout == "coco":
            rec = read_coco_captions(root, self.splits, image_root=self.image_root,
                                     unlabelled=self.unlabelled or "drop")
        else:
            table = root if root.is_file() else root / self.table_file
            rec = read_caption_table(table, image_root=self.image_root, unlabelled=self.unlabelled or "error")
        if self.top_classes is not None:
            counts = rec.labels.sum(axis=0)
            if int(self.top_classes) > len(counts):
                raise ValueError(f"top_classes={self.top_classes} but the data has {len(counts)} labels")
            top = np.sort(np.argsort(-counts, kind="stable")[:int(self.top_classes)])
            keep = np.flatnonzero(rec.labels[:, top].sum(axis=1) > 0)
            rec = rec.subset(keep, top)
        return rec

    def _regions(self, rec: CaptionRecords) -> np.ndarray:
        if self.regions_file is not None:
            path = Path(self.regions_file).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"regions_file {path} not found (expected .npy [n_images, K + 1, D + 4])")
            regions = np.load(path, mmap_mode="r")
            if regions.ndim != 3 or regions.shape[0] != len(rec):
                raise ValueError(f"{path}: shape {regions.shape}, expected [{len(rec)}, K + 1, D + 4] (one row per "
                                 "image, in the reader's image order)")
            self.region_info = {"regions_file": str(path)}
            return np.asarray(regions, dtype=np.float32)
        missing = [i for i, f in zip(rec.image_ids, rec.image_files) if f is None]
        if missing:
            raise FileNotFoundError(f"{self.name}: no image file for {len(missing)} image(s), e.g. {missing[:5]} "
                                    f"(looked under {self.image_root or self._root()}); give image_root= or a "
                                    "regions_file")
        regions, info = __import__("lightning_hash.features.regions", fromlist=["extract_regions"]).extract_regions(
            rec.image_files, names=rec.image_ids, **self.region_args)
        if info["padded_images"]:
            warnings.warn(f"{self.name}: {info['padded_images']} image(s) had fewer than K={info['k']} region "
                          f"proposals and were padded (pad={self.region_args['pad']!r})", stacklevel=2)
        self.region_info = info
        return regions

    def _train_rows(self, labels: np.ndarray, class_names: List[str], fixed: Dict[str, np.ndarray]) -> np.ndarray:
        """The training rows the vocabulary is built from: the split the base class will use."""
        if self._pending_split is not None:
            return self._pending_split.train
        if self.split_file is not None and self.split_file.is_file():
            return Split.load(self.split_file).train
        from .protocols import make_split
        return make_split(self.protocol, labels, seed=self.seed, class_names=class_names, fixed_splits=fixed,
                          **self.protocol_args).train

    def load_arrays(self) -> DatasetArrays:
        """Read the records, build (or re-read) the vocabulary from the training rows, encode the sentences and
        extract (or read) the region sequences."""
        rec = self._records()
        self.records = rec
        if self.captions == "first":
            image_of_row = np.arange(len(rec), dtype=np.int64)
            sentences = [s[0] for s in rec.sentences]
        else:
            image_of_row = np.repeat(np.arange(len(rec)), [len(s) for s in rec.sentences]).astype(np.int64)
            sentences = [x for s in rec.sentences for x in s]
        labels = rec.labels[image_of_row]
        fixed: Dict[str, np.ndarray] = {}
        for tag in sorted(set(rec.subsets) - {""}):
            members = np.flatnonzero(np.asarray(rec.subsets) == tag)
            fixed[tag] = np.flatnonzero(np.isin(image_of_row, members)).astype(np.int64)
        names = [f"{rec.image_ids[i]}" for i in image_of_row]
        vocab = self._pending_vocabulary
        if vocab is None and self.vocabulary_file is not None and self.vocabulary_file.is_file():
            vocab = Vocabulary.load(self.vocabulary_file)
        if vocab is None:
            train = self._train_rows(labels, rec.class_names, fixed)
            vocab = Vocabulary.build([sentences[i] for i in train], min_count=self.min_count,
                                     max_size=self.max_vocab, length=self.sentence_length)
            if self.vocabulary_file is not None and distributed_context()[0] == 0:
                vocab.save(self.vocabulary_file)
        if vocab.length != self.sentence_length:
            raise ValueError(f"the vocabulary ({self.vocabulary_file}) encodes {vocab.length} tokens but "
                             f"sentence_length={self.sentence_length}")
        ids = vocab.encode_many(sentences, names=names)
        self.vocabulary = vocab
        self.sentence_stats = {"truncated": vocab.last_truncated, "unknown_tokens": vocab.last_unknown,
                               "vocabulary_size": len(vocab)}
        modalities = {"sentence": ids}
        wanted = self._modalities_arg or self.default_modalities
        if "regions" in wanted:
            modalities["regions"] = self._regions(rec)[image_of_row]
        return DatasetArrays(modalities=modalities, labels=labels, class_names=list(rec.class_names),
                             fixed_splits=fixed, source=rec.source)

    def setup(self, stage: Optional[str] = None) -> None:
        """The base setup, then ``vocabularies["sentence"]`` = the vocabulary's tokens (id = position)."""
        super().setup(stage)
        self.vocabularies = {"sentence": list(self.vocabulary.tokens)}

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> Dict[str, Any]:
        """The split and the vocabulary, for checkpoints."""
        out = super().state_dict()
        if self.vocabulary is not None:
            out["vocabulary"] = self.vocabulary.to_dict()
        return out

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore the split and the vocabulary of a checkpoint (before ``setup()``: they are used as drawn)."""
        if state_dict and "vocabulary" in state_dict:
            restored = Vocabulary.from_dict(state_dict["vocabulary"], source="checkpoint")
            if not self._ready:
                self._pending_vocabulary = restored
            elif restored != self.vocabulary:
                raise ValueError(f"{self.name}: the checkpoint's vocabulary differs from the one this DataModule "
                                 f"built ({self.vocabulary_file}); token ids would not match the trained model")
        super().load_state_dict(state_dict)

    def describe(self) -> Dict[str, Any]:
        """The base summary plus sentence statistics, region settings and dropped images."""
        out = super().describe()
        out.update(sentences=getattr(self, "sentence_stats", {}), regions={k: v for k, v in self.region_info.items()},
                   dropped_unlabelled=len(self.records.dropped_unlabelled) if self.records else 0)
        return out


class CocoDataModule(CaptionsDataModule):
    """MS-COCO 2014 captions + instances with the DVSH/TVDB protocol (``coco``; see the module docstring)."""

    name = "coco"
    default_protocol = "coco"
    default_protocol_args: Dict[str, Any] = {}
    layout = "annotations/captions_train2014.json, instances_train2014.json (and val2014), images train2014/, val2014/"

    def __init__(self, root: Optional[PathLike] = None, **kwargs: Any) -> None:
        kwargs.setdefault("layout", "coco")
        super().__init__(root=root, **kwargs)


class IaprDataModule(CaptionsDataModule):
    """IAPR TC-12 in the table layout: 22 most frequent topics, 2,200 queries, 5,000 training items."""

    name = "iapr"
    default_protocol = "random"
    default_protocol_args = {"n_query": 2200, "n_train": 5000}
    layout = "captions.tsv (image_id, sentence, labels[, file]) and the images (<image_id>.jpg)"

    def __init__(self, root: Optional[PathLike] = None, top_classes: Optional[int] = 22, **kwargs: Any) -> None:
        kwargs.setdefault("layout", "table")
        super().__init__(root=root, top_classes=top_classes, **kwargs)
