"""Encoding a whole dataset with a trained method: the one loop behind retrieval, indexing and diagnostics.

:func:`encode_dataset` gives the binary codes of one modality through the method's
:meth:`~lightning_hash.module.HashingModule.predict_step` (``Trainer.predict`` serves it as well);
:func:`embed_dataset` any per-batch function of the model (pre-sign outputs, predicted attributes, ...).
Items stay in dataset order, with their row ids and labels.
"""
from __future__ import annotations

from typing import Callable, Tuple

import numpy as np
import torch

from lightning_hash.contract import INDEX_KEY, LABEL_KEY, collate_batch

__all__ = ["embed_dataset", "encode_dataset"]


def embed_dataset(model, dataset, fn: Callable, batch_size: int = 512) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fn(model, batch) stacked [n, ...] float32, row ids [n], labels)`` of a dataset, in order, without
    gradients (the model is put in eval mode)."""
    from torch.utils.data import DataLoader

    values, rows, labels = [], [], []
    model.eval()
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_batch):
            values.append(fn(model, batch).float().cpu().numpy())
            rows.append(batch[INDEX_KEY].cpu().numpy())
            labels.append(batch[LABEL_KEY].cpu().numpy())
    return np.concatenate(values), np.concatenate(rows), np.concatenate(labels)


def encode_dataset(model, dataset, modality: str, batch_size: int = 512) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes {-1, +1} float32 [n, bits], row ids [n], labels [n, C])`` of ``dataset`` encoded as ``modality``,
    in order (the method's ``predict_step``)."""
    previous = getattr(model, "predict_modality", None)
    model.predict_modality = modality
    try:
        return embed_dataset(model, dataset, lambda m, b: m.predict_step(b, 0)["codes"], batch_size)
    finally:
        model.predict_modality = previous
