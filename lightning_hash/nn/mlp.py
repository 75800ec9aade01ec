"""Fully connected stacks used as hash heads and encoders."""
from __future__ import annotations

from typing import Sequence

from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, activation: type[nn.Module] = nn.ReLU,
        dropout: float = 0.0) -> nn.Sequential:
    """``Linear -> act (-> dropout)`` for each hidden width, then a final ``Linear`` with no activation.

    ``mlp(10, [4096], 64)`` is DJSRH's TxtNet without the tanh: Linear(10, 4096), ReLU, Linear(4096, 64).
    """
    if in_dim <= 0 or out_dim <= 0 or any(h <= 0 for h in hidden):
        raise ValueError(f"mlp: all widths must be positive, got in_dim={in_dim}, hidden={list(hidden)}, "
                         f"out_dim={out_dim}")
    layers: list[nn.Module] = []
    prev = in_dim
    for width in hidden:
        layers += [nn.Linear(prev, width), activation()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        prev = width
    layers.append(nn.Linear(prev, out_dim))
    return nn.Sequential(*layers)
