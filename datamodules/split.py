"""The recorded split of a run: :class:`Split` (its row sets, where they came from, its JSON file) and the data
fingerprint that ties a split file to the data it was drawn for.

Its own module so that the protocols (which build splits) and the DataModules (which serve them) both import it
without importing each other.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np

from .arrays import DatasetArrays
from .files import read_json, write_text_atomic

SPLIT_FORMAT = "lightning-hash split v1"
#: the row sets every split holds, in file order
SPLIT_SETS = ("train", "val", "val_database", "query", "database")


def _index_array(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"split set '{name}' must be a 1-d integer index array, got shape {arr.shape} "
                         f"dtype {arr.dtype}")
    return arr.astype(np.int64)


@dataclass(eq=False)
class Split:
    """The row sets of one run, and where they came from.

    Attributes
    ----------
    train, val, val_database, query, database:
        ``int64`` row indices into the dataset's arrays (sorted).
    seen_classes, unseen_classes:
        class indices for zero-shot splits, else ``None``.
    extra:
        further named index arrays a protocol records (e.g. ``val_classes``).
    protocol, seed, params:
        how the split was drawn (``params`` holds every resolved protocol argument).
    num_items, data_hash, class_names:
        the data it was drawn for; a split file is only reused on data with the same fingerprint.
    """

    train: np.ndarray
    val: np.ndarray
    val_database: np.ndarray
    query: np.ndarray
    database: np.ndarray
    seen_classes: Optional[np.ndarray] = None
    unseen_classes: Optional[np.ndarray] = None
    extra: Dict[str, np.ndarray] = field(default_factory=dict)
    protocol: str = "custom"
    seed: Optional[int] = None
    params: Dict[str, Any] = field(default_factory=dict)
    num_items: Optional[int] = None
    data_hash: Optional[str] = None
    class_names: Optional[List[str]] = None

    def __post_init__(self) -> None:
        for name in SPLIT_SETS:
            setattr(self, name, _index_array(getattr(self, name), name))
        for name in ("seen_classes", "unseen_classes"):
            if getattr(self, name) is not None:
                setattr(self, name, _index_array(getattr(self, name), name))
        self.extra = {k: _index_array(v, k) for k, v in self.extra.items()}

    # ------------------------------------------------------------------ access
    @property
    def zero_shot(self) -> bool:
        return self.unseen_classes is not None

    def index_sets(self) -> Dict[str, np.ndarray]:
        """Every named index array (row sets, class sets, extras)."""
        out = {name: getattr(self, name) for name in SPLIT_SETS}
        if self.zero_shot:
            out["seen_classes"] = self.seen_classes
            out["unseen_classes"] = self.unseen_classes
        out.update(self.extra)
        return out

    def __getitem__(self, name: str) -> np.ndarray:
        sets = self.index_sets()
        if name not in sets:
            raise KeyError(f"split has no set '{name}'; it has {sorted(sets)}")
        return sets[name]

    def sizes(self) -> Dict[str, int]:
        return {k: int(len(v)) for k, v in self.index_sets().items()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        a, b = self.index_sets(), other.index_sets()
        return (a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
                and (self.protocol, self.seed, self.num_items, self.data_hash)
                == (other.protocol, other.seed, other.num_items, other.data_hash))

    # ------------------------------------------------------------------ checks
    def validate(self, num_items: Optional[int] = None, labels: Optional[np.ndarray] = None) -> None:
        """Raise ``ValueError`` unless the sets are in range, duplicate-free and disjoint where they must be.

        Always disjoint: ``train``/``query``, ``query``/``database``, ``val``/``val_database``,
        ``val``/``query``. Zero-shot: seen and unseen classes disjoint, and (with ``labels``) training items of
        seen classes only, test queries of unseen classes only; on a multi-label zero-shot split (multi-hot
        ``labels`` and ``params["queries_may_carry_seen"]``, protocol ``zero_shot_multilabel``) test queries carrying
        at least one unseen class (seen ones allowed besides).
        """
        n = self.num_items if num_items is None else num_items
        if num_items is not None and self.num_items is not None and self.num_items != num_items:
            raise ValueError(f"split was drawn for {self.num_items} items but the data has {num_items}")
        for name in SPLIT_SETS:
            rows = getattr(self, name)
            if n is not None and rows.size and (rows.min() < 0 or rows.max() >= n):
                raise ValueError(f"split set '{name}' indexes rows outside [0, {n})")
            if np.unique(rows).size != rows.size:
                raise ValueError(f"split set '{name}' lists some rows more than once")
        if self.query.size == 0 or self.database.size == 0 or self.train.size == 0:
            raise ValueError(f"split has an empty set: train {self.train.size}, query {self.query.size}, "
                             f"database {self.database.size}")
        for a, b in (("train", "query"), ("query", "database"), ("val", "val_database"), ("val", "query")):
            both = np.intersect1d(getattr(self, a), getattr(self, b))
            if both.size:
                raise ValueError(f"split sets '{a}' and '{b}' share {both.size} rows (e.g. {both[:5].tolist()}); "
                                 "they must be disjoint")
        if (self.seen_classes is None) != (self.unseen_classes is None):
            raise ValueError("a zero-shot split needs both seen_classes and unseen_classes")
        if self.zero_shot:
            both = np.intersect1d(self.seen_classes, self.unseen_classes)
            if both.size:
                raise ValueError(f"classes {both.tolist()} are both seen and unseen")
            if labels is not None:
                lab = np.asarray(labels)
                member = (lambda rows, cls: np.isin(lab[rows], cls)) if lab.ndim == 1 else \
                    (lambda rows, cls: ~np.any(lab[rows][:, np.setdiff1d(np.arange(lab.shape[1]), cls)] > 0, axis=1))
                if not np.all(member(self.train, self.seen_classes)):
                    raise ValueError("zero-shot split: some training items belong to unseen classes")
                if lab.ndim == 2 and self.params.get("queries_may_carry_seen"):
                    # multi-label zero-shot (protocol zero_shot_multilabel): a query carries at least one unseen
                    # class and may carry seen ones too
                    if not np.all(np.any(lab[self.query][:, self.unseen_classes] > 0, axis=1)):
                        raise ValueError("zero-shot split: some test queries carry no unseen class")
                elif not np.all(member(self.query, self.unseen_classes)):
                    raise ValueError("zero-shot split: some test queries belong to seen classes")

    # ------------------------------------------------------------------ file form
    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict; index lists last so the header reads first."""
        out: Dict[str, Any] = {
            "format": SPLIT_FORMAT, "protocol": self.protocol, "seed": self.seed, "params": self.params,
            "num_items": self.num_items, "data_hash": self.data_hash, "class_names": self.class_names,
            "sizes": self.sizes(),
        }
        if self.zero_shot:
            names = self.class_names
            out["seen_class_names"] = [names[c] for c in self.seen_classes] if names else None
            out["unseen_class_names"] = [names[c] for c in self.unseen_classes] if names else None
        out["indices"] = {k: v.tolist() for k, v in self.index_sets().items()}
        return out

    @classmethod
    def from_dict(cls, content: Mapping[str, Any], source: str = "<dict>") -> "Split":
        if not isinstance(content, Mapping) or content.get("format") != SPLIT_FORMAT or "indices" not in content:
            raise ValueError(f"{source}: not a lightning-hash split file (expected a JSON object with "
                             f"\"format\": \"{SPLIT_FORMAT}\" and \"indices\")")
        idx = dict(content["indices"])
        missing = [k for k in SPLIT_SETS if k not in idx]
        if missing:
            raise KeyError(f"{source}: split file lacks the index set(s) {missing}; found {sorted(idx)}")
        kwargs = {k: np.asarray(idx.pop(k), dtype=np.int64) for k in SPLIT_SETS}
        seen = idx.pop("seen_classes", None)
        unseen = idx.pop("unseen_classes", None)
        return cls(**kwargs, seen_classes=None if seen is None else np.asarray(seen, dtype=np.int64),
                   unseen_classes=None if unseen is None else np.asarray(unseen, dtype=np.int64),
                   extra={k: np.asarray(v, dtype=np.int64) for k, v in idx.items()},
                   protocol=content.get("protocol", "custom"), seed=content.get("seed"),
                   params=dict(content.get("params") or {}), num_items=content.get("num_items"),
                   data_hash=content.get("data_hash"), class_names=content.get("class_names"))

    def to_json(self) -> str:
        """Deterministic JSON text: the same split always gives the same bytes."""
        header = {k: v for k, v in self.to_dict().items() if k != "indices"}
        lines = ["{"]
        for key, value in header.items():
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)},")
        lines.append('  "indices": {')
        sets = self.index_sets()
        for i, (key, rows) in enumerate(sets.items()):
            comma = "," if i < len(sets) - 1 else ""
            lines.append(f"    {json.dumps(key)}: {json.dumps(rows.tolist())}{comma}")
        lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write the split as JSON (atomically: a reader never sees half a file)."""
        return write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Union[str, os.PathLike]) -> "Split":
        """Read a split written by :meth:`save`."""
        return cls.from_dict(read_json(path, "split file"), source=str(path))


def data_fingerprint(arrays: DatasetArrays, max_rows: int = 2048) -> str:
    """A short hash identifying a dataset: labels, class names, modality shapes and a fixed sample of rows.

    All labels are hashed; features only on up to ``max_rows`` evenly spaced rows (enough to tell datasets
    apart without reading gigabytes of images).
    """
    h = hashlib.sha256()
    n = arrays.num_items
    header = {"n": n, "classes": list(arrays.class_names),
              "modalities": {k: [list(v.shape), str(v.dtype)] for k, v in sorted(arrays.modalities.items())}}
    h.update(json.dumps(header, sort_keys=True).encode())
    h.update(np.ascontiguousarray(arrays.multi_hot() > 0).tobytes())
    rows = np.unique(np.linspace(0, max(n - 1, 0), num=min(n, max_rows)).astype(np.int64)) if n else np.zeros(0, int)
    for name in sorted(arrays.modalities):
        h.update(np.ascontiguousarray(np.asarray(arrays.modalities[name])[rows]).tobytes())
    return "sha256:" + h.hexdigest()[:32]
