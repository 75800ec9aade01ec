"""Classic (shallow) hashing baselines as small pure functions: numpy, float64, seeded.

Single-modal: LSH (random projections), ITQ (Gong & Lazebnik, TPAMI 2013), SH (Weiss, Torralba & Fergus,
NIPS 2008). Cross-modal: regularised CCA, CCA-ITQ (Gong, Lazebnik, Gordo & Perronnin, TPAMI 2013),
CVH (Kumar & Udupa, IJCAI 2011), CMFH (Ding, Guo & Zhou, CVPR 2014).

Conventions shared by every function
------------------------------------
* Data matrices are ``[n, d]`` with one item per row (the papers write ``d x n``; we transpose in the text).
* Everything is computed in float64. Randomness comes only from ``numpy.random.RandomState(seed)`` (numpy's
  frozen legacy generator, so a seed gives the same numbers on every numpy version).
* A code bit is ``sign(value)`` with ``sign(0) = +1`` (:func:`lightning_hash.codes.sign_codes`).
* Every ``*_fit`` returns plain arrays (a ``NamedTuple``); the LightningModules in ``classic_single.py`` and
  ``classic_cross.py`` store them as buffers. Encoding is ``(x - mean) @ projection`` for all methods but SH.
* Equations: every docstring writes out the formula it implements, named after the paper's own symbols
  (ITQ's quantisation loss ``Q(B, R)``, SH's eigenfunctions ``Phi_k``, CMFH's objective with ``U_m, V, P_m``);
  we do not quote equation numbers we could not check against the published PDFs.

Departures from the papers / official code, and why
---------------------------------------------------
* **PCA** (ITQ, SH) uses the eigenvectors of the (1/n) covariance, each with its sign fixed so that its
  largest-magnitude entry is positive: LAPACK builds may return either sign, which would change the codes.
* **LSH** centres the data by default (``center=True``), as the benchmark code of Gong & Lazebnik does for all
  baselines; the textbook sign-random-projection (Charikar 2002) does not centre (``center=False``).
* **ITQ** records the quantisation loss of every rotation, starting with the random initial one, i.e.
  ``n_iter + 1`` values (the official loop ``for iter = 0:n_iter`` runs ``n_iter + 1`` updates; we run exactly
  ``n_iter``). When ``bits`` exceeds the PCA/CCA dimension ``c`` (e.g. CCA on Wiki's 10-d text), the rotation
  becomes a ``c x bits`` matrix with orthonormal rows (R R^T = I): the Procrustes step keeps its closed form
  (thin SVD) and the loss its monotonicity. The papers do not define ITQ for ``bits > c``; for ``bits <= c`` this
  is exactly ITQ.
* **SH** follows the authors' ``trainSH.m`` where the paper leaves choices open: the box is
  ``[min - eps, max + eps]`` of each PCA coordinate on the training data (the paper's "uniform distribution"
  fit), only single-dimension eigenfunctions are enumerated, and ties in the eigenvalue order are broken by PCA
  dimension then frequency (stable sort). The PCA coordinates are centred (the official code does not centre;
  the shift is absorbed by ``mn``, so the codes are identical).
* **CCA** is regularised *relatively*: ``C_xx + reg * tr(C_xx)/d_x * I`` (likewise for y), so one ``reg``
  suits features of any scale (Wiki's L1-normalised BoW has variances around 1e-5). Directions whose canonical
  correlation is below ``rank_tol`` (e.g. the constant direction of Wiki's LDA proportions, which sum to one)
  are not informative pairs; see CVH and CCA-ITQ below.
* **CCA-ITQ** (cross-modal form, as used as a baseline by CMFH, LSSH, SePH): CCA to ``c = min(bits, r)``
  informative dimensions (``r`` = number of correlations above ``rank_tol``), then ONE ITQ rotation learnt on
  the projections of both views stacked as ``2n`` samples of the shared space; codes ``sign(W_m^T x_m R)``.
  Gong et al. optionally scale the CCA directions by a power of their correlations (``eigen_power``, default 0,
  i.e. no scaling: every direction has unit variance as the CCA constraint gives).
* **CVH** for two views is solved in closed form through the CCA decomposition instead of a generic
  generalised eigensolver (see :func:`cvh_fit` for the formulation): it returns the same eigenpairs, but picks,
  inside the degenerate eigenvalue-0 space (bits beyond the ``r`` informative pairs), the basis made of
  one-sided directions (image-only, then text-only), so that a view's projection on another view's direction is
  exactly 0 instead of rounding noise. The CVH paper leaves that choice open; the official-style code
  (``eigs``) returns an arbitrary, unstable basis there.
* **CMFH** uses the exact block minimisers of the objective it prints: ``U_1 = X_1 V^T (V V^T + gamma/lambda
  I)^{-1}``, ``U_2`` with ``gamma/(1-lambda)``, ``P_m = V X_m^T (X_m X_m^T + gamma/mu I)^{-1}``. The authors'
  ``solveCMFH.m`` uses ``gamma I`` in all four inverses, which is not the minimiser of their objective, so their
  printed objective need not decrease; ours provably does not increase. The objective uses squared Frobenius
  norms (the paper's), not the plain norms ``solveCMFH.m`` prints. Data are centred on the training mean (as in
  the authors' demo), codes are ``sign(P_m (x - mean_m))``, and the iteration stops after ``n_iter`` rounds or
  when the relative decrease falls below ``tol``.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import numpy as np

__all__ = [
    "as_data_matrix", "pca", "sign_pm", "random_orthogonal", "procrustes_rotation",
    "LSHResult", "lsh_fit", "ITQResult", "itq_rotation", "itq_fit",
    "SHResult", "sh_fit", "sh_encode",
    "CCAResult", "cca", "CCAITQResult", "cca_itq_fit", "CVHResult", "cvh_fit",
    "CMFHResult", "cmfh_objective", "cmfh_fit",
]


# ============================================================================================ helpers
def as_data_matrix(x, name: str = "x", min_rows: int = 2) -> np.ndarray:
    """``x`` as a finite float64 ``[n, d]`` matrix; ``ValueError`` naming ``name`` otherwise.

    >>> as_data_matrix([[1, 2], [3, 4]]).dtype
    dtype('float64')
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-d [n, d] matrix (one item per row), got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least {min_rows} rows and 1 column, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")
    return arr


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each column so that its largest-magnitude entry is positive (deterministic eigenvector signs)."""
    if vectors.size == 0:
        return vectors
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def sign_pm(values: np.ndarray) -> np.ndarray:
    """``sign`` with ``sign(0) = +1``: codes in {-1, +1} (the library's convention).

    >>> sign_pm(np.array([-0.5, 0.0, 2.0])).tolist()
    [-1.0, 1.0, 1.0]
    """
    return np.where(values >= 0, 1.0, -1.0)


def pca(x: np.ndarray, n_components: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Principal components of the rows of ``x``: ``(mean [d], components [d, k], variances [k])``.

    Eigenvectors of the covariance ``(x - mean)^T (x - mean) / n``, by decreasing eigenvalue, each with its
    largest-magnitude entry positive. ``n_components`` must not exceed ``d``.

    >>> mean, comps, var = pca(np.array([[0., 0.], [2., 0.], [0., 1.], [2., 1.]]), 1)
    >>> comps[:, 0].tolist(), float(var[0])
    ([1.0, 0.0], 1.0)
    """
    x = as_data_matrix(x)
    k = _positive_int(n_components, "n_components")
    if k > x.shape[1]:
        raise ValueError(f"n_components ({k}) exceeds the data dimension ({x.shape[1]})")
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / x.shape[0]
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(-evals, kind="stable")[:k]
    return mean, _fix_signs(evecs[:, order]), np.clip(evals[order], 0.0, None)


def random_orthogonal(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A ``rows x cols`` matrix with orthonormal rows (``rows <= cols``), Haar-distributed, from ``seed``.

    QR of a Gaussian ``cols x cols`` matrix (signs fixed by R's diagonal), first ``rows`` rows.

    >>> r = random_orthogonal(3, 3, seed=1); bool(np.allclose(r @ r.T, np.eye(3)))
    True
    """
    rows, cols = _positive_int(rows, "rows"), _positive_int(cols, "cols")
    if rows > cols:
        raise ValueError(f"random_orthogonal: rows ({rows}) must not exceed cols ({cols})")
    g = np.random.RandomState(seed).standard_normal((cols, cols))
    q, r = np.linalg.qr(g)
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)
    return q[:rows]


def procrustes_rotation(v: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The ``R`` (``c x bits``, ``R R^T = I``) minimising ``||B - V R||_F^2`` (orthogonal Procrustes).

    Gong & Lazebnik, TPAMI 2013, ITQ's step "fix B and update R": with the SVD ``V^T B = U S W^T``,
    ``R = U W^T`` (their ``B^T V = W S U^T``, ``R = U W^T``, written for ``c = bits``).

    >>> v = np.array([[1., 0.], [0., 1.]]); bool(np.allclose(procrustes_rotation(v, v), np.eye(2)))
    True
    """
    m = v.T @ b                                             # [c, bits]
    u, _, wt = np.linalg.svd(m, full_matrices=False)        # u [c, c], wt [c, bits]
    return u @ wt


# ============================================================================================ LSH
class LSHResult(NamedTuple):
    mean: np.ndarray          # [d] (zeros when center=False)
    projection: np.ndarray    # [d, bits]


def lsh_fit(x: np.ndarray, bits: int, seed: int = 0, center: bool = True) -> LSHResult:
    """Locality-sensitive hashing by random hyperplanes: ``h(x) = sign(W^T (x - mean))``, ``W_ij ~ N(0, 1)``.

    Charikar (STOC 2002), the sign-random-projection family used as "LSH" in the hashing literature (Gong &
    Lazebnik's benchmark; Datar et al. 2004 for the p-stable form). ``W`` is drawn from
    ``RandomState(seed)``; ``center=True`` subtracts the training mean first (see the module docstring).

    >>> r = lsh_fit(np.random.RandomState(0).rand(20, 5), bits=8, seed=3)
    >>> r.projection.shape
    (5, 8)
    """
    x = as_data_matrix(x)
    bits = _positive_int(bits, "bits")
    mean = x.mean(axis=0) if center else np.zeros(x.shape[1])
    w = np.random.RandomState(seed).standard_normal((x.shape[1], bits))
    return LSHResult(mean=mean, projection=w)


# ============================================================================================ ITQ
def itq_rotation(v: np.ndarray, bits: Optional[int] = None, n_iter: int = 50, seed: int = 0
                 ) -> Tuple[np.ndarray, List[float]]:
    """Iterative quantisation: the rotation ``R`` minimising ``Q(B, R) = ||B - V R||_F^2`` over ``B`` in {-1,1}.

    Gong & Lazebnik, TPAMI 2013, quantisation loss ``Q(B, R) = ||B - V R||_F^2``, alternating "fix R, update B"
    (``B = sgn(V R)``) and "fix B, update R" (:func:`procrustes_rotation`), from a random orthogonal ``R``.

    Parameters
    ----------
    v: ``[n, c]`` zero-centred projected data (PCA or CCA coordinates).
    bits: code length; default ``c``. ``bits > c`` gives a ``c x bits`` R with orthonormal rows (see the
        module docstring); ``bits < c`` is an error (project to ``bits`` dimensions first).
    n_iter: number of (B, R) updates.
    seed: seeds the initial rotation.

    Returns
    -------
    (R, losses): ``losses[t] = ||sgn(V R_t) - V R_t||_F^2`` for the initial and each updated rotation
    (``n_iter + 1`` values, non-increasing: each step is an exact block minimiser).

    >>> v = np.random.RandomState(0).randn(50, 4)
    >>> r, losses = itq_rotation(v, n_iter=10)
    >>> bool(np.allclose(r @ r.T, np.eye(4))), bool(losses[-1] <= losses[0])
    (True, True)
    """
    v = as_data_matrix(v, "v", min_rows=1)
    c = v.shape[1]
    bits = c if bits is None else _positive_int(bits, "bits")
    if bits < c:
        raise ValueError(f"itq_rotation: bits ({bits}) is smaller than the data dimension ({c}); project to "
                         "bits dimensions first")
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 0:
        raise ValueError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    r = random_orthogonal(c, bits, seed)
    z = v @ r
    losses = [float(np.sum((sign_pm(z) - z) ** 2))]
    for _ in range(int(n_iter)):
        r = procrustes_rotation(v, sign_pm(z))
        z = v @ r
        losses.append(float(np.sum((sign_pm(z) - z) ** 2)))
    return r, losses


class ITQResult(NamedTuple):
    mean: np.ndarray          # [d]
    components: np.ndarray    # [d, c] PCA directions, c = min(bits, d)
    rotation: np.ndarray      # [c, bits]
    projection: np.ndarray    # [d, bits] = components @ rotation
    losses: List[float]       # quantisation loss per iteration (n_iter + 1 values)


def itq_fit(x: np.ndarray, bits: int, n_iter: int = 50, seed: int = 0) -> ITQResult:
    """PCA-ITQ (Gong & Lazebnik, TPAMI 2013): PCA to ``c = min(bits, d)`` dimensions, then
    :func:`itq_rotation`; codes ``sign((x - mean) W R)``.

    >>> r = itq_fit(np.random.RandomState(0).randn(100, 8), bits=4, n_iter=5)
    >>> r.projection.shape, len(r.losses)
    ((8, 4), 6)
    """
    x = as_data_matrix(x)
    bits = _positive_int(bits, "bits")
    c = min(bits, x.shape[1])
    mean, comps, _ = pca(x, c)
    rot, losses = itq_rotation((x - mean) @ comps, bits=bits, n_iter=n_iter, seed=seed)
    return ITQResult(mean=mean, components=comps, rotation=rot, projection=comps @ rot, losses=losses)


# ============================================================================================ SH
class SHResult(NamedTuple):
    mean: np.ndarray          # [d]
    components: np.ndarray    # [d, c] PCA directions, c = min(bits, d)
    mn: np.ndarray            # [c] lower box bound of each PCA coordinate
    range: np.ndarray         # [c] box width (mx - mn)
    modes: np.ndarray         # [bits, c] frequency index k per PCA dimension (one non-zero per row)


def sh_fit(x: np.ndarray, bits: int) -> SHResult:
    """Spectral hashing (Weiss, Torralba & Fergus, NIPS 2008), as in the authors' ``trainSH.m``.

    1. PCA to ``c = min(bits, d)`` dimensions.
    2. Fit a uniform distribution on each PCA coordinate: the box ``[a_j, b_j] = [min - eps, max + eps]``.
    3. The analytic eigenfunctions of the 1-D weighted Laplacian for a uniform density on ``[a, b]`` (the
       paper's ``Phi_k`` and ``lambda_k``)::

           Phi_k(x) = sin(pi/2 + k pi / (b - a) x),   lambda_k = 1 - exp(-eps^2/2 |k pi / (b - a)|^2)

       ``lambda_k`` increases with ``omega = k pi / (b - a)``, so the ``bits`` smallest non-trivial eigenvalues
       are the ``bits`` smallest ``omega`` over all (dimension, k >= 1) pairs (the constant ``k = 0`` excluded),
       whatever the kernel width ``eps``. Candidates: ``k = 1 .. ceil((bits + 1) (b_j - a_j) / max width) - 1``
       per dimension (enough to hold the ``bits`` smallest).
    4. Threshold each eigenfunction at zero (:func:`sh_encode`).

    >>> r = sh_fit(np.random.RandomState(0).randn(200, 3), bits=5)
    >>> r.modes.shape, int((r.modes > 0).sum(axis=1).max())
    ((5, 3), 1)
    """
    x = as_data_matrix(x)
    bits = _positive_int(bits, "bits")
    c = min(bits, x.shape[1])
    mean, comps, _ = pca(x, c)
    xp = (x - mean) @ comps
    eps = np.finfo(np.float64).eps
    mn = xp.min(axis=0) - eps
    mx = xp.max(axis=0) + eps
    width = mx - mn
    if width.max() <= 2 * eps:
        raise ValueError("sh_fit: all training rows are identical; spectral hashing needs spread data")
    max_mode = np.ceil((bits + 1) * width / width.max()).astype(np.int64)
    dims, ks = [], []
    for j in range(c):
        for k in range(1, int(max_mode[j])):
            dims.append(j)
            ks.append(k)
    dims_a, ks_a = np.asarray(dims, dtype=np.int64), np.asarray(ks, dtype=np.int64)
    omega = ks_a * np.pi / width[dims_a]
    order = np.argsort(omega, kind="stable")
    if order.size < bits:  # cannot happen with the enumeration above; kept as a guard, never truncate silently
        raise ValueError(f"sh_fit: only {order.size} eigenfunctions enumerated for {bits} bits")
    modes = np.zeros((bits, c))
    chosen = order[:bits]
    modes[np.arange(bits), dims_a[chosen]] = ks_a[chosen]
    return SHResult(mean=mean, components=comps, mn=mn, range=width, modes=modes)


def sh_encode(x: np.ndarray, model: SHResult) -> np.ndarray:
    """Spectral-hashing eigenfunction values ``[n, bits]`` (their sign is the code), ``compressSH.m``::

        u_i(x) = prod_j sin(pi/2 + modes_ij * pi / (b_j - a_j) * (p_j(x) - a_j)),   p(x) = (x - mean) W

    >>> m = sh_fit(np.random.RandomState(0).randn(100, 2), bits=3)
    >>> sh_encode(np.zeros((1, 2)), m).shape
    (1, 3)
    """
    x = as_data_matrix(x, min_rows=1)
    if x.shape[1] != model.components.shape[0]:
        raise ValueError(f"sh_encode: x has {x.shape[1]} columns, the model was fitted on "
                         f"{model.components.shape[0]}")
    xp = (x - model.mean) @ model.components - model.mn            # [n, c]
    omegas = model.modes * (np.pi / model.range)                    # [bits, c]
    return np.prod(np.sin(np.pi / 2 + xp[:, None, :] * omegas[None, :, :]), axis=2)


# ============================================================================================ CCA
class CCAResult(NamedTuple):
    mean_x: np.ndarray        # [dx]
    mean_y: np.ndarray        # [dy]
    wx: np.ndarray            # [dx, k] canonical directions of x
    wy: np.ndarray            # [dy, k]
    correlations: np.ndarray  # [k] canonical correlations, decreasing
    cxx: np.ndarray           # [dx, dx] regularised covariance of x (the metric of the constraint)
    cyy: np.ndarray           # [dy, dy]
    cxy: np.ndarray           # [dx, dy] cross-covariance
    px: np.ndarray            # [dx, dx] all left singular vectors of the whitened cross-covariance
    qy: np.ndarray            # [dy, dy] all right singular vectors
    sx: np.ndarray            # [dx, dx] C_xx^{-1/2}
    sy: np.ndarray            # [dy, dy] C_yy^{-1/2}


def _inv_sqrt(c: np.ndarray) -> np.ndarray:
    evals, evecs = np.linalg.eigh(c)
    if evals.min() <= 0:
        raise ValueError("cca: a regularised covariance is not positive definite; increase reg")
    return (evecs / np.sqrt(evals)) @ evecs.T


def cca(x: np.ndarray, y: np.ndarray, n_components: Optional[int] = None, reg: float = 1e-4) -> CCAResult:
    """Regularised canonical correlation analysis between paired views (Hotelling 1936).

    Maximise ``w_x^T C_xy w_y`` subject to ``w_x^T C~_xx w_x = w_y^T C~_yy w_y = 1``, i.e. the generalised
    eigenproblem ``[[0, C_xy], [C_yx, 0]] w = rho [[C~_xx, 0], [0, C~_yy]] w``, with the centred covariances
    ``C = X^T Y / n`` and ``C~_xx = C_xx + reg * tr(C_xx)/d_x * I`` (relative ridge, likewise ``C~_yy``).
    Solved by the SVD of the whitened cross-covariance ``C~_xx^{-1/2} C_xy C~_yy^{-1/2} = P diag(rho) Q^T``:
    ``W_x = C~_xx^{-1/2} P``, ``W_y = C~_yy^{-1/2} Q``. Hence ``W_x^T C~_xx W_x = I``, ``W_y^T C~_yy W_y = I`` and
    ``W_x^T C_xy W_y = diag(rho)``.

    Parameters
    ----------
    x, y: ``[n, dx]``, ``[n, dy]`` paired rows.
    n_components: ``k`` (default and maximum ``min(dx, dy)``).
    reg: relative ridge (``>= 0``; ``0`` needs full-rank covariances).

    >>> rs = np.random.RandomState(0); z = rs.randn(500, 1)
    >>> r = cca(np.hstack([z, rs.randn(500, 2)]), np.hstack([z + 0.5 * rs.randn(500, 1), rs.randn(500, 1)]), 1)
    >>> 0.85 < float(r.correlations[0]) < 0.95          # 1 / sqrt(1 + 0.5^2) = 0.89
    True
    """
    x, y = as_data_matrix(x, "x"), as_data_matrix(y, "y")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"cca: x has {x.shape[0]} rows and y {y.shape[0]}; the views must be paired row by row")
    if not np.isfinite(reg) or reg < 0:
        raise ValueError(f"reg must be a finite non-negative number, got {reg!r}")
    kmax = min(x.shape[1], y.shape[1])
    k = kmax if n_components is None else _positive_int(n_components, "n_components")
    if k > kmax:
        raise ValueError(f"n_components ({k}) exceeds min(dx, dy) = {kmax}")
    n = x.shape[0]
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mean_x, y - mean_y
    cxx, cyy, cxy = xc.T @ xc / n, yc.T @ yc / n, xc.T @ yc / n
    cxx = cxx + reg * np.trace(cxx) / cxx.shape[0] * np.eye(cxx.shape[0])
    cyy = cyy + reg * np.trace(cyy) / cyy.shape[0] * np.eye(cyy.shape[0])
    sx, sy = _inv_sqrt(cxx), _inv_sqrt(cyy)
    p, rho, qt = np.linalg.svd(sx @ cxy @ sy, full_matrices=True)
    q = qt.T
    # deterministic signs: fix each x direction's sign, carry it to its y partner (keeps rho >= 0)
    signs = np.sign(p[np.argmax(np.abs(p), axis=0), np.arange(p.shape[1])])
    signs[signs == 0] = 1.0
    p = p * signs
    q[:, :kmax] = q[:, :kmax] * signs[:kmax]
    q = _fix_signs_tail(q, kmax)
    return CCAResult(mean_x=mean_x, mean_y=mean_y, wx=sx @ p[:, :k], wy=sy @ q[:, :k], correlations=rho[:k],
                     cxx=cxx, cyy=cyy, cxy=cxy, px=p, qy=q, sx=sx, sy=sy)


def _fix_signs_tail(q: np.ndarray, start: int) -> np.ndarray:
    if start < q.shape[1]:
        q = q.copy()
        q[:, start:] = _fix_signs(q[:, start:])
    return q


def _informative(correlations: np.ndarray, rank_tol: float) -> int:
    return int(np.count_nonzero(correlations > rank_tol))


# ============================================================================================ CCA-ITQ
class CCAITQResult(NamedTuple):
    mean_x: np.ndarray
    mean_y: np.ndarray
    projection_x: np.ndarray  # [dx, bits] = W_x diag(rho^p) R
    projection_y: np.ndarray  # [dy, bits]
    rotation: np.ndarray      # [c, bits]
    correlations: np.ndarray  # [c] the canonical correlations used
    losses: List[float]


def cca_itq_fit(x: np.ndarray, y: np.ndarray, bits: int, reg: float = 1e-4, n_iter: int = 50, seed: int = 0,
                eigen_power: float = 0.0, rank_tol: float = 1e-6) -> CCAITQResult:
    """CCA-ITQ (Gong, Lazebnik, Gordo & Perronnin, TPAMI 2013) in its cross-modal form.

    1. :func:`cca` to ``c = min(bits, r)`` dimensions, ``r`` the number of canonical correlations above
       ``rank_tol``; optionally scale direction ``i`` by ``rho_i ** eigen_power``.
    2. One ITQ rotation (:func:`itq_rotation`, ``Q(B, R) = ||B - V R||_F^2``) fitted on
       ``V = [(X - mean_x) W_x; (Y - mean_y) W_y]`` (both views stacked as ``2n`` points of the shared space).
    3. Codes ``sign((x_m - mean_m) W_m R)`` for each view ``m``.

    ``bits > c`` uses a ``c x bits`` rotation with orthonormal rows (module docstring).

    >>> rs = np.random.RandomState(0); z = rs.randn(300, 3)
    >>> r = cca_itq_fit(z + 0.1 * rs.randn(300, 3), z @ rs.randn(3, 4), bits=3, n_iter=5)
    >>> r.projection_x.shape, r.projection_y.shape
    ((3, 3), (4, 3))
    """
    bits = _positive_int(bits, "bits")
    full = cca(x, y, reg=reg)
    r = _informative(full.correlations, rank_tol)
    if r == 0:
        raise ValueError(f"cca_itq_fit: no canonical correlation above rank_tol={rank_tol}; the views are "
                         "uncorrelated on the training data")
    c = min(bits, r)
    scale = full.correlations[:c] ** float(eigen_power)
    wx, wy = full.wx[:, :c] * scale, full.wy[:, :c] * scale
    x, y = as_data_matrix(x, "x"), as_data_matrix(y, "y")
    v = np.vstack([(x - full.mean_x) @ wx, (y - full.mean_y) @ wy])
    rot, losses = itq_rotation(v, bits=bits, n_iter=n_iter, seed=seed)
    return CCAITQResult(mean_x=full.mean_x, mean_y=full.mean_y, projection_x=wx @ rot, projection_y=wy @ rot,
                        rotation=rot, correlations=full.correlations[:c], losses=losses)


# ============================================================================================ CVH
class CVHResult(NamedTuple):
    mean_x: np.ndarray
    mean_y: np.ndarray
    projection_x: np.ndarray  # [dx, bits] A^(1)
    projection_y: np.ndarray  # [dy, bits] A^(2)
    eigenvalues: np.ndarray   # [bits] rho of O a = rho D a (canonical correlations, then zeros)
    n_informative: int        # how many bits carry cross-view information (rho > rank_tol)


def cvh_fit(x: np.ndarray, y: np.ndarray, bits: int, reg: float = 1e-4, rank_tol: float = 1e-6) -> CVHResult:
    """Cross-view hashing (Kumar & Udupa, IJCAI 2011) for two views, in closed form.

    Formulation implemented (CVH's relaxed problem with K = 2 views and the identity similarity ``W = I``, i.e. only the
    two views of the same object are neighbours): relaxing ``y_i^(k) = sgn(A^(k)T x_i^(k))`` to real values,
    minimise the cross-view Hamming distance ``sum_i ||A^(1)T x_i^(1) - A^(2)T x_i^(2)||^2`` subject to
    uncorrelated, balanced bits ``A^(1)T C~_11 A^(1) + A^(2)T C~_22 A^(2) = I`` (centred data). With
    ``A = [A^(1); A^(2)]``, ``D = blockdiag(C~_11, C~_22)`` and ``O = [[0, C_12], [C_21, 0]]`` this is::

        min tr(A^T (D - O) A)  s.t.  A^T D A = I   <=>   O a = rho D a,  keep the ``bits`` largest rho

    (the paper's generalised eigenproblem ``X L~ X^T A = lambda X D~ X^T A`` with ``lambda = 1 - rho``). For two
    views this is CCA: ``a_i = [W_x p_i; W_y q_i] / sqrt(2)`` with ``rho_i`` the canonical correlations; the
    ``1/sqrt(2)`` is dropped (it does not change a sign). Beyond the ``r`` informative pairs (``rho > rank_tol``)
    the next eigenvalue is 0 with a degenerate eigenspace spanned by one-sided vectors ``[C~_11^{-1/2} p_j; 0]``
    (x-only, ``j > r``) and ``[0; C~_22^{-1/2} q_j]`` (y-only); we take x-only ones first, then y-only ones. Those
    bits carry no cross-view information (the other view's projection is exactly 0, coded +1): on Wiki (10-d
    text) only 9 bits are informative, which is why CVH degrades with more bits there. Last come the
    anti-correlated pairs ``[W_x p_i; -W_y q_i]`` (eigenvalue ``-rho_i``, ``i = r .. 1``), so that every one of
    the ``dx + dy`` eigenvectors is available; ``bits`` may not exceed ``dx + dy``.

    >>> rs = np.random.RandomState(0); z = rs.randn(300, 2)
    >>> r = cvh_fit(z + 0.1 * rs.randn(300, 2), z @ rs.randn(2, 3), bits=4)
    >>> r.projection_x.shape, r.n_informative
    ((2, 4), 2)
    """
    bits = _positive_int(bits, "bits")
    full = cca(x, y, reg=reg)
    dx, dy = full.cxx.shape[0], full.cyy.shape[0]
    if bits > dx + dy:
        raise ValueError(f"cvh_fit: bits ({bits}) exceeds dx + dy = {dx + dy}, the number of eigenvectors of the "
                         "CVH eigenproblem")
    r = _informative(full.correlations, rank_tol)
    ax, ay, ev = [], [], []
    for i in range(min(bits, r)):
        ax.append(full.sx @ full.px[:, i])
        ay.append(full.sy @ full.qy[:, i])
        ev.append(full.correlations[i])
    for j in range(r, dx):                                   # x-only directions (eigenvalue 0)
        if len(ax) == bits:
            break
        ax.append(full.sx @ full.px[:, j])
        ay.append(np.zeros(dy))
        ev.append(0.0)
    for j in range(r, dy):                                   # y-only directions (eigenvalue 0)
        if len(ax) == bits:
            break
        ax.append(np.zeros(dx))
        ay.append(full.sy @ full.qy[:, j])
        ev.append(0.0)
    for i in range(r - 1, -1, -1):                           # anti-correlated pairs (eigenvalue -rho_i)
        if len(ax) == bits:
            break
        ax.append(full.sx @ full.px[:, i])
        ay.append(-(full.sy @ full.qy[:, i]))
        ev.append(-full.correlations[i])
    return CVHResult(mean_x=full.mean_x, mean_y=full.mean_y, projection_x=np.stack(ax, axis=1),
                     projection_y=np.stack(ay, axis=1), eigenvalues=np.asarray(ev), n_informative=min(bits, r))


# ============================================================================================ CMFH
class CMFHResult(NamedTuple):
    mean_1: np.ndarray        # [d1]
    mean_2: np.ndarray        # [d2]
    p1: np.ndarray            # [bits, d1] hash projection of view 1 (codes sign(P1 (x - mean_1)))
    p2: np.ndarray            # [bits, d2]
    u1: np.ndarray            # [d1, bits] factor of view 1
    u2: np.ndarray            # [d2, bits]
    v: np.ndarray             # [bits, n] shared latent representation of the training pairs
    objective: List[float]    # objective after initialisation and after each iteration


def cmfh_objective(x1: np.ndarray, x2: np.ndarray, u1, u2, v, p1, p2, lam: float, mu: float, gamma: float
                   ) -> float:
    """CMFH objective (Ding, Guo & Zhou, CVPR 2014; as in the authors' ``solveCMFH.m`` header, with squared
    norms), data as columns ``X_m`` ``[d_m, n]``::

        lam ||X1 - U1 V||^2 + (1 - lam) ||X2 - U2 V||^2 + mu (||V - P1 X1||^2 + ||V - P2 X2||^2)
          + gamma (||U1||^2 + ||U2||^2 + ||V||^2 + ||P1||^2 + ||P2||^2)          (squared Frobenius norms)
    """
    sq = lambda a: float(np.sum(a * a))  # noqa: E731
    return (lam * sq(x1 - u1 @ v) + (1 - lam) * sq(x2 - u2 @ v) + mu * (sq(v - p1 @ x1) + sq(v - p2 @ x2))
            + gamma * (sq(u1) + sq(u2) + sq(v) + sq(p1) + sq(p2)))


def cmfh_fit(x1: np.ndarray, x2: np.ndarray, bits: int, lam: float = 0.5, mu: float = 100.0, gamma: float = 0.01,
             n_iter: int = 100, tol: float = 1e-6, seed: int = 0) -> CMFHResult:
    """Collective matrix factorisation hashing (Ding, Guo & Zhou, CVPR 2014), unsupervised.

    Minimises :func:`cmfh_objective` by alternating exact block updates (the paper's optimisation), rows of ``x1`` /
    ``x2`` centred on their training means and written as columns ``X_m`` ``[d_m, n]``::

        U1 = X1 V^T (V V^T + gamma/lam I)^{-1},     U2 = X2 V^T (V V^T + gamma/(1-lam) I)^{-1}
        V  = (lam U1^T U1 + (1-lam) U2^T U2 + (2 mu + gamma) I)^{-1} (lam U1^T X1 + (1-lam) U2^T X2
                                                                         + mu (P1 X1 + P2 X2))
        Pm = V Xm^T (Xm Xm^T + gamma/mu I)^{-1}

    in that order (the authors' code), from uniform [0, 1) initial values drawn with ``seed``. Each update is
    the unique minimiser of a strictly convex block, so the objective never increases. Codes: ``sign(Pm (x -
    mean_m))`` for view ``m``. Stops after ``n_iter`` iterations or when the relative decrease of the objective
    falls below ``tol``.

    >>> rs = np.random.RandomState(0); z = rs.randn(100, 3)
    >>> r = cmfh_fit(z @ rs.randn(3, 6), z @ rs.randn(3, 4), bits=3, n_iter=20)
    >>> r.p1.shape, r.p2.shape, bool(r.objective[-1] <= r.objective[0])
    ((3, 6), (3, 4), True)
    """
    a1, a2 = as_data_matrix(x1, "x1"), as_data_matrix(x2, "x2")
    if a1.shape[0] != a2.shape[0]:
        raise ValueError(f"cmfh_fit: x1 has {a1.shape[0]} rows and x2 {a2.shape[0]}; the views must be paired")
    bits = _positive_int(bits, "bits")
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam must lie in (0, 1), got {lam!r}")
    if not (np.isfinite(mu) and mu > 0):
        raise ValueError(f"mu must be a positive number, got {mu!r}")
    if not (np.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive number (it makes every block update unique), got {gamma!r}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, (int, np.integer)) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    mean_1, mean_2 = a1.mean(axis=0), a2.mean(axis=0)
    X1, X2 = (a1 - mean_1).T, (a2 - mean_2).T                 # [d_m, n]
    (d1, n), d2 = X1.shape, X2.shape[0]
    rs = np.random.RandomState(seed)
    v = rs.rand(bits, n)
    u1, u2 = rs.rand(d1, bits), rs.rand(d2, bits)
    p1, p2 = rs.rand(bits, d1), rs.rand(bits, d2)
    eye_k = np.eye(bits)
    # constant parts of the P updates
    g1 = np.linalg.inv(X1 @ X1.T + gamma / mu * np.eye(d1))
    g2 = np.linalg.inv(X2 @ X2.T + gamma / mu * np.eye(d2))
    solve = np.linalg.solve
    obj = [cmfh_objective(X1, X2, u1, u2, v, p1, p2, lam, mu, gamma)]
    for _ in range(int(n_iter)):
        vvt = v @ v.T
        u1 = solve(vvt + gamma / lam * eye_k, v @ X1.T).T
        u2 = solve(vvt + gamma / (1 - lam) * eye_k, v @ X2.T).T
        lhs = lam * u1.T @ u1 + (1 - lam) * u2.T @ u2 + (2 * mu + gamma) * eye_k
        rhs = lam * u1.T @ X1 + (1 - lam) * u2.T @ X2 + mu * (p1 @ X1 + p2 @ X2)
        v = solve(lhs, rhs)
        p1 = v @ X1.T @ g1
        p2 = v @ X2.T @ g2
        obj.append(cmfh_objective(X1, X2, u1, u2, v, p1, p2, lam, mu, gamma))
        if obj[-2] - obj[-1] <= tol * abs(obj[-2]):
            break
    return CMFHResult(mean_1=mean_1, mean_2=mean_2, p1=p1, p2=p2, u1=u1, u2=u2, v=v, objective=obj)
