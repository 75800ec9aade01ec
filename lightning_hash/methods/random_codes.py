"""Random codes: the chance-level reference every figure should be read against.

Each item gets a fixed random code drawn from a generator seeded by ``(seed, modality, item index)``, so the
baseline is reproducible, identical across runs and devices, and "measured the same way" as a trained method:
same splits, same evaluation loop, same metric code. Nothing is trained.
"""
from __future__ import annotations

import torch

from lightning_hash.methods._registry import register
from lightning_hash.module import HashingModule


def _salt(modality: str) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(modality)) % 100_003


@register("random")
class RandomCodes(HashingModule):
    """Codes uniformly random per (item, modality), independent of the content."""

    requires_training = False

    def __init__(self, bits: int = 64, seed: int = 0, **eval_kwargs) -> None:
        super().__init__(bits=bits, **eval_kwargs)
        self.save_hyperparameters()
        self.seed = int(seed)

    def encode(self, batch, modality):
        out = torch.empty(len(batch["index"]), self.bits)
        for row, idx in enumerate(batch["index"].tolist()):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + _salt(modality) * 7_919 + int(idx))
            out[row] = torch.randint(0, 2, (self.bits,), generator=g).float() * 2 - 1
        return out.to(self.device)

    def fit_once(self, datamodule) -> None:
        """Nothing to fit."""
