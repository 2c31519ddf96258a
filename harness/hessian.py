"""Backend-neutral Hessian spectrum routines over a Hessian-vector product on flat NumPy vectors.

- :func:`lanczos_top_eigenvalue`: scipy's ARPACK (implicitly restarted Lanczos) through a ``LinearOperator``.
- :func:`power_top_eigenvalue`: power iteration, kept as the baseline Lanczos is measured against.
- :func:`hutchinson_trace`: Hutchinson's estimator with Rademacher probes, with its standard error.

Each returns the HVP count it used, so benchmarks can compare the methods' cost.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh


class Eig(NamedTuple):
    value: float
    n_hvp: int


class Trace(NamedTuple):
    value: float
    stderr: float
    n_hvp: int


def lanczos_top_eigenvalue(hvp: Callable, dim: int, tol: float = 1e-3, seed: int = 0, ncv: int | None = None,
                           which: str = "LA") -> Eig:
    """Largest (algebraic, ``which='LA'``; or largest-magnitude, ``'LM'``) eigenvalue of the Hessian."""
    count = [0]

    def mv(v):
        count[0] += 1
        return np.asarray(hvp(np.asarray(v).ravel()), dtype=np.float64)

    if dim <= 3:   # ARPACK needs ncv < dim; tiny problems are solved densely
        h = np.column_stack([mv(e) for e in np.eye(dim)])
        return Eig(float(np.linalg.eigvalsh(0.5 * (h + h.T))[-1]), count[0])
    op = LinearOperator((dim, dim), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(dim)
    ncv = min(dim - 1, ncv or 12)
    val = eigsh(op, k=1, which=which, tol=tol, v0=v0, ncv=ncv, return_eigenvectors=False)
    return Eig(float(val[0]), count[0])


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
