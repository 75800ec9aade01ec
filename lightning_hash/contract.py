"""The contract between ``lightning_hash`` and the DataModules that feed it (``datamodules`` implements it).

The dependency rule: ``datamodules`` may import the pieces here (and the nn backbone factory, the cache
helpers); ``lightning_hash`` never imports ``datamodules``, except in the one module that wires a run together
(:mod:`lightning_hash.experiment`). ``tests/test_layout.py`` walks the imports and enforces it.

**Batches** (one dict per batch)::

    {<modality>: float [B, ...], ..., "label": float multi-hot [B, C], "index": long [B]}

plus ``"semantic"`` (float ``[B, d]``) where the data has per-item semantic vectors. ``index`` is the item's
row in the dataset, so evaluation results do not depend on how DDP shards the sets.

**The DataModule interface methods may use** (a :class:`pytorch_lightning.LightningDataModule` with):

* ``tasks``: a list of :class:`RetrievalTask`; ``modalities``: the served modality names;
* ``eval_set_names(stage)``, ``eval_rows(stage, set_name)``, ``eval_dataset(stage, set_name)``,
  ``eval_dataloader(stage, set_name)``: the evaluation sets of ``"val"`` / ``"test"``;
* ``train_dataset`` (items with ``__getitems__``), ``input_dims`` (modality -> int or shape),
  ``num_classes``, ``class_names``, ``class_semantics`` (name -> float ``[C, d]``), ``zero_shot``,
  ``seen_classes``, ``unseen_classes``, ``vocabularies`` (modality -> tokens);
* ``item_labels(rows)``: the multi-hot labels (float32 ``[len(rows), C]``) of dataset rows.

Nothing else: no private attribute of a DataModule is read outside ``datamodules``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = ["LABEL_KEY", "INDEX_KEY", "SEMANTIC_KEY", "RetrievalTask", "distributed_context", "shard_bounds",
           "ContiguousShardSampler", "collate_batch", "training_matrices"]

#: batch keys besides the modalities
LABEL_KEY, INDEX_KEY, SEMANTIC_KEY = "label", "index", "semantic"


# ============================================================================================== tasks
@dataclass(frozen=True)
class RetrievalTask:
    """One retrieval task: queries of one modality searching a database of another (or the same).

    ``query_set`` / ``database_set`` name the evaluation sets (see
    :meth:`RetrievalDataModule.eval_set_names`) that serve the queries and the database; ``label`` overrides
    the name used in metric keys.

    >>> RetrievalTask("image", "text").name
    'image->text'
    """

    query: str
    database: str
    query_set: str = "query"
    database_set: str = "database"
    label: Optional[str] = None

    @property
    def name(self) -> str:
        return self.label if self.label else f"{self.query}->{self.database}"

    @classmethod
    def parse(cls, spec: Union["RetrievalTask", str, Sequence[str], Mapping[str, Any]]) -> "RetrievalTask":
        """A task from ``"image->text"``, ``("image", "text")``, a dict of fields, or a task."""
        if isinstance(spec, RetrievalTask):
            return spec
        if isinstance(spec, str):
            q, sep, d = spec.partition("->")
            if not sep or not q.strip() or not d.strip():
                raise ValueError(f"a task string must look like 'query->database', got {spec!r}")
            return cls(q.strip(), d.strip())
        if isinstance(spec, Mapping):
            return cls(**spec)
        if isinstance(spec, Sequence) and len(spec) == 2 and all(isinstance(s, str) for s in spec):
            return cls(spec[0], spec[1])
        raise ValueError(f"cannot read a retrieval task from {spec!r}; use 'query->database'")



# ============================================================================================== samplers
def distributed_context() -> Tuple[int, int]:
    """``(rank, world_size)`` from ``torch.distributed`` when it is initialised, else ``(0, 1)``."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_bounds(num_items: int, rank: int, world_size: int) -> Tuple[int, int]:
    """Rows ``[start, stop)`` of process ``rank``: ``[rank*n//W, (rank+1)*n//W)``.

    >>> [shard_bounds(10, r, 3) for r in range(3)]
    [(0, 3), (3, 6), (6, 10)]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, world_size) with world_size >= 1, got rank {rank} of {world_size}")
    return rank * num_items // world_size, (rank + 1) * num_items // world_size


class ContiguousShardSampler(Sampler[int]):
    """Evaluation sampler: a contiguous, unpadded shard per process, in order, no shuffling.

    The union over ranks is every position exactly once, in order, so gathered evaluation results neither
    miss nor duplicate items (a plain ``DistributedSampler`` pads with repeats).
    """

    def __init__(self, num_items: int, rank: Optional[int] = None, world_size: Optional[int] = None) -> None:
        if rank is None or world_size is None:
            rank, world_size = distributed_context()
        self.num_items, self.rank, self.world_size = int(num_items), int(rank), int(world_size)
        self.start, self.stop = shard_bounds(self.num_items, self.rank, self.world_size)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def collate_batch(data: Any) -> Dict[str, torch.Tensor]:
    """Collate for :class:`ArrayDataset`: batches arrive ready-made from ``__getitems__``."""
    if isinstance(data, dict):
        return data
    return torch.utils.data.default_collate(data)



# ============================================================================================== training arrays
def training_matrices(datamodule, modalities: Sequence[str], max_train: Optional[int] = None, seed: int = 0,
                      chunk: int = 8192) -> Dict[str, np.ndarray]:
    """The training split of ``datamodule`` as float64 ``[n, d]`` matrices, one per modality.

    Reads ``datamodule.train_dataset`` (the rows of ``split.train`` in order, converted exactly as the
    evaluation batches are: same flattening, same standardisation). ``max_train``: keep a seeded random subset of
    at most that many rows (sorted, the same rows for every modality).
    """
    if getattr(datamodule, "train_dataset", None) is None:
        datamodule.setup("fit")
    dataset = getattr(datamodule, "train_dataset", None)
    if dataset is None:
        raise ValueError(f"{type(datamodule).__name__} has no train_dataset after setup(); the classic methods "
                         "fit on the training split of a RetrievalDataModule")
    n = len(dataset)
    if n < 2:
        raise ValueError(f"the training split holds {n} item(s); the classic methods need at least 2")
    rows = np.arange(n)
    if max_train is not None:
        if isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 2:
            raise ValueError(f"max_train must be an integer >= 2 or None, got {max_train!r}")
        if max_train < n:
            rows = np.sort(np.random.RandomState(seed).choice(n, size=max_train, replace=False))
    parts: Dict[str, List[np.ndarray]] = {m: [] for m in modalities}
    for start in range(0, len(rows), chunk):
        positions = rows[start:start + chunk].tolist()
        if hasattr(dataset, "__getitems__"):
            batch = dataset.__getitems__(positions)
        else:
            items = [dataset[p] for p in positions]
            batch = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        for m in modalities:
            if m not in batch:
                raise KeyError(f"modality '{m}' is not in the training batches (keys: {sorted(batch)})")
            t = batch[m]
            parts[m].append(t.reshape(t.shape[0], -1).double().numpy())
    out = {m: np.concatenate(p, axis=0) for m, p in parts.items()}
    for m, x in out.items():
        if not np.all(np.isfinite(x)):
            raise ValueError(f"modality '{m}': the training features hold NaN or inf values")
    return out
