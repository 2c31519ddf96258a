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

and the network's training, on any backend: :func:`train_gd` runs gradient descent on many nets at once (each on its
own data draw, at its own rate from :func:`step_size`, stopping on its own), as B2-B4's seed batches do.
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


# -- gradient descent on the network, many data draws at once --------------------------------------------------
def step_size(w_plus: np.ndarray, w_minus: np.ndarray, depth: int, eta0: float) -> float:
    """Woodworth et al.'s step rule eta0 / max(1, D^2 max|w|^(2D-2)), rounded down to the grid eta0 * 2^(-k/4)."""
    wmax = max(float(np.abs(w_plus).max()), float(np.abs(w_minus).max()))
    c = max(1.0, depth ** 2 * wmax ** (2 * depth - 2))
    return eta0 * 2.0 ** (-np.ceil(4 * np.log2(c)) / 4)


def _gd_step(depth: int, ops):
    """One full-batch GD step on 0.5 * MSE of every row of the batch, each at its own rate (``lr``, (B, 1); 0 keeps
    a row where it is), the gradient written out: r = X beta - y, g_beta = X^T r / n, g_w+- = +-D w+-^(D-1) g_beta.
    """
    def step(s):
        wp, wm, x = s["w_plus"], s["w_minus"], s["x"]
        beta = wp ** depth - wm ** depth
        r = ops.matmul(x, beta[..., None]) - s["y"]                              # (B, n, 1)
        g = ops.matmul(ops.transpose(x), r)[..., 0] * (depth / x.shape[-2])       # (B, d): D g_beta
        rate = s["lr"]
        return {**s, "w_plus": wp - rate * (wp ** (depth - 1) * g), "w_minus": wm + rate * (wm ** (depth - 1) * g)}
    return step


def train_gd(backend, depth: int, x: np.ndarray, y: np.ndarray, alpha: float, eta0: float, tol: float,
             max_steps: int, chunk: int) -> dict:
    """Gradient descent on B depth-``depth`` diagonal nets at once, net b on its own data ``x[b]`` (n x d),
    ``y[b]`` (n), each from w+ = w- = alpha until its loss 0.5 * MSE is below ``tol`` or ``max_steps`` is spent.

    Each net trains exactly as it would alone: in chunks of ``chunk`` steps, each at the rate :func:`step_size`
    gives its own weights at the chunk's start, and it stops (its rate becomes 0: it stays where it is) after the
    first chunk that ends below ``tol``. A net whose loss stops being finite stops there (its beta is then not
    finite: diverged, recorded as such by the caller). The chunks run through :meth:`Backend.iterate` (one compiled
    loop per chunk on JAX), so B nets cost little more than one: a small net's step is a few framework dispatches.
    Returns ``beta`` (B, d), ``steps`` (B,) and ``final_loss`` (B,), NumPy."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 3 or y.shape != x.shape[:2]:
        raise HarnessError(f"train_gd needs x of shape (B, n, d) and y of shape (B, n), got {x.shape} and {y.shape}")
    if depth < 1 or chunk < 1 or max_steps < 0:
        raise HarnessError("train_gd needs depth >= 1, chunk >= 1 and max_steps >= 0")
    B, n, d = x.shape
    ops = backend.ops
    step = _gd_step(depth, ops)

    def losses(s):
        beta = s["w_plus"] ** depth - s["w_minus"] ** depth
        r = ops.matmul(s["x"], beta[..., None])[..., 0] - s["y"][..., 0]
        return ops.sum(r * r, axis=1) * (0.5 / n)
    loss_fn = backend._compile(("diagonal-gd-loss", depth), losses)
    wp, wm = np.full((B, d), float(alpha)), np.full((B, d), float(alpha))
    with backend._context():
        state = {"w_plus": backend.asarray(wp), "w_minus": backend.asarray(wm), "x": backend.asarray(x),
                 "y": backend.asarray(y[..., None], "y"), "lr": backend.asarray(np.zeros((B, 1)))}
        loss = np.asarray(backend.to_numpy(loss_fn(state)), dtype=float)
        steps = np.zeros(B, dtype=int)
        live = (loss >= tol) & (steps < max_steps)                   # a NaN loss compares False: stopped
        while live.any():
            rates = [step_size(wp[b], wm[b], depth, eta0) if live[b] else 0.0 for b in range(B)]
            state["lr"] = backend.asarray(np.asarray(rates)[:, None])
            state = backend.iterate(("diagonal-gd", depth), step, state, chunk)
            steps[live] += chunk
            loss = np.where(live, np.asarray(backend.to_numpy(loss_fn(state)), dtype=float), loss)
            wp, wm = backend.to_numpy(state["w_plus"]).astype(float), backend.to_numpy(state["w_minus"]).astype(float)
            live &= (loss >= tol) & (steps < max_steps)
    return {"beta": wp ** depth - wm ** depth, "steps": steps, "final_loss": loss}
