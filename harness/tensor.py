"""Over-parametrised symmetric tensor decomposition (Wang, Wu, Lee, Ma & Ge 2020; Ge, Ren, Wang & Zhou 2021).

The model has ``m`` components u_j in R^d and predicts the order-``l`` symmetric tensor

    T(U) = sum_j w_j c_j u_j^(x)l,   c_j = ||u_j||^-p,

with ``p = 0`` for the plain model and ``p = l - 2`` for the normalised (2-homogeneous) one used for deflation and
by Wang et al.'s algorithm; ``w_j`` are fixed 0/1 weights, so several models with different m train as one batch
(a masked component contributes nothing and receives no gradient). The target is given by its own components,
T* = sum_i a_i q_i^(x)l, and the loss is 0.5 ||T(U) - T*||_F^2. Arrays are batched: U is (B, m, d), w is (B, m),
a is (r,), and Q is (r, d) (one target for the batch) or (B, r, d) (a target per batch element: several seeds'
problems trained as one batch, as C2 does) in the Gram form and in :func:`train`.

Two forms of the loss, written once against the backend's ``ops``:

- dense (:func:`dense_loss`): materialises the d^l tensors; the reference, differentiated by the backend's autodiff.
- Gram (:func:`gram_loss_and_grad`): everything through K = U U^T and P = U Q^T raised elementwise to the power l,
  O(B m (m + r) d) per step and never a d^l array:

      L = 0.5 [ sum_jk v_j v_k K_jk^l - 2 sum_ji v_j a_i P_ji^l + sum_ii' a_i a_i' (q_i.q_i')^l ],  v_j = w_j c_j,
      dL/du_j = l v_j [ sum_k v_k K_jk^(l-1) u_k - sum_i a_i P_ji^(l-1) q_i ]
                - p (v_j / ||u_j||^2) [ sum_k v_k K_jk^l - sum_i a_i P_ji^l ] u_j,

  the second line from d c_j / d u_j = -p c_j u_j / ||u_j||^2. ``tests/test_tensor.py`` checks it against the
  dense form's autodiff gradient and against finite differences on both backends.

The lazy model (:func:`tangent_jacobian`): the linearisation of T at U0, T(U0) + J (U - U0), whose range is the
tangent span {sum_j sym(u_j^(x)(l-1) (x) v_j)} of dimension <= m d (Terracini: the tangent space to the m-th
secant variety of the Veronese variety, of generic dimension min(m d, C(d+l-1, l)) outside the
Alexander-Hirschowitz defective cases, :func:`generic_count`). :func:`lazy_fit_residual` is the least-squares
residual of a target in that span and :func:`smallest_lazy_m` the smallest m whose span fits it.

Training (:func:`train`): gradient descent with the Gram gradient, optional weight decay and re-initialisation of
components whose norm fell below a threshold (Wang et al.'s variant, see ``claims/tensor_decomposition.py``), run
in compiled chunks through :meth:`Backend.iterate`; it records, inside the loop, the first step at which each
target component is half fitted (<T(U), q_i^(x)l> > a_i / 2 for orthonormal q: Ge et al.'s escape times).
"""
from __future__ import annotations

import string
from math import comb

import numpy as np
from scipy import linalg

from .errors import HarnessError

# (l, d) with a defective m (Alexander & Hirschowitz 1995): the generic tangent span of m components has dimension
# below min(m d, C(d+l-1, l)) at some m; l = 2 (matrices) is defective for every d >= 2.
DEFECTIVE = {(3, 5), (4, 3), (4, 4), (4, 5)}


def sym_dim(d: int, l: int) -> int:
    """Dimension of the symmetric tensors of order l on R^d: C(d + l - 1, l)."""
    return comb(d + l - 1, l)


def generic_count(d: int, l: int) -> int:
    """ceil(C(d+l-1, l) / d): the smallest m whose generic tangent span is all of Sym^l(R^d). Raises for the
    Alexander-Hirschowitz defective cases (and l = 2), where the count is not the generic dimension."""
    if l < 3 or d < 2:
        raise HarnessError(f"generic_count needs l >= 3 and d >= 2 (l = 2 is always defective), got l={l}, d={d}")
    if (l, d) in DEFECTIVE:
        raise HarnessError(f"(l={l}, d={d}) is an Alexander-Hirschowitz defective case: the dimension count does "
                           f"not give the generic tangent dimension there")
    return -(-sym_dim(d, l) // d)


def _letters(l):
    return string.ascii_lowercase[:l]


def _coefficients(U, w, p, ops):
    """v_j = w_j ||u_j||^-p and ||u_j||^2 (None for p = 0, where it is not needed), shapes (B, m)."""
    if p == 0:
        return w, None
    n2 = ops.sum(U * U, axis=-1)
    return w * n2 ** (-0.5 * p), n2


# -- dense form (the reference) ---------------------------------------------------------------------------------
def dense_tensor(U, w, l: int, ops, p: float = 0.0):
    """T(U) as a (B, d, ..., d) array: sum_j w_j ||u_j||^-p u_j^(x)l."""
    v, _ = _coefficients(U, w, p, ops)
    idx = _letters(l)
    spec = "zj," + ",".join(f"zj{c}" for c in idx) + "->z" + idx
    return ops.einsum(spec, v, *([U] * l))


def target_tensor(a, Q, l: int, ops):
    """T* = sum_i a_i q_i^(x)l as a (d, ..., d) array."""
    idx = _letters(l)
    return ops.einsum("i," + ",".join(f"i{c}" for c in idx) + "->" + idx, a, *([Q] * l))


def dense_loss(U, w, a, Q, l: int, ops, p: float = 0.0):
    """0.5 ||T(U) - T*||_F^2 per batch element, (B,), through the d^l tensors."""
    diff = dense_tensor(U, w, l, ops, p) - target_tensor(a, Q, l, ops)[None]
    return 0.5 * ops.sum(ops.reshape(diff * diff, (diff.shape[0], -1)), axis=1)


# -- Gram form ----------------------------------------------------------------------------------------------------
def gram_parts(U, w, a, Q, l: int, ops, p: float = 0.0):
    """The inner products the Gram form needs: v (B, m), |u|^2 (B, m; None for p = 0), K (B, m, m), P (B, m, r)."""
    v, n2 = _coefficients(U, w, p, ops)
    K = ops.matmul(U, ops.transpose(U))                 # matmul, not einsum: fewer dispatches in eager torch
    P = ops.matmul(U, ops.transpose(Q))
    return v, n2, K, P


def target_norm2(a, Q, l: int):
    """||T*||_F^2 = sum_ii' a_i a_i' (q_i.q_i')^l (NumPy): a float for Q (r, d), a (B,) array for Q (B, r, d)."""
    a, Q = np.asarray(a, float), np.asarray(Q, float)
    out = np.einsum("i,...ij,j->...", a, (Q @ np.swapaxes(Q, -1, -2)) ** l, a)
    return float(out) if Q.ndim == 2 else out


def gram_loss_and_grad(U, w, a, Q, l: int, ops, p: float = 0.0, tnorm2=None, with_fit: bool = True,
                       with_loss: bool = True):
    """(loss (B,), gradient (B, m, d), fit (B, r)) of 0.5 ||T(U) - T*||^2 in the Gram form (module docstring);
    ``fit[b, i] = <T(U_b), q_i^(x)l>`` (None unless ``with_fit``; the loss is None unless ``with_loss``: a
    training step needs neither, and eager torch pays per operation). ``tnorm2`` is ||T*||^2
    (:func:`target_norm2`; computed if None)."""
    v, n2, K, P = gram_parts(U, w, a, Q, l, ops, p)
    need_sums = with_loss or p != 0
    Kl1, Pl1 = K ** (l - 1), P ** (l - 1)
    VK = v[:, None, :] * Kl1                                     # v_k K_jk^(l-1)
    aP = a[None, None, :] * Pl1                                  # a_i P_ji^(l-1)
    if need_sums:
        own = ops.sum(VK * K, axis=2)                            # sum_k v_k K_jk^l
        cross = ops.sum(aP * P, axis=2)                          # sum_i a_i P_ji^l
    loss = None
    if with_loss:
        if tnorm2 is None:
            G = ops.matmul(Q, ops.transpose(Q))                  # (r, r), or (B, r, r) for a target per element
            tnorm2 = ops.sum(ops.sum(a[:, None] * a[None, :] * G ** l, axis=-1), axis=-1)
        loss = 0.5 * (ops.sum(v * own, axis=1) - 2.0 * ops.sum(v * cross, axis=1) + tnorm2)
    grad = l * v[..., None] * (ops.matmul(VK, U) - ops.matmul(aP, Q))
    if p != 0:
        grad = grad - (p * v / n2 * (own - cross))[..., None] * U
    fit = ops.sum(v[..., None] * P ** l, axis=1) if with_fit else None
    return loss, grad, fit


def gram_gd_update(U, w, a, Q, l: int, ops, p: float, rate, weight_decay: float = 0.0, with_fit: bool = False):
    """One gradient-descent step U - rate (grad + weight_decay U) on the Gram objective, ``rate`` (B, 1) per batch
    element, fused as A U + C Q with small (B, m, m) and (B, m, r) matrices:

        A = (1 + rate (c - weight_decay)) I - rate l v VK,   C = rate l v aP,

    (VK_jk = v_k K_jk^(l-1), aP_ji = a_i P_ji^(l-1), c_j = p v_j / ||u_j||^2 (sum_k v_k K_jk^l - sum_i a_i P_ji^l),
    the gradient's terms in :func:`gram_loss_and_grad`), so the only work on (B, m, d) arrays is two batched matrix
    products and one sum: eager torch, which does not fuse elementwise operations, pays for each (B, m, d) pass.
    ``tests/test_tensor.py`` checks it against ``U - rate (grad + weight_decay U)``. With ``with_fit``: ``(U_next,
    fit)``, ``fit`` (B, r) as :func:`gram_loss_and_grad`'s, at ``U``."""
    v, n2, K, P = gram_parts(U, w, a, Q, l, ops, p)
    VK = v[:, None, :] * K ** (l - 1)
    aP = a[None, None, :] * P ** (l - 1)
    g = rate * (l * v)                                            # (B, m)
    diag = 1.0 - rate * weight_decay + 0.0 * v                    # (B, m)
    if p != 0:
        own = ops.sum(VK * K, axis=2)
        cross = ops.sum(aP * P, axis=2)
        diag = diag + rate * (p * v / n2 * (own - cross))
    A = diag[:, :, None] * ops.eye(U.shape[1], U)[None] - g[:, :, None] * VK
    U_next = ops.matmul(A, U) + ops.matmul(g[:, :, None] * aP, Q)
    if not with_fit:
        return U_next
    return U_next, ops.sum(v[..., None] * P ** l, axis=1)


# -- the lazy model -----------------------------------------------------------------------------------------------
def tangent_jacobian(U, l: int, ops):
    """Jacobian of T(U) = sum_j u_j^(x)l (one batch element, U (m, d)) as a (d^l, m d) array: column (j, a) is
    d T / d u_ja = sum_k (u_j^(x)(k-1)) (x) e_a (x) (u_j^(x)(l-k)). Its range is the lazy model's tangent span."""
    m, d = U.shape
    eye = ops.eye(d, U)
    idx = _letters(l)
    cols = 0
    for k in range(l):
        ins = [f"j{c}" for c in idx]
        ops_in = [U] * l
        ins[k] = "x" + idx[k]                       # the identity carries slot k: e_x in position k
        ops_in[k] = eye
        spec = ",".join(ins) + "->" + idx + "jx"
        cols = cols + ops.einsum(spec, *ops_in)
    return ops.reshape(cols, (d ** l, m * d))


def lazy_fit_residual(jac: np.ndarray, b: np.ndarray) -> float:
    """min_V ||J V - b|| / ||b||: least squares in the tangent span (``scipy.linalg.lstsq``, float64)."""
    b = np.asarray(b, dtype=float).ravel()
    x = linalg.lstsq(np.asarray(jac, dtype=float), b, lapack_driver="gelsy")[0]
    return float(np.linalg.norm(jac @ x - b) / np.linalg.norm(b))


def smallest_lazy_m(backend, U_all: np.ndarray, target: np.ndarray, l: int, tol: float, m_max: int):
    """Smallest m <= m_max whose lazy model at the first m rows of ``U_all`` fits ``target`` (a d^l array) to
    relative residual < tol, by bisection (the spans are nested in m, so the residual is non-increasing);
    (m, residual at m, residual at m - 1), or (nan, residual at m_max, nan) if none fits."""
    def resid(m):
        with backend._context():
            jac = backend.to_numpy(tangent_jacobian(backend.asarray(U_all[:m]), l, backend.ops))
        # the linearisation at U0: T(U0) + J dU; T(U0) lies in the span (Euler), so fitting T* - T(U0) in the span
        # is fitting T*
        return lazy_fit_residual(jac, target)
    top = resid(m_max)
    if not top < tol:
        return float("nan"), top, float("nan")
    lo, hi = 0, m_max                     # resid(hi) < tol; resid(lo) >= tol (m = 0: the span is {0})
    cache = {m_max: top}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        cache[mid] = resid(mid)
        if cache[mid] < tol:
            hi = mid
        else:
            lo = mid
    below = cache.get(lo, 1.0) if lo > 0 else 1.0
    return float(hi), cache[hi], below


# -- targets and initialisation ---------------------------------------------------------------------------------
def orthonormal_target(d: int, r: int, rng) -> np.ndarray:
    """r orthonormal vectors in R^d (rows), Haar-distributed: QR of a Gaussian matrix with sign correction."""
    if r > d:
        raise HarnessError(f"an orthonormal target needs r <= d, got r={r}, d={d}")
    q, rr = np.linalg.qr(rng.standard_normal((d, r)))
    return (q * np.sign(np.diag(rr))).T


def small_init(B: int, m: int, d: int, scale: float, rng) -> np.ndarray:
    """(B, m, d) components with entries N(0, scale^2 / d): ||u_j|| ~ scale."""
    return rng.standard_normal((B, m, d)) * (scale / np.sqrt(d))


# -- training -----------------------------------------------------------------------------------------------------
class TrainOutcome(dict):
    """A dict: ``U`` (B, m, d) final components, ``loss`` (B,), ``rel_error`` (B,) = ||T - T*|| / ||T*|| (NaN where
    the run diverged), ``diverged`` (B,) 0/1, ``t_fit`` (B, r) first step with <T, q_i^l> > a_i / 2 (NaN if
    never), ``steps`` (B,) steps run, ``reinits`` (B,) components re-initialised."""


def _gd_step(l, p, lr, weight_decay, n_fit, ops):
    """The GD step on the Gram objective (+ weight_decay / 2 ||U||^2, :func:`gram_gd_update`) at the per-element
    rate ``live`` (B, 1): ``lr``, or 0 for an element frozen at its tolerance; records, per batch element, the first
    step at which each of the first ``n_fit`` target components is half fitted (above its value at the start)."""
    def step(s):
        U = s["U"]
        if n_fit == 0:
            return {**s, "U": gram_gd_update(U, s["w"], s["a"], s["Q"], l, ops, p, s["live"], weight_decay)}
        U_next, fit = gram_gd_update(U, s["w"], s["a"], s["Q"], l, ops, p, s["live"], weight_decay, with_fit=True)
        t = s["t"]
        half = (fit[:, :n_fit] - s["fit0"]) > 0.5 * s["a"][None, :n_fit]
        first = ops.where((s["t_fit"] < 0) & half, t + ops.zeros_like(s["t_fit"]), s["t_fit"])
        return {**s, "U": U_next, "t_fit": first, "t": t + 1.0}
    return step


def centred_target(U0: np.ndarray, w: np.ndarray, a, Q, l: int, p: float = 0.0):
    """The centred model T(U) - T(U0) fitted to T* is the plain model fitted to T* + T(U0): a target given by
    its components, (a, Q) followed by (w_j ||u0_j||^(l-p), u0_j / ||u0_j||) for one batch element U0 (m, d)."""
    n = np.linalg.norm(U0, axis=1)
    return (np.concatenate([np.asarray(a, float), w * n ** (l - p)]),
            np.concatenate([np.asarray(Q, float), U0 / n[:, None]]))


def train(backend, U0: np.ndarray, w: np.ndarray, a, Q, l: int, *, lr: float, max_steps: int, chunk: int = 250,
          p: float = 0.0, weight_decay: float = 0.0, tol: float | None = None, reinit=None,
          stop_when_fitted: bool = False, n_fit: int | None = None, fit0=None, track_fit: bool = True
          ) -> TrainOutcome:
    """Gradient descent on the Gram objective from ``U0`` (B, m, d) with weights ``w`` (B, m), against one target
    (``Q`` (r, d)) or a target per element (``Q`` (B, r, d)), in chunks of ``chunk`` compiled steps, until every
    batch element has relative error < ``tol`` (if given), or every target component is half fitted
    (``stop_when_fitted``), or ``max_steps``.

    Batch elements do not interact, and each one's outcome is the one it has trained alone (up to the rounding of
    batched reductions): an element whose relative error is below ``tol`` at the end of a chunk is frozen there
    (no further steps, its ``steps`` the count it ran), and one whose loss or parameters stop being finite is
    recorded as diverged (relative error NaN) and holds the others back no longer; the loop stops when every
    element is frozen or diverged. Once at most a quarter of the rows the backend steps are live, they are
    compacted to the live ones (padded to a power of two with inert copies, so a compiling backend sees few
    shapes): the work follows the elements still training, not the batch it started with.

    ``reinit``: ``(every, threshold, scale, rng)``: every ``every`` steps, each live component with ||u_j|| <
    threshold is redrawn as N(0, scale^2 / d), drawn in NumPy (the same on every backend) from ``rng``, a Generator
    for the whole batch or a list of ``(rows, Generator)``, one stream per group of rows (C2: per seed, so a seed's
    draws do not depend on the seeds batched with it); draws go in row-major order over the (row, component) pairs
    of each group. ``track_fit=False`` skips the half-fit times (fewer operations per step). ``n_fit`` / ``fit0``:
    half-fit times are recorded for the first ``n_fit`` target components (default all), measured above ``fit0``
    (B, n_fit) (the centred model's value at the start, see :func:`centred_target`)."""
    U0 = np.asarray(U0, dtype=float)
    B, m, d = U0.shape
    a = np.asarray(a, dtype=float)
    Q = np.asarray(Q, dtype=float)
    w = np.asarray(w, dtype=float)
    if w.shape != (B, m):
        raise HarnessError(f"weights must have shape {(B, m)}, got {w.shape}")
    if Q.ndim == 3 and Q.shape[0] != B:
        raise HarnessError(f"a target per batch element needs Q of shape ({B}, r, {d}), got {Q.shape}")
    if chunk < 1 or max_steps < 0:
        raise HarnessError("chunk must be >= 1 and max_steps >= 0")
    n_fit = 0 if not track_fit else (len(a) if n_fit is None else int(n_fit))
    fit0 = np.zeros((B, n_fit)) if fit0 is None else np.asarray(fit0, dtype=float)
    tn2 = target_norm2(a, Q, l)
    per_row_Q, per_row_tn2 = Q.ndim == 3, np.ndim(tn2) == 1
    ops = backend.ops
    key = ("tensor-gd", l, float(p), float(lr), float(weight_decay), n_fit)
    pure = _gd_step(l, p, lr, weight_decay, n_fit, ops)
    loss_fn = backend._compile(("tensor-loss", l, float(p)), lambda U_, w_, a_, Q_, t_: gram_loss_and_grad(
        U_, w_, a_, Q_, l, ops, p, t_, with_fit=False)[0])
    # NumPy masters, indexed by batch element; the backend state holds the rows still training (``rows``, padded
    # to a power of two with inert copies, ``real`` False), compacted as elements freeze
    U_all, t_fit_all = U0.copy(), -np.ones((B, n_fit))
    live, diverged = np.ones(B, dtype=bool), np.zeros(B, dtype=bool)

    def load(rows, real, t):
        U_rows = U_all[rows]
        U_rows[diverged[rows]] = 0.0                  # a diverged element no longer trains (rate 0 below)
        with backend._context():
            return {"U": backend.asarray(U_rows), "w": backend.asarray(w[rows]), "a": backend.asarray(a),
                    "Q": backend.asarray(Q[rows] if per_row_Q else Q),
                    "tn2": backend.asarray(tn2[rows] if per_row_tn2 else tn2), "t": backend.asarray(float(t)),
                    "t_fit": backend.asarray(t_fit_all[rows]), "fit0": backend.asarray(fit0[rows]),
                    "live": backend.asarray((lr * (real & live[rows] & ~diverged[rows]).astype(float))[:, None])}

    def row_loss(state):
        with backend._context():
            return backend.to_numpy(loss_fn(state["U"], state["w"], state["a"], state["Q"], state["tn2"]))
    rows, real = np.arange(B), np.ones(B, dtype=bool)
    state = load(rows, real, 0.0)
    loss_all = row_loss(state).astype(float)
    done, reinits, steps = 0, np.zeros(B), np.zeros(B)
    groups = None
    if reinit is not None:
        groups = reinit[3] if isinstance(reinit[3], (list, tuple)) else [(np.arange(B), reinit[3])]
    while done < max_steps:
        n = min(chunk, max_steps - done)
        if reinit is not None:
            every = reinit[0]
            n = min(n, every - done % every)
        trained = real & (backend.to_numpy(state["live"])[:, 0] > 0)      # the rows this chunk moves
        state = backend.iterate(key, pure, state, n)
        done += n
        steps[live] = done
        ids = rows[trained]
        U_all[ids] = backend.to_numpy(state["U"])[trained]
        loss_all[ids] = row_loss(state)[trained]
        if n_fit:
            t_fit_all[ids] = backend.to_numpy(state["t_fit"])[trained]
        diverged |= ~np.isfinite(loss_all) | ~np.all(np.isfinite(U_all), axis=(1, 2))
        if diverged.all():
            break
        rel = np.sqrt(np.maximum(2 * loss_all, 0.0) / tn2)
        changed = False
        if tol is not None:
            frozen = live & ((rel < tol) | diverged)
            if frozen.any():
                live &= ~frozen
                changed = True
            if not live.any():
                break
        if stop_when_fitted and np.all((t_fit_all >= 0).all(axis=1) | diverged):
            break
        if reinit is not None and done % reinit[0] == 0 and done < max_steps:
            every, threshold, scale, _ = reinit
            small = (np.linalg.norm(U_all, axis=-1) < threshold) & (w > 0) & ~diverged[:, None] & live[:, None]
            if small.any():
                for group, rng in groups:
                    group = np.asarray(group)
                    block, pick = U_all[group], small[group]
                    if pick.any():
                        block[pick] = rng.standard_normal((int(pick.sum()), d)) * (scale / np.sqrt(d))
                        U_all[group] = block
                reinits += small.sum(axis=1)
                changed = True
        if changed:
            if live.sum() <= len(rows) // 4:          # compact: train only the live elements from here on
                keep = np.flatnonzero(live)
                size = 1 << int(np.ceil(np.log2(len(keep))))
                rows = np.concatenate([keep, np.full(size - len(keep), keep[0])])
                real = np.arange(size) < len(keep)
            state = load(rows, real, done)
    U = U_all
    final = loss_all                                      # at the returned parameters
    rel = np.sqrt(np.maximum(2 * final, 0.0) / tn2)
    bad = diverged | ~np.isfinite(final)
    rel = np.where(bad, np.nan, rel)
    t_fit = t_fit_all.astype(float) if n_fit else np.full((B, 0), np.nan)
    t_fit = np.where(t_fit < 0, np.nan, t_fit)
    return TrainOutcome(U=U, loss=final, rel_error=rel, diverged=bad.astype(float), t_fit=t_fit,
                        steps=steps, reinits=reinits)
