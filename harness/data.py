"""Synthetic data sets the catalogue's recipes use, drawn in NumPy from explicit seeds."""
from __future__ import annotations

import numpy as np

from .errors import HarnessError


def sphere(n: int, d: int, seed: int) -> np.ndarray:
    """``n`` points uniform on the sphere of radius sqrt(d) in R^d (so x.x/d = 1)."""
    if n < 1 or d < 1:
        raise HarnessError(f"sphere needs n >= 1 and d >= 1, got n={n}, d={d}")
    x = np.random.default_rng(seed).standard_normal((n, d))
    return x * np.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True)


def sin_cos_target(x: np.ndarray) -> np.ndarray:
    """y = sin x1 + 0.5 cos x2, as a column (CLAIMS.md A1)."""
    return (np.sin(x[:, 0]) + 0.5 * np.cos(x[:, 1]))[:, None]
