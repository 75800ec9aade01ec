"""Layers of ZSIH (thesis chapter 5), each reusable on its own.

=============================  ==========================================================================
layer / function               equation
=============================  ==========================================================================
:class:`AttentionPooling`      eqs. 5.1-5.3: ``s_ij = h_ij W_att (+ b)``, ``alpha = softmax_ij(s)``,
                               ``h_att = sum_ij alpha_ij h_ij`` over a conv feature map ``[B, C, H, W]``
:class:`KroneckerFusion`       eq. 5.4: ``h = relu((h_sk W_sk) (x) (h_im W_im))``, a batched outer product
                               ``[B, m] x [B, n] -> [B, m * n]``; nothing larger than the output is built
:class:`ConcatFusion`,         the Table 5.4 ablations of the fusion layer (concatenation; multi-modal
:class:`MFBFusion`             factorised bilinear pooling, Yu et al. ICCV 2017)
:func:`semantic_adjacency`     eq. 5.6: ``A_jk = exp(-||s_j - s_k||^2 / t)``
:func:`normalized_adjacency`   ``D^-1/2 A D^-1/2`` with ``D = diag(A 1)`` (eq. 5.5)
:class:`GraphConvolution`      eq. 5.5 without the activation: ``D^-1/2 A D^-1/2 H W``
:class:`StochasticBinary`      eq. 5.7: ``b~ = 1[b >= eps]``, an autograd Function whose backward is
                               ``d/dlogits = p (1 - p) (g_code + g_prob)`` (SGH / the official code)
:func:`stochastic_binary`      the Function with ``eps ~ U(0, 1)`` (paper) or a fixed ``eps`` (official 0.5)
:class:`GaussianDecoder`       eq. 5.9: ``p(s | b) = N(s | mu(b), diag(sigma^2(b)))``, FC layers with identity
                               activations; ``nll`` is ``-log p(s | b)``
:func:`bernoulli_log_prob`,    ``log q(b | x, y)`` of eq. 5.8 and its expectation ``E_q[log q]`` (the
:func:`bernoulli_neg_entropy`  negative entropy, eq. 5.10's first term)
:func:`bit_regularization`     the "bit regularisation instead of stochastic neurons" ablation
                               (quantisation + balance + decorrelation, as DH [104] of the thesis)
=============================  ==========================================================================

Memory of the Kronecker layer (the reason it is implemented as it is): at the paper's size (256 x 256, batch 250)
the fused representation is ``250 x 65,536`` floats = 64 MiB and the weight of the first graph convolution on it
``65,536 x 1,024`` = 256 MiB (with Adam's two moments and the gradient, 1 GiB). ``torch.kron`` on the two batch
matrices would instead build the ``62,500 x 65,536`` Kronecker product of the whole batches (15.6 GiB) of which
only the 250 diagonal blocks are wanted; :class:`KroneckerFusion` computes exactly those rows with one broadcast
multiply. ``experiments/bench_kronecker_memory.py`` measures the peak.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttentionPooling", "KroneckerFusion", "ConcatFusion", "MFBFusion", "make_fusion", "batch_outer",
           "semantic_adjacency", "normalized_adjacency", "GraphConvolution", "StochasticBinary",
           "stochastic_binary", "GaussianDecoder", "bernoulli_log_prob", "bernoulli_neg_entropy",
           "bit_regularization"]


# ============================================================================================ attention
class AttentionPooling(nn.Module):
    """Eqs. 5.1-5.3: a 1x1 score per position, softmax over the ``H x W`` positions, weighted sum.

    Parameters
    ----------
    channels: ``C``, the depth of the feature map (256 for AlexNet's conv5).
    bias: add a bias to the score (the paper omits it "for simplicity"; the official code has one; it cancels
        in the softmax, so it only matters for the parameter count).

    ``forward(h [B, C, H, W]) -> (h_att [B, C], alpha [B, H, W])``.

    >>> pool = AttentionPooling(4)
    >>> h_att, alpha = pool(torch.randn(2, 4, 3, 3))
    >>> h_att.shape, alpha.sum(dim=(1, 2)).round().tolist()
    (torch.Size([2, 4]), [1.0, 1.0])
    """

    def __init__(self, channels: int, bias: bool = True) -> None:
        super().__init__()
        if int(channels) <= 0:
            raise ValueError(f"AttentionPooling: channels must be positive, got {channels}")
        self.channels = int(channels)
        self.score = nn.Linear(self.channels, 1, bias=bias)     # W_att: C -> 1, applied at every position
        nn.init.normal_(self.score.weight, std=0.01)
        if bias:
            nn.init.zeros_(self.score.bias)

    def forward(self, feature_map: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if feature_map.ndim != 4 or feature_map.shape[1] != self.channels:
            raise ValueError(f"AttentionPooling expects a feature map [B, {self.channels}, H, W], got shape "
                             f"{tuple(feature_map.shape)}")
        b, c, h, w = feature_map.shape
        positions = feature_map.flatten(2).transpose(1, 2)               # [B, HW, C]
        scores = self.score(positions).squeeze(-1)                       # eq. 5.1, [B, HW]
        alpha = torch.softmax(scores, dim=1)                             # eq. 5.2
        pooled = torch.bmm(alpha.unsqueeze(1), positions).squeeze(1)     # eq. 5.3, [B, C]
        return pooled, alpha.view(b, h, w)


# ============================================================================================ fusion
def batch_outer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise Kronecker product: ``out[i] = a[i] (x) b[i]``, shape ``[B, m * n]`` (``a`` index major).

    Equals ``torch.kron(a[i], b[i])`` for every row without forming the ``[B*B, m*n]`` product of the batches.

    >>> batch_outer(torch.tensor([[1., 2.]]), torch.tensor([[3., 4., 5.]])).tolist()
    [[3.0, 4.0, 5.0, 6.0, 8.0, 10.0]]
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"batch_outer expects [B, m] and [B, n] with the same B, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    return (a.unsqueeze(2) * b.unsqueeze(1)).reshape(a.shape[0], a.shape[1] * b.shape[1])


class KroneckerFusion(nn.Module):
    """Eq. 5.4: ``relu((h_sk W_sk) (x) (h_im W_im))`` (``mode="paper"``), output ``out_a * out_b`` wide.

    Parameters
    ----------
    in_a, in_b: input widths (sketch, image).
    out_a, out_b: widths of the two projections (256 x 256 in the paper: a 65,536-d output).
    mode: ``"paper"``: linear projections, ReLU after the product (eq. 5.4); ``"official"``: the official code's
        ``relu(h_sk W_sk + c) (x) relu(h_im W_im + d)`` (ReLU before the product, with biases).
    bias: biases of the projections in ``"paper"`` mode (the printed equation has none).

    The output is produced by one broadcast multiply (:func:`batch_outer`); see the module docstring for
    its memory.
    """

    def __init__(self, in_a: int, in_b: int, out_a: int = 256, out_b: int = 256, mode: str = "paper",
                 bias: bool = False) -> None:
        super().__init__()
        if mode not in ("paper", "official"):
            raise ValueError(f"KroneckerFusion: mode must be 'paper' or 'official', got {mode!r}")
        self.mode = mode
        use_bias = bias or mode == "official"
        self.proj_a = nn.Linear(int(in_a), int(out_a), bias=use_bias)
        self.proj_b = nn.Linear(int(in_b), int(out_b), bias=use_bias)
        self.out_dim = int(out_a) * int(out_b)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        u, v = self.proj_a(a), self.proj_b(b)
        if self.mode == "official":
            return batch_outer(F.relu(u), F.relu(v))
        return F.relu(batch_outer(u, v))


class ConcatFusion(nn.Module):
    """Ablation "Kron. layer -> concatenation": ``relu([h_sk W_sk, h_im W_im])`` (``out_a + out_b`` wide)."""

    def __init__(self, in_a: int, in_b: int, out_a: int = 256, out_b: int = 256) -> None:
        super().__init__()
        self.proj_a, self.proj_b = nn.Linear(int(in_a), int(out_a)), nn.Linear(int(in_b), int(out_b))
        self.out_dim = int(out_a) + int(out_b)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return F.relu(torch.cat([self.proj_a(a), self.proj_b(b)], dim=1))


class MFBFusion(nn.Module):
    """Ablation "Kron. layer -> MFB": multi-modal factorised bilinear pooling (Yu et al., ICCV 2017).

    ``z = SumPool_k((U^T a) * (V^T b))`` (``o * k`` wide projections summed in groups of ``k``), then power
    normalisation ``sign(z) sqrt(|z|)`` and L2 normalisation; ``out_dim = o``. Defaults ``k = 5``, ``o = 1000``
    (the MFB paper's).
    """

    def __init__(self, in_a: int, in_b: int, out_dim: int = 1000, factors: int = 5, dropout: float = 0.0) -> None:
        super().__init__()
        self.k, self.out_dim = int(factors), int(out_dim)
        self.proj_a = nn.Linear(int(in_a), self.out_dim * self.k)
        self.proj_b = nn.Linear(int(in_b), self.out_dim * self.k)
        self.dropout = nn.Dropout(dropout)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        joint = self.dropout(self.proj_a(a) * self.proj_b(b))
        z = joint.view(joint.shape[0], self.out_dim, self.k).sum(dim=2)
        z = torch.sign(z) * torch.sqrt(z.abs() + 1e-12)
        return F.normalize(z, dim=1)


def make_fusion(kind: str, in_a: int, in_b: int, width: int = 256, kronecker_mode: str = "paper") -> nn.Module:
    """The fusion layer by name: ``"kronecker"`` (eq. 5.4), ``"concat"`` or ``"mfb"`` (Table 5.4 ablations)."""
    if kind == "kronecker":
        return KroneckerFusion(in_a, in_b, width, width, mode=kronecker_mode)
    if kind == "concat":
        return ConcatFusion(in_a, in_b, width, width)
    if kind == "mfb":
        return MFBFusion(in_a, in_b)
    raise ValueError(f"fusion must be 'kronecker', 'concat' or 'mfb', got {kind!r}")


# ============================================================================================ graph convolution
def semantic_adjacency(semantics: torch.Tensor, t: float = 0.1) -> torch.Tensor:
    """Eq. 5.6: ``A_jk = exp(-||s_j - s_k||^2 / t)`` for the rows of ``semantics`` ``[N, d]``; ``A_jj = 1``.

    >>> A = semantic_adjacency(torch.tensor([[0.0, 0.0], [1.0, 0.0]]), t=1.0)
    >>> [round(v, 4) for v in A.flatten().tolist()]
    [1.0, 0.3679, 0.3679, 1.0]
    """
    if semantics.ndim != 2:
        raise ValueError(f"semantic_adjacency expects semantics [N, d], got shape {tuple(semantics.shape)}")
    if not t > 0:
        raise ValueError(f"semantic_adjacency: t must be positive, got {t}")
    s = semantics.float()
    sq = (s * s).sum(dim=1, keepdim=True)
    dist = (sq + sq.t() - 2.0 * s @ s.t()).clamp_min(0.0)
    dist.fill_diagonal_(0.0)          # exact zeros on the diagonal despite rounding
    return torch.exp(-dist / float(t))


def normalized_adjacency(adjacency: torch.Tensor) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` with ``D = diag(A 1)`` (eq. 5.5); ``A`` must be self-connected (positive row sums).

    >>> normalized_adjacency(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))  # rsqrt: within float32 rounding of 0.5
    tensor([[0.5000, 0.5000],
            [0.5000, 0.5000]])
    """
    if adjacency.ndim != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"normalized_adjacency expects a square matrix, got shape {tuple(adjacency.shape)}")
    deg = adjacency.sum(dim=1)
    if not bool((deg > 0).all()):
        raise ValueError("normalized_adjacency: some vertices have no edge (zero degree); the in-batch adjacency "
                         "must be self-connected")
    d = deg.rsqrt()
    return d[:, None] * adjacency * d[None, :]


class GraphConvolution(nn.Module):
    """Eq. 5.5 before the activation: ``D^-1/2 A D^-1/2 H W`` (+ bias), over the batch as the graph.

    ``forward(H [N, in], adjacency [N, N], normalized=False)``: ``adjacency`` is ``A`` (normalised here) or,
    with ``normalized=True``, already ``D^-1/2 A D^-1/2`` (to share it between layers). ``adjacency=None`` is
    the identity graph: a plain fully connected layer (the "without GCNs" ablation).
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(int(in_dim), int(out_dim), bias=bias)

    def forward(self, h: torch.Tensor, adjacency: Optional[torch.Tensor], normalized: bool = False) -> torch.Tensor:
        out = self.linear(h)
        if adjacency is None:
            return out
        if adjacency.shape != (h.shape[0], h.shape[0]):
            raise ValueError(f"GraphConvolution: adjacency {tuple(adjacency.shape)} does not match a batch of "
                             f"{h.shape[0]}")
        a = adjacency if normalized else normalized_adjacency(adjacency)
        return a.to(out.dtype) @ out


# ============================================================================================ stochastic neurons
class StochasticBinary(torch.autograd.Function):
    """Eq. 5.7 with the SGH / official gradient.

    ``forward(logits, eps) -> (codes, prob)`` with ``prob = sigmoid(logits)`` and ``codes = 1[prob >= eps]``
    (float 0/1). ``backward``: ``d/dlogits = prob (1 - prob) (g_codes + g_prob)``, i.e. the code is treated as
    the probability itself (straight-through on ``prob``); ``eps`` gets no gradient.
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, eps: torch.Tensor):  # type: ignore[override]
        prob = torch.sigmoid(logits)
        codes = (prob >= eps).to(logits.dtype)
        ctx.save_for_backward(prob)
        return codes, prob

    @staticmethod
    def backward(ctx, g_codes: Optional[torch.Tensor], g_prob: Optional[torch.Tensor]):  # type: ignore[override]
        (prob,) = ctx.saved_tensors
        g = torch.zeros_like(prob)
        if g_codes is not None:
            g = g + g_codes
        if g_prob is not None:
            g = g + g_prob
        return prob * (1.0 - prob) * g, None


def stochastic_binary(logits: torch.Tensor, eps: Union[None, float, torch.Tensor] = None,
                      generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sample codes ``1[sigmoid(logits) >= eps]`` through :class:`StochasticBinary`.

    Parameters
    ----------
    logits: pre-sigmoid activations ``[B, M]``.
    eps: ``None`` draws ``eps ~ U(0, 1)`` per entry (the paper); a float is a fixed threshold (the official
        code's 0.5); a tensor is used as given (broadcast to ``logits``).
    generator: optional ``torch.Generator`` for the uniform draw.

    Returns ``(codes in {0, 1}, prob)``.

    >>> codes, prob = stochastic_binary(torch.tensor([[2.0, -2.0]]), eps=0.5)
    >>> codes.tolist()
    [[1.0, 0.0]]
    """
    if eps is None:
        e = torch.rand(logits.shape, generator=generator, device="cpu" if generator is not None else logits.device,
                       dtype=logits.dtype).to(logits.device)
    elif isinstance(eps, torch.Tensor):
        e = eps.to(device=logits.device, dtype=logits.dtype).expand_as(logits)
    else:
        if not 0.0 <= float(eps) <= 1.0:
            raise ValueError(f"stochastic_binary: a fixed eps must lie in [0, 1], got {eps}")
        e = torch.full_like(logits, float(eps))
    return StochasticBinary.apply(logits, e)


def bernoulli_log_prob(codes: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Eq. 5.8: ``log q(b~) = sum_m b~ log b + (1 - b~) log(1 - b)`` per row, ``b = sigmoid(logits)`` (stable)."""
    return -F.binary_cross_entropy_with_logits(logits, codes, reduction="none").sum(dim=1)


def bernoulli_neg_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``E_q[log q(b)] = sum_m b log b + (1 - b) log(1 - b)`` per row (minus the entropy), computed stably."""
    p = torch.sigmoid(logits)
    return -F.binary_cross_entropy_with_logits(logits, p, reduction="none").sum(dim=1)


# ============================================================================================ decoder
class GaussianDecoder(nn.Module):
    """Eq. 5.9: ``p(s | b) = N(s | mu(b), diag(sigma^2(b)))`` with linear (identity-activation) ``mu`` and
    ``log sigma^2``.

    Parameters
    ----------
    bits: code length ``M`` (input width).
    out_dim: semantic dimension ``d`` (300 for word2vec).
    variance: ``"learned"`` (the paper: ``log sigma^2(b)`` is a second linear layer) or ``"unit"`` (the official
        code: mean only, ``sigma = 1``; ``nll`` is then ``||s - mu||^2 / 2`` plus a constant).
    min_log_var: lower clamp of ``log sigma^2`` (keeps the likelihood bounded when a dimension is fitted
        exactly).

    ``nll(codes, s)`` is ``-log p(s | b)`` per row (with the ``log 2 pi`` constant).
    """

    def __init__(self, bits: int, out_dim: int, variance: str = "learned", min_log_var: float = -6.0) -> None:
        super().__init__()
        if variance not in ("learned", "unit"):
            raise ValueError(f"GaussianDecoder: variance must be 'learned' or 'unit', got {variance!r}")
        self.variance, self.min_log_var = variance, float(min_log_var)
        self.mean = nn.Linear(int(bits), int(out_dim))
        self.log_var = nn.Linear(int(bits), int(out_dim)) if variance == "learned" else None
        if self.log_var is not None:
            nn.init.zeros_(self.log_var.weight)
            nn.init.zeros_(self.log_var.bias)

    def forward(self, codes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        mu = self.mean(codes)
        if self.log_var is None:
            return mu, torch.zeros_like(mu)
        return mu, self.log_var(codes).clamp_min(self.min_log_var)

    def nll(self, codes: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mu, log_var = self(codes)
        if target.shape != mu.shape:
            raise ValueError(f"GaussianDecoder.nll: target {tuple(target.shape)} does not match {tuple(mu.shape)}")
        return 0.5 * (((target - mu) ** 2) * torch.exp(-log_var) + log_var + math.log(2 * math.pi)).sum(dim=1)


# ============================================================================================ ablation
def bit_regularization(prob: torch.Tensor, balance: float = 1.0, decorrelation: float = 1.0) -> torch.Tensor:
    """The "stochastic neurons -> bit regularisation" ablation on relaxed codes ``prob`` in ``(0, 1)``, ``[N, M]``.

    With ``h = 2 prob - 1``: quantisation ``mean_i ||sign(h_i) - h_i||^2 / M`` + ``balance * ||mean_i h_i||^2 / M``
    + ``decorrelation * ||h^T h / N - I||_F^2 / M^2`` (the three terms of DH, Liong et al. CVPR 2015, the
    thesis' [104]).
    """
    h = 2.0 * prob - 1.0
    n, m = h.shape
    quant = ((torch.sign(h.detach()) - h) ** 2).sum(dim=1).mean() / m
    bal = (h.mean(dim=0) ** 2).sum() / m
    cov = h.t() @ h / n - torch.eye(m, device=h.device, dtype=h.dtype)
    return quant + balance * bal + decorrelation * (cov ** 2).sum() / (m * m)
