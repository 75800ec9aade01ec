"""Single-modal classic baselines as registered methods: ``lsh``, ``itq``, ``sh``.

* ``lsh``: random hyperplanes, ``sign(W^T (x - mean))`` with ``W ~ N(0, 1)`` (Charikar 2002; the "LSH" of the
  hashing tables). :func:`lightning_hash.classic.lsh_fit`.
* ``itq``: PCA + iterative quantisation (Gong & Lazebnik, TPAMI 2013, quantisation loss
  ``Q(B, R) = ||B - V R||_F^2``, 50 iterations). :func:`lightning_hash.classic.itq_fit`.
* ``sh``: spectral hashing (Weiss, Torralba & Fergus, NIPS 2008): PCA, uniform box, analytic 1-D Laplacian
  eigenfunctions ``sin(pi/2 + k pi/(b-a) x)``, the ``bits`` smallest eigenvalues, threshold at 0.
  :func:`lightning_hash.classic.sh_fit`.

The equations and every departure from the papers are in the docstring of :mod:`lightning_hash.classic`.

Which modality is hashed: a single-modal method fits one independent hash function per modality that the
DataModule's tasks encode (``modalities=None``), each on that modality's TRAINING features; so on an
``image->image`` task (``--data cifar10``, ``--data mnist``, ``--data digits --set "data.modalities=[image]"``,
a GIST bundle) it is the published baseline. On cross-modal tasks the per-modality codes are not aligned and
would score at chance level, so they are refused (``HashingModule.check_tasks``; use ``cca_itq``, ``cvh`` or
``cmfh`` there); the shipped configs serve ``data.modalities=[image]``. ``modalities=[...]`` restricts the
fitted modalities.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from lightning_hash.methods._registry import register
from lightning_hash.classic import itq_fit, lsh_fit, sh_fit
from lightning_hash.classic_module import ClassicHashingModule, task_modalities



class _SingleModal(ClassicHashingModule):
    """One independent hash function per fitted modality."""

    cross_modal = False

    def __init__(self, bits: int, seed: int, max_train: Optional[int], image_dim: Optional[int],
                 text_dim: Optional[int], modalities: Optional[Sequence[str]], **eval_kwargs) -> None:
        super().__init__(bits=bits, seed=seed, max_train=max_train, image_dim=image_dim, text_dim=text_dim,
                         **eval_kwargs)
        if modalities is not None and (isinstance(modalities, str) or len(modalities) == 0):
            raise ValueError(f"modalities must be a non-empty list of modality names or None, got {modalities!r}")
        self.modalities = None if modalities is None else list(modalities)

    def fit_modalities(self, datamodule) -> List[str]:
        self.check_tasks(list(getattr(datamodule, "tasks", []) or []))
        if self.modalities is None:
            return task_modalities(datamodule)
        served = list(getattr(datamodule, "modalities", ()) or ())
        missing = [m for m in self.modalities if m not in served]
        if missing:
            raise ValueError(f"{self.method_name}: modalities {missing} are not served by the data ({served})")
        return list(self.modalities)

    def fit_arrays(self, data: Dict[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
        return {m: self.fit_one(x) for m, x in data.items()}

    def fit_one(self, x: np.ndarray) -> Dict[str, np.ndarray]:
        raise NotImplementedError


@register("lsh")
class LSH(_SingleModal):
    """Random-hyperplane LSH. ``center``: subtract the training mean before projecting (default True)."""

    def __init__(self, bits: int = 32, seed: int = 0, center: bool = True, max_train: Optional[int] = None,
                 image_dim: Optional[int] = None, text_dim: Optional[int] = None,
                 modalities: Optional[Sequence[str]] = None, **eval_kwargs) -> None:
        super().__init__(bits=bits, seed=seed, max_train=max_train, image_dim=image_dim, text_dim=text_dim,
                         modalities=modalities, **eval_kwargs)
        self.save_hyperparameters()
        self.center = bool(center)

    def fit_one(self, x: np.ndarray) -> Dict[str, np.ndarray]:
        r = lsh_fit(x, self.bits, seed=self.seed, center=self.center)
        return {"mean": r.mean, "projection": r.projection}


@register("itq")
class ITQ(_SingleModal):
    """PCA-ITQ. ``n_iter``: rotation updates (50 in the paper). ``self.itq_losses[modality]`` holds the
    quantisation loss per iteration after fitting."""

    def __init__(self, bits: int = 32, seed: int = 0, n_iter: int = 50, max_train: Optional[int] = None,
                 image_dim: Optional[int] = None, text_dim: Optional[int] = None,
                 modalities: Optional[Sequence[str]] = None, **eval_kwargs) -> None:
        super().__init__(bits=bits, seed=seed, max_train=max_train, image_dim=image_dim, text_dim=text_dim,
                         modalities=modalities, **eval_kwargs)
        self.save_hyperparameters()
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
        self.n_iter = n_iter
        self.itq_losses: Dict[str, List[float]] = {}

    def fit_arrays(self, data):
        out = {}
        for m, x in data.items():
            r = itq_fit(x, self.bits, n_iter=self.n_iter, seed=self.seed)
            self.itq_losses[m] = r.losses
            out[m] = {"mean": r.mean, "projection": r.projection, "rotation": r.rotation}
        return out


@register("sh")
class SH(_SingleModal):
    """Spectral hashing (deterministic; ``seed`` only matters with ``max_train``)."""

    def __init__(self, bits: int = 32, seed: int = 0, max_train: Optional[int] = None,
                 image_dim: Optional[int] = None, text_dim: Optional[int] = None,
                 modalities: Optional[Sequence[str]] = None, **eval_kwargs) -> None:
        super().__init__(bits=bits, seed=seed, max_train=max_train, image_dim=image_dim, text_dim=text_dim,
                         modalities=modalities, **eval_kwargs)
        self.save_hyperparameters()

    def fit_one(self, x: np.ndarray) -> Dict[str, np.ndarray]:
        r = sh_fit(x, self.bits)
        return {"mean": r.mean, "components": r.components, "mn": r.mn, "range": r.range, "modes": r.modes}

    def encode_modality(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """``prod_j sin(pi/2 + modes_ij pi / range_j (p_j - mn_j))`` with ``p = (x - mean) W`` (compressSH.m)."""
        f = lambda what: self.fitted(modality, what)  # noqa: E731
        xp = (x - f("mean")) @ f("components") - f("mn")                     # [B, c]
        omegas = f("modes") * (torch.pi / f("range"))                         # [bits, c]
        # one non-zero frequency per bit: the product over the other dimensions is sin(pi/2) = 1
        return torch.prod(torch.sin(torch.pi / 2 + xp[:, None, :] * omegas[None, :, :]), dim=2)
