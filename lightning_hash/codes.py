"""Binary code utilities shared by every method and the evaluation loop."""
from __future__ import annotations

import torch


def sign_codes(h: torch.Tensor) -> torch.Tensor:
    """Binarise real-valued outputs to {-1, +1} with ``sign``, mapping exact zeros to +1.

    ``torch.sign`` returns 0 for 0, which is not a valid bit; every method and the evaluation loop
    binarise through this one function so that the convention cannot drift.

    >>> sign_codes(torch.tensor([-0.3, 0.0, 2.0]))
    tensor([-1.,  1.,  1.])
    """
    return torch.where(h >= 0, torch.ones_like(h), -torch.ones_like(h))
