"""Attention as a max-margin token selector: Tarzanagh, Li, Thrampoulidis & Oymak (2023), "Transformers as Support
Vector Machines" (and Tarzanagh, Li, Zhang & Oymak 2023, "Max-Margin Token Selection in Attention Mechanism").

One layer of softmax attention with a fixed head ``v`` reads sequence i (tokens ``X[i]``, T x d, and a query
``z[i]``, d) as f(X) = v^T X^T softmax(X W z), trained on the logistic loss mean log(1 + exp(-y f)) over n
sequences by gradient descent on the key-query matrix W (d x d). Each token has a score gamma_it = y_i v . x_it;
the sequence's optimal token is its highest-scoring one. When the optimal tokens can be separated from the others
(the constraints below are feasible), gradient descent from W = 0 diverges in norm and, under the paper's conditions,
converges in direction to the solution of the attention SVM

    W_mm = argmin ||W||_F  s.t.  (x_{i,opt_i} - x_it)^T W z_i >= 1  for every sequence i and token t != opt_i,

the paper's Theorem 2 (global convergence) and its Figure 3. Any selection alpha (one token per sequence) has its
own SVM W_mm(alpha); alpha is *locally optimal* when, for every sequence, each support token of W_mm(alpha) (a token
whose constraint is active) scores lower than the selected one; gradient descent started in the cone around such a
W_mm(alpha) converges to it instead (the paper's Theorem 3, local convergence): the paper's own contrast. On random
problems with unequal non-optimal scores gradient descent from 0 also ends on a non-optimal token now and then
(3.5% of 256 pilot problems, claims/attention.py), aligned with that selection's SVM.

This module gives the data (:func:`token_selection_problem`), the SVMs (:func:`attention_svm`, SciPy), the search
for a locally optimal non-global selection (:func:`locally_optimal_selection`) and batched gradient descent on any
backend (:func:`train_gd`: B problems side by side, the gradient written out, chunks through
:meth:`Backend.iterate`).
"""
from __future__ import annotations

import numpy as np
from scipy import optimize

from .errors import HarnessError


def token_selection_problem(seed, n: int, tokens: int, dim: int, gap: float = 1.0, spread: float = 0.5):
    """A token-selection problem drawn from ``seed`` (anything ``numpy.random.default_rng`` takes): head ``v`` (unit), tokens ``X`` (n, T, d) Gaussian, queries
    ``z`` (n, d) unit, labels ``y`` = +-1 and an optimal token ``opt`` per sequence; each token's component along
    ``v`` is then set so that its score y_i v . x_it is ``gap`` for the optimal token and uniform in
    [-spread, spread] for the others (so the optimal token is unique). Returns ``(X, z, y, v, opt)``."""
    if n < 1 or tokens < 2 or dim < 2:
        raise HarnessError(f"a token-selection problem needs n >= 1, tokens >= 2 and dim >= 2, got {n}, {tokens}, "
                           f"{dim}")
    if not gap > spread:
        raise HarnessError(f"the optimal token's score gap ({gap}) must exceed the others' spread ({spread})")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(dim)
    v /= np.linalg.norm(v)
    X = rng.standard_normal((n, tokens, dim))
    z = rng.standard_normal((n, dim))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    y = rng.choice([-1.0, 1.0], size=n)
    opt = rng.integers(0, tokens, size=n)
    scores = rng.uniform(-spread, spread, size=(n, tokens))
    scores[np.arange(n), opt] = gap
    X -= (X @ v)[..., None] * v                        # remove the component along v, then set it to the score
    X += (y[:, None] * scores)[..., None] * v
    return X, z, y, v, opt


def scores(X, y, v) -> np.ndarray:
    """gamma_it = y_i v . x_it, (n, T)."""
    return np.asarray(y)[:, None] * (np.asarray(X) @ np.asarray(v))


def attention_svm(X, z, selection):
    """The attention SVM of a selection (one token index per sequence): ``(W, margins, pairs)`` with ``W`` (d, d)
    of least Frobenius norm such that every constraint (x_{i,sel_i} - x_it)^T W z_i >= 1 holds, ``margins`` those
    left-hand sides and ``pairs`` their (i, t). Solved through its dual, a bound-constrained QP (max sum(a) -
    ||sum_k a_k A_k||^2 / 2, a >= 0; ``scipy.optimize.minimize``, L-BFGS-B), W = sum_k a_k A_k. Raises if the
    constraints are infeasible (the smallest margin is not 1 to 1e-6)."""
    X, z = np.asarray(X, dtype=float), np.asarray(z, dtype=float)
    n, T, d = X.shape
    pairs = [(i, t) for i in range(n) for t in range(T) if t != selection[i]]
    A = np.array([np.outer(X[i, selection[i]] - X[i, t], z[i]).ravel() for i, t in pairs])
    G = A @ A.T
    res = optimize.minimize(lambda a: 0.5 * a @ G @ a - a.sum(), np.zeros(len(A)), jac=lambda a: G @ a - 1.0,
                            bounds=[(0.0, None)] * len(A), method="L-BFGS-B",
                            options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 20_000})
    w = A.T @ res.x
    margins = A @ w
    if not abs(margins.min() - 1.0) < 1e-6:
        raise HarnessError(f"attention SVM: the selection is not separable (smallest margin {margins.min():.3g})")
    return w.reshape(d, d), margins, pairs


def is_locally_optimal(X, z, y, v, selection, tol: float = 1e-6) -> bool:
    """Whether ``selection`` is locally optimal (the paper's Definition 2): separable, and in every sequence each
    support token of its SVM (an active constraint, margin within ``tol`` of 1) scores below the selected token."""
    try:
        _, margins, pairs = attention_svm(X, z, selection)
    except HarnessError:
        return False
    g = scores(X, y, v)
    return all(g[i, t] < g[i, selection[i]] for (i, t), m in zip(pairs, margins) if m < 1.0 + tol)


def locally_optimal_selection(X, z, y, v, opt):
    """A locally optimal selection other than the optimal one, built greedily: sequence by sequence, the
    highest-scoring non-optimal token whose selection (with the changes kept so far) is still locally optimal, if
    any; ``None`` when no sequence can change."""
    g = scores(X, y, v)
    sel, changed = np.array(opt).copy(), False
    for i in range(len(opt)):
        for t in np.argsort(-g[i]):
            if t == opt[i]:
                continue
            trial = sel.copy()
            trial[i] = t
            if is_locally_optimal(X, z, y, v, trial):
                sel, changed = trial, True
                break
    return sel if changed else None


def selected_tokens(X, z, W) -> np.ndarray:
    """The token each sequence's attention puts the most weight on: argmax_t x_it^T W z_i, (n,)."""
    return np.argmax(np.einsum("ntd,de,ne->nt", np.asarray(X), np.asarray(W), np.asarray(z)), axis=1)


def correlation(W, W_ref) -> float:
    """<W, W_ref> / (||W|| ||W_ref||), Frobenius."""
    W, W_ref = np.asarray(W, dtype=float), np.asarray(W_ref, dtype=float)
    return float(np.sum(W * W_ref) / (np.linalg.norm(W) * np.linalg.norm(W_ref)))


def _gd_step(ops, lr: float):
    """One GD step on every problem of the batch: s = X W z, a = softmax(s), f = a . (X v), loss log(1 + e^(-y f));
    dL/dW = (1/n) sum_i l'_i sum_t a_it (g_it - f_i) x_it z_i^T with l'_i = -y_i / (1 + e^(y_i f_i))."""
    def step(s):
        W, X, z, y, g = s["W"], s["X"], s["z"], s["y"], s["g"]           # (B,d,d) (B,n,T,d) (B,n,d) (B,n) (B,n,T)
        Wz = ops.matmul(W[:, None], z[..., None])                          # (B, n, d, 1)
        a = ops.exp(ops.log_softmax(ops.matmul(X, Wz)[..., 0], axis=-1))   # (B, n, T)
        f = ops.sum(a * g, axis=-1)                                        # (B, n)
        dl = -y / (1.0 + ops.exp(y * f))
        r = dl[..., None] * a * (g - f[..., None])                         # (B, n, T)
        M = ops.matmul(r[..., None, :], X)[..., 0, :]                      # (B, n, d): sum_t r_t x_t
        grad = ops.matmul(ops.transpose(M), z) * (1.0 / X.shape[1])        # (B, d, d)
        return {**s, "W": W - lr * grad}
    return step


def train_gd(backend, X, z, y, v, W0, lr: float, checkpoints) -> dict:
    """Gradient descent on B problems side by side (``X`` (B, n, T, d), ``z`` (B, n, d), ``y`` (B, n), ``v`` (B, d),
    from ``W0`` (B, d, d)) at rate ``lr``, returning ``W`` at every step count of ``checkpoints`` (increasing):
    ``{"steps": (K,), "W": (K, B, d, d), "loss": (K, B)}``. Problems do not interact; each trains as it would alone
    (to rounding)."""
    X, z, y, v, W0 = (np.asarray(a, dtype=float) for a in (X, z, y, v, W0))
    if X.ndim != 4 or z.shape != (X.shape[0], X.shape[1], X.shape[3]) or y.shape != X.shape[:2] \
            or v.shape != (X.shape[0], X.shape[3]) or W0.shape != (X.shape[0], X.shape[3], X.shape[3]):
        raise HarnessError(f"train_gd needs X (B, n, T, d), z (B, n, d), y (B, n), v (B, d), W0 (B, d, d); got "
                           f"{X.shape}, {z.shape}, {y.shape}, {v.shape}, {W0.shape}")
    checkpoints = [int(c) for c in checkpoints]
    if any(b <= a for a, b in zip(checkpoints, checkpoints[1:])) or (checkpoints and checkpoints[0] < 0):
        raise HarnessError(f"checkpoints must be increasing step counts >= 0, got {checkpoints}")
    ops = backend.ops
    g = np.einsum("bntd,bd->bnt", X, v)
    step = _gd_step(ops, float(lr))

    def losses(s):
        a = ops.exp(ops.log_softmax(ops.matmul(s["X"], ops.matmul(s["W"][:, None], s["z"][..., None]))[..., 0],
                                    axis=-1))
        f = ops.sum(a * s["g"], axis=-1)
        return ops.mean(ops.log1p(ops.exp(-s["y"] * f)), axis=-1)
    loss_fn = backend._compile(("attention-svm-loss",), losses)
    out_W, out_loss, done = [], [], 0
    with backend._context():
        state = {"W": backend.asarray(W0), "X": backend.asarray(X), "z": backend.asarray(z),
                 "y": backend.asarray(y, "y"), "g": backend.asarray(g)}
        for c in checkpoints:
            if c > done:
                state = backend.iterate(("attention-svm-gd", float(lr)), step, state, c - done)
                done = c
            out_W.append(np.asarray(backend.to_numpy(state["W"]), dtype=float))
            out_loss.append(np.asarray(backend.to_numpy(loss_fn(state)), dtype=float))
    return {"steps": np.asarray(checkpoints), "W": np.stack(out_W), "loss": np.stack(out_loss)}
