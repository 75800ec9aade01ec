"""Label similarity: the one definition of "two items are relevant to each other" used by the losses.

``S_ij = 1`` iff items i and j share at least one label: the same rule as the metrics' relevance
(:mod:`lightning_hash.metrics`), AgNet's category similarity ``S^c`` (eq. 2) and TVDB's ``S`` (eq. 4.3).
"""
from __future__ import annotations

from typing import Optional

import torch

__all__ = ["label_similarity"]


def label_similarity(labels_a: torch.Tensor, labels_b: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``S_ij = 1`` iff items i and j share a label (float ``[n_a, n_b]``).

    Labels are class indices ``[n]`` or multi-hot ``[n, C]``; ``labels_b`` defaults to ``labels_a``.

    >>> label_similarity(torch.tensor([0, 1, 0])).tolist()
    [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    >>> label_similarity(torch.tensor([[1, 1, 0], [0, 0, 1]]), torch.tensor([[0, 1, 0]])).tolist()
    [[1.0], [0.0]]
    """
    labels_b = labels_a if labels_b is None else labels_b
    if labels_a.ndim == 1:
        return (labels_a[:, None] == labels_b[None, :]).float()
    return ((labels_a.float() @ labels_b.float().t()) > 0).float()
