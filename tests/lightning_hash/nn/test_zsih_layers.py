"""ZSIH layers (lightning_hash/nn/zsih_layers.py) against their equations, on hand-checkable inputs and
independent references (explicit loops, torch.kron, torch.distributions)."""
from __future__ import annotations

import math

import pytest
import torch

from lightning_hash.nn.zsih_layers import (AttentionPooling, ConcatFusion, GaussianDecoder, GraphConvolution,
                                           KroneckerFusion, MFBFusion, StochasticBinary, batch_outer,
                                           bernoulli_log_prob, bernoulli_neg_entropy, bit_regularization,
                                           make_fusion, normalized_adjacency, semantic_adjacency, stochastic_binary)


# ============================================================================================ attention (5.1-5.3)
def test_attention_pooling_matches_loop_over_positions():
    torch.manual_seed(0)
    pool = AttentionPooling(3)
    fmap = torch.randn(2, 3, 2, 4)
    out, alpha = pool(fmap)
    w, b = pool.score.weight[0].detach(), pool.score.bias[0].detach()
    for n in range(2):
        scores = torch.tensor([[float(fmap[n, :, i, j] @ w + b) for j in range(4)] for i in range(2)])  # eq. 5.1
        a = torch.exp(scores) / torch.exp(scores).sum()                                                 # eq. 5.2
        expected = sum(a[i, j] * fmap[n, :, i, j] for i in range(2) for j in range(4))                  # eq. 5.3
        assert torch.allclose(alpha[n], a, atol=1e-6)
        assert torch.allclose(out[n], expected, atol=1e-6)
    with pytest.raises(ValueError, match="feature map"):
        pool(torch.randn(2, 5, 2, 2))


def test_attention_pooling_uniform_scores_average_positions():
    pool = AttentionPooling(2)
    with torch.no_grad():
        pool.score.weight.zero_()
    fmap = torch.arange(8.0).view(1, 2, 2, 2)
    out, alpha = pool(fmap)
    assert torch.allclose(alpha, torch.full((1, 2, 2), 0.25))
    assert out.tolist() == [[1.5, 5.5]]            # means of [0..3] and [4..7]


# ============================================================================================ fusion (5.4)
def test_batch_outer_equals_torch_kron_per_row():
    torch.manual_seed(1)
    a, b = torch.randn(3, 4), torch.randn(3, 5)
    out = batch_outer(a, b)
    for i in range(3):
        assert torch.allclose(out[i], torch.kron(a[i], b[i]))
    with pytest.raises(ValueError, match="same B"):
        batch_outer(a, b[:2])


def test_kronecker_fusion_paper_and_official_forms():
    torch.manual_seed(2)
    fus = KroneckerFusion(3, 2, out_a=2, out_b=3, mode="paper")
    a, b = torch.randn(4, 3), torch.randn(4, 2)
    u, v = a @ fus.proj_a.weight.t(), b @ fus.proj_b.weight.t()       # no biases in eq. 5.4
    assert fus.proj_a.bias is None and fus.out_dim == 6
    expected = torch.stack([torch.relu(torch.kron(u[i], v[i])) for i in range(4)])
    assert torch.allclose(fus(a, b), expected, atol=1e-6)
    off = KroneckerFusion(3, 2, 2, 3, mode="official")
    u, v = torch.relu(off.proj_a(a)), torch.relu(off.proj_b(b))
    assert torch.allclose(off(a, b), torch.stack([torch.kron(u[i], v[i]) for i in range(4)]), atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        KroneckerFusion(3, 2, mode="kron")


def test_kronecker_fusion_trains_without_building_the_batch_kronecker():
    """Backward works and the only large activation is the [B, m*n] output (checked by its size)."""
    fus = KroneckerFusion(8, 8, 16, 16)
    a, b = torch.randn(5, 8, requires_grad=True), torch.randn(5, 8)
    out = fus(a, b)
    assert out.shape == (5, 256)
    out.sum().backward()
    assert a.grad is not None and fus.proj_b.weight.grad is not None


def test_concat_and_mfb_ablations():
    torch.manual_seed(3)
    cat = ConcatFusion(3, 2, 4, 5)
    a, b = torch.randn(2, 3), torch.randn(2, 2)
    assert torch.allclose(cat(a, b), torch.relu(torch.cat([cat.proj_a(a), cat.proj_b(b)], 1)))
    mfb = MFBFusion(3, 2, out_dim=4, factors=2)
    z = (mfb.proj_a(a) * mfb.proj_b(b)).view(2, 4, 2).sum(2)
    z = torch.sign(z) * torch.sqrt(z.abs())
    assert torch.allclose(mfb(a, b), z / z.norm(dim=1, keepdim=True), atol=1e-5)
    assert make_fusion("concat", 3, 2, 8).out_dim == 16 and make_fusion("kronecker", 3, 2, 8).out_dim == 64
    with pytest.raises(ValueError, match="fusion"):
        make_fusion("sum", 3, 2)


# ============================================================================================ graph (5.5, 5.6)
def test_semantic_adjacency_and_normalization_by_hand():
    s = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    t = 0.5
    A = semantic_adjacency(s, t)
    for j in range(3):
        for k in range(3):
            d2 = float(((s[j] - s[k]) ** 2).sum())
            assert A[j, k].item() == pytest.approx(math.exp(-d2 / t), rel=1e-6)
    deg = A.sum(1)
    N = normalized_adjacency(A)
    assert torch.allclose(N, A / torch.sqrt(deg[:, None] * deg[None, :]), atol=1e-7)
    # t -> 0: only identical word vectors stay connected (binary-like graph)
    assert torch.equal(semantic_adjacency(torch.tensor([[1.0], [1.0], [2.0]]), 1e-6),
                       torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive"):
        semantic_adjacency(s, 0.0)
    with pytest.raises(ValueError, match="zero degree"):
        normalized_adjacency(torch.zeros(2, 2))


def test_graph_convolution_eq_5_5():
    torch.manual_seed(4)
    gc = GraphConvolution(3, 2)
    H = torch.randn(4, 3)
    A = semantic_adjacency(torch.randn(4, 5), 1.0)
    D = torch.diag(A.sum(1) ** -0.5)
    expected = D @ A @ D @ (H @ gc.linear.weight.t() + gc.linear.bias)
    assert torch.allclose(gc(H, A), expected, atol=1e-5)
    assert torch.allclose(gc(H, D @ A @ D, normalized=True), expected, atol=1e-5)
    assert torch.allclose(gc(H, None), gc.linear(H))          # "without GCNs": a plain FC layer
    with pytest.raises(ValueError, match="does not match"):
        gc(H, A[:3, :3])


# ============================================================================================ stochastic neuron (5.7)
def test_stochastic_neuron_forward_thresholds():
    logits = torch.tensor([[0.0, 2.0, -2.0]])
    p = torch.sigmoid(logits)
    codes, prob = stochastic_binary(logits, eps=torch.tensor([[0.5, 0.9, 0.1]]))
    assert codes.tolist() == [[1.0, 0.0, 1.0]]     # 1[p >= eps]; p = 0.5 >= 0.5 gives 1
    assert torch.allclose(prob, p)
    assert stochastic_binary(logits, eps=0.5)[0].tolist() == [[1.0, 1.0, 0.0]]
    with pytest.raises(ValueError, match="eps"):
        stochastic_binary(logits, eps=1.5)


def test_stochastic_neuron_uniform_eps_is_bernoulli():
    g = torch.Generator().manual_seed(0)
    logits = torch.full((20000, 1), math.log(0.3 / 0.7))       # p = 0.3
    codes, _ = stochastic_binary(logits, generator=g)
    assert codes.mean().item() == pytest.approx(0.3, abs=0.015)


def test_stochastic_neuron_gradient_matches_definition():
    """backward = p(1 - p)(g_code + g_prob) for arbitrary upstream gradients (and none for eps)."""
    torch.manual_seed(5)
    logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    eps = torch.rand(6, 4, dtype=torch.float64, requires_grad=True)
    g_code, g_prob = torch.randn(6, 4, dtype=torch.float64), torch.randn(6, 4, dtype=torch.float64)
    codes, prob = StochasticBinary.apply(logits, eps)
    ((codes * g_code).sum() + (prob * g_prob).sum()).backward()
    p = torch.sigmoid(logits.detach())
    assert torch.allclose(logits.grad, p * (1 - p) * (g_code + g_prob))
    assert eps.grad is None
    # only the code used downstream: the gradient is that of sigmoid (straight-through on the probability)
    logits.grad = None
    codes, prob = StochasticBinary.apply(logits, eps.detach())
    (codes * g_code).sum().backward()
    auto = torch.autograd.grad((torch.sigmoid(logits) * g_code).sum(), logits)[0]
    assert torch.allclose(logits.grad, auto)


def test_bernoulli_terms():
    logits = torch.tensor([[0.0, math.log(3.0)]])       # p = 0.5, 0.75
    codes = torch.tensor([[1.0, 0.0]])
    assert bernoulli_log_prob(codes, logits).item() == pytest.approx(math.log(0.5) + math.log(0.25), rel=1e-6)
    neg_h = 2 * 0.5 * math.log(0.5) + 0.75 * math.log(0.75) + 0.25 * math.log(0.25)
    assert bernoulli_neg_entropy(logits).item() == pytest.approx(neg_h, rel=1e-6)
    dist = torch.distributions.Bernoulli(logits=logits)
    assert bernoulli_neg_entropy(logits).item() == pytest.approx(-dist.entropy().sum().item(), rel=1e-6)


# ============================================================================================ decoder (5.9)
def test_gaussian_decoder_nll_against_torch_distributions():
    torch.manual_seed(6)
    dec = GaussianDecoder(4, 3)
    with torch.no_grad():
        dec.log_var.weight.normal_(0, 0.3)
    codes = torch.randint(0, 2, (5, 4)).float()
    s = torch.randn(5, 3)
    mu, log_var = dec(codes)
    ref = -torch.distributions.Normal(mu, torch.exp(0.5 * log_var)).log_prob(s).sum(1)
    assert torch.allclose(dec.nll(codes, s), ref, atol=1e-5)
    unit = GaussianDecoder(4, 3, variance="unit")
    mu, _ = unit(codes)
    assert torch.allclose(unit.nll(codes, s), 0.5 * ((s - mu) ** 2).sum(1) + 1.5 * math.log(2 * math.pi), atol=1e-5)
    with pytest.raises(ValueError, match="variance"):
        GaussianDecoder(4, 3, variance="fixed")


def test_bit_regularization_by_hand():
    prob = torch.tensor([[1.0, 0.0], [0.75, 0.5]])            # h = [[1, -1], [0.5, 0]]
    h = 2 * prob - 1
    quant = ((1 - 0.5) ** 2 + (0 - 0) ** 2) / 2 / 2           # sign(0) = 0 in the quantisation target
    bal = ((0.75 ** 2) + (0.5 ** 2)) / 2
    cov = (h.t() @ h / 2 - torch.eye(2))
    dec = float((cov ** 2).sum()) / 4
    assert bit_regularization(prob).item() == pytest.approx(quant + bal + dec, rel=1e-6)
