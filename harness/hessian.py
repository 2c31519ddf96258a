"""Backend-neutral Hessian spectrum routines over a Hessian-vector product on flat NumPy vectors.

- :func:`lanczos_top_eigenvalue`: Lanczos with full reorthogonalisation, stopped by the Ritz residual bound
  (tridiagonal eigenproblem by :func:`scipy.linalg.eigh_tridiagonal`).
- :func:`power_top_eigenvalue`: power iteration, kept as the baseline Lanczos is measured against.
- :func:`hutchinson_trace`: Hutchinson's estimator with Rademacher probes, with its standard error.

Each returns the HVP count it used, so benchmarks can compare the methods' cost.

The vector work between HVPs (reorthogonalisation, norms) runs with NumPy's BLAS on one thread
(:mod:`threadpoolctl`): it is memory-bound, and idle OpenBLAS threads spinning beside the
framework's own thread pool made each torch HVP ~5x slower on a 2-core machine (a top eigenvalue: 65 ms -> 20 ms).
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np
from scipy.linalg import eigh_tridiagonal
from threadpoolctl import ThreadpoolController


@functools.cache
def _blas_controller() -> ThreadpoolController:
    # built once (it inspects the loaded libraries, ~1 ms); NumPy's BLAS is loaded by then
    return ThreadpoolController()


def _one_blas_thread(fn):
    """Run ``fn`` with NumPy's / SciPy's BLAS limited to one thread (the framework's threads are untouched)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _blas_controller().limit(limits=1, user_api="blas"):
            return fn(*args, **kwargs)
    return wrapper


class Eig(NamedTuple):
    value: float
    n_hvp: int


class Trace(NamedTuple):
    value: float
    stderr: float
    n_hvp: int


@_one_blas_thread
def lanczos_top_eigenvalue(hvp: Callable, dim: int, tol: float = 1e-3, seed: int = 0, ncv: int | None = None,
                           which: str = "LA") -> Eig:
    """Largest (algebraic, ``which='LA'``; or largest-magnitude, ``'LM'``) eigenvalue of the Hessian.

    Plain Lanczos with full reorthogonalisation; the tridiagonal eigenproblem goes to
    :func:`scipy.linalg.eigh_tridiagonal` after every step. It stops when the Ritz value theta's a-posteriori
    residual bound ``|beta_j * s_j| = ||H y - theta y||`` (s_j the last component of the Ritz vector) is at most
    ``tol * |theta|``; for a symmetric H some eigenvalue then lies within that distance of theta (ARPACK's rule).
    That eigenvalue need not be the top one: when the top of the spectrum is dense, or the start vector nearly
    misses the top eigenvector, any Krylov stop can come early. (The sharper estimate resid^2 / gap, with the gap
    taken from the Ritz values, saves one or two HVPs on network Hessians but stopped early far more often on
    synthetic spectra, so it is not used.) ``ncv`` caps the
    number of Lanczos vectors (HVPs), default ``min(dim, 300)``; the last Ritz value is returned if the cap is hit.
    """
    if which not in ("LA", "LM"):
        raise ValueError(f"which must be 'LA' or 'LM', got {which!r}")
    max_iter = min(int(dim), int(ncv) if ncv else 300)
    v = np.random.default_rng(seed).standard_normal(dim)
    v /= np.linalg.norm(v)
    basis = np.empty((min(max_iter, 32), dim))      # grown by doubling: the cap may exceed what is used
    alphas, betas = [], []
    theta, n = 0.0, 0
    for j in range(max_iter):
        if j == basis.shape[0]:
            basis = np.concatenate([basis, np.empty((min(j, max_iter - j), dim))])
        basis[j] = v
        w = np.asarray(hvp(v), dtype=np.float64).ravel()
        n += 1
        alpha = float(v @ w)
        q = basis[:j + 1]
        w = w - q.T @ (q @ w)                  # full reorthogonalisation (twice is enough, Kahan-Parlett)
        w = w - q.T @ (q @ w)
        beta = float(np.linalg.norm(w))
        alphas.append(alpha)
        if j == 0:
            vals, vecs = np.array([alpha]), np.ones((1, 1))
        else:
            vals, vecs = eigh_tridiagonal(np.asarray(alphas), np.asarray(betas))
        i = int(np.argmax(vals)) if which == "LA" else int(np.argmax(np.abs(vals)))
        theta = float(vals[i])
        # Ritz residual ||H y - theta y|| = |beta_j s_j|
        if abs(beta * vecs[-1, i]) <= tol * abs(theta) or beta <= 1e-12 * max(abs(theta), 1e-300):
            break
        betas.append(beta)
        v = w / beta
    return Eig(theta, n)


@_one_blas_thread
def power_top_eigenvalue(hvp: Callable, dim: int, tol: float = 1e-3, seed: int = 0, max_iter: int = 10_000) -> Eig:
    """Largest-magnitude eigenvalue by power iteration; stops when the Rayleigh quotient changes by < tol (rel)."""
    v = np.random.default_rng(seed).standard_normal(dim)
    v /= np.linalg.norm(v)
    lam, n = 0.0, 0
    for n in range(1, max_iter + 1):
        w = np.asarray(hvp(v), dtype=np.float64)
        new = float(v @ w)
        norm = np.linalg.norm(w)
        if norm == 0:
            return Eig(0.0, n)
        v = w / norm
        if n > 1 and abs(new - lam) <= tol * abs(new):
            return Eig(new, n)
        lam = new
    return Eig(lam, n)


@_one_blas_thread
def hutchinson_trace(hvp: Callable, dim: int, n_samples: int = 32, seed: int = 0) -> Trace:
    """tr(H) ~ mean of z^T H z over Rademacher z; returns the mean and its standard error."""
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_samples):
        z = rng.choice([-1.0, 1.0], size=dim)
        vals.append(float(z @ np.asarray(hvp(z), dtype=np.float64)))
    vals = np.asarray(vals)
    se = float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else float("nan")
    return Trace(float(vals.mean()), se, n_samples)


# -- top-k eigenpairs and the spectral density (issue 12) -----------------------------------------------------------
class TopK(NamedTuple):
    values: np.ndarray          # (k,) Ritz values, descending (``which='LA'``) or by descending magnitude ('LM')
    vectors: np.ndarray         # (dim, k) orthonormal Ritz vectors
    residuals: np.ndarray       # (k,) ||H y_i - theta_i y_i||, each a certified bound (see lanczos_top_k)
    bound: float                # ||H Y - Y Theta||_2 <= ||B_last S_last||_2: k eigenvalues lie within it, 1-1
    n_hvp: int
    converged: bool


def _orthonormal_block(w: np.ndarray, basis: np.ndarray, rng, scale: float):
    """QR of the residual block w (dim, b) after reorthogonalisation against ``basis`` (rows). A (numerically)
    rank-deficient column is replaced by a random vector orthogonal to everything so far, with a zero coupling,
    so the Krylov space keeps growing (an invariant subspace was found)."""
    q, r = np.linalg.qr(w)
    small = np.abs(np.diag(r)) <= 1e-10 * max(scale, 1e-300)
    for i in np.flatnonzero(small):
        z = rng.standard_normal(w.shape[0])
        for _ in range(2):
            z -= basis.T @ (basis @ z)
            z -= q @ (q.T @ z)
        q[:, i] = z / np.linalg.norm(z)
        r[i, :] = 0.0
    return q, r


@_one_blas_thread
def lanczos_top_k(hvp: Callable, dim: int, k: int, tol: float = 1e-3, seed: int = 0, block_size: int = 1,
                  ncv: int | None = None, which: str = "LA") -> TopK:
    """The ``k`` largest (algebraic ``'LA'``, or largest-magnitude ``'LM'``) Hessian eigenpairs by block Lanczos
    with full reorthogonalisation (``block_size = 1``: plain Lanczos, as :func:`lanczos_top_eigenvalue`).

    After each block step the projected block-tridiagonal matrix T = Q^T H Q is solved densely; a Ritz pair
    (theta_i, y_i = Q s_i) has the a-posteriori residual ||H y_i - theta_i y_i|| = ||B_j s_i[last block]||, with
    B_j the coupling to the next block. It stops when every one of the k wanted Ritz pairs has residual
    <= ``tol * |theta_i|`` (the rule of :func:`lanczos_top_eigenvalue`, applied to each of the k). The certificate
    is the same: for each i some eigenvalue lies within residual_i of theta_i, and (Kahan) k eigenvalues lie, one
    to one, within ``bound`` = ||B_j S_last||_2 of the k Ritz values. As for any Krylov method, these are the top
    k only if the start block is not (nearly) orthogonal to a top eigenvector; a single vector cannot resolve an
    eigenvalue of multiplicity > 1 (one copy is found): use ``block_size`` >= the multiplicity expected.
    ``ncv`` caps the basis size (HVPs; rounded up to a whole block), default ``min(dim, max(300, 4 k))``;
    ``converged`` says whether the rule was met before the cap.
    """
    if which not in ("LA", "LM"):
        raise ValueError(f"which must be 'LA' or 'LM', got {which!r}")
    k, b = int(k), int(block_size)
    if not 1 <= k <= dim:
        raise ValueError(f"k must be in 1..{dim}, got {k}")
    if not 1 <= b <= dim:
        raise ValueError(f"block_size must be in 1..{dim}, got {b}")
    cap = min(int(dim), int(ncv) if ncv else max(300, 4 * k))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, b)))
    basis = np.empty((0, dim))
    t = np.zeros((0, 0))
    n = 0
    scale = 0.0
    while True:
        j0 = basis.shape[0]
        basis = np.concatenate([basis, q.T])
        w = np.column_stack([np.asarray(hvp(q[:, i]), dtype=np.float64).ravel() for i in range(q.shape[1])])
        n += q.shape[1]
        a = q.T @ w
        a = 0.5 * (a + a.T)
        m = basis.shape[0]
        tt = np.zeros((m, m))
        tt[:j0, :j0] = t
        tt[j0:, j0:] = a
        if j0:
            tt[j0 - b_prev:j0, j0:] = r_prev.T            # T[j-1, j] = B_{j-1}^T
            tt[j0:, j0 - b_prev:j0] = r_prev
        t = tt
        w = w - basis.T @ (basis @ w)                   # full reorthogonalisation, twice (Kahan-Parlett)
        w = w - basis.T @ (basis @ w)
        vals, vecs = np.linalg.eigh(t)
        order = np.argsort(-vals) if which == "LA" else np.argsort(-np.abs(vals))
        want = order[:min(k, m)]
        scale = max(scale, float(np.abs(vals).max()))
        if m >= dim:                                     # the whole space: T is H in the basis, exact
            q_next, r = None, np.zeros((q.shape[1], q.shape[1]))
        else:
            q_next, r = _orthonormal_block(w, basis, rng, scale)
        last = vecs[j0:, want]                           # the last block's rows of the wanted Ritz vectors
        res = np.linalg.norm(r @ last, axis=0)
        bound = float(np.linalg.norm(r @ last, 2)) if last.size else 0.0
        ok = len(want) == k and bool(np.all(res <= tol * np.abs(vals[want])))
        if ok or m >= cap:
            y = basis.T @ vecs[:, want]
            return TopK(vals[want], y, res, bound, n, ok or m >= dim)
        keep = min(q_next.shape[1], dim - m)            # the last block fills the space exactly: the residual
        q, r_prev, b_prev = q_next[:, :keep], r[:keep], q.shape[1]   # has no component beyond it


class Density(NamedTuple):
    """Stochastic Lanczos quadrature: per random start v, Gauss-quadrature nodes (Ritz values) and weights (squared
    first components of T's eigenvectors, summing to 1), so sum_l w_l f(node_l) ~ v^T f(H) v for unit v."""
    nodes: np.ndarray           # (n_starts, m)
    weights: np.ndarray         # (n_starts, m)
    dim: int
    n_hvp: int

    def moment(self, p: int) -> tuple:
        """tr(H^p) / dim estimated as the mean over starts of the quadrature sum, with its standard error."""
        per = np.sum(self.weights * self.nodes ** p, axis=1)
        se = float(per.std(ddof=1) / np.sqrt(len(per))) if len(per) > 1 else float("nan")
        return float(per.mean()), se

    def trace(self) -> tuple:
        """tr(H) with its standard error (Hutchinson with the same unit starts, times dim)."""
        m, se = self.moment(1)
        return m * self.dim, se * self.dim

    def on_grid(self, grid, sigma: float | None = None) -> np.ndarray:
        """The Gaussian-broadened density phi(t) = mean_v sum_l w_l N(t; node_l, sigma^2) on ``grid`` (integrates to
        1 over the real line; times ``dim`` it counts eigenvalues). ``sigma`` defaults to 1% of the node range."""
        from scipy.stats import norm
        grid = np.asarray(grid, dtype=float)
        if sigma is None:
            span = float(self.nodes.max() - self.nodes.min())
            sigma = 0.01 * span if span > 0 else 1.0
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma!r}")
        dens = norm.pdf(grid[:, None, None], loc=self.nodes[None], scale=sigma) * self.weights[None]
        return dens.sum(axis=2).mean(axis=1)


@_one_blas_thread
def slq_density(hvp: Callable, dim: int, n_starts: int = 8, n_steps: int = 64, seed: int = 0,
                starts: np.ndarray | None = None) -> Density:
    """Spectral density by stochastic Lanczos quadrature (Golub & Meurant; Ubaru, Chen & Saad 2017; Ghorbani,
    Krishnan & Xiao 2019): ``n_steps`` Lanczos steps with full reorthogonalisation from each of ``n_starts``
    Rademacher starts (normalised; or the given ``starts``, rows). The m-node Gauss quadrature of each start is
    exact for polynomials of degree < 2m (tests check v^T H^p v against a dense H). Costs n_starts * m HVPs.
    """
    m = min(int(n_steps), int(dim))
    if m < 1 or n_starts < 1:
        raise ValueError("n_steps and n_starts must be >= 1")
    rng = np.random.default_rng(seed)
    if starts is None:
        starts = rng.choice([-1.0, 1.0], size=(int(n_starts), dim))
    starts = np.asarray(starts, dtype=np.float64)
    nodes, weights, n = [], [], 0
    for v0 in starts:
        v = v0 / np.linalg.norm(v0)
        basis = np.empty((m, dim))
        alphas, betas = [], []
        for j in range(m):
            basis[j] = v
            w = np.asarray(hvp(v), dtype=np.float64).ravel()
            n += 1
            alphas.append(float(v @ w))
            q = basis[:j + 1]
            w = w - q.T @ (q @ w)
            w = w - q.T @ (q @ w)
            beta = float(np.linalg.norm(w))
            if j == m - 1 or beta <= 1e-12 * max(abs(alphas[0]), 1e-300):
                break                                  # an invariant subspace: the quadrature is exact already
            betas.append(beta)
            v = w / beta
        if len(alphas) == 1:
            th, s = np.array(alphas), np.ones((1, 1))
        else:
            th, s = eigh_tridiagonal(np.asarray(alphas), np.asarray(betas))
        pad = m - len(th)                               # equal-length rows: pad with zero-weight nodes
        nodes.append(np.concatenate([th, np.full(pad, th[-1])]))
        weights.append(np.concatenate([s[0] ** 2, np.zeros(pad)]))
    return Density(np.asarray(nodes), np.asarray(weights), int(dim), n)
