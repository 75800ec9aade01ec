"""DVB: each loss term against its equation (independent references: closed forms written out here, explicit
loops, torch.distributions, scikit-learn), the pseudo centres, the seeded Monte-Carlo encoding, run.py end to end
with resume and checkpoint reload, and the errors for bad input."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

import datamodules
from lightning_hash import methods
from lightning_hash.experiment import build_datamodule
from lightning_hash.experiment import main as run_main
from lightning_hash.methods import dvb as dvb_module
from lightning_hash.methods.dvb import (DVB, ablation_weights, assign_centres, batch_affinity, centre_loss,
                                        decorrelation_loss, dvb_loss, gaussian_kl, item_noise, laplacian, pca_fit,
                                        pseudo_centres, quantization_loss, reparameterize, similarity_loss)
from run_helpers import Crash, load_experiment_script


# ============================================================================================== loss terms
def test_gaussian_kl_matches_closed_form_and_torch_distributions():
    mu_q, var_q = torch.tensor([[0.5, -1.0]]), torch.tensor([[0.25, 2.0]])
    mu_p, var_p = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.5]])
    # 1/2 [log(vp/vq) + (vq + (mq-mp)^2)/vp - 1] per dim, written out by hand
    d1 = 0.5 * (math.log(1.0 / 0.25) + (0.25 + 0.25) / 1.0 - 1)
    d2 = 0.5 * (math.log(0.5 / 2.0) + (2.0 + 4.0) / 0.5 - 1)
    assert gaussian_kl(mu_q, var_q, mu_p, var_p).item() == pytest.approx(d1 + d2, rel=1e-6)
    torch.manual_seed(0)
    mq, mp = torch.randn(5, 7), torch.randn(5, 7)
    vq, vp = torch.rand(5, 7) + 0.1, torch.rand(5, 7) + 0.1
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mq, vq.sqrt()),
                                            torch.distributions.Normal(mp, vp.sqrt())).sum(1)
    assert torch.allclose(gaussian_kl(mq, vq, mp, vp), ref, atol=1e-5)
    assert torch.allclose(gaussian_kl(mq, vq, mq, vq), torch.zeros(5), atol=1e-6)     # KL(p||p) = 0
    with pytest.raises(ValueError, match="one shape"):
        gaussian_kl(mq, vq, mp[:, :3], vp)


def test_reparameterisation_value_and_gradients():
    mu = torch.tensor([1.0, -2.0], requires_grad=True)
    var = torch.tensor([4.0, 0.25], requires_grad=True)
    eps = torch.tensor([0.5, 2.0])
    z = reparameterize(mu, var, eps)
    assert z.tolist() == pytest.approx([2.0, -1.0])                  # mu + eps * sqrt(var)
    z.sum().backward()
    assert mu.grad.tolist() == [1.0, 1.0]
    assert var.grad.tolist() == pytest.approx([0.5 / (2 * 2.0), 2.0 / (2 * 0.5)])   # eps / (2 sqrt(var))


def test_h1_quantisation_and_centre_term():
    g = torch.tensor([[0.5, -0.25], [1.0, -0.9]], requires_grad=True)
    assert quantization_loss(g).item() == pytest.approx(0.25 + 0.5625 + 0.0 + 0.01)
    quantization_loss(g).backward()                                  # sign(G) is a constant
    assert torch.allclose(g.grad, 2 * (g.detach() - torch.sign(g.detach())))
    mu, c = torch.tensor([[1.0, 2.0], [0.0, 0.0]]), torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert centre_loss(mu, c).tolist() == [5.0, 25.0]


def test_h2_decorrelation_both_scales():
    G = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])    # balanced, uncorrelated bits
    assert decorrelation_loss(G, "batch").item() == pytest.approx(0.0)
    # printed: ||G^T G - I||^2 with G^T G = 4 I -> 2 * 3^2
    assert decorrelation_loss(G, "none").item() == pytest.approx(18.0)
    same = torch.ones(4, 2)                                          # every item the same code
    # G^T G = 4 * ones; batch scale ||G^T G - 4 I||^2 / 4 = (2 * 16) / 4
    assert decorrelation_loss(same, "batch").item() == pytest.approx(8.0)
    assert decorrelation_loss(same, "none").item() == pytest.approx(2 * 9.0 + 2 * 16.0)
    with pytest.raises(ValueError, match="scale"):
        decorrelation_loss(G, "rows")


def test_affinity_laplacian_and_h3_against_loops():
    torch.manual_seed(1)
    x, g = torch.randn(6, 3), torch.tanh(torch.randn(6, 4))
    d = torch.tensor([[float(((x[i] - x[j]) ** 2).sum()) for j in range(6)] for i in range(6)])
    A = batch_affinity(x, 2.0, "absolute")
    assert torch.allclose(A.float(), torch.exp(-d / 2.0), atol=1e-6)
    mean_d = float(d.sum() / 30)
    assert torch.allclose(batch_affinity(x, 0.5, "mean").float(), torch.exp(-d / (0.5 * mean_d)), atol=1e-6)
    S = laplacian(A)
    assert torch.allclose(S.sum(1), torch.zeros(6, dtype=S.dtype), atol=1e-9)          # rows of a Laplacian sum to 0
    pairs = sum(float(A[i, j]) * float(((g[i] - g[j]) ** 2).sum()) for i in range(6) for j in range(6)) / 2
    assert similarity_loss(g, A).item() == pytest.approx(pairs, rel=1e-5)
    assert similarity_loss(g, A).item() >= 0
    with pytest.raises(ValueError, match="positive"):
        batch_affinity(x, 0.0)
    with pytest.raises(ValueError, match="N_B"):
        similarity_loss(g, A[:3, :3])


def test_h3_sign_pulls_similar_items_together():
    # items 0 and 1 are near in x, item 2 far: minimising H3 must bring codes 0 and 1 closer
    x = torch.tensor([[0.0], [0.1], [5.0]])
    A = batch_affinity(x, 1.0, "absolute")
    g = torch.tensor([[0.9, 0.8], [-0.7, 0.6], [0.2, -0.9]], requires_grad=True)
    before = float(((g[0] - g[1]) ** 2).sum().detach())
    opt = torch.optim.SGD([g], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        similarity_loss(g, A).backward()
        opt.step()
    after = float(((g[0] - g[1]) ** 2).sum().detach())
    assert after < 0.5 * before
    # the printed -trace(G^T S G) would do the opposite: its gradient step moves them apart
    g2 = torch.tensor([[0.9, 0.8], [-0.7, 0.6], [0.2, -0.9]], requires_grad=True)
    (-similarity_loss(g2, A)).backward()
    g_next = g2.detach() - 0.05 * g2.grad
    assert float(((g_next[0] - g_next[1]) ** 2).sum()) > before


def test_eq315_total_and_ablation_switches():
    torch.manual_seed(2)
    kl, centre = torch.rand(4), torch.rand(4)
    g = torch.tanh(torch.randn(4, 3))
    A = batch_affinity(torch.randn(4, 5), 1.0)
    loss, terms = dvb_loss(kl, centre, g, A, centre_weight=1.0, a1=0.5, a2=0.1, a3=1.0)
    manual = (kl.sum() + centre.sum() + 0.5 * quantization_loss(g) + 0.1 * decorrelation_loss(g)
              + similarity_loss(g, A)) / 4
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)
    assert set(terms) == {"kl", "centre", "h1", "h2", "h3"}
    assert ablation_weights(None, 1.0, 0.1, 1.0) == (1.0, 0.1, 1.0)
    assert ablation_weights("dvb1", 1.0, 0.1, 1.0) == (0.0, 0.1, 1.0)
    assert ablation_weights("DVB-2", 1.0, 0.1, 1.0) == (1.0, 0.0, 1.0)
    assert ablation_weights("dvb3", 1.0, 0.1, 1.0) == (1.0, 0.1, 0.0)
    assert ablation_weights("dvb4", 1.0, 0.1, 1.0) == (1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="ablation"):
        ablation_weights("dvb5", 1.0, 0.1, 1.0)
    l4, t4 = dvb_loss(kl, centre, g, None, a2=0.0, a3=0.0)
    assert l4.item() == pytest.approx(((kl.sum() + centre.sum() + 0.5 * quantization_loss(g)) / 4).item(), rel=1e-6)
    with pytest.raises(ValueError, match="affinity"):
        dvb_loss(kl, centre, g, None, a3=1.0)


# ============================================================================================== pseudo centres
def test_pca_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA
    rng = np.random.RandomState(0)
    x = rng.randn(200, 6) @ rng.randn(6, 6)
    mean, comp, ratio = pca_fit(x, 3)
    ref = PCA(n_components=3, svd_solver="full").fit(x)
    np.testing.assert_allclose(mean, ref.mean_, atol=1e-10)
    for k in range(3):
        assert abs(abs(float(comp[:, k] @ ref.components_[k])) - 1.0) < 1e-8
    assert ratio == pytest.approx(ref.explained_variance_ratio_.sum(), rel=1e-8)
    with pytest.raises(ValueError, match="dim"):
        pca_fit(x, 7)


def test_pseudo_centres_are_kmeans_fixed_points_and_seeded():
    rng = np.random.RandomState(3)
    x = rng.rand(300, 8)
    pc = pseudo_centres(x, 5, latent_dim=4, l2_normalize=True, seed=7)
    # independent reference of the preprocessing: L2-normalise, centre, project on the top-4 covariance eigenvectors
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    vals, vecs = np.linalg.eigh(np.cov(xn.T))
    top = vecs[:, np.argsort(vals)[::-1][:4]]
    proj = (xn - xn.mean(0)) @ pc.components
    for k in range(4):
        assert abs(abs(float(pc.components[:, k] @ top[:, k])) - 1) < 1e-8
    # every label is the nearest centre (brute force) and every centre the mean of its items (a Lloyd fixed point)
    dist = ((proj[:, None, :] - pc.centres[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(pc.labels, dist.argmin(1))
    for k in range(5):
        np.testing.assert_allclose(pc.centres[k], proj[pc.labels == k].mean(0), atol=1e-6)
    again = pseudo_centres(x, 5, latent_dim=4, l2_normalize=True, seed=7)
    np.testing.assert_array_equal(pc.centres, again.centres)
    # without PCA the centres live in the (normalised) input space; well separated blobs are recovered
    blobs = np.concatenate([rng.randn(40, 2) * 0.01 + c for c in ([0, 5], [5, 0], [-5, -5])])
    pb = pseudo_centres(blobs, 3, latent_dim=None, l2_normalize=False, seed=0)
    assert pb.components is None and pb.centres.shape == (3, 2)
    found = sorted(map(tuple, np.round(pb.centres).astype(int).tolist()))
    assert found == sorted([(0, 5), (5, 0), (-5, -5)])
    pts = np.array([[0.1, 4.9], [4.8, 0.3], [-4.0, -6.0]])
    t = assign_centres(torch.from_numpy(pts), torch.from_numpy(pb.centres))
    assert [tuple(np.round(pb.centres[i]).astype(int).tolist()) for i in t.tolist()] == [(0, 5), (5, 0), (-5, -5)]
    with pytest.raises(ValueError, match="num_centres"):
        pseudo_centres(x, 1)
    with pytest.raises(ValueError, match="NaN"):
        pseudo_centres(np.full((5, 2), np.nan), 2)


# ============================================================================================== encoding
def _small_model(**kw):
    args = dict(bits=8, image_dim=64, hidden=32, num_centres=4, eps_std=0.5)
    args.update(kw)
    return methods.create("dvb", **args)


def test_monte_carlo_encoding_is_seeded_per_item():
    torch.manual_seed(0)
    model = _small_model().eval()
    x, idx = torch.rand(6, 64), torch.arange(10, 16)
    a = model.encode({"image": x, "index": idx}, "image")
    torch.manual_seed(123)                                            # the global RNG plays no part
    b = model.encode({"image": x, "index": idx}, "image")
    assert torch.equal(a, b)
    part = model.encode({"image": x[3:], "index": idx[3:]}, "image")  # an item's code ignores its batch
    assert torch.allclose(part, a[3:], atol=1e-6)
    # eq. 3.16 by hand for item 0: the mean over L draws z = mu + eps_std * eps * sigma of g(x, z)
    L = model.hparams.eval_samples
    xs = model.net_input(x[:1])
    mu, var = model.prior(xs)
    eps = item_noise(idx[:1], L, model.latent, seed=0)[:, 0]
    ref = torch.stack([model.generator(xs, mu + 0.5 * eps[s:s + 1] * var.sqrt()) for s in range(L)]).mean(0)
    assert torch.allclose(a[:1], ref, atol=1e-6)
    other = _small_model(eval_seed=5)
    other.load_state_dict(model.state_dict())
    assert not torch.allclose(other.encode({"image": x, "index": idx}, "image"), a)
    mean_model = _small_model(eval_samples=0)
    mean_model.load_state_dict(model.state_dict())
    mu_all, _ = model.prior(model.net_input(x))
    assert torch.allclose(mean_model.encode({"image": x}, "image"), model.generator(model.net_input(x), mu_all))


# ============================================================================================== run.py end to end
FAST = ["--method", "dvb", "--data", "digits", "--bits", "16", "--logger", "none", "--no-progress-bar",
        "--set", "method.hidden=64", "--set", "method.num_centres=5", "--set", "method.eval_samples=3",
        "--set", "trainer.limit_train_batches=4"]


def _run(argv, callbacks=()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_main(argv, callbacks=callbacks)


def _ckpt(path):
    return torch.load(path, map_location="cpu", weights_only=False)


def test_run_py_resume_restores_centres_and_rng_and_reload_reproduces_map(tmp_path, monkeypatch):
    calls = []
    real = dvb_module.pseudo_centres

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(dvb_module, "pseudo_centres", counting)
    args = FAST + ["--max-epochs", "3", "--seed", "2"]
    full = _run(args + ["--output", str(tmp_path / "full")])
    assert len(calls) == 1
    m = full["metrics"]
    assert np.isfinite(m["test/mAP@all/image->image"]) and "test/mAP@all/image->text" not in m
    # the centres in the checkpoint are those of the training split (recomputed independently here)
    cfg = full["config"]
    dm = build_datamodule(cfg, tmp_path / "full")
    from lightning_hash.contract import training_matrices
    x = training_matrices(dm, ["image"])["image"]
    ref = real(x, 5, None, True, seed=2)
    state = _ckpt(tmp_path / "full" / "checkpoints" / "last.ckpt")["state_dict"]
    np.testing.assert_allclose(state["centres"].numpy(), ref.centres, atol=1e-5)
    np.testing.assert_allclose(state["input_mean"].numpy(), x.mean(0), atol=1e-5)
    assert bool(state["prepared"])

    # interrupted after epoch 1, resumed: no new centres, same weights and metrics as the uninterrupted run
    calls.clear()
    with pytest.raises(RuntimeError, match="simulated interruption"):
        _run(args + ["--output", str(tmp_path / "cut")], callbacks=[Crash(2)])
    assert len(calls) == 1
    calls.clear()
    resumed = _run(["--method", "dvb", "--resume", "last", "--output", str(tmp_path / "cut"), "--logger", "none",
                    "--no-progress-bar"])
    assert calls == []                                              # centres come from the checkpoint
    a, b = state, _ckpt(tmp_path / "cut" / "checkpoints" / "last.ckpt")["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key                     # RNG restored: bit-identical training
    assert resumed["metrics"] == full["metrics"]

    # a loaded checkpoint alone reproduces the logged test mAP
    best = full["model_selection"]["best_checkpoint"]
    model = DVB.load_from_checkpoint(best, map_location="cpu")
    assert bool(model.prepared) and model.hparams.num_centres == 5
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                         use_distributed_sampler=False, enable_model_summary=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = trainer.test(model, datamodule=dm, verbose=False)[0]
    logged = json.loads((tmp_path / "full" / "results.json").read_text())["metrics"]
    assert again["test/mAP@all/image->image"] == pytest.approx(logged["test/mAP@all/image->image"], abs=1e-7)


def test_ablation_dvb1_skips_centres_and_trains(tmp_path):
    res = _run(FAST + ["--max-epochs", "1", "--set", "method.ablation=dvb1", "--output", str(tmp_path / "a")])
    assert np.isfinite(res["metrics"]["test/mAP@all/image->image"])
    state = _ckpt(Path(res["model_selection"]["last_checkpoint"]))["state_dict"]
    assert bool(state["prepared"]) and float(state["centres"].abs().sum()) == 0.0


# ============================================================================================== bad input
def test_bad_input_is_a_clear_error(tmp_path):
    for kw, msg in [(dict(image_dim=None), "image_dim"), (dict(latent_dim=100), "latent_dim"),
                    (dict(num_centres=1), "num_centres"), (dict(ablation="dvb5"), "ablation"),
                    (dict(posterior_code="soft"), "posterior_code"), (dict(t=0.0), "t must be positive"),
                    (dict(eval_samples=-1), "eval_samples"), (dict(a2=-1.0), "a2"), (dict(h2_scale="x"), "h2_scale"),
                    (dict(bits=0), "bits")]:
        with pytest.raises(ValueError, match=msg):
            _small_model(**kw)
    model = _small_model()
    with pytest.raises(ValueError, match="single-modal"):
        model.encode({"text": torch.rand(2, 64)}, "text")
    with pytest.raises(ValueError, match="image_dim=64"):
        model.encode({"image": torch.rand(2, 10)}, "image")
    with pytest.raises(RuntimeError, match="pseudo centres"):
        model.training_step({"image": torch.rand(4, 64), "index": torch.arange(4)}, 0)
    # cross-modal data: refused with the fix in the message
    with pytest.raises(ValueError, match=r"data.modalities=\[image\]"):
        _run(FAST + ["--max-epochs", "1", "--set", "data.modalities=[image, text]", "--output", str(tmp_path / "x")])
    # too many centres for the training split
    dm = datamodules.create("digits", modalities=["image"], n_train=30, n_query=20, batch_size=8)
    dm.setup("fit")
    with pytest.raises(ValueError, match="num_centres"):
        _small_model(num_centres=40).prepare(dm)


# ============================================================================ experiments/diagnose_dvb_objective.py
def _objective_module():
    return load_experiment_script("diagnose_dvb_objective")


def test_diagnosis_objective_matches_hand_computed_terms():
    """H2 and H3 of sign codes against the printed sums, written out on a 3-item batch."""
    mod = _objective_module()
    codes = torch.tensor([[1., 1.], [1., -1.], [-1., -1.]])
    A = torch.tensor([[1., .5, .1], [.5, 1., .2], [.1, .2, 1.]])
    c = codes.numpy()
    # H2 (batch scale): ||C^T C - 3 I||^2 / 3; C^T C = [[3, 1], [1, 3]] -> off-diagonals 1 and 1 -> 2 / 3
    h2 = np.sum((c.T @ c - 3 * np.eye(2)) ** 2) / 3
    assert h2 == pytest.approx(2 / 3)
    # H3 = 1/2 sum_ij A_ij ||c_i - c_j||^2 = (.5 * 4 + .1 * 8 + .2 * 4) = 3.6
    h3 = 0.5 * sum(float(A[i, j]) * np.sum((c[i] - c[j]) ** 2) for i in range(3) for j in range(3))
    assert h3 == pytest.approx(3.6)
    out = mod.code_objective(codes, A, a2=3.0, a3=30.0)
    assert out["h2"] == pytest.approx(h2 / 3) and out["h3"] == pytest.approx(h3 / 3)
    assert out["objective"] == pytest.approx(3.0 * h2 / 3 + 30.0 * h3 / 3)
    with pytest.raises(ValueError, match="sign codes"):
        mod.code_objective(torch.tensor([[0.5, 1.], [1., -1.], [-1., -1.]]), A, 1.0, 1.0)
    # same-class share of the off-diagonal mass: items 0 and 2 share a class -> 2 * .1 / (2 * (.5 + .1 + .2))
    assert mod.same_class_share(A, np.array([0, 1, 0])) == pytest.approx(.2 / 1.6)
    # chance: 2 of the 6 ordered off-diagonal pairs share a class, the share of a uniform affinity
    assert mod.chance_same_class_share(np.array([0, 1, 0])) == pytest.approx(1 / 3)
    uniform = mod.same_class_share(torch.ones(3, 3), np.array([0, 1, 0]))
    assert mod.chance_same_class_share(np.array([0, 1, 0])) == pytest.approx(uniform)


def test_diagnosis_runs_on_two_runs_of_one_split_and_refuses_two_splits(tmp_path):
    mod = _objective_module()
    common = ["--data", "digits", "--bits", "16", "--logger", "none", "--no-progress-bar"]
    _run(FAST + ["--max-epochs", "1", "--output", str(tmp_path / "dvb")])
    _run(["--method", "itq"] + common + ["--output", str(tmp_path / "itq")])
    out = mod.diagnose(str(tmp_path / "dvb"), str(tmp_path / "itq"), batches=2, seed=0, other_t=[0.01, 10.0])
    codes = out["codes"]
    assert set(codes) == {"dvb", "itq", "random", "class oracle"} and codes["class oracle"]["test_mAP@all"] == 1.0
    assert 0 < out["chance_same_class_share"] < out["same_class_affinity_share"] < 1   # digits' A carries classes
    # a wider bandwidth flattens A towards uniform weights (the chance share), a narrower one keeps near neighbours
    at = out["same_class_share_at_t"]
    assert out["chance_same_class_share"] < at["10.0"] < out["same_class_affinity_share"] < at["0.01"]
    assert at["10.0"] - out["chance_same_class_share"] < 0.1
    # the oracle's codes are constant within a class, so its H3 only counts pairs across classes: below random's
    assert codes["class oracle"]["h3"] < codes["random"]["h3"]
    _run(["--method", "itq"] + common + ["--seed", "1", "--output", str(tmp_path / "itq1")])
    with pytest.raises(ValueError, match="not run on the same split"):
        mod.diagnose(str(tmp_path / "dvb"), str(tmp_path / "itq1"), batches=2)
