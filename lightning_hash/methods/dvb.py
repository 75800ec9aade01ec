"""DVB: Deep Variational Binaries (unsupervised single-modal hashing).

Paper: Y. Shen, L. Liu, L. Shao, "Unsupervised Deep Generative Hashing" / "Deep Variational Binaries", BMVC 2017;
here from Y. Shen's PhD thesis (UEA 2018), chapter 3 (``shared/papers/shen_thesis_dvb_tvdb_zsih.md``). The
authors' unfinished TensorFlow code (github.com/ymcidence/VAEBinaryCode, ``model/conditional_binaries.py``) was
read to settle what the thesis leaves open; it is cited below where it decides something.

Model (Figure 3.3)
------------------
Three networks, each two hidden fully-connected layers of ``hidden = 1024`` units with ReLU:

* prior ``p(z|x) = N(mu_theta(x), diag(sigma_theta^2(x)))`` (eq. 3.7): mean head ``tanh``, variance head ``sigmoid``;
* posterior ``q(z|x,b) = N(mu_phi(x,b), diag(sigma_phi^2(x,b)))`` (eq. 3.5): same heads, input ``[x, b]``;
* generator ``g(x,z)`` -> ``bits`` with ``tanh``; ``b = sign(g(x, z))`` (eq. 3.1).

Pseudo centres (Sec. 3.3.2, 3.4.1, 3.4.3.3), computed ONCE on the training split before the first training step
(:func:`pseudo_centres`, in ``on_fit_start``): L2-normalise the training features, PCA to ``latent_dim = l`` dims,
k-means with ``K = num_centres`` centres (seeded); with ``latent_dim=None`` (short features such as GIST-512) no
PCA: k-means directly on the (normalised) inputs and ``l = d``. Each item's centre ``c`` is its nearest centre
(:func:`assign_centres`). The PCA mean/components and the centres are module buffers, so ``last.ckpt``, a
resumed run and ``load_from_checkpoint`` all hold them; a resumed run does not recompute them.

Equations implemented (each a pure function below, tested in ``tests/lightning_hash/methods/test_dvb.py``)
-------------------------------------------------------------------------------
* Eq. 3.6 / 3.7 reparameterisation (:func:`reparameterize`): ``z = mu + eps * sigma``, ``eps ~ N(0, eps_std^2)``.
* KL of two diagonal Gaussians (:func:`gaussian_kl`), the first term of eq. 3.15:
  ``KL(q||p) = 1/2 sum_k [log(s_p^2/s_q^2) + (s_q^2 + (mu_q - mu_p)^2)/s_p^2 - 1]``.
* Centre term of eq. 3.9 / 3.15 (:func:`centre_loss`): ``||mu_theta(x_i) - c_i||^2``.
* Eq. 3.10 (:func:`quantization_loss`): ``H1 = ||G - sign(G)||_F^2`` (sign a constant).
* Eq. 3.11 (:func:`decorrelation_loss`): ``H2 = ||G^T G - I||_F^2``; see departures for the ``1/N_B``.
* Eq. 3.12 (:func:`batch_affinity`): ``A_ij = exp(-||x_i - x_j||^2 / t)``; Laplacian ``S = diag(A 1) - A``
  (:func:`laplacian`).
* Eq. 3.13 (:func:`similarity_loss`): ``H3 = trace(G^T S G) = 1/2 sum_ij A_ij ||g_i - g_j||^2``. SIGN: the thesis
  prints ``H3 = -trace(G^T S G)``. With ``S`` the Laplacian, ``trace(G^T S G) >= 0`` is the weighted sum of squared
  distances between the codes of similar items, so *minimising* the printed ``-trace`` would push similar items'
  codes APART. We minimise ``+trace(G^T S G)``, which pulls them together (the thesis' stated intent: "closely
  encode data samples that have similar representations"); the authors' code minimises ``-trace(G^T A G)`` with
  an affinity ``A`` (not a Laplacian), which is the same direction. The test checks the direction explicitly.
* Eq. 3.15 (:func:`dvb_loss`): ``sum_i (KL_i + ||mu_theta(x_i) - c_i||^2) + a1 H1 + a2 H2 + a3 H3``.
* Algorithm 1: ``z ~ p(z|x)`` (reparameterised), ``g = g(x, z)``, the posterior gets ``[x, b]``, Adam 1e-4, batch 256.
* Eq. 3.16 (:meth:`DVB.encode`): ``f(x) = 1/L sum_s g(x, z_s)``, ``z_s ~ p(z|x)``, ``L = eval_samples = 10``;
  ``b = sign(f(x))``. The noise is SEEDED: item ``i`` always gets the noise of a ``torch.Generator`` seeded with
  ``(eval_seed, i)`` (its dataset index), so evaluation does not touch the global RNG and the code of an item
  does not depend on the batch it sits in, the evaluation set, or DDP sharding.

Ablations (Table 3.4, ``ablation=``): ``"dvb1"`` no centre term (centres are then not computed), ``"dvb2"`` no H2,
``"dvb3"`` no H3, ``"dvb4"`` neither H2 nor H3 (:func:`ablation_weights`).

Departures from the thesis, and why
-----------------------------------
* **Posterior input** (``posterior_code``). ``b = sign(g)`` has zero gradient, so with a hard ``b`` the KL term
  cannot train the generator at all. The thesis does not say how gradients cross the sign; the authors' code feeds
  the real-valued ``g`` (tanh output) to ``q(z|x,b)``, which is our default ``"relaxed"``. ``"sign"`` (hard codes,
  no gradient into ``g``) and ``"straight_through"`` (hard forward, identity backward) are available.
* **H2 scale** (``h2_scale``). For ``G`` of shape ``N_B x m`` with entries near +-1 (what H1 asks), the diagonal
  of ``G^T G`` is about ``N_B``, so the printed ``||G^T G - I||^2`` fights H1 and grows as ``N_B^2`` (2 million
  at batch 256, 32 bits, drowning every other term). Default ``"batch"``: ``||G^T G / N_B - I||^2`` (bits
  decorrelated and of unit second moment, the stated intent); ``"none"`` is the printed form.
* **Bandwidth t of eq. 3.12** (``t_scale``). ``t = 1e-3`` as printed, with squared distances ~1 between
  L2-normalised or GIST features, gives ``exp(-1000) = 0``: ``A = I``, the Laplacian is 0 and H3 vanishes
  (DVB-3 would equal DVB). ``t_scale="absolute"`` is the printed rule; the default ``"mean"`` uses
  ``t * mean_{i != j} ||x_i - x_j||^2`` of the batch (a constant per batch), so ``t`` is relative to the data's
  scale. The distances are taken on the network inputs ``x``.
* **Loss normalisation**: eq. 3.15 is a sum over the batch; we divide the whole of it by ``N_B`` (Adam is
  invariant to a constant factor up to its epsilon; the relative weights are unchanged) so the logged loss does not
  depend on the batch size.
* **Noise scale** (``eps_std``, default 1 = the standard reparameterisation, which the KL assumes). The thesis calls
  ``eps`` "small-valued random values"; the authors' code draws ``eps ~ N(0, 0.02^2)``; ``eps_std=0.02`` gives that.
* **Input standardisation** (``standardize_input=True``): the networks see ``(x - mean) / std`` with the training
  split's statistics (module buffers computed with the centres). On non-negative inputs (pixels, GIST) the
  untrained generator maps every item to almost the same output, H1 then saturates that common code and training
  collapses to one code (measured on digits). The centres (eq. 3.9) and the affinity ``A`` (eq. 3.12) are
  computed on the raw features ``x``, as in the thesis.
* **Collapse and the shipped weights.** With the thesis' ``eps_std``-free sampling, ``a1 = 0.5``, ``a2 = 0.1``,
  the generator reached one code for every item on the digits default (mAP at chance, measured): the noise of
  ``z`` is used to satisfy H2 in training and averaged away by eq. 3.16. ``lightning_hash/configs/dvb.yaml`` ships
  ``eps_std = 0.02`` (authors' code), ``a1 = 0.5`` (the thesis'), ``a2 = 3``, ``a3 = 30``, ``t = 0.1``
  (relative), ``lr = 1e-3``, chosen on validation queries of digits and CIFAR-10 (docs/dvb.md has the grids);
  the constructor defaults stay the thesis' values.
* ``eval_samples=0`` encodes with ``z = mu_theta(x)`` (no sampling): not in the thesis, a deterministic check.
* Inputs: GIST-512 (Table 3.2), raw pixels (MNIST) or any vector features; the paper's 4096-d VGG fc7 features
  are not available offline. Images served as tensors are flattened.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lightning_hash.methods._registry import register
from lightning_hash.classic import pca
from lightning_hash.stats import standardization
from lightning_hash.module import HashingModule

#: ablation name -> the terms it removes (thesis Table 3.4)
ABLATIONS: Dict[str, Tuple[str, ...]] = {
    "full": (), "dvb1": ("centre",), "dvb2": ("h2",), "dvb3": ("h3",), "dvb4": ("h2", "h3"),
}
POSTERIOR_CODES = ("relaxed", "sign", "straight_through")
_NOISE_SEED_MULT = 1_000_003


# ============================================================================================== pseudo centres
@dataclass
class PseudoCentres:
    """What :func:`pseudo_centres` computes: the map to the centre space and the centres.

    ``mean`` ``[d]`` and ``components`` ``[d, l]`` are the PCA (``None`` without PCA), ``centres`` ``[K, l]``,
    ``labels`` ``[n]`` the nearest centre of each training row, ``explained`` the PCA's explained variance ratio.
    """

    mean: Optional[np.ndarray]
    components: Optional[np.ndarray]
    centres: np.ndarray
    labels: np.ndarray
    explained: Optional[float]
    l2_normalize: bool


def _l2_normalize_np(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pca_fit(x: np.ndarray, dim: int) -> Tuple[np.ndarray, np.ndarray, float]:
    """PCA of the rows of ``x``: ``(mean [d], components [d, dim], explained variance ratio)``.

    The library's PCA (:func:`lightning_hash.classic.pca`: top eigenvectors of the covariance in float64, each
    with its largest-magnitude entry positive, so the result is deterministic) plus the share of the total
    variance the components keep.

    >>> x = np.array([[0., 0.], [2., 0.], [0., 1.], [2., 1.]])
    >>> mean, comp, ratio = pca_fit(x, 1)
    >>> mean.tolist(), comp[:, 0].round(6).tolist(), round(ratio, 3)
    ([1.0, 0.5], [1.0, 0.0], 0.8)
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"pca_fit: x must be a matrix [n, d], got shape {x.shape}")
    n, d = x.shape
    if not 1 <= int(dim) <= min(d, n - 1):
        raise ValueError(f"pca_fit: dim must lie in [1, min(d, n - 1)] = [1, {min(d, n - 1)}], got {dim}")
    mean, comp, variances = pca(x, int(dim))
    total = float(((x - mean) ** 2).sum() / n)   # the covariance's trace: the sum of all its eigenvalues
    ratio = float(variances.sum() / total) if total > 0 else 1.0
    return mean, comp, ratio


def centre_space(x: torch.Tensor, mean: Optional[torch.Tensor], components: Optional[torch.Tensor],
                 l2_normalize: bool) -> torch.Tensor:
    """Map features to the space of the pseudo centres: optional L2 normalisation, then optional PCA.

    >>> centre_space(torch.tensor([[3., 4.]]), None, None, True)
    tensor([[0.6000, 0.8000]])
    """
    if l2_normalize:
        x = F.normalize(x, dim=1, eps=1e-12)
    if components is not None:
        x = (x - mean) @ components
    return x


def assign_centres(points: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centre (squared Euclidean distance; ties to the lower index) of each row ``[n]``.

    >>> assign_centres(torch.tensor([[0.1, 0.], [0.9, 1.]]), torch.tensor([[0., 0.], [1., 1.]])).tolist()
    [0, 1]
    """
    if points.ndim != 2 or centres.ndim != 2 or points.shape[1] != centres.shape[1]:
        raise ValueError(f"assign_centres: points [n, l] and centres [K, l] must share l, got {tuple(points.shape)} "
                         f"and {tuple(centres.shape)}")
    d = (points.pow(2).sum(1, keepdim=True) - 2 * points @ centres.t() + centres.pow(2).sum(1)[None, :])
    return torch.argmin(d, dim=1)


def pseudo_centres(x: np.ndarray, num_centres: int, latent_dim: Optional[int] = None, l2_normalize: bool = True,
                   seed: int = 0, n_init: int = 1, max_iter: int = 300) -> PseudoCentres:
    """DVB's pseudo cluster centres of the training features ``x [n, d]`` (thesis Sec. 3.3.2, 3.4.1).

    L2-normalise the rows (``l2_normalize``), PCA to ``latent_dim`` dims (``None``: no PCA, the GIST setting of
    Sec. 3.4.3.3), then k-means (scikit-learn's ``KMeans``, k-means++ initialisation, ``random_state=seed``) with
    ``num_centres`` centres. Deterministic given ``seed``.

    >>> rng = np.random.RandomState(0)
    >>> x = np.concatenate([rng.randn(20, 3) * 0.01 + 5, rng.randn(20, 3) * 0.01 - 5])
    >>> pc = pseudo_centres(x, 2, l2_normalize=False)
    >>> sorted(np.round(pc.centres[:, 0]).tolist()), np.bincount(pc.labels).tolist()
    ([-5.0, 5.0], [20, 20])
    """
    from sklearn.cluster import KMeans

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"pseudo_centres: x must be a matrix [n, d], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("pseudo_centres: the training features hold NaN or inf values")
    n = x.shape[0]
    if isinstance(num_centres, bool) or not isinstance(num_centres, (int, np.integer)) or not 2 <= num_centres <= n:
        raise ValueError(f"pseudo_centres: num_centres must be an integer in [2, n_train = {n}], got {num_centres!r}")
    if l2_normalize:
        x = _l2_normalize_np(x)
    mean = components = None
    explained = None
    if latent_dim is not None:
        mean, components, explained = pca_fit(x, int(latent_dim))
        x = (x - mean) @ components
    km = KMeans(n_clusters=int(num_centres), n_init=int(n_init), max_iter=int(max_iter), random_state=int(seed))
    km.fit(x)
    centres = km.cluster_centers_.astype(np.float64)
    labels = assign_centres(torch.from_numpy(x), torch.from_numpy(centres)).numpy()
    return PseudoCentres(mean=mean, components=components, centres=centres, labels=labels, explained=explained,
                         l2_normalize=bool(l2_normalize))


# ============================================================================================== loss terms
def reparameterize(mu: torch.Tensor, var: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 3.6 / 3.7: ``z = mu + eps * sqrt(var)`` (``eps`` drawn by the caller, already scaled).

    >>> reparameterize(torch.tensor([1.]), torch.tensor([4.]), torch.tensor([0.5])).tolist()
    [2.0]
    """
    return mu + eps * var.clamp_min(0).sqrt()


def gaussian_kl(mu_q: torch.Tensor, var_q: torch.Tensor, mu_p: torch.Tensor, var_p: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu_q, diag var_q) || N(mu_p, diag var_p))`` per row, summed over the latent dims: ``[n]``.

    ``1/2 sum_k [log(var_p/var_q) + (var_q + (mu_q - mu_p)^2)/var_p - 1]``.

    >>> gaussian_kl(torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1, 2), torch.ones(1, 2)).tolist()
    [0.0]
    """
    if not (mu_q.shape == var_q.shape == mu_p.shape == var_p.shape):
        raise ValueError(f"gaussian_kl: all four arguments must have one shape, got {tuple(mu_q.shape)}, "
                         f"{tuple(var_q.shape)}, {tuple(mu_p.shape)}, {tuple(var_p.shape)}")
    kl = 0.5 * (torch.log(var_p) - torch.log(var_q) + (var_q + (mu_q - mu_p).pow(2)) / var_p - 1.0)
    return kl.sum(dim=-1)


def centre_loss(mu_prior: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``||mu_theta(x_i) - c_i||^2`` per row (eq. 3.9 / 3.15): ``[n]``.

    >>> centre_loss(torch.tensor([[1., 2.]]), torch.tensor([[0., 0.]])).tolist()
    [5.0]
    """
    return (mu_prior - centres).pow(2).sum(dim=-1)


def quantization_loss(g: torch.Tensor) -> torch.Tensor:
    """Eq. 3.10: ``H1 = ||G - sign(G)||_F^2`` with ``sign(G)`` a constant (no gradient).

    >>> quantization_loss(torch.tensor([[0.5, -0.25]])).item()
    0.8125
    """
    return (g - torch.sign(g).detach()).pow(2).sum()


def decorrelation_loss(g: torch.Tensor, scale: str = "batch") -> torch.Tensor:
    """Eq. 3.11: ``H2 = ||G^T G - I||_F^2`` (``scale="none"``, as printed) or ``||G^T G - N_B I||_F^2 / N_B
    = N_B ||G^T G / N_B - I||_F^2`` (``scale="batch"``, the default; see the module docstring). ``G`` is ``[N_B, m]``.

    >>> decorrelation_loss(torch.tensor([[1., 1.], [1., -1.]]), "batch").item()
    0.0
    """
    if scale not in ("batch", "none"):
        raise ValueError(f"decorrelation_loss: scale must be 'batch' or 'none', got {scale!r}")
    n = g.shape[0]
    gram = g.t() @ g
    eye = torch.eye(g.shape[1], dtype=g.dtype, device=g.device)
    if scale == "batch":
        return (gram - n * eye).pow(2).sum() / n
    return (gram - eye).pow(2).sum()


def batch_affinity(x: torch.Tensor, t: float, t_scale: str = "mean") -> torch.Tensor:
    """Eq. 3.12: ``A_ij = exp(-||x_i - x_j||^2 / t')`` with ``t' = t`` (``t_scale="absolute"``, as printed) or
    ``t' = t * mean_{i != j} ||x_i - x_j||^2`` (``"mean"``, the default). No gradient flows through ``A``.

    >>> batch_affinity(torch.tensor([[0.], [1.]]), 1.0, "absolute").round(decimals=4).tolist()
    [[1.0, 0.3679], [0.3679, 1.0]]
    """
    if not t > 0:
        raise ValueError(f"batch_affinity: t must be positive, got {t}")
    if t_scale not in ("mean", "absolute"):
        raise ValueError(f"batch_affinity: t_scale must be 'mean' or 'absolute', got {t_scale!r}")
    x = x.detach().reshape(x.shape[0], -1).to(torch.float64)
    sq = x.pow(2).sum(1)
    d = (sq[:, None] - 2 * x @ x.t() + sq[None, :]).clamp_min(0)
    d.fill_diagonal_(0)
    width = float(t)
    if t_scale == "mean":
        n = x.shape[0]
        mean_d = d.sum() / max(n * (n - 1), 1)
        width = width * float(mean_d) if float(mean_d) > 0 else width
    return torch.exp(-d / width)


def laplacian(A: torch.Tensor) -> torch.Tensor:
    """``S = diag(A 1) - A`` (the in-batch graph Laplacian of Sec. 3.3.3.3).

    >>> laplacian(torch.tensor([[1., .5], [.5, 1.]])).tolist()
    [[0.5, -0.5], [-0.5, 0.5]]
    """
    return torch.diag(A.sum(dim=1)) - A


def similarity_loss(g: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Eq. 3.13 with the sign that makes similar items' codes closer: ``H3 = trace(G^T S G)``, ``S = diag(A1) - A``.

    Equals ``1/2 sum_ij A_ij ||g_i - g_j||^2 >= 0`` for a symmetric ``A`` (the thesis prints ``-trace``; see the
    module docstring).

    >>> similarity_loss(torch.tensor([[1.], [-1.]]), torch.tensor([[1., .5], [.5, 1.]])).item()
    2.0
    """
    if A.shape != (g.shape[0], g.shape[0]):
        raise ValueError(f"similarity_loss: A must be [N_B, N_B] = [{g.shape[0]}, {g.shape[0]}], got {tuple(A.shape)}")
    S = laplacian(A.to(g.dtype))
    return torch.trace(g.t() @ S @ g)


def ablation_weights(ablation: Optional[str], centre_weight: float, a2: float, a3: float
                     ) -> Tuple[float, float, float]:
    """The (centre, H2, H3) weights of a Table 3.4 variant: ``"full"``/``None``, ``"dvb1"`` (no centre term),
    ``"dvb2"`` (no H2), ``"dvb3"`` (no H3), ``"dvb4"`` (no H2, no H3).

    >>> ablation_weights("dvb4", 1.0, 0.1, 1.0)
    (1.0, 0.0, 0.0)
    """
    key = "full" if ablation is None else str(ablation).lower().replace("-", "")
    if key not in ABLATIONS:
        raise ValueError(f"ablation must be one of {sorted(ABLATIONS)} (or None), got {ablation!r}")
    off = ABLATIONS[key]
    return (0.0 if "centre" in off else float(centre_weight), 0.0 if "h2" in off else float(a2),
            0.0 if "h3" in off else float(a3))


def dvb_loss(kl: torch.Tensor, centre: Optional[torch.Tensor], g: torch.Tensor, A: Optional[torch.Tensor],
             centre_weight: float = 1.0, a1: float = 0.5, a2: float = 0.1, a3: float = 1.0, h2_scale: str = "batch",
             kl_weight: float = 1.0) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Eq. 3.15 divided by the batch size ``N_B``; returns ``(loss, terms)``.

    ``sum_i (kl_weight KL_i + centre_weight ||mu_i - c_i||^2) + a1 H1 + a2 H2 + a3 H3``, all over ``N_B``.
    ``kl``, ``centre``: per-item ``[N_B]`` (``centre`` may be ``None`` when its weight is 0); ``g``: generator
    outputs ``[N_B, m]``; ``A``: the batch affinity (``None`` when ``a3 = 0``). ``terms`` holds the unweighted
    batch sums ``kl``, ``centre``, ``h1``, ``h2``, ``h3`` (each divided by ``N_B``).
    """
    n = g.shape[0]
    zero = g.new_zeros(())
    terms = {"kl": kl.sum(), "centre": centre.sum() if centre is not None else zero,
             "h1": quantization_loss(g), "h2": decorrelation_loss(g, h2_scale) if a2 else zero,
             "h3": similarity_loss(g, A) if (a3 and A is not None) else zero}
    if centre_weight and centre is None:
        raise ValueError("dvb_loss: centre_weight > 0 needs the per-item centre distances")
    if a3 and A is None:
        raise ValueError("dvb_loss: a3 > 0 needs the batch affinity A")
    total = (kl_weight * terms["kl"] + centre_weight * terms["centre"] + a1 * terms["h1"] + a2 * terms["h2"]
             + a3 * terms["h3"])
    return total / n, {k: v.detach() / n for k, v in terms.items()}


# ============================================================================================== networks
class GaussianNet(nn.Module):
    """Two hidden FC-ReLU layers, then a ``tanh`` mean head and a ``sigmoid`` variance head (Figure 3.3)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, out_dim)
        self.var = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        # the variance is kept away from 0 so that log(var) in the KL stays finite
        return torch.tanh(self.mean(h)), torch.sigmoid(self.var(h)).clamp_min(1e-6)


class Generator(nn.Module):
    """``g(x, z)``: two hidden FC-ReLU layers and a ``tanh`` output of ``bits`` units."""

    def __init__(self, in_dim: int, hidden: int, bits: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, bits))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(torch.cat([x, z], dim=-1)))


def item_noise(indices: torch.Tensor, samples: int, dim: int, seed: int) -> torch.Tensor:
    """Standard normal noise ``[samples, n, dim]``; item ``j`` gets the draws of a generator seeded with
    ``(seed, indices[j])``, so an item's noise does not depend on its batch.

    >>> a = item_noise(torch.tensor([3, 7]), 2, 4, seed=0)
    >>> torch.equal(a[:, 1], item_noise(torch.tensor([7]), 2, 4, seed=0)[:, 0])
    True
    """
    out = torch.empty(samples, len(indices), dim)
    gen = torch.Generator()
    for j, i in enumerate(indices.tolist()):
        gen.manual_seed((int(seed) * _NOISE_SEED_MULT + int(i)) % (2 ** 63))
        out[:, j] = torch.randn(samples, dim, generator=gen)
    return out


# ============================================================================================== the method
@register("dvb")
class DVB(HashingModule):
    """DVB on one vector modality (see the module docstring for the equations and the departures).

    Parameters
    ----------
    bits: code length m.
    image_dim: input feature size d (run.py fills it from the DataModule).
    latent_dim: l; PCA to this many dims before k-means (the VGG setting, 1024). ``None``: no PCA, ``l = d`` (the
        GIST setting).
    num_centres: K of k-means (CIFAR-10: 20).
    l2_normalize_centres: L2-normalise the features before PCA / k-means (thesis: yes).
    hidden: width of the hidden layers of the three networks (1024).
    centre_weight, kl_weight, a1, a2, a3: weights of eq. 3.15 (thesis: 1, 1, 0.5, 0.1, 1).
    t, t_scale: eq. 3.12 bandwidth; ``t_scale="absolute"`` as printed (t = 1e-3), ``"mean"`` relative to the
        batch's mean squared distance.
    h2_scale: ``"batch"`` (``G^T G / N_B``) or ``"none"`` (as printed).
    posterior_code: what ``q(z|x,b)`` gets as ``b``: ``"relaxed"`` (tanh output), ``"sign"``, ``"straight_through"``.
    eps_std: standard deviation of the reparameterisation noise (1: standard; the authors' code 0.02).
    ablation: ``None``/``"full"``, ``"dvb1"`` .. ``"dvb4"`` (Table 3.4).
    lr, weight_decay: Adam (thesis: 1e-4, none).
    eval_samples: L of eq. 3.16 (10); 0 encodes with ``z = mu_theta(x)``.
    seed: seeds k-means (run.py passes ``--seed``); eval_seed: seeds the evaluation noise (``None``: ``seed``).
    kmeans_n_init, max_centre_items: k-means restarts; fit the centres on a seeded subset of at most this many
        training items (``None``: all).
    standardize_input: z-score the networks' input with the training split's statistics (see departures).
    image_key: the modality hashed (single-modal: every task must be ``image_key->image_key``).
    eval_kwargs: evaluation settings of :class:`~lightning_hash.module.HashingModule`.
    """

    cross_modal = False   # single-modal: image->image tasks only (HashingModule.check_tasks)

    def __init__(self, bits: int = 32, image_dim: Optional[int] = None, latent_dim: Optional[int] = None,
                 num_centres: int = 20, l2_normalize_centres: bool = True, hidden: int = 1024,
                 centre_weight: float = 1.0, kl_weight: float = 1.0, a1: float = 0.5, a2: float = 0.1, a3: float = 1.0,
                 t: float = 1e-3, t_scale: str = "mean", h2_scale: str = "batch", posterior_code: str = "relaxed",
                 eps_std: float = 1.0, ablation: Optional[str] = None, lr: float = 1e-4, weight_decay: float = 0.0,
                 eval_samples: int = 10, seed: int = 0, eval_seed: Optional[int] = None, kmeans_n_init: int = 1,
                 max_centre_items: Optional[int] = None, standardize_input: bool = True, image_key: str = "image",
                 **eval_kwargs) -> None:
        super().__init__(bits=bits, **eval_kwargs)
        self.save_hyperparameters()
        if image_dim is None or isinstance(image_dim, bool) or int(image_dim) <= 0:
            raise ValueError(f"dvb: image_dim must be a positive integer (run.py fills it from the datamodule), "
                             f"got {image_dim!r}")
        d = int(image_dim)
        if latent_dim is not None and not 1 <= int(latent_dim) <= d:
            raise ValueError(f"dvb: latent_dim must be None (no PCA) or an integer in [1, image_dim = {d}], "
                             f"got {latent_dim!r}")
        if isinstance(num_centres, bool) or not isinstance(num_centres, int) or num_centres < 2:
            raise ValueError(f"dvb: num_centres must be an integer >= 2, got {num_centres!r}")
        if int(hidden) <= 0:
            raise ValueError(f"dvb: hidden must be a positive integer, got {hidden!r}")
        if posterior_code not in POSTERIOR_CODES:
            raise ValueError(f"dvb: posterior_code must be one of {POSTERIOR_CODES}, got {posterior_code!r}")
        if h2_scale not in ("batch", "none"):
            raise ValueError(f"dvb: h2_scale must be 'batch' or 'none', got {h2_scale!r}")
        if t_scale not in ("mean", "absolute") or not float(t) > 0:
            raise ValueError(f"dvb: t must be positive and t_scale 'mean' or 'absolute', got t={t!r}, "
                             f"t_scale={t_scale!r}")
        if isinstance(eval_samples, bool) or not isinstance(eval_samples, int) or eval_samples < 0:
            raise ValueError(f"dvb: eval_samples must be a non-negative integer, got {eval_samples!r}")
        if not float(eps_std) >= 0:
            raise ValueError(f"dvb: eps_std must be >= 0, got {eps_std!r}")
        for name, value in (("centre_weight", centre_weight), ("kl_weight", kl_weight), ("a1", a1), ("a2", a2),
                            ("a3", a3), ("lr", lr), ("weight_decay", weight_decay)):
            if not float(value) >= 0:
                raise ValueError(f"dvb: {name} must be >= 0, got {value!r}")
        if max_centre_items is not None and (isinstance(max_centre_items, bool) or int(max_centre_items) < num_centres):
            raise ValueError(f"dvb: max_centre_items must be None or >= num_centres ({num_centres}), "
                             f"got {max_centre_items!r}")
        self.weights = ablation_weights(ablation, centre_weight, a2, a3)       # (centre, H2, H3)
        self.image_key = image_key
        self.input_dim = d
        self.latent = int(latent_dim) if latent_dim is not None else d
        self.prior = GaussianNet(d, int(hidden), self.latent)
        self.posterior = GaussianNet(d + self.bits, int(hidden), self.latent)
        self.generator = Generator(d + self.latent, int(hidden), self.bits)
        # Pseudo centres and the input standardisation: buffers of known shapes (from the hyperparameters), filled
        # once by on_fit_start; saved in every checkpoint, so a resumed run or load_from_checkpoint has them.
        self.register_buffer("input_mean", torch.zeros(d))
        self.register_buffer("input_std", torch.ones(d))
        self.register_buffer("centres", torch.zeros(int(num_centres), self.latent))
        self.register_buffer("centre_mean", torch.zeros(d if latent_dim is not None else 0))
        self.register_buffer("centre_components", torch.zeros((d, self.latent) if latent_dim is not None else (0, 0)))
        self.register_buffer("prepared", torch.zeros((), dtype=torch.bool))
        self.centre_info: Dict[str, float] = {}

    # ------------------------------------------------------------------ pseudo centres
    @property
    def needs_centres(self) -> bool:
        return self.weights[0] > 0

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule if self._trainer is not None else None
        tasks = list(getattr(dm, "tasks", []) or [])
        self.check_tasks(tasks)
        other = [t.name for t in tasks if t.query != self.image_key]
        if other:
            raise ValueError(f"dvb is single-modal and hashes '{self.image_key}' only; the data declare the tasks "
                             f"{other}. Serve that modality only, e.g. --set \"data.modalities=[{self.image_key}]\"")

    def on_fit_start(self) -> None:
        if not bool(self.prepared):
            self.prepare(self.trainer.datamodule)

    def prepare(self, datamodule) -> Optional[PseudoCentres]:
        """Once, before training: the input standardisation and (unless DVB-1) the pseudo centres, computed on the
        TRAINING split of ``datamodule`` and stored in the buffers. Returns the centres (``None`` for DVB-1)."""
        from lightning_hash.contract import training_matrices
        hp = self.hparams
        x = training_matrices(datamodule, [self.image_key], max_train=hp.max_centre_items, seed=int(hp.seed))
        x = x[self.image_key]
        if x.shape[1] != self.input_dim:
            raise ValueError(f"dvb: image_dim={self.input_dim} but the training {self.image_key} features have "
                             f"{x.shape[1]} columns")
        if hp.latent_dim is not None and int(hp.latent_dim) > x.shape[0] - 1:
            raise ValueError(f"dvb: latent_dim={hp.latent_dim} needs more than {hp.latent_dim} training items for "
                             f"the PCA; the training split holds {x.shape[0]}")
        dev = self.centres.device
        if hp.standardize_input:
            mean, std = standardization(x)
            self.input_mean.copy_(torch.as_tensor(mean, dtype=self.input_mean.dtype, device=dev))
            self.input_std.copy_(torch.as_tensor(std, dtype=self.input_std.dtype, device=dev))
        if not self.needs_centres:
            self.prepared.fill_(True)
            self.centre_info = {"n_items": float(x.shape[0])}
            return None
        pc = pseudo_centres(x, int(hp.num_centres), hp.latent_dim, bool(hp.l2_normalize_centres), seed=int(hp.seed),
                            n_init=int(hp.kmeans_n_init))
        self.centres.copy_(torch.as_tensor(pc.centres, dtype=self.centres.dtype, device=dev))
        if pc.components is not None:
            self.centre_mean.copy_(torch.as_tensor(pc.mean, dtype=self.centre_mean.dtype, device=dev))
            self.centre_components.copy_(torch.as_tensor(pc.components, dtype=self.centre_components.dtype,
                                                         device=dev))
        self.prepared.fill_(True)
        self.centre_info = {"n_items": float(x.shape[0]), "cluster_sizes_min": float(np.bincount(pc.labels).min()),
                            "pca_explained": float(pc.explained) if pc.explained is not None else 1.0}
        return pc

    def batch_centres(self, x: torch.Tensor) -> torch.Tensor:
        """Each row's nearest pseudo centre ``c_i`` ``[n, l]``."""
        if not bool(self.prepared):
            raise RuntimeError("dvb: the pseudo centres are not computed; train through a Trainer with the "
                               "DataModule (on_fit_start computes them), call prepare(datamodule), or load a "
                               "checkpoint")
        pca = self.hparams.latent_dim is not None
        p = centre_space(x.float(), self.centre_mean if pca else None, self.centre_components if pca else None,
                         bool(self.hparams.l2_normalize_centres))
        return self.centres[assign_centres(p, self.centres)]

    # ------------------------------------------------------------------ encoding (eq. 3.16)
    def _features(self, batch: Dict[str, torch.Tensor], modality: str) -> torch.Tensor:
        if modality != self.image_key:
            raise ValueError(f"dvb encodes '{self.image_key}' only (single-modal), not '{modality}'")
        if modality not in batch:
            raise KeyError(f"modality '{modality}' is not in the batch (keys: {sorted(batch)})")
        x = batch[modality]
        x = x.reshape(x.shape[0], -1).float()
        if x.shape[1] != self.input_dim:
            raise ValueError(f"dvb: the batch has {x.shape[1]} {modality} features per item, the model was built for "
                             f"image_dim={self.input_dim}")
        return x

    def net_input(self, x: torch.Tensor) -> torch.Tensor:
        """The networks' input: ``(x - mean) / std`` with the training split's statistics (``standardize_input``)."""
        if not self.hparams.standardize_input:
            return x
        return (x - self.input_mean) / self.input_std

    def encode(self, batch, modality):
        """``f(x) = 1/L sum_s g(x, z_s)``, ``z_s ~ p(z|x)`` with seeded per-item noise (eq. 3.16)."""
        x = self.net_input(self._features(batch, modality))
        mu, var = self.prior(x)
        L = int(self.hparams.eval_samples)
        if L == 0:
            return self.generator(x, mu)
        seed = self.hparams.eval_seed if self.hparams.eval_seed is not None else self.hparams.seed
        index = batch.get("index")
        if index is None:
            index = torch.arange(x.shape[0])
        eps = item_noise(index.cpu(), L, self.latent, int(seed)).to(device=x.device, dtype=x.dtype)
        z = reparameterize(mu[None], var[None], float(self.hparams.eps_std) * eps)          # [L, n, l]
        g = self.generator(x[None].expand(L, -1, -1), z)
        return g.mean(dim=0)

    # ------------------------------------------------------------------ training (Algorithm 1, eq. 3.15)
    def training_step(self, batch, batch_idx):
        hp = self.hparams
        raw = self._features(batch, self.image_key)
        x = self.net_input(raw)
        n = x.shape[0]
        if n < 2:
            raise ValueError("dvb: a training batch needs at least 2 items (H2, H3 are batch terms); "
                             "set drop_last or another batch size")
        mu_p, var_p = self.prior(x)
        z = reparameterize(mu_p, var_p, float(hp.eps_std) * torch.randn_like(mu_p))
        g = self.generator(x, z)
        if hp.posterior_code == "relaxed":
            b = g
        elif hp.posterior_code == "sign":
            b = torch.sign(g).detach()
        else:
            b = g + (torch.sign(g) - g).detach()
        mu_q, var_q = self.posterior(torch.cat([x, b], dim=1))
        kl = gaussian_kl(mu_q, var_q, mu_p, var_p)
        w_centre, a2, a3 = self.weights
        centre = centre_loss(mu_p, self.batch_centres(raw)) if w_centre > 0 else None
        A = batch_affinity(raw, float(hp.t), hp.t_scale) if a3 > 0 else None
        loss, terms = dvb_loss(kl, centre, g, A, centre_weight=w_centre, a1=float(hp.a1), a2=a2, a3=a3,
                               h2_scale=hp.h2_scale, kl_weight=float(hp.kl_weight))
        if self._log_details_now():
            self.log("train/loss", loss, prog_bar=True, batch_size=n)
            for name, value in terms.items():
                self.log(f"train/{name}", value, batch_size=n)
            self.log("train/bit_balance", torch.sign(g).mean().abs().detach(), batch_size=n)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=float(self.hparams.lr),
                                weight_decay=float(self.hparams.weight_decay))
