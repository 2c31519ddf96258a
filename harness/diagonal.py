"""Diagonal linear networks and the implicit biases of Woodworth et al. (2020), in NumPy/SciPy.

A depth-D diagonal linear network predicts ``f(x) = x @ beta`` with ``beta = w_plus**D - w_minus**D``; started from
``w_plus = w_minus = alpha * 1`` (so ``beta_0 = 0``), gradient flow on the square loss converges to the interpolator
that minimises a potential interpolating between ||.||_2 (large alpha, "kernel") and ||.||_1 (small alpha, "rich"):

- D = 2:  Q_alpha(beta) = alpha^2 sum_i q(beta_i / alpha^2),  q(z) = 2 - sqrt(4 + z^2) + z asinh(z / 2)
  (Woodworth et al. 2020, Thm 1), equivalently: asinh(beta / (2 alpha^2)) lies in rowspace(X), i.e.
  beta = 2 alpha^2 sinh(X^T nu) for some nu.
- D >= 3: beta = alpha^D h_D(X^T nu) with h_D(s) = (1 - s)^(-D/(D-2)) - (1 + s)^(-D/(D-2)), |X^T nu| < 1
  (their Thm 3; the potential is Q^D_alpha = alpha^D sum q_D(beta / alpha^D) with q_D' = h_D^{-1}).

This module gives the references a claim compares a trained network with, all from SciPy solvers:

- :func:`min_l1_interpolator`: argmin ||beta||_1 s.t. X beta = y, a linear programme (``scipy.optimize.linprog``,
  HiGHS) in the split variables beta = u - v, u, v >= 0.
- :func:`min_l2_interpolator`: the minimum-norm least-squares solution (``scipy.linalg.lstsq``).
- :func:`implicit_bias_solution`: the predicted gradient-flow limit for depth D, by minimising the convex dual
  Phi(nu) = alpha^D sum_i H_D(x_i . nu) - y . nu (H_D' = h_D; H_2(s) = 2 cosh s) with a trust-region Newton method
  (``scipy.optimize.minimize(method="trust-exact")``, exact gradient and Hessian); its stationarity condition is
  exactly X beta(nu) = y. For D = 2 the result minimises Q_alpha over the interpolators (an *independent* check of
  Q-optimality: no training is involved).
- :func:`q`, :func:`Q_alpha`, :func:`h_D`, :func:`rowspace_residual`: the potential and the rowspace condition.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg, optimize

from .errors import HarnessError


# -- the potentials ---------------------------------------------------------------------------------------------
def q(z):
    """q(z) = 2 - sqrt(4 + z^2) + z asinh(z / 2) (Woodworth et al. 2020, Thm 1); q(z) ~ z^2/4 near 0, ~|z| log|z|."""
    z = np.asarray(z, dtype=float)
    return 2.0 - np.sqrt(4.0 + z * z) + z * np.arcsinh(z / 2.0)


def Q_alpha(beta, alpha: float) -> float:
    """Q_alpha(beta) = alpha^2 sum_i q(beta_i / alpha^2): the depth-2 implicit-bias potential."""
    a2 = float(alpha) ** 2
    return float(a2 * np.sum(q(np.asarray(beta, dtype=float) / a2)))


def h_D(s, depth: int):
    """h_D(s) = (1 - s)^(-D/(D-2)) - (1 + s)^(-D/(D-2)) for D >= 3 (|s| < 1); for D = 2 the limit 2 sinh(s)."""
    s = np.asarray(s, dtype=float)
    if depth == 2:
        return 2.0 * np.sinh(s)
    if depth < 2:
        raise HarnessError(f"h_D needs depth >= 2, got {depth}")
    p = depth / (depth - 2.0)
    return (1.0 - s) ** -p - (1.0 + s) ** -p


_EDGE = 1.0 - 1e-9


def _H_D(s, depth):
    """Antiderivative H_D of h_D with its first and second derivatives. For D >= 3, H_D has a barrier at |s| = 1;
    beyond |s| = _EDGE it is continued by its second-order Taylor polynomial (convex, C^2), so a trust-region step
    that overshoots sees finite values; the minimiser lies strictly inside (checked by the caller)."""
    s = np.asarray(s, dtype=float)
    if depth == 2:
        return 2.0 * np.cosh(s), 2.0 * np.sinh(s), 2.0 * np.cosh(s)
    p = depth / (depth - 2.0)
    k = (depth - 2.0) / 2.0                                       # 1 / (p - 1)
    c = np.clip(s, -_EDGE, _EDGE)
    val = k * ((1.0 - c) ** (1.0 - p) + (1.0 + c) ** (1.0 - p))
    d1 = (1.0 - c) ** -p - (1.0 + c) ** -p
    d2 = p * ((1.0 - c) ** (-p - 1.0) + (1.0 + c) ** (-p - 1.0))
    e = s - c
    return val + d1 * e + 0.5 * d2 * e * e, d1 + d2 * e, d2


def rowspace_residual(x: np.ndarray, v: np.ndarray) -> float:
    """||(I - P) v|| / ||v||, P the orthogonal projector onto rowspace(X) = range(X^T)."""
    v = np.asarray(v, dtype=float).ravel()
    qmat, _ = linalg.qr(np.asarray(x, dtype=float).T, mode="economic")
    off = v - qmat @ (qmat.T @ v)
    return float(np.linalg.norm(off) / np.linalg.norm(v))


# -- reference interpolators ------------------------------------------------------------------------------------
def min_l1_interpolator(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin ||beta||_1 subject to X beta = y, by linear programming (HiGHS) over beta = u - v, u, v >= 0."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    d = x.shape[1]
    res = optimize.linprog(np.ones(2 * d), A_eq=np.hstack([x, -x]), b_eq=y, bounds=(0, None), method="highs")
    if res.status != 0:
        raise HarnessError(f"min-l1 linear programme failed: {res.message}")
    return res.x[:d] - res.x[d:]


def min_l2_interpolator(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The minimum-Euclidean-norm solution of X beta = y (``scipy.linalg.lstsq``)."""
    return linalg.lstsq(np.asarray(x, dtype=float), np.asarray(y, dtype=float).ravel())[0]


def implicit_bias_solution(x: np.ndarray, y: np.ndarray, alpha: float, depth: int = 2, gtol: float = 1e-12
                           ) -> np.ndarray:
    """The interpolator gradient flow on a depth-``depth`` diagonal net from w+ = w- = alpha converges to
    (Woodworth et al. 2020, Thms 1 and 3): beta = alpha^D h_D(X^T nu) with nu minimising the convex dual
    Phi(nu) = alpha^D sum_i H_D((X^T nu)_i) - y . nu, whose gradient X beta(nu) - y vanishes exactly at an
    interpolator. For D = 2 this is argmin {Q_alpha(beta) : X beta = y}.

    Solved by ``scipy.optimize.minimize(method="trust-exact")``, then, if that stops short (at large alpha the
    dual's values lose precision before its gradient does), polished by ``scipy.optimize.root`` on the gradient;
    the dual is scaled by alpha^-D so that the tolerance is on the residual relative to alpha^D. Raises if the residual ||X beta - y|| / ||y|| > 1e-8.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    if depth < 2:
        raise HarnessError(f"implicit_bias_solution needs depth >= 2, got {depth}")
    scale = float(alpha) ** depth
    yt = y / scale

    def fun(nu):
        val, _, _ = _H_D(x.T @ nu, depth)
        return float(np.sum(val) - yt @ nu)

    def jac(nu):
        _, d1, _ = _H_D(x.T @ nu, depth)
        return x @ d1 - yt

    def hess(nu):
        _, _, d2 = _H_D(x.T @ nu, depth)
        return (x * d2) @ x.T

    res = optimize.minimize(fun, np.zeros(x.shape[0]), jac=jac, hess=hess, method="trust-exact",
                            options={"gtol": gtol * max(1.0, np.abs(yt).max()), "maxiter": 10_000})
    nu = res.x
    if not res.success:     # near the quadratic regime the dual's values lose precision: polish its gradient root
        nu = optimize.root(jac, nu, jac=hess, method="hybr", options={"xtol": 1e-14}).x
    z = x.T @ nu
    if depth > 2 and np.abs(z).max() >= _EDGE:
        raise HarnessError("implicit-bias dual left the domain |X^T nu| < 1")
    beta = scale * h_D(z, depth)
    resid = np.linalg.norm(x @ beta - y) / np.linalg.norm(y)
    if not resid < 1e-8:
        raise HarnessError(f"implicit-bias dual did not converge (relative residual {resid:.2e}; {res.message})")
    return beta
