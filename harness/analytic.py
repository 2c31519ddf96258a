"""Analytic infinite-width kernels of fully connected nets (Jacot et al. 2018; Lee et al. 2019), in NumPy.

NTK parametrisation, weight std s_w, bias std s_b (CLAIMS.md section A):

    K_0 = x.x'/d;  Sigma_1 = s_w^2 K_0 + s_b^2;  Theta_1 = Sigma_1
    for each hidden layer l = 1..L:
        K_l = E[phi(u) phi(v)],  Sdot_l = E[phi'(u) phi'(v)],  (u, v) ~ N(0, Sigma_l)
        Sigma_{l+1} = s_w^2 K_l + s_b^2;   Theta_{l+1} = Sigma_{l+1} + s_w^2 Theta_l * Sdot_l
    readout: NNGP = Sigma_{L+1}, NTK = Theta_{L+1}.

The activation's dual kernels live beside it in :mod:`harness.activations` (exact for ReLU, erf, linear).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .activations import ddual, dual, get_activation
from .errors import HarnessError


class Kernels(NamedTuple):
    """The infinite-width kernels between two sets of inputs: ``nngp`` (the NNGP, the output covariance at
    initialisation) and ``ntk`` (the neural tangent kernel), each ``(N1, N2)``, float64."""
    nngp: np.ndarray
    ntk: np.ndarray


def _check_x(x, name):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise HarnessError(f"{name} must be a 2-D array (samples, features), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise HarnessError(f"{name} contains NaN or inf")
    return x


def mlp_kernels(x1, x2=None, *, depth: int, activation: str, weight_std: float, bias_std: float = 0.0) -> Kernels:
    """(NNGP, NTK) between rows of ``x1`` and ``x2`` (default ``x1``) for ``depth`` hidden layers."""
    x1 = _check_x(x1, "x1")
    x2 = x1 if x2 is None else _check_x(x2, "x2")
    if depth < 0:
        raise HarnessError(f"depth must be >= 0, got {depth}")
    act = get_activation(activation)
    d = x1.shape[1]
    sw2, sb2 = float(weight_std) ** 2, float(bias_std) ** 2
    s12 = sw2 * (x1 @ x2.T) / d + sb2
    s11 = sw2 * np.sum(x1 * x1, 1) / d + sb2
    s22 = sw2 * np.sum(x2 * x2, 1) / d + sb2
    theta = s12.copy()
    for _ in range(depth):
        a, b = s11[:, None], s22[None, :]
        k12, sdot = dual(act, a, s12, b), ddual(act, a, s12, b)
        k11 = dual(act, s11, s11, s11)
        k22 = dual(act, s22, s22, s22)
        s12 = sw2 * k12 + sb2
        theta = s12 + sw2 * theta * sdot
        s11, s22 = sw2 * k11 + sb2, sw2 * k22 + sb2
    return Kernels(nngp=s12, ntk=theta)


def nngp_kernel(x1, x2=None, **kw) -> np.ndarray:
    """Infinite-width NNGP kernel; keyword arguments as :func:`mlp_kernels`."""
    return mlp_kernels(x1, x2, **kw).nngp


def ntk_kernel(x1, x2=None, **kw) -> np.ndarray:
    """Infinite-width NTK; keyword arguments as :func:`mlp_kernels`."""
    return mlp_kernels(x1, x2, **kw).ntk
