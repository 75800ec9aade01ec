"""The DataModule contract every dataset follows: tasks, recorded splits, batches, samplers.

* :class:`RetrievalTask`: one (query modality, database modality) pair and the evaluation sets it uses.
* :class:`Split`: the named row sets of one run (``train``, ``val``, ``val_database``, ``query``,
  ``database``; ``seen_classes`` / ``unseen_classes`` for zero-shot), saved as human-readable JSON with the
  protocol, its parameters, the seed and a fingerprint of the data, and re-read on resume so that a run's
  split never changes.
* :class:`RetrievalDataModule`: ``setup()`` loads the arrays (:meth:`~RetrievalDataModule.load_arrays`), reads
  the split file or draws the split with the dataset's protocol and writes it, and serves batches::

      {"image": float [B, ...], "text": float [B, d], ..., "label": float multi-hot [B, C], "index": long [B]}

  (plus ``"semantic"`` float ``[B, d]`` where the data has per-item semantic vectors). Training batches come
  from a ``DistributedSampler(shuffle=True, seed=seed)`` (a pure function of seed and epoch); evaluation
  batches from a :class:`ContiguousShardSampler` (no shuffling, no padding, rank ``r`` of ``W`` gets rows
  ``[r*n//W, (r+1)*n//W)``), so under DDP nothing is evaluated twice.

Feature conversion (per batch, so large uint8 image arrays are never copied as floats): floating arrays are
served as float32; ``uint8`` arrays are pixels, scaled to ``[0, 1]``; ``uint8`` images ``[n, H, W]`` /
``[n, H, W, C]`` become ``[B, 1|C, H, W]`` (or, with ``flatten_images=True``, those tensors flattened, i.e.
vectors in ``[C, H, W]`` order); other integer
arrays (token ids) are served as float32 holding exact integers (cast with ``.long()`` for an embedding).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from lightning_hash.contract import ContiguousShardSampler, RetrievalTask, collate_batch, distributed_context
from lightning_hash.stats import standardization

from . import protocols as _protocols
from .arrays import DatasetArrays
from .content import check_content
from .split import Split, data_fingerprint

STAGES = ("val", "test")


# ============================================================================================== tasks
# ============================================================================================== samplers
# ============================================================================================== datasets
def _convert(rows: np.ndarray, flatten_images: bool) -> torch.Tensor:
    """One modality's rows as a float32 tensor (see the module docstring for the rules)."""
    if rows.dtype == np.uint8:
        t = torch.from_numpy(np.ascontiguousarray(rows)).float().div_(255.0)
        if t.ndim == 3:            # [B, H, W] grey images
            t = t.unsqueeze(1)
        elif t.ndim == 4:          # [B, H, W, C] -> [B, C, H, W]
            t = t.permute(0, 3, 1, 2).contiguous()
        return t.reshape(t.shape[0], -1) if flatten_images else t
    t = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    return t.reshape(t.shape[0], -1) if (flatten_images and t.ndim > 2) else t


def served_shape(array: np.ndarray, flatten_images: bool) -> Union[int, Tuple[int, ...]]:
    """The per-item shape a modality is served with: an int for vectors, a tuple for images."""
    probe = _convert(np.asarray(array[:1]), flatten_images)
    shape = tuple(probe.shape[1:])
    return int(shape[0]) if len(shape) == 1 else shape


class ArrayDataset(Dataset):
    """Rows of in-memory arrays served as batch dicts.

    ``__getitems__`` builds a whole batch with one fancy index per modality (the DataLoader calls it with
    the batch's positions), so a batch costs a few array copies, not ``B`` Python calls.
    """

    def __init__(self, features: Mapping[str, np.ndarray], labels: np.ndarray, rows: np.ndarray,
                 semantic: Optional[np.ndarray] = None, flatten_images: bool = False,
                 standardize: Optional[Mapping[str, Tuple[np.ndarray, np.ndarray]]] = None) -> None:
        self.features = dict(features)
        self.labels = labels
        self.rows = np.asarray(rows, dtype=np.int64)
        self.semantic = semantic
        self.flatten_images = flatten_images
        self.standardize = {k: (torch.from_numpy(m), torch.from_numpy(s)) for k, (m, s) in (standardize or {}).items()}

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    def __getitems__(self, positions: Sequence[int]) -> Dict[str, torch.Tensor]:
        rows = self.rows[np.asarray(positions, dtype=np.int64)]
        batch: Dict[str, torch.Tensor] = {}
        for name, array in self.features.items():
            t = _convert(array[rows], self.flatten_images)
            if name in self.standardize:
                mean, std = self.standardize[name]
                t = (t - mean) / std
            batch[name] = t
        batch["label"] = torch.from_numpy(np.ascontiguousarray(self.labels[rows], dtype=np.float32))
        if self.semantic is not None:
            batch["semantic"] = torch.from_numpy(np.ascontiguousarray(self.semantic[rows], dtype=np.float32))
        batch["index"] = torch.from_numpy(rows.copy())
        return batch

    def __getitem__(self, position: int) -> Dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}


class ClassDataset(Dataset):
    """One item per class, for class-level queries (e.g. AgNet's text queries = unseen class-name vectors).

    Batches: ``{<semantic name>: float [B, d], "label": one-hot [B, C], "index": class index [B]}``.
    """

    def __init__(self, name: str, vectors: np.ndarray, classes: np.ndarray) -> None:
        self.name, self.vectors, self.classes = name, vectors, np.asarray(classes, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.classes.shape[0])

    def __getitems__(self, positions: Sequence[int]) -> Dict[str, torch.Tensor]:
        cls = self.classes[np.asarray(positions, dtype=np.int64)]
        label = np.zeros((len(cls), self.vectors.shape[0]), dtype=np.float32)
        label[np.arange(len(cls)), cls] = 1.0
        return {self.name: torch.from_numpy(np.ascontiguousarray(self.vectors[cls], dtype=np.float32)),
                "label": torch.from_numpy(label), "index": torch.from_numpy(cls.copy())}

    def __getitem__(self, position: int) -> Dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.__getitems__([position]).items()}


# ============================================================================================== DataModule
class RetrievalDataModule(pl.LightningDataModule):
    """Base DataModule for retrieval: one subclass per dataset implements :meth:`load_arrays`.

    Parameters
    ----------
    batch_size: training batch size.
    num_workers: DataLoader worker processes.
    seed: seed of the split protocol and of the training shuffle.
    split_file: JSON path; when it exists the split is read from it (resume, test), otherwise the split is
        drawn with ``seed`` and written there (by rank 0). ``None``: drawn, not written.
    eval_batch_size: batch size of evaluation loaders (default ``batch_size``).
    protocol: split protocol name (see :data:`datamodules.protocols.PROTOCOLS`); default per dataset.
    protocol_args: protocol arguments, e.g. ``{"n_query": 500}``; merged over the dataset's defaults.
    modalities: modality keys to serve (default: the dataset's default modalities).
    tasks: retrieval tasks (``"image->text"`` strings, pairs, or :class:`RetrievalTask`); default from the
        modalities: single-modal ``m->m``; cross-modal ``first->other`` and ``other->first`` for every other
        modality (``sketch``: only ``sketch->first``, as in sketch-based image retrieval).
    drop_last: drop the last incomplete training batch.
    pin_memory: DataLoader ``pin_memory``.
    flatten_images: serve image arrays as flat vectors instead of ``[C, H, W]``.
    standardize: z-score float vector modalities with the training rows' mean and standard deviation.
    class_queries: name of a class-semantics entry (e.g. ``"word_vectors"``) to add an evaluation set
        ``"classes"`` (one item per evaluated class) and the task ``<name>->image`` (AgNet's text-based image
        retrieval). On zero-shot splits the test classes are the unseen ones.
    class_query_database: the evaluation set the ``class_queries`` task searches: ``"database"`` (default) or
        ``"class_items"``: every item (queries and database of the stage) of the classes the ``"classes"`` set
        serves, i.e. on a zero-shot test the unseen-class images only (AgNet's TBIR database), even when the
        image->image database also holds seen items (``database="all"``, AgNet's IBIR protocol).
    check_content: compare what the files hold with the published dataset the name stands for
        (:mod:`datamodules.content`: item count, label width); ``False`` for one's own variant of a benchmark.
    class_vectors: class-vector sources to add to ``class_semantics`` from the class names
        (:data:`datamodules.zero_shot_semantics.CLASS_VECTOR_SOURCES`): ``"glove"`` (GloVe 6B 50-d of the class
        names, any dataset; adds ``glove`` and ``glove_attributes``, its sign pattern), ``"word2vec_cifar10"``
        (the doodle2search word2vec of the CIFAR-10 names; adds ``word_vectors`` and ``attributes``),
        ``"cub10_doc2vec"`` (CUB-10's mean doc2vec description per class; adds ``class_text`` and
        ``attributes``), ``"char_ngrams"`` (character n-gram vectors of the names, the embedded digits' kind; adds
        ``word_vectors``). The words used are recorded in :meth:`describe` (``class_vector_words``).
    class_vector_aliases: ``{class: "words"}`` to look a class up under other words (GloVe).
    **protocol_kwargs: shorthand for ``protocol_args`` entries (``n_query=500``), checked against the protocol.

    After ``setup()``: ``name``, ``modalities``, ``input_dims`` (int feature size for vectors, a shape tuple for
    images; for token-id modalities the sequence length), ``num_classes``, ``class_names``, ``class_semantics``
    (name -> float ``[C, d]``), ``tasks``, ``split``, ``arrays``, ``train_dataset``, ``vocabularies`` (modality ->
    token list, id = position, for token-id modalities); zero-shot: ``seen_classes`` / ``unseen_classes``
    (names). :meth:`describe` gives a JSON-ready summary.
    """

    #: registry name; subclasses set it
    name: str = "retrieval"
    #: protocol used when none is given, and its arguments (over the table's defaults)
    default_protocol: str = "random"
    default_protocol_args: Dict[str, Any] = {}
    #: modalities served when none are given (``None``: every modality of the arrays)
    default_modalities: Optional[Tuple[str, ...]] = None
    #: whether images are flattened by default
    default_flatten_images: bool = False

    def __init__(self, batch_size: int = 64, num_workers: int = 0, seed: int = 0,
                 split_file: Optional[Union[str, os.PathLike]] = None, *, eval_batch_size: Optional[int] = None,
                 protocol: Optional[str] = None, protocol_args: Optional[Mapping[str, Any]] = None,
                 modalities: Optional[Sequence[str]] = None, tasks: Optional[Sequence[Any]] = None,
                 drop_last: bool = False, pin_memory: bool = False, flatten_images: Optional[bool] = None,
                 standardize: bool = False, class_queries: Optional[str] = None,
                 class_query_database: str = "database", check_content: bool = True,
                 class_vectors: Sequence[str] = (), class_vector_aliases: Optional[Mapping[str, str]] = None,
                 **protocol_kwargs: Any) -> None:
        super().__init__()
        for arg, value in (("batch_size", batch_size), ("num_workers", num_workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if arg == "batch_size" else 0):
                raise ValueError(f"{arg} must be a {'positive' if arg == 'batch_size' else 'non-negative'} integer, "
                                 f"got {value!r}")
        if eval_batch_size is not None and (not isinstance(eval_batch_size, int) or eval_batch_size < 1):
            raise ValueError(f"eval_batch_size must be a positive integer, got {eval_batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.split_file = None if split_file is None else Path(split_file)
        self.drop_last = bool(drop_last)
        self.pin_memory = bool(pin_memory)
        self.flatten_images = self.default_flatten_images if flatten_images is None else bool(flatten_images)
        self.standardize = bool(standardize)
        self.class_queries = class_queries
        if class_query_database not in ("database", "class_items"):
            raise ValueError(f"class_query_database must be 'database' or 'class_items', got {class_query_database!r}")
        self.class_query_database = class_query_database
        self.check_content = bool(check_content)
        from .zero_shot_semantics import CLASS_VECTOR_SOURCES
        if isinstance(class_vectors, str):
            class_vectors = [class_vectors]
        unknown_sources = [v for v in class_vectors if v not in CLASS_VECTOR_SOURCES]
        if unknown_sources:
            raise ValueError(f"class_vectors: unknown sources {unknown_sources}; known: {sorted(CLASS_VECTOR_SOURCES)}")
        self.class_vectors = tuple(class_vectors)
        self.class_vector_aliases = dict(class_vector_aliases or {})
        self.class_vector_words: Dict[str, Dict[str, List[str]]] = {}
        self._modalities_arg = None if modalities is None else tuple(modalities)
        self._tasks_arg = None if tasks is None else [RetrievalTask.parse(t) for t in tasks]
        self.protocol = protocol or self.default_protocol
        args: Dict[str, Any] = dict(self.default_protocol_args) if protocol in (None, self.default_protocol) else {}
        args.update(protocol_args or {})
        args.update(protocol_kwargs)
        _protocols.check_arguments(self.protocol, args)
        self.protocol_args = args
        self._ready = False
        self._pending_split: Optional[Split] = None
        self.split: Optional[Split] = None
        self.arrays: Optional[DatasetArrays] = None
        self.modalities: Tuple[str, ...] = ()
        self.input_dims: Dict[str, Union[int, Tuple[int, ...]]] = {}
        self.class_names: List[str] = []
        self.class_semantics: Dict[str, torch.Tensor] = {}
        self.tasks: List[RetrievalTask] = []
        self.vocabularies: Dict[str, List[str]] = {}
        self.train_dataset: Optional[ArrayDataset] = None

    # ------------------------------------------------------------------ for subclasses
    def load_arrays(self) -> DatasetArrays:
        """The dataset's arrays (every modality, labels, class names, published splits, class semantics)."""
        raise NotImplementedError(f"{type(self).__name__} must implement load_arrays()")

    def make_split(self, arrays: DatasetArrays) -> Split:
        """Draw the split with :attr:`protocol` and :attr:`protocol_args` (called when no split file exists)."""
        return _protocols.make_split(self.protocol, arrays.labels, seed=self.seed, class_names=arrays.class_names,
                          fixed_splits=arrays.fixed_splits, **self.protocol_args)

    def default_tasks(self, modalities: Sequence[str]) -> List[RetrievalTask]:
        """Tasks declared when none are given (see the class docstring)."""
        if len(modalities) == 1:
            return [RetrievalTask(modalities[0], modalities[0])]
        first, tasks = modalities[0], []
        for other in modalities[1:]:
            if other == "sketch":
                tasks.append(RetrievalTask("sketch", first))
            else:
                tasks += [RetrievalTask(first, other), RetrievalTask(other, first)]
        return tasks

    # ------------------------------------------------------------------ setup
    def setup(self, stage: Optional[str] = None) -> None:
        """Load the arrays, read or draw (and record) the split, build the datasets. Idempotent."""
        if self._ready:
            return
        arrays = self.load_arrays()
        if not isinstance(arrays, DatasetArrays):
            raise TypeError(f"{type(self).__name__}.load_arrays() must return a DatasetArrays, got {type(arrays)}")
        arrays.validate()
        if self.check_content:   # a wrong --data name (or --data-root) is an error, not a mislabelled table
            check_content(self.content_name, arrays)
        if self.class_vectors:
            from .zero_shot_semantics import add_class_vectors
            arrays, self.class_vector_words = add_class_vectors(arrays, self.class_vectors, self.class_vector_aliases)
        self.arrays = arrays
        available = [m for m in arrays.modalities if m != "semantic"]
        wanted = self._modalities_arg or self.default_modalities or tuple(available)
        unknown = [m for m in wanted if m not in arrays.modalities or m == "semantic"]
        if unknown or not wanted:
            raise ValueError(f"{self.name}: modalities {unknown or list(wanted)} are not available; "
                             f"the data has {available}")
        self.modalities = tuple(wanted)
        self.class_names = list(arrays.class_names)
        self.class_semantics = {k: torch.as_tensor(np.asarray(v, dtype=np.float32))
                                for k, v in arrays.class_semantics.items()}
        self.split = self._resolve_split(arrays)
        self.split.class_names = self.split.class_names or list(arrays.class_names)
        self._build()
        self._ready = True

    def _resolve_split(self, arrays: DatasetArrays) -> Split:
        fingerprint = data_fingerprint(arrays)
        if self._pending_split is not None:          # restored from a checkpoint before setup
            split = self._pending_split
            self._check_split_source(split, arrays, fingerprint, "the checkpoint")
        elif self.split_file is not None and self.split_file.is_file():
            split = Split.load(self.split_file)
            self._check_split_source(split, arrays, fingerprint, str(self.split_file))
        else:
            split = self.make_split(arrays)
            split.data_hash = fingerprint
            split.num_items = arrays.num_items
            split.validate(arrays.num_items, arrays.labels)
            if self.split_file is not None and distributed_context()[0] == 0:
                split.save(self.split_file)
        return split

    def _check_split_source(self, split: Split, arrays: DatasetArrays, fingerprint: str, source: str) -> None:
        if split.num_items is not None and split.num_items != arrays.num_items:
            raise ValueError(f"{source}: the split was drawn for {split.num_items} items but {self.name} has "
                             f"{arrays.num_items}; use another split_file for this data")
        if split.data_hash is not None and split.data_hash != fingerprint:
            raise ValueError(f"{source}: the split was drawn for data with fingerprint {split.data_hash}, but "
                             f"{self.name} now has {fingerprint} (the files or their options changed); use another "
                             "split_file for this data")
        split.validate(arrays.num_items, arrays.labels)
        if split.protocol != self.protocol or (split.seed is not None and split.seed != self.seed):
            warnings.warn(f"{source}: reusing the recorded split (protocol '{split.protocol}', seed {split.seed}); "
                          f"the arguments asked for protocol '{self.protocol}', seed {self.seed}", stacklevel=3)

    def _build(self) -> None:
        arrays, split = self.arrays, self.split
        assert arrays is not None and split is not None
        self._labels = arrays.multi_hot().astype(np.float32, copy=False)
        self._features = {m: arrays.modalities[m] for m in self.modalities}
        self._semantic = arrays.modalities.get("semantic")
        self.input_dims = {m: served_shape(a, self.flatten_images) for m, a in self._features.items()}
        self._standardize: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}
        if self.standardize:
            for m, a in self._features.items():
                if np.issubdtype(a.dtype, np.floating) and a.ndim == 2:
                    mean, std = standardization(a[split.train])
                    self._standardize[m] = (mean.astype(np.float32), std.astype(np.float32))
        tasks = self._tasks_arg if self._tasks_arg is not None else self.default_tasks(self.modalities)
        if self.class_queries is not None:
            if self.class_queries not in self.class_semantics:
                raise ValueError(f"{self.name}: class_queries='{self.class_queries}' but the class semantics are "
                                 f"{sorted(self.class_semantics)}")
            target = "image" if "image" in self.modalities else self.modalities[0]
            self.input_dims[self.class_queries] = int(self.class_semantics[self.class_queries].shape[1])
            tasks = list(tasks) + [RetrievalTask(self.class_queries, target, query_set="classes",
                                                 database_set=self.class_query_database)]
        for t in tasks:
            for modality, set_name in ((t.query, t.query_set), (t.database, t.database_set)):
                if set_name == "classes":
                    if modality != self.class_queries:
                        raise ValueError(f"{self.name}: task {t.name} reads set 'classes' with modality '{modality}'"
                                         f", which serves only '{self.class_queries}'")
                elif modality not in self.modalities:
                    raise ValueError(f"{self.name}: task {t.name} uses modality '{modality}', but the served "
                                     f"modalities are {list(self.modalities)}")
                if set_name not in ("query", "database", "classes", "class_items"):
                    raise ValueError(f"{self.name}: task {t.name} names evaluation set '{set_name}'; the sets are "
                                     "'query', 'database' and (with class_queries) 'classes', 'class_items'")
        if not tasks:
            raise ValueError(f"{self.name}: no retrieval task declared")
        self.tasks = list(tasks)
        self.train_dataset = self._dataset(split.train)

    def _dataset(self, rows: np.ndarray) -> ArrayDataset:
        return ArrayDataset(self._features, self._labels, rows, semantic=self._semantic,
                            flatten_images=self.flatten_images, standardize=self._standardize)

    def _require_setup(self) -> None:
        if not self._ready:
            raise RuntimeError(f"{type(self).__name__}: call setup() first")

    # ------------------------------------------------------------------ properties
    def item_labels(self, rows: Union[Sequence[int], np.ndarray]) -> np.ndarray:
        """The multi-hot labels (float32 ``[len(rows), C]``) of dataset rows (part of the contract with methods,
        :mod:`lightning_hash.contract`)."""
        self._require_setup()
        return self._labels[np.asarray(rows, dtype=np.int64)]

    @property
    def content_name(self) -> str:
        """The entry of :data:`datamodules.content.KNOWN_CONTENT` this data must match (the dataset name)."""
        return self.name

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def zero_shot(self) -> bool:
        return self.split is not None and self.split.zero_shot

    @property
    def seen_classes(self) -> Optional[List[str]]:
        """Names of the seen classes of a zero-shot split, else ``None``."""
        return None if not self.zero_shot else [self.class_names[c] for c in self.split.seen_classes]

    @property
    def unseen_classes(self) -> Optional[List[str]]:
        """Names of the unseen classes of a zero-shot split, else ``None``."""
        return None if not self.zero_shot else [self.class_names[c] for c in self.split.unseen_classes]

    # ------------------------------------------------------------------ evaluation sets
    def eval_set_names(self, stage: str) -> List[str]:
        """Ordered names of the evaluation sets the tasks need; dataloader ``i`` serves name ``i``.

        Empty for ``"val"`` when the split has no validation queries (validation is then skipped).
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self._require_setup()
        if stage == "val" and self.split.val.size == 0:
            return []
        names: List[str] = []
        for t in self.tasks:
            for s in (t.query_set, t.database_set):
                if s not in names:
                    names.append(s)
        return names

    def eval_rows(self, stage: str, set_name: str) -> np.ndarray:
        """Rows (or, for ``"classes"``, class indices) of one evaluation set of one stage.

        ``"val"``: ``query`` = the validation queries, ``database`` = their database (without them).
        ``"test"``: the test queries and the test database.
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self._require_setup()
        split = self.split
        if set_name == "query":
            return split.val if stage == "val" else split.query
        if set_name == "database":
            return split.val_database if stage == "val" else split.database
        if set_name == "class_items":
            classes = self.eval_rows(stage, "classes")
            rows = np.union1d(self.eval_rows(stage, "query"), self.eval_rows(stage, "database"))
            member = self._labels[rows][:, classes].sum(axis=1) > 0
            return rows[member]
        if set_name == "classes":
            if not split.zero_shot:
                return np.arange(self.num_classes)
            if stage == "test":
                return split.unseen_classes
            return split.extra.get("val_classes", split.seen_classes)
        raise ValueError(f"unknown evaluation set '{set_name}'; this DataModule serves "
                         f"{self.eval_set_names(stage)}")

    def eval_dataset(self, stage: str, set_name: str) -> Dataset:
        rows = self.eval_rows(stage, set_name)
        if set_name == "classes":
            return ClassDataset(self.class_queries, self.class_semantics[self.class_queries].numpy(), rows)
        return self._dataset(rows)

    def eval_dataloader(self, stage: str, set_name: str) -> DataLoader:
        """A DataLoader over one evaluation set: in order, unpadded, this process's contiguous shard."""
        dataset = self.eval_dataset(stage, set_name)
        rank, world = distributed_context()
        return self._loader(dataset, ContiguousShardSampler(len(dataset), rank, world), self.eval_batch_size, False)

    def _loader(self, dataset: Dataset, sampler: Sampler, batch_size: int, drop_last: bool) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                          num_workers=self.num_workers, collate_fn=collate_batch, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0)

    # ------------------------------------------------------------------ Lightning hooks
    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; the order is a pure function of ``(seed, epoch)``.

        Lightning calls ``sampler.set_epoch(epoch)`` each epoch; under DDP each process gets its
        ``DistributedSampler`` share (padded by repetition to equal length, as usual for training).
        """
        self._require_setup()
        rank, world = distributed_context()
        sampler = DistributedSampler(self.train_dataset, num_replicas=world, rank=rank, shuffle=True, seed=self.seed,
                                     drop_last=False)
        return self._loader(self.train_dataset, sampler, self.batch_size, self.drop_last)

    def val_dataloader(self) -> List[DataLoader]:
        return [self.eval_dataloader("val", s) for s in self.eval_set_names("val")]

    def test_dataloader(self) -> List[DataLoader]:
        return [self.eval_dataloader("test", s) for s in self.eval_set_names("test")]

    def state_dict(self) -> Dict[str, Any]:
        """The split travels in checkpoints too, so a resumed run keeps it even without the split file."""
        return {"split": self.split.to_dict()} if self.split is not None else {}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if not state_dict or "split" not in state_dict:
            return
        restored = Split.from_dict(state_dict["split"], source="checkpoint")
        if not self._ready:
            self._pending_split = restored
        elif restored != self.split:
            warnings.warn(f"{self.name}: the checkpoint's split differs from the current one; continuing with the "
                          "checkpoint's split", stacklevel=2)
            self._check_split_source(restored, self.arrays, data_fingerprint(self.arrays), "the checkpoint")
            self.split = restored
            self._build()

    # ------------------------------------------------------------------ reporting
    def describe(self) -> Dict[str, Any]:
        """A JSON-ready summary for results files: data, split sizes, protocol, seed, tasks."""
        self._require_setup()
        out = {"name": self.name, "source": self.arrays.source, "num_items": self.arrays.num_items,
               "num_classes": self.num_classes, "modalities": list(self.modalities),
               "input_dims": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.input_dims.items()},
               "class_semantics": {k: list(v.shape) for k, v in self.class_semantics.items()},
               "tasks": [t.name for t in self.tasks], "protocol": self.split.protocol, "seed": self.split.seed,
               "params": self.split.params, "sizes": self.split.sizes(), "data_hash": self.split.data_hash,
               "split_file": None if self.split_file is None else str(self.split_file)}
        if self.zero_shot:
            out.update(seen_classes=self.seen_classes, unseen_classes=self.unseen_classes)
        if self.class_vector_words:
            out["class_vector_words"] = self.class_vector_words
        return out
