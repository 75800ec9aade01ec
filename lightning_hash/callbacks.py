"""Callbacks the harness adds to every run."""
from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np
import pytorch_lightning as pl
import torch


class RNGStateCallback(pl.Callback):
    """Save the Python, NumPy and torch RNG states in every checkpoint and restore them on resume.

    Together with epoch-seeded data shuffling this makes a resumed run continue with exactly the random numbers
    (dropout masks, reparameterisation noise, ...) an uninterrupted run would have drawn.
    """

    def state_dict(self) -> Dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        # plain ints, lists and tensors only, so the checkpoint also loads with torch.load(weights_only=True)
        return {"python": random.getstate(),
                "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        random.setstate(state["python"])
        kind, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        torch.set_rng_state(state["torch"])
        if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
