"""Classic baselines: LSH, ITQ, SH, CCA, CCA-ITQ, CVH, CMFH (pure functions and registered methods).

Every property is checked against an independent computation (scipy's generalised eigensolver, sklearn's CCA,
direct sums written out from the papers' equations), never against the code under test.
"""
import numpy as np
import pytest
import scipy.linalg as sl
import torch

from lightning_hash import classic as C


def _views(n=400, seed=0, dx=7, dy=5, shared=3, noise=0.3):
    rs = np.random.RandomState(seed)
    z = rs.randn(n, shared)
    x = np.hstack([z, rs.randn(n, dx - shared)]) @ rs.randn(dx, dx) + noise * rs.randn(n, dx)
    y = z @ rs.randn(shared, dy) + noise * rs.randn(n, dy)
    return x, y


# ------------------------------------------------------------------------------------------------ PCA / ITQ
def test_pca_matches_numpy_svd():
    x = np.random.RandomState(1).randn(200, 6) @ np.diag([5, 4, 3, 2, 1, 0.5])
    mean, comps, var = C.pca(x, 3)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    np.testing.assert_allclose(var, s[:3] ** 2 / len(x), rtol=1e-10)
    np.testing.assert_allclose(np.abs(comps.T @ vt[:3].T), np.eye(3), atol=1e-8)   # same directions up to sign
    assert np.all(comps[np.argmax(np.abs(comps), axis=0), range(3)] > 0)         # deterministic sign


@pytest.mark.parametrize("bits,dim", [(8, 20), (6, 6), (9, 4)])
def test_itq_rotation_orthogonal_and_loss_monotone(bits, dim):
    rs = np.random.RandomState(bits)
    x = rs.randn(300, dim) @ rs.randn(dim, dim)
    res = C.itq_fit(x, bits, n_iter=50, seed=3)
    c = min(bits, dim)
    assert res.rotation.shape == (c, bits)
    np.testing.assert_allclose(res.rotation @ res.rotation.T, np.eye(c), atol=1e-10)
    if c == bits:
        np.testing.assert_allclose(res.rotation.T @ res.rotation, np.eye(bits), atol=1e-10)
    losses = np.asarray(res.losses)
    assert len(losses) == 51
    assert np.all(np.diff(losses) <= 1e-9 * losses[:-1]), "quantisation loss increased"
    assert losses[-1] < losses[0]
    # the recorded loss is the paper's Q(B, R) = ||B - V R||^2 with B = sgn(V R), recomputed here
    v = (x - x.mean(axis=0)) @ res.components
    z = v @ res.rotation
    b = np.where(z >= 0, 1.0, -1.0)
    assert losses[-1] == pytest.approx(float(((b - z) ** 2).sum()), rel=1e-10)


def test_itq_rotation_beats_random_rotations():
    """ITQ's rotation has lower quantisation loss than every one of 200 random rotations."""
    rs = np.random.RandomState(0)
    v = rs.randn(500, 4) * np.array([3.0, 2.0, 1.0, 0.5])
    r, losses = C.itq_rotation(v, n_iter=50, seed=0)
    for i in range(200):
        q, _ = np.linalg.qr(rs.randn(4, 4))
        z = v @ q
        assert losses[-1] <= ((np.where(z >= 0, 1.0, -1.0) - z) ** 2).sum() + 1e-9


def test_itq_deterministic_per_seed():
    x = np.random.RandomState(0).randn(100, 10)
    a, b, c = C.itq_fit(x, 6, seed=1), C.itq_fit(x, 6, seed=1), C.itq_fit(x, 6, seed=2)
    np.testing.assert_array_equal(a.projection, b.projection)
    assert not np.allclose(a.rotation, c.rotation)


# ------------------------------------------------------------------------------------------------ LSH
def test_lsh_deterministic_per_seed_and_centred():
    x = np.random.RandomState(0).randn(50, 8) + 10.0
    a, b, c = C.lsh_fit(x, 16, seed=5), C.lsh_fit(x, 16, seed=5), C.lsh_fit(x, 16, seed=6)
    np.testing.assert_array_equal(a.projection, b.projection)
    assert not np.allclose(a.projection, c.projection)
    np.testing.assert_allclose(a.mean, x.mean(axis=0))
    np.testing.assert_array_equal(C.lsh_fit(x, 16, seed=5, center=False).mean, np.zeros(8))
    # W ~ N(0, 1): a large draw has the right first two moments
    w = C.lsh_fit(np.zeros((2, 100)), 500, seed=0).projection
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01


# ------------------------------------------------------------------------------------------------ SH
def test_sh_eigenfunctions_follow_the_paper():
    """Modes = the ``bits`` smallest k*pi/(b-a) over PCA dimensions, enumerated independently here."""
    rs = np.random.RandomState(0)
    x = rs.randn(400, 5) * np.array([4.0, 2.0, 1.5, 1.0, 0.3])
    bits = 7
    res = C.sh_fit(x, bits)
    xp = (x - x.mean(axis=0)) @ res.components
    width = xp.max(axis=0) - xp.min(axis=0)
    cands = sorted((k * np.pi / width[j], j, k) for j in range(5) for k in range(1, 30))
    expected = [(j, k) for _, j, k in cands[:bits]]
    got = [(int(np.flatnonzero(row)[0]), int(row.max())) for row in res.modes]
    assert got == expected
    # u = sin(pi/2 + k pi (p_j - a_j) / (b_j - a_j)), written out for one bit and one item
    u = C.sh_encode(x[:3], res)
    j, k = expected[2]
    a = xp[:, j].min()
    np.testing.assert_allclose(u[:, 2], np.sin(np.pi / 2 + k * np.pi * (xp[:3, j] - a) / width[j]), atol=1e-9)


def test_sh_deterministic_per_seed_with_subsampling(tmp_path):
    """SH has no randomness; with ``max_train`` the seed picks the subset (same seed same codes, another differs)."""
    from lightning_hash.methods.classic_single import SH
    dm = _digits(("image",))
    codes = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        m = SH(bits=16, seed=seed, max_train=300)
        m.fit_once(dm)
        codes[name] = _encode_db(m, dm, "image")
    assert torch.equal(codes["a"], codes["b"])
    assert not torch.equal(codes["a"], codes["c"])
    np.testing.assert_array_equal(C.sh_fit(np.arange(20.0).reshape(10, 2) ** 1.5, 3).modes,
                                  C.sh_fit(np.arange(20.0).reshape(10, 2) ** 1.5, 3).modes)


# ------------------------------------------------------------------------------------------------ CCA
def test_cca_defining_property_with_regularisation():
    x, y = _views()
    reg = 1e-3
    res = C.cca(x, y, reg=reg)
    xc, yc = x - x.mean(0), y - y.mean(0)
    n = len(x)
    cxx = xc.T @ xc / n + reg * np.trace(xc.T @ xc / n) / x.shape[1] * np.eye(x.shape[1])
    cyy = yc.T @ yc / n + reg * np.trace(yc.T @ yc / n) / y.shape[1] * np.eye(y.shape[1])
    cxy = xc.T @ yc / n
    k = res.wx.shape[1]
    np.testing.assert_allclose(res.wx.T @ cxx @ res.wx, np.eye(k), atol=1e-9)
    np.testing.assert_allclose(res.wy.T @ cyy @ res.wy, np.eye(k), atol=1e-9)
    np.testing.assert_allclose(res.wx.T @ cxy @ res.wy, np.diag(res.correlations), atol=1e-9)
    # the correlations are the square roots of the generalised eigenvalues of C_xy C_yy^-1 C_yx w = rho^2 C_xx w
    ev = sl.eigh(cxy @ np.linalg.solve(cyy, cxy.T), cxx, eigvals_only=True)[::-1][:k]
    np.testing.assert_allclose(res.correlations, np.sqrt(np.clip(ev, 0, None)), atol=1e-8)


def test_cca_matches_sklearn_without_regularisation():
    from sklearn.cross_decomposition import CCA as SkCCA
    x, y = _views(n=1000, seed=3)
    res = C.cca(x, y, n_components=3, reg=0.0)
    sk = SkCCA(n_components=3, scale=False, max_iter=5000, tol=1e-12).fit(x, y)
    xs, ys = sk.transform(x, y)
    sk_rho = [np.corrcoef(xs[:, i], ys[:, i])[0, 1] for i in range(3)]
    np.testing.assert_allclose(res.correlations, sk_rho, atol=1e-5)
    # the canonical variates agree up to sign and scale
    ours = (x - x.mean(0)) @ res.wx
    for i in range(3):
        assert abs(np.corrcoef(ours[:, i], xs[:, i])[0, 1]) > 1 - 1e-5


def test_cca_bad_input():
    x, y = _views()
    with pytest.raises(ValueError, match="paired"):
        C.cca(x, y[:-1])
    with pytest.raises(ValueError, match="n_components"):
        C.cca(x, y, n_components=6)
    with pytest.raises(ValueError, match="non-finite"):
        C.cca(np.where(np.arange(x.size).reshape(x.shape) == 3, np.nan, x), y)
    with pytest.raises(ValueError, match="reg"):
        C.cca(x, y, reg=-1)


# ------------------------------------------------------------------------------------------------ CVH
def test_cvh_solves_the_block_generalised_eigenproblem():
    """O a = rho D a with D-orthogonal eigenvectors; eigenvalues = scipy's on the same block problem."""
    x, y = _views()
    bits = 12                                                    # all dx + dy eigenvectors
    res = C.cvh_fit(x, y, bits, reg=1e-3)
    full = C.cca(x, y, reg=1e-3)
    dx = x.shape[1]
    D = sl.block_diag(full.cxx, full.cyy)
    O = np.zeros_like(D)
    O[:dx, dx:], O[dx:, :dx] = full.cxy, full.cxy.T
    A = np.vstack([res.projection_x, res.projection_y])
    np.testing.assert_allclose(O @ A, D @ A * res.eigenvalues, atol=1e-9)
    G = A.T @ D @ A
    np.testing.assert_allclose(G, np.diag(np.diag(G)), atol=1e-9)        # D-orthogonal
    scipy_ev = np.sort(sl.eigh(O, D, eigvals_only=True))[::-1]
    np.testing.assert_allclose(res.eigenvalues, scipy_ev, atol=1e-9)
    assert res.n_informative == 5


def test_cvh_extra_bits_are_one_sided():
    rs = np.random.RandomState(0)
    z = rs.randn(300, 2)
    x = np.hstack([z, rs.randn(300, 4)])
    y = z @ rs.randn(2, 2) + 0.1 * rs.randn(300, 2)
    res = C.cvh_fit(x, y, bits=5, rank_tol=1e-2)
    assert res.n_informative == 2
    np.testing.assert_array_equal(res.projection_y[:, 2:], 0.0)          # exact zeros: code +1, not noise
    assert np.all(np.abs(res.projection_x[:, 2:]).max(axis=0) > 0)
    with pytest.raises(ValueError, match="dx \\+ dy"):
        C.cvh_fit(x, y, bits=9)


# ------------------------------------------------------------------------------------------------ CCA-ITQ
def test_cca_itq_codes_and_rotation():
    x, y = _views(n=600)
    res = C.cca_itq_fit(x, y, bits=3, seed=0)
    np.testing.assert_allclose(res.rotation @ res.rotation.T, np.eye(3), atol=1e-10)
    assert np.all(np.diff(res.losses) <= 1e-9 * np.asarray(res.losses[:-1]))
    bx = np.sign((x - x.mean(0)) @ res.projection_x)
    by = np.sign((y - y.mean(0)) @ res.projection_y)
    assert (bx == by).mean() > 0.8          # the two views of an item get (mostly) the same code
    wide = C.cca_itq_fit(x, y, bits=8, seed=0)                   # more bits than canonical pairs
    assert wide.rotation.shape == (5, 8)
    np.testing.assert_allclose(wide.rotation @ wide.rotation.T, np.eye(5), atol=1e-10)


# ------------------------------------------------------------------------------------------------ CMFH
def _cmfh_objective_by_hand(X1, X2, r, lam, mu, gamma):
    total = 0.0
    n = X1.shape[1]
    for i in range(n):   # written item by item from the objective
        total += lam * np.sum((X1[:, i] - r.u1 @ r.v[:, i]) ** 2)
        total += (1 - lam) * np.sum((X2[:, i] - r.u2 @ r.v[:, i]) ** 2)
        total += mu * (np.sum((r.v[:, i] - r.p1 @ X1[:, i]) ** 2) + np.sum((r.v[:, i] - r.p2 @ X2[:, i]) ** 2))
    return total + gamma * sum(np.sum(m ** 2) for m in (r.u1, r.u2, r.v, r.p1, r.p2))


def test_cmfh_objective_decreases_and_updates_are_block_optimal():
    x, y = _views(n=200)
    lam, mu, gamma = 0.5, 10.0, 0.1
    res = C.cmfh_fit(x, y, bits=4, lam=lam, mu=mu, gamma=gamma, n_iter=30, tol=0.0, seed=1)
    obj = np.asarray(res.objective)
    assert len(obj) == 31
    assert np.all(np.diff(obj) <= 1e-10 * obj[:-1]), "CMFH objective increased"
    assert obj[-1] < 0.5 * obj[0]
    X1, X2 = (x - x.mean(0)).T, (y - y.mean(0)).T
    assert obj[-1] == pytest.approx(_cmfh_objective_by_hand(X1, X2, res, lam, mu, gamma), rel=1e-10)
    # P1 is the exact minimiser given V: the gradient of mu||V - P1 X1||^2 + gamma||P1||^2 vanishes
    grad_p1 = 2 * mu * (res.p1 @ X1 - res.v) @ X1.T + 2 * gamma * res.p1
    assert np.abs(grad_p1).max() < 1e-8 * max(1.0, np.abs(res.p1).max())


def test_cmfh_bad_input():
    x, y = _views(n=50)
    for kw, msg in (({"lam": 1.0}, "lam"), ({"gamma": 0.0}, "gamma"), ({"mu": -1.0}, "mu"), ({"n_iter": 0}, "n_iter")):
        with pytest.raises(ValueError, match=msg):
            C.cmfh_fit(x, y, 4, **kw)
    with pytest.raises(ValueError, match="paired"):
        C.cmfh_fit(x, y[:10], 4)


def test_bad_bits_and_shapes():
    x = np.random.RandomState(0).randn(20, 3)
    for fn in (lambda: C.lsh_fit(x, 0), lambda: C.itq_fit(x, -1), lambda: C.sh_fit(x, 2.5)):
        with pytest.raises(ValueError, match="bits"):
            fn()
    with pytest.raises(ValueError, match="2-d"):
        C.itq_fit(x[0], 2)
    with pytest.raises(ValueError, match="identical"):
        C.sh_fit(np.ones((10, 3)), 4)
    with pytest.raises(ValueError, match="smaller"):
        C.itq_rotation(x, bits=2)


# ------------------------------------------------------------------------------------------------ modules
def _digits(modalities=("image", "text"), **kwargs):
    import datamodules
    dm = datamodules.create("digits", modalities=modalities, batch_size=256, **kwargs)
    dm.setup("fit")
    return dm


def _encode_db(model, dm, modality):
    rows = dm.eval_rows("test", "database")
    batch = dm.eval_dataset("test", "database").__getitems__(list(range(len(rows))))
    return model.encode(batch, modality)


def _map(q, d, ql, dl):
    """mAP@all, written out (ties ordered by index): relevance = same class."""
    qb, db = torch.sign(q) >= 0, torch.sign(d) >= 0
    aps = []
    for i in range(len(qb)):
        dist = (qb[i] != db).sum(1).numpy()
        order = np.lexsort((np.arange(len(dist)), dist))
        rel = (dl[order] == ql[i]).astype(float)
        if rel.sum() == 0:
            aps.append(0.0)
            continue
        hits = np.cumsum(rel)
        aps.append(float((hits / np.arange(1, len(rel) + 1) * rel).sum() / rel.sum()))
    return float(np.mean(aps))


@pytest.mark.parametrize("name", ["lsh", "itq", "sh", "cca_itq", "cvh", "cmfh"])
def test_registered_methods_fit_encode_and_checkpoint(name, tmp_path):
    from lightning_hash import methods
    cross = name in ("cca_itq", "cvh", "cmfh")
    dm = _digits(("image", "text") if cross else ("image",))
    dims = {f"{m}_dim": d for m, d in dm.input_dims.items()}
    model = methods.create(name, bits=16, seed=0, **dims)
    assert model.requires_training is False
    with pytest.raises(RuntimeError, match="fit_once"):
        _encode_db(model, dm, "image")
    model.fit_once(dm)
    q_rows, d_rows = dm.eval_rows("test", "query"), dm.eval_rows("test", "database")
    qb = dm.eval_dataset("test", "query").__getitems__(list(range(len(q_rows))))
    db = dm.eval_dataset("test", "database").__getitems__(list(range(len(d_rows))))
    if cross:
        q, d = model.encode(qb, "image"), model.encode(db, "text")
    else:
        q, d = model.encode(qb, "image"), model.encode(db, "image")
    assert q.shape == (len(q_rows), 16) and q.dtype == torch.float32
    score = _map(q, d, qb["label"].argmax(1).numpy(), db["label"].argmax(1).numpy())
    assert score > 0.25, (name, score)            # chance level is about 0.1 on 10 balanced digits
    # a checkpoint holds the fitted buffers and rebuilds the same hash function
    path = tmp_path / "m.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}, path)
    ck = torch.load(path, weights_only=False)
    fresh = methods.create(name, **ck["hyper_parameters"])
    fresh.load_state_dict(ck["state_dict"])
    assert torch.equal(fresh.encode(qb, "image"), q)
    assert any(k.startswith("fitted_image_") for k in ck["state_dict"])


def test_lsh_module_deterministic_per_seed():
    from lightning_hash.methods.classic_single import LSH
    dm = _digits(("image",))
    out = []
    for seed in (3, 3, 4):
        m = LSH(bits=16, seed=seed)
        m.fit_once(dm)
        out.append(_encode_db(m, dm, "image"))
    assert torch.equal(out[0], out[1]) and not torch.equal(out[0], out[2])


def test_single_modal_method_refuses_cross_modal_tasks():
    from lightning_hash.methods.classic_single import ITQ
    with pytest.raises(ValueError, match=r"single-modal.*image->text.*data.modalities=\[image\]"):
        ITQ(bits=8).fit_once(_digits(("image", "text")))


def test_single_modal_method_fits_each_modality_of_the_tasks():
    from lightning_hash.methods.classic_single import ITQ
    dm = _digits(("image", "text"), tasks=["image->image", "text->text"])
    m = ITQ(bits=8)
    m.fit_once(dm)
    assert m.fitted_modalities == ["image", "text"]
    assert m.fitted("text", "projection").shape == (dm.input_dims["text"], 8)
    assert all(np.all(np.diff(l) <= 1e-9 * np.asarray(l[:-1])) for l in m.itq_losses.values())


def test_module_bad_input():
    from lightning_hash.methods.classic_cross import CVH
    from lightning_hash.methods.classic_single import LSH
    dm = _digits(("image",))
    with pytest.raises(ValueError, match="cross-modal"):
        CVH(bits=8).fit_once(dm)
    with pytest.raises(ValueError, match="image_dim"):
        LSH(bits=8, image_dim=63).fit_once(dm)
    with pytest.raises(ValueError, match="modalities"):
        CVH(bits=8, modalities=("image",))
    with pytest.raises(ValueError, match="max_train"):
        LSH(bits=8, max_train=1)
    m = LSH(bits=8)
    m.fit_once(dm)
    batch = dm.eval_dataset("test", "query").__getitems__([0, 1])
    with pytest.raises(KeyError, match="text"):
        m.encode(batch, "text")
    batch["image"] = batch["image"][:, :10]
    with pytest.raises(ValueError, match="fitted on 64"):
        m.encode(batch, "image")
