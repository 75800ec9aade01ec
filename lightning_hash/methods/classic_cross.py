"""Cross-modal classic baselines as registered methods: ``cca_itq``, ``cvh``, ``cmfh``.

* ``cca_itq``: CCA between the two views, then one ITQ rotation of the shared space (Gong, Lazebnik, Gordo &
  Perronnin, TPAMI 2013). :func:`lightning_hash.classic.cca_itq_fit`.
* ``cvh``: cross-view hashing (Kumar & Udupa, IJCAI 2011), two views, identity cross-view similarity: the
  generalised eigenproblem ``O a = rho D a`` (equivalently CCA). :func:`lightning_hash.classic.cvh_fit`.
* ``cmfh``: collective matrix factorisation hashing (Ding, Guo & Zhou, CVPR 2014), alternating closed-form
  updates of U1, U2, V, P1, P2; codes ``sign(P_m (x - mean_m))``. :func:`lightning_hash.classic.cmfh_fit`.

Each fits on the TRAINING pairs of the two modalities (``modalities``, default ``("image", "text")``), and
encodes either modality with its own linear projection ``(x - mean_m) @ projection_m``. The equations and every
departure from the papers are in the docstring of :mod:`lightning_hash.classic`. After fitting,
``self.fit_trace`` holds the per-iteration values (ITQ quantisation loss, CMFH objective) and the canonical
correlations, for inspection and logging.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from lightning_hash.methods._registry import register
from lightning_hash.classic import cca_itq_fit, cmfh_fit, cvh_fit
from lightning_hash.classic_module import ClassicHashingModule, check_modality_name, require_pair


class _CrossModal(ClassicHashingModule):
    def __init__(self, bits: int, seed: int, max_train: Optional[int], image_dim: Optional[int],
                 text_dim: Optional[int], modalities: Sequence[str], **eval_kwargs) -> None:
        super().__init__(bits=bits, seed=seed, max_train=max_train, image_dim=image_dim, text_dim=text_dim,
                         **eval_kwargs)
        modalities = list(modalities)
        if len(modalities) != 2 or modalities[0] == modalities[1]:
            raise ValueError(f"{type(self).__name__}: modalities must name two different views, e.g. "
                             f"('image', 'text'); got {modalities}")
        self.pair = [check_modality_name(m) for m in modalities]
        self.fit_trace: Dict[str, List[float]] = {}

    def fit_modalities(self, datamodule) -> List[str]:
        return require_pair(self.pair, datamodule, self.method_name)

    def fit_arrays(self, data: Dict[str, np.ndarray]) -> Dict[str, Dict[str, np.ndarray]]:
        a, b = self.pair
        mean_a, proj_a, mean_b, proj_b = self.fit_pair(data[a], data[b])
        return {a: {"mean": mean_a, "projection": proj_a}, b: {"mean": mean_b, "projection": proj_b}}

    def fit_pair(self, x: np.ndarray, y: np.ndarray):
        raise NotImplementedError


@register("cca_itq")
class CCAITQ(_CrossModal):
    """CCA-ITQ. ``reg``: relative ridge of the covariances; ``n_iter``: ITQ iterations; ``eigen_power``: scale
    canonical direction i by ``rho_i ** eigen_power``; ``rank_tol``: correlations at or below it are dropped."""

    def __init__(self, bits: int = 32, seed: int = 0, reg: float = 1e-4, n_iter: int = 50, eigen_power: float = 0.0,
                 rank_tol: float = 1e-6, max_train: Optional[int] = None, image_dim: Optional[int] = None,
                 text_dim: Optional[int] = None, modalities: Sequence[str] = ("image", "text"),
                 **eval_kwargs) -> None:
        super().__init__(bits=bits, seed=seed, max_train=max_train, image_dim=image_dim, text_dim=text_dim,
                         modalities=modalities, **eval_kwargs)
        self.save_hyperparameters()

    def fit_pair(self, x, y):
        h = self.hparams
        r = cca_itq_fit(x, y, self.bits, reg=h.reg, n_iter=h.n_iter, seed=self.seed, eigen_power=h.eigen_power,
                        rank_tol=h.rank_tol)
        self.fit_trace = {"itq_loss": r.losses, "correlations": r.correlations.tolist()}
        return r.mean_x, r.projection_x, r.mean_y, r.projection_y


@register("cvh")
class CVH(_CrossModal):
    """Cross-view hashing (two views). ``reg``: relative ridge; ``rank_tol``: correlations at or below it count
    as 0 (bits beyond the informative pairs are one-sided, see ``cvh_fit``). Deterministic: ``seed`` only
    matters with ``max_train``."""

    def __init__(self, bits: int = 32, seed: int = 0, reg: float = 1e-4, rank_tol: float = 1e-6,
                 max_train: Optional[int] = None, image_dim: Optional[int] = None, text_dim: Optional[int] = None,
                 modalities: Sequence[str] = ("image", "text"), **eval_kwargs) -> None:
        super().__init__(bits=bits, seed=seed, max_train=max_train, image_dim=image_dim, text_dim=text_dim,
                         modalities=modalities, **eval_kwargs)
        self.save_hyperparameters()

    def fit_pair(self, x, y):
        r = cvh_fit(x, y, self.bits, reg=self.hparams.reg, rank_tol=self.hparams.rank_tol)
        self.fit_trace = {"eigenvalues": r.eigenvalues.tolist(), "n_informative": [float(r.n_informative)]}
        return r.mean_x, r.projection_x, r.mean_y, r.projection_y


@register("cmfh")
class CMFH(_CrossModal):
    """CMFH. ``lam`` (lambda: weight of the first view's factorisation), ``mu`` (weight of the projection
    terms), ``gamma`` (ridge), ``n_iter`` / ``tol`` (stopping). Defaults: lambda 0.5, mu 100, gamma 0.01 (the
    authors' released settings)."""

    def __init__(self, bits: int = 32, seed: int = 0, lam: float = 0.5, mu: float = 100.0, gamma: float = 0.01,
                 n_iter: int = 100, tol: float = 1e-6, max_train: Optional[int] = None,
                 image_dim: Optional[int] = None, text_dim: Optional[int] = None,
                 modalities: Sequence[str] = ("image", "text"), **eval_kwargs) -> None:
        super().__init__(bits=bits, seed=seed, max_train=max_train, image_dim=image_dim, text_dim=text_dim,
                         modalities=modalities, **eval_kwargs)
        self.save_hyperparameters()

    def fit_pair(self, x, y):
        h = self.hparams
        r = cmfh_fit(x, y, self.bits, lam=h.lam, mu=h.mu, gamma=h.gamma, n_iter=h.n_iter, tol=h.tol, seed=self.seed)
        self.fit_trace = {"objective": r.objective}
        return r.mean_1, r.p1.T, r.mean_2, r.p2.T
