"""Optimisation-geometry statistics in NumPy (backend-neutral): gradient confusion and Hessian eigengaps.

- :func:`gradient_confusion`: c = -min_{i != j} cos(g_i, g_j) over per-example gradients (Sankararaman et al. 2020,
  Def. 2.1 with the gradients normalised, as in their Sec. 6 measurements).
- :func:`largest_gap_index`: the position of the largest gap between consecutive eigenvalues (Sagun et al. 2017;
  Papyan 2019/2020: C outliers above the bulk put it at C - 1 or C, 0-based).
- :func:`orthogonal_inputs`, :func:`gaussian_mixture`: the data those claims use, drawn from explicit seeds.
"""
from __future__ import annotations

import numpy as np

from .errors import HarnessError


def gradient_confusion(grads: np.ndarray) -> float:
    """-min_{i != j} cos(g_i, g_j) of the rows of ``grads`` (N, P), N >= 2; NaN if a gradient is zero or not
    finite (a cosine is then undefined: recorded as NaN, never as a number)."""
    g = np.asarray(grads, dtype=np.float64)
    if g.ndim != 2 or g.shape[0] < 2:
        raise HarnessError(f"gradient confusion needs an (N, P) array with N >= 2, got shape {g.shape}")
    norms = np.linalg.norm(g, axis=1)
    if not (np.all(np.isfinite(g)) and np.all(norms > 0)):
        return float("nan")
    u = g / norms[:, None]
    cos = u @ u.T
    np.fill_diagonal(cos, np.inf)
    return float(-cos.min())


def orthogonal_inputs(d: int) -> np.ndarray:
    """x_i = sqrt(d) e_i, i = 1..d (so |x_i|^2 = d, as the sphere data of :mod:`harness.data`)."""
    return np.sqrt(float(d)) * np.eye(int(d))


def rademacher(n: int, seed: int) -> np.ndarray:
    """n labels +-1 with equal probability, as a column."""
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=(int(n), 1))


def gaussian_mixture(n_per_class: int, n_classes: int, dim: int, separation: float, seed: int):
    """(x, labels): ``n_per_class`` points per class, x = mu_c + z with z ~ N(0, I) and class means mu_c drawn as
    ``separation`` times independent unit vectors (from the same seed)."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((n_classes, dim))
    mu *= separation / np.linalg.norm(mu, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    x = mu[labels] + rng.standard_normal((labels.size, dim))
    return x, labels


def largest_gap_index(values: np.ndarray) -> int:
    """For eigenvalues sorted descending, the 0-based i maximising values[i] - values[i + 1]; C outliers above a
    bulk give i = C - 1 (the gap below the C-th)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise HarnessError("largest_gap_index needs at least 2 eigenvalues")
    return int(np.argmax(v[:-1] - v[1:]))
