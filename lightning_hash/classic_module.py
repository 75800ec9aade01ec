"""The shared LightningModule plumbing of the classic (closed-form) hashing baselines.

A classic method has ``requires_training = False``: ``run.py`` calls :meth:`ClassicHashingModule.fit_once` with
the DataModule (fitting on the TRAINING split only) and then ``trainer.test``. What ``fit_once`` learns is kept
as registered buffers named ``fitted_<modality>_<what>`` (float64), so a checkpoint holds the whole hash
function; loading a checkpoint into a fresh instance (``load_from_checkpoint``) recreates those buffers with the
checkpoint's shapes. ``encode`` computes in float64 (the sign of a value near 0 must not depend on float32
rounding; float32 on Apple MPS, which has no float64) and returns float32 projections whose sign is the code.

Inputs: a modality served as vectors ``[B, d]`` is used as is; images served as tensors ``[B, C, H, W]`` are
flattened (the same in fitting and encoding). The training matrices are read straight from the DataModule's
training dataset (every training item exactly once, no shuffling, no ``drop_last``); ``max_train`` optionally
fits on a seeded random subset of them (the same rows for every modality, so pairs stay pairs).
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch

from lightning_hash.contract import training_matrices
from lightning_hash.module import HashingModule

BUFFER_PREFIX = "fitted_"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def check_modality_name(modality: str) -> str:
    """Modality names become buffer names: letters and digits only, starting with a letter."""
    if not isinstance(modality, str) or not _NAME.match(modality):
        raise ValueError(f"modality name {modality!r} is not supported by the classic methods: use letters and "
                         "digits only (e.g. 'image', 'text', 'view2')")
    return modality


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1)


class ClassicHashingModule(HashingModule):
    """Base class of the classic methods: fitted buffers, training matrices, linear encoding.

    Subclasses implement :meth:`fit_arrays` (``{modality: [n, d] float64}`` -> ``{buffer name: array}``) and,
    when the hash function is not ``(x - mean) @ projection``, :meth:`encode_modality`.

    Parameters
    ----------
    bits: code length.
    seed: seeds every random draw of the method (``run.py`` passes ``--seed``).
    max_train: fit on a seeded random subset of at most this many training items (``None``: all of them).
    image_dim, text_dim: input dimensions (``run.py`` fills them from ``datamodule.input_dims``); checked against
        the data in :meth:`fit_once`.
    **eval_kwargs: evaluation settings of :class:`~lightning_hash.module.HashingModule`.
    """

    requires_training = False

    def __init__(self, bits: int, seed: int = 0, max_train: Optional[int] = None, image_dim: Optional[int] = None,
                 text_dim: Optional[int] = None, **eval_kwargs) -> None:
        super().__init__(bits=bits, **eval_kwargs)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if max_train is not None and (isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 2):
            raise ValueError(f"max_train must be an integer >= 2 or None, got {max_train!r}")
        self.seed = int(seed)
        self.max_train = max_train
        self.declared_dims = {m: int(d) for m, d in (("image", image_dim), ("text", text_dim)) if d is not None}
        self.fitted_modalities: List[str] = []

    # ------------------------------------------------------------------ what subclasses implement
    def fit_modalities(self, datamodule) -> List[str]:
        """The modalities to fit (default: every modality a task of the DataModule encodes)."""
        raise NotImplementedError

    def fit_arrays(self, data: Dict[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
        """``{modality: {what: array}}`` to store; must hold ``mean`` and ``projection`` for linear encoding."""
        raise NotImplementedError

    def encode_modality(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """``(x - mean) @ projection`` in float64 (override for non-linear hash functions)."""
        return (x - self.fitted(modality, "mean")) @ self.fitted(modality, "projection")

    # ------------------------------------------------------------------ buffers
    def set_fitted(self, modality: str, what: str, value) -> None:
        """Store ``value`` as buffer ``fitted_<modality>_<what>`` (float64), replacing any previous one."""
        name = f"{BUFFER_PREFIX}{check_modality_name(modality)}_{what}"
        tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
        if name in self._buffers:
            del self._buffers[name]
        self.register_buffer(name, tensor)

    def _compute_dtype(self) -> torch.dtype:
        # float64 everywhere but on Apple's MPS, which has no float64
        return torch.float32 if self.device.type == "mps" else torch.float64

    def fitted(self, modality: str, what: str) -> torch.Tensor:
        """The fitted buffer ``fitted_<modality>_<what>``, in the compute dtype (whatever a precision plugin did)."""
        name = f"{BUFFER_PREFIX}{modality}_{what}"
        if name not in self._buffers:
            if not self.fitted_modalities:
                raise RuntimeError(f"{type(self).__name__} is not fitted: call fit_once(datamodule) (run.py does) "
                                   "or load a checkpoint")
            raise KeyError(f"{type(self).__name__} has no hash function for modality '{modality}'; it was fitted for "
                           f"{self.fitted_modalities}")
        return self._buffers[name].to(self._compute_dtype())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # Recreate the fitted buffers with the checkpoint's shapes before the regular loading copies them.
        found = set()
        for key, value in state_dict.items():
            if key.startswith(prefix + BUFFER_PREFIX) and "." not in key[len(prefix):]:
                name = key[len(prefix):]
                if name in self._buffers:
                    del self._buffers[name]
                self.register_buffer(name, torch.empty_like(value))
                found.add(name[len(BUFFER_PREFIX):].split("_", 1)[0])
        if found:
            self.fitted_modalities = sorted(found)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ------------------------------------------------------------------ the harness contract
    def fit_once(self, datamodule) -> None:
        """Fit the hash functions on the TRAINING split of ``datamodule`` (closed form / a few iterations)."""
        modalities = [check_modality_name(m) for m in self.fit_modalities(datamodule)]
        dims = getattr(datamodule, "input_dims", {}) or {}
        for m in modalities:
            if m in self.declared_dims and m in dims and isinstance(dims[m], int) and dims[m] != self.declared_dims[m]:
                raise ValueError(f"{m}_dim={self.declared_dims[m]} but the data serves {m} vectors of dimension "
                                 f"{dims[m]}")
        data = training_matrices(datamodule, modalities, max_train=self.max_train, seed=self.seed)
        for m, x in data.items():
            if m in self.declared_dims and x.shape[1] != self.declared_dims[m]:
                raise ValueError(f"{m}_dim={self.declared_dims[m]} but the training {m} features have "
                                 f"{x.shape[1]} columns")
        stored = self.fit_arrays(data)
        for name in [n for n in self._buffers if n.startswith(BUFFER_PREFIX)]:
            del self._buffers[name]
        for m, arrays in stored.items():
            for what, value in arrays.items():
                self.set_fitted(m, what, value)
        self.fitted_modalities = sorted(stored)
        self.fit_info = {m: {"n_train": int(x.shape[0]), "dim": int(x.shape[1])} for m, x in data.items()}

    @torch.no_grad()
    def encode(self, batch: Dict[str, torch.Tensor], modality: str) -> torch.Tensor:
        """Real-valued projections ``[B, bits]`` of ``batch[modality]`` (float32; their sign is the code)."""
        if modality not in batch:
            raise KeyError(f"modality '{modality}' is not in the batch (keys: {sorted(batch)})")
        x = _flat(batch[modality]).to(device=self.device, dtype=self._compute_dtype())
        mean = self.fitted(modality, "mean")
        if x.shape[1] != mean.shape[0]:
            raise ValueError(f"modality '{modality}': the batch has {x.shape[1]} features per item, the hash "
                             f"function was fitted on {mean.shape[0]}")
        return self.encode_modality(x, modality).float()


def task_modalities(datamodule) -> List[str]:
    """The modalities the DataModule's tasks encode from item sets (not the class-level query sets)."""
    out: List[str] = []
    for task in getattr(datamodule, "tasks", []) or []:
        for modality, set_name in ((task.query, task.query_set), (task.database, task.database_set)):
            if set_name != "classes" and modality not in out:
                out.append(modality)
    if not out:
        out = list(getattr(datamodule, "modalities", ()) or ())
    if not out:
        raise ValueError(f"{type(datamodule).__name__} declares no task nor modality; call setup() first")
    return out


def require_pair(modalities: Iterable[str], datamodule, method: str) -> List[str]:
    """Check that both modalities of a cross-modal method are served by ``datamodule``."""
    modalities = list(modalities)
    if len(modalities) != 2 or modalities[0] == modalities[1]:
        raise ValueError(f"{method}: modalities must name two different views, e.g. ('image', 'text'); got "
                         f"{modalities}")
    served = list(getattr(datamodule, "modalities", ()) or ())
    missing = [m for m in modalities if m not in served]
    if missing:
        raise ValueError(f"{method} is cross-modal and needs modalities {modalities}; the data serves {served} "
                         f"(missing {missing}). Use a cross-modal dataset (wiki, digits, ...) or pass "
                         "--set method.modalities=[a,b]")
    return modalities
