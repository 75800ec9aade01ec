"""The one in-memory form every reader returns and every protocol consumes.

A reader turns files in a published layout into a :class:`DatasetArrays`; a protocol turns a
``DatasetArrays`` into a seeded split; a DataModule serves batches from both. Keeping this record
small and validated in one place means every reader gets the same checks for free.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np


def multi_hot(labels: np.ndarray, num_classes: Optional[int] = None) -> np.ndarray:
    """Boolean ``[n, C]`` membership from class indices ``[n]`` or a multi-hot ``[n, C]`` matrix.

    >>> multi_hot(np.array([0, 2]), 3).astype(int).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels > 0
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"labels must be integer class indices [n] or multi-hot [n, C], got shape {labels.shape} "
                         f"dtype {labels.dtype}")
    c = int(num_classes if num_classes is not None else (labels.max() + 1 if labels.size else 0))
    out = np.zeros((labels.shape[0], c), dtype=bool)
    out[np.arange(labels.shape[0]), labels] = True
    return out


@dataclass
class DatasetArrays:
    """Arrays of one dataset, row-aligned across modalities.

    Attributes
    ----------
    modalities:
        modality name (``"image"``, ``"text"``, ``"sketch"``, ...) -> array with ``n`` rows: float features
        ``[n, d]``, or raw images ``uint8 [n, H, W, C]``.
    labels:
        ``int64 [n]`` class indices (single-label) or ``float32 [n, C]`` multi-hot.
    class_names:
        ``C`` class names, in label-index order.
    fixed_splits:
        published splits, name -> ``int64`` row indices (e.g. Wiki's ``train`` / ``query``); empty when the
        dataset has none and a seeded protocol must draw one.
    class_semantics:
        name (``"attributes"``, ``"word_vectors"``) -> ``float32 [C, d]`` class-level vectors.
    source:
        the file(s) the arrays came from, for error messages and the results record.
    """

    modalities: Dict[str, np.ndarray]
    labels: np.ndarray
    class_names: List[str]
    fixed_splits: Dict[str, np.ndarray] = field(default_factory=dict)
    class_semantics: Dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_items(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def multi_hot(self) -> np.ndarray:
        """Labels as ``float32 [n, C]`` multi-hot."""
        if self.labels.ndim == 2:
            return self.labels.astype(np.float32, copy=False)
        return multi_hot(self.labels, self.num_classes).astype(np.float32)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending entry if the arrays are inconsistent."""
        if not self.modalities:
            raise ValueError(f"{self.source}: no modality arrays were given")
        labels = np.asarray(self.labels)
        if labels.ndim not in (1, 2):
            raise ValueError(f"{self.source}: labels must be [n] class indices or [n, C] multi-hot, got shape {labels.shape}")
        n = labels.shape[0]
        if labels.ndim == 1:
            if not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"{self.source}: class-index labels must be integers, got dtype {labels.dtype}")
            if n and (labels.min() < 0 or labels.max() >= len(self.class_names)):
                raise ValueError(
                    f"{self.source}: labels must lie in [0, {len(self.class_names)}) for {len(self.class_names)} "
                    f"class names, found range [{labels.min()}, {labels.max()}]")
        elif labels.shape[1] != len(self.class_names):
            raise ValueError(f"{self.source}: multi-hot labels have {labels.shape[1]} columns but "
                             f"{len(self.class_names)} class names were given")
        elif labels.size and not np.isin(labels, (0, 1)).all():
            raise ValueError(f"{self.source}: multi-hot labels must hold only 0 and 1 (found other values or NaN)")
        for name, arr in self.modalities.items():
            if arr.shape[0] != n:
                raise ValueError(f"{self.source}: modality '{name}' has {arr.shape[0]} rows but labels have {n}; "
                                 "rows of every modality must match the labels")
            if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).any(axis=tuple(range(1, arr.ndim))).sum())
                raise ValueError(f"{self.source}: modality '{name}' has NaN/inf values in {bad} rows")
        for name, idx in self.fixed_splits.items():
            idx = np.asarray(idx)
            if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
                raise ValueError(f"{self.source}: split '{name}' must be a 1-d integer index array")
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"{self.source}: split '{name}' indexes rows outside [0, {n})")
        for name, sem in self.class_semantics.items():
            if sem.shape[0] != len(self.class_names):
                raise ValueError(f"{self.source}: class semantics '{name}' have {sem.shape[0]} rows but there are "
                                 f"{len(self.class_names)} classes")
            if not np.isfinite(sem).all():
                raise ValueError(f"{self.source}: class semantics '{name}' contain NaN/inf")
