"""Exact Hamming distances between two sets of binary codes."""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import _prepare_codes, _Problem
from ._products import _distance_features, _exact_mm


def hamming_distance(query_codes: Tensor, db_codes: Tensor) -> Tensor:
    """Hamming distances between every query code and every database code.

    Parameters
    ----------
    query_codes : Tensor [Q, bits]
        Binary codes: ``bool``, values in {0, 1} (float or int) or values in {-1, +1} (float or int).
    db_codes : Tensor [N, bits]
        Database codes, same number of bits, any of the same encodings.

    Returns
    -------
    Tensor
        int64 [Q, N], the number of differing bits, computed in exact integer arithmetic.

    Examples
    --------
    >>> import torch
    >>> hamming_distance(torch.tensor([[1., -1., 1.]]), torch.tensor([[1, 0, 1], [0, 1, 0]]))
    tensor([[0, 3]])
    """
    q, d = _prepare_codes(query_codes, db_codes)
    problem = _Problem(q, d, None, q.shape[1], q.device)  # type: ignore[arg-type]
    qf, df = _distance_features(problem)
    out = torch.empty(q.shape[0], d.shape[0], dtype=torch.int64, device=q.device)
    rows = max(1, (1 << 22) // d.shape[0])
    for q0 in range(0, q.shape[0], rows):
        out[q0:q0 + rows] = _exact_mm(qf[q0:q0 + rows], df)
    return out
