"""Activations, each with its derivative and its infinite-width dual kernel side by side.

As in neural-tangents' stax, the finite network's nonlinearity and the Gaussian expectations the analytic kernels
need live together. For a centred Gaussian pair (u, v) with covariance [[s11, s12], [s12, s22]]:

- ``dual(s11, s12, s22)``   = E[phi(u) phi(v)]   (the NNGP step),
- ``ddual(s11, s12, s22)``  = E[phi'(u) phi'(v)] (the NTK step, "Sdot").

ReLU, erf and linear are exact (formulas in CLAIMS.md section A); other activations (tanh) use 2-D Gauss-Hermite
quadrature with 96 nodes a dimension: about 1e-8 for tanh at unit variance (memory O(N1 N2 q^2): for kernels
between a few hundred inputs at most).

Array functions take ``ops``, the backend's array namespace, so one definition serves every backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import HarnessError


@dataclass(frozen=True)
class Activation:
    name: str
    fn: Callable            # fn(ops, h)
    deriv: Callable         # deriv(ops, h)
    dual: Callable | None = None    # exact E[phi(u)phi(v)]; None -> quadrature
    ddual: Callable | None = None   # exact E[phi'(u)phi'(v)]; None -> quadrature
    default_weight_std: float = 1.0
    np_fn: Callable | None = None   # numpy versions, used by the quadrature
    np_deriv: Callable | None = None


def _relu_dual(s11, s12, s22):
    norm = np.sqrt(s11 * s22)
    theta = np.arctan2(np.sqrt(np.maximum(s11 * s22 - s12 ** 2, 0.0)), s12)
    return norm / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))


def _relu_ddual(s11, s12, s22):
    theta = np.arctan2(np.sqrt(np.maximum(s11 * s22 - s12 ** 2, 0.0)), s12)
    return (np.pi - theta) / (2 * np.pi)


def _erf_dual(s11, s12, s22):
    return 2 / np.pi * np.arcsin(np.clip(2 * s12 / np.sqrt((1 + 2 * s11) * (1 + 2 * s22)), -1, 1))


def _erf_ddual(s11, s12, s22):
    return 4 / np.pi / np.sqrt((1 + 2 * s11) * (1 + 2 * s22) - 4 * s12 ** 2)


def _erf_np(x):
    from scipy.special import erf
    return erf(x)


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation(
        "relu", lambda ops, h: ops.relu(h), lambda ops, h: ops.heaviside(h),
        _relu_dual, _relu_ddual, default_weight_std=float(np.sqrt(2.0)),
        np_fn=lambda x: np.maximum(x, 0.0), np_deriv=lambda x: (x > 0).astype(float)),
    "tanh": Activation(
        "tanh", lambda ops, h: ops.tanh(h), lambda ops, h: 1 - ops.tanh(h) ** 2,
        None, None, np_fn=np.tanh, np_deriv=lambda x: 1 - np.tanh(x) ** 2),
    "erf": Activation(
        "erf", lambda ops, h: ops.erf(h), lambda ops, h: 2 / np.sqrt(np.pi) * ops.exp(-h * h),
        _erf_dual, _erf_ddual, np_fn=_erf_np, np_deriv=lambda x: 2 / np.sqrt(np.pi) * np.exp(-x * x)),
    "linear": Activation(
        "linear", lambda ops, h: h, lambda ops, h: ops.ones_like(h),
        lambda s11, s12, s22: s12, lambda s11, s12, s22: np.ones_like(s12),
        np_fn=lambda x: x, np_deriv=np.ones_like),
}


def get_activation(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise HarnessError(f"unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}") from None


def _gauss_expectation(f, g, s11, s12, s22, n_nodes: int = 96):
    """E[f(u) g(v)] for centred Gaussians, by 2-D Gauss-Hermite quadrature, elementwise over the arrays."""
    z, w = np.polynomial.hermite_e.hermegauss(n_nodes)
    w = w / w.sum()
    s11, s12, s22 = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (s11, s12, s22)))
    a = np.sqrt(s11)
    rho_b = np.where(a > 0, s12 / np.where(a > 0, a, 1), 0.0)            # cov(u, v) / sqrt(s11)
    c = np.sqrt(np.maximum(s22 - rho_b ** 2, 0.0))
    u = a[..., None] * z                                                   # (..., q)
    fu = f(u)                                                              # (..., q)
    # v = rho_b z1 + c z2
    v = rho_b[..., None, None] * z[:, None] + c[..., None, None] * z[None, :]
    gv = g(v)                                                              # (..., q, q)
    return np.einsum("...i,...ij,i,j->...", fu, gv, w, w)


def dual(act: Activation, s11, s12, s22):
    if act.dual is not None:
        return act.dual(s11, s12, s22)
    return _gauss_expectation(act.np_fn, act.np_fn, s11, s12, s22)


def ddual(act: Activation, s11, s12, s22):
    if act.ddual is not None:
        return act.ddual(s11, s12, s22)
    return _gauss_expectation(act.np_deriv, act.np_deriv, s11, s12, s22)
