"""Feature standardisation statistics: the one definition of z-scoring used by the data layer and the methods.

A feature whose training standard deviation is below ``eps`` (constant, e.g. an always-zero pixel) keeps a
divisor of 1, so it is centred but not blown up.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

__all__ = ["standardization", "STD_EPS"]

#: below this training standard deviation a feature is treated as constant (divisor 1)
STD_EPS = 1e-12


def standardization(x: np.ndarray, eps: float = STD_EPS) -> Tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (float64) of the training rows ``x`` ``[n, d]``, constant columns'
    standard deviation set to 1.

    >>> mean, std = standardization(np.array([[0.0, 1.0], [2.0, 1.0]]))
    >>> mean.tolist(), std.tolist()
    ([1.0, 1.0], [1.0, 1.0])
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"standardization: expected training rows [n, d] with n >= 1, got shape {x.shape}")
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std < eps, 1.0, std)
