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
