"""Curvature matrices of a model's loss beside the Hessian: the generalised Gauss-Newton (GGN) and the empirical
Fisher (EF), each as a matrix-vector product, a dense matrix, its top-k eigenpairs, its trace and its spectral
density, over all trainable parameters or over a named block of them (one layer's weights).

Backend-neutral: it uses only the public :class:`~harness.backends._base.Backend` methods (``hvp``, ``jacobian``,
``per_example_grads``, ``apply``) and NumPy, and runs the spectrum routines of :mod:`harness.hessian` (block
Lanczos, Hutchinson, stochastic Lanczos quadrature) on its products. What the curvlinops and hessian-eigenthings
users know, for every harness model::

    from harness.curvature import curvature
    c = curvature(be, model, params, x, y, kind="ggn", loss="cross_entropy", block="W1")
    c.matvec(v); c.dense(); c.top_k(5).values; c.trace().value; c.density().on_grid(grid)

The matrices, for the harness losses (:mod:`harness.losses`: ``mse`` is 0.5 * the squared error summed over the
k outputs, averaged over the N samples; ``cross_entropy`` the softmax cross-entropy averaged over samples), with
``J_i`` the (k, P) Jacobian of example i's outputs and ``f_i`` its outputs:

- ``"hessian"``: H, the Hessian of the loss; products are the backend's HVPs, matrix-free.
- ``"ggn"``: G = sum_i J_i^T H_i J_i, H_i the Hessian of the loss with respect to example i's outputs:
  ``mse`` H_i = I / N; ``cross_entropy`` H_i = s_i (diag(p_i) - p_i p_i^T) / N with p_i = softmax(f_i) and
  s_i = sum_a y_ia (1 for one-hot targets). G is positive semi-definite, and G == H for a model linear in its
  parameters (an MLP of depth 0) under ``mse``. For these two losses the GGN is also the (true) Fisher of the
  model's predictive distribution (Gaussian of unit variance, categorical; Martens 2020), which is why there is
  no separate ``"fisher"``.
- ``"ef"``: the empirical Fisher F = (1/N) sum_i g_i g_i^T, g_i the gradient of example i's own loss
  (:meth:`Backend.per_example_grads`: the loss on a batch of one, so for ``mse`` g_i = J_i^T (f_i - y_i)). This is
  curvlinops' ``EFLinearOperator`` convention for a loss ``(1/N) sum_i l_i`` (its ``c = 1/N``); curvlinops'
  ``MSELoss(reduction="mean")`` also averages over the k outputs and drops the 0.5, so its loss is 2/k times ours,
  its Hessian and GGN are 2/k times ours, and its EF, (1/(N k)) sum_i grad ||f_i - y_i||^2 (grad ...)^T, is 4/k
  times ours (tests/test_curvature.py checks all three against curvlinops 3.0.1). The EF is not a curvature of
  the loss in general (Kunstner, Hennig & Balles 2019); it is here because users compare against it.

``block`` (a parameter name, or a list of them) restricts each matrix to the sub-matrix of those parameters' rows
and columns, in the sorted-name flat order of :meth:`Backend.hvp` (the same order whatever order ``block`` lists
them in); the other parameters stay where they are (for the Hessian: an HVP with the other blocks' tangents zero,
of which the block's rows are kept).

Cost: the GGN and the EF are built from a factor A with G = A^T A (or F = A^T A): for the GGN the Jacobian, N k P
numbers (``Backend.jacobian``, computed once over all trainable parameters, then its block's columns kept), for
the EF the per-example gradients, N P numbers. Materialising them is fine at the sizes tests and pilots use
(N k P floats in memory); products with G and F are then two matrix products with A, and their exact trace is
||A||_F^2 for free. Only the Hessian's products are matrix-free (one HVP each); its ``dense()`` and exact trace
cost P HVPs (P the block's size).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import HarnessError
from .hessian import Density, TopK, Trace, hutchinson_trace, lanczos_top_k, slq_density
from .models import trainable_names

KINDS = ("hessian", "ggn", "ef")
GGN_LOSSES = ("mse", "cross_entropy")
TRACE_METHODS = ("auto", "exact", "hutchinson")


class Curvature:
    """One curvature matrix (``kind``: ``"hessian"``, ``"ggn"``, ``"ef"``) of ``model``'s ``loss`` on ``(x, y)`` at
    ``params``, restricted to the parameters ``names`` (sorted; all trainable ones by default). Build it with
    :func:`curvature`. ``dim`` is the number of parameters in the block; vectors are flat, in the sorted-name
    order of :meth:`Backend.hvp` restricted to ``names``. See the module docstring for the definitions and costs.
    """

    def __init__(self, backend, model, params, x, y, kind: str = "ggn", loss="mse",
                 block: str | Sequence[str] | None = None):
        if kind not in KINDS:
            hint = (" (for mse and cross_entropy the true Fisher is the GGN, kind='ggn'; the empirical Fisher is "
                    "kind='ef')") if kind == "fisher" else ""
            raise HarnessError(f"unknown curvature kind {kind!r}; choose one of {', '.join(KINDS)}{hint}")
        if kind == "ggn" and loss not in GGN_LOSSES:
            raise HarnessError(f"the GGN needs the loss's Hessian in the outputs, known for the losses "
                               f"{', '.join(GGN_LOSSES)}; got {loss!r}")
        if x is None or y is None:
            raise HarnessError("a curvature matrix needs inputs x and targets y")
        self.backend, self.model, self.params, self.x, self.y = backend, model, params, x, y
        self.kind, self.loss = kind, loss
        all_names = trainable_names(params)
        shapes = {n: tuple(int(s) for s in params[n].shape) for n in all_names}
        sizes = [int(np.prod(shapes[n])) for n in all_names]
        starts = dict(zip(all_names, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)))
        if block is None:
            names = all_names
        else:
            wanted = [block] if isinstance(block, str) else list(block)
            unknown = [n for n in wanted if n not in shapes]
            if not wanted or unknown:
                raise HarnessError(f"block names {unknown or wanted!r}, not trainable parameters of the model; "
                                   f"choose among {all_names}")
            names = sorted(set(wanted))
        self.names: tuple = tuple(names)
        self.shapes: dict = {n: shapes[n] for n in names}
        self.full_dim = int(sum(sizes))
        # the block's positions in the full flat vector (sorted-name order, so a sub-vector keeps that order)
        self.index = np.concatenate([starts[n] + np.arange(int(np.prod(shapes[n]))) for n in names])
        self.dim = int(self.index.size)
        self._a = None

    def __repr__(self):
        return (f"<Curvature {self.kind} of {self.loss!r} over {', '.join(self.names)} (dim {self.dim}) on "
                f"{self.backend!r}>")

    # -- the factor A (G = A^T A, F = A^T A) ----------------------------------------------------------------------
    def factor(self) -> np.ndarray:
        """A (rows, dim) with the matrix = A^T A (``"ggn"``: rows N k, A_i = H_i^1/2 J_i; ``"ef"``: rows N,
        A_i = g_i / sqrt(N)); computed once, float64. Not defined for the Hessian (which is indefinite)."""
        if self.kind == "hessian":
            raise HarnessError("the Hessian has no factor A^T A (it is indefinite); use matvec or dense")
        if self._a is None:
            be, model, p = self.backend, self.model, self.params
            if self.kind == "ef":
                g = np.asarray(be.per_example_grads(model, p, self.x, self.y, loss=self.loss, flat=True),
                               dtype=np.float64)[:, self.index]
                self._a = g / np.sqrt(g.shape[0])
            else:
                jac = np.asarray(be.jacobian(model, p, self.x, flat=True), dtype=np.float64)[:, :, self.index]
                n = jac.shape[0]
                if self.loss == "mse":
                    a = jac / np.sqrt(n)
                else:
                    # diag(p) - p p^T = M^T M with M = diag(sqrt p) - sqrt(p) p^T (as sum_a p_a = 1), so
                    # M J_i = sqrt(p) * J_i - sqrt(p) (p^T J_i), rows scaled by sqrt(s_i / N)
                    f = np.asarray(be.apply(model, p, self.x), dtype=np.float64).reshape(n, -1)
                    prob = np.exp(f - f.max(axis=1, keepdims=True))
                    prob /= prob.sum(axis=1, keepdims=True)
                    s = np.asarray(be.to_numpy(self.y), dtype=np.float64).reshape(n, -1).sum(axis=1)
                    if np.any(s < 0):
                        raise HarnessError("cross_entropy's GGN needs targets with non-negative row sums")
                    root = np.sqrt(prob)[:, :, None]
                    a = root * jac - root * np.einsum("na,nap->np", prob, jac)[:, None, :]
                    a *= np.sqrt(s / n)[:, None, None]
                self._a = a.reshape(-1, self.dim)
        return self._a

    # -- products and the dense matrix --------------------------------------------------------------------------
    def matvec(self, v) -> np.ndarray:
        """The matrix times the flat vector ``v`` (``dim`` entries), float64."""
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.shape[0] != self.dim:
            raise HarnessError(f"v has {v.shape[0]} entries, the block {list(self.names)} has {self.dim}")
        if self.kind != "hessian":
            a = self.factor()
            return a.T @ (a @ v)
        full = np.zeros(self.full_dim)
        full[self.index] = v
        out = self.backend.hvp(self.model, self.params, self.x, self.y, full, loss=self.loss)
        return np.asarray(out, dtype=np.float64)[self.index]

    def dense(self) -> np.ndarray:
        """The (dim, dim) matrix: A^T A for the GGN and the EF; for the Hessian its columns, one HVP each (dim
        HVPs; not symmetrised, so its asymmetry shows the HVP's rounding)."""
        if self.kind != "hessian":
            a = self.factor()
            return a.T @ a
        return np.column_stack([self.matvec(e) for e in np.eye(self.dim)])

    # -- spectrum (harness.hessian's routines on matvec) ----------------------------------------------------------
    def top_k(self, k: int = 1, tol: float = 1e-3, seed: int = 0, block_size: int = 1, ncv: int | None = None,
              which: str = "LA") -> TopK:
        """The k largest eigenpairs by (block) Lanczos with certified residuals
        (:func:`harness.hessian.lanczos_top_k`): ``TopK(values, vectors (dim, k), residuals, bound, n_hvp,
        converged)``, ``n_hvp`` counting products with this matrix."""
        if isinstance(k, bool) or int(k) != k or not 1 <= k <= self.dim:
            raise HarnessError(f"k must be an integer in 1..{self.dim} (the block's size), got {k!r}")
        if isinstance(block_size, bool) or int(block_size) != block_size or not 1 <= block_size <= self.dim:
            raise HarnessError(f"block_size must be an integer in 1..{self.dim}, got {block_size!r}")
        if which not in ("LA", "LM"):
            raise HarnessError(f"which must be 'LA' or 'LM', got {which!r}")
        return lanczos_top_k(self.matvec, self.dim, int(k), tol=tol, seed=seed, block_size=int(block_size),
                             ncv=ncv, which=which)

    def trace(self, method: str = "auto", n_samples: int = 32, seed: int = 0) -> Trace:
        """tr of the matrix as ``Trace(value, stderr, n_hvp)``. ``"exact"``: ||A||_F^2 for the GGN and the EF (no
        products), the sum of e_i^T H e_i for the Hessian (dim HVPs), stderr 0; ``"hutchinson"``:
        :func:`harness.hessian.hutchinson_trace` with ``n_samples`` Rademacher probes; ``"auto"``: exact for the
        GGN and the EF, Hutchinson for the Hessian."""
        if method not in TRACE_METHODS:
            raise HarnessError(f"unknown trace method {method!r}; choose one of {', '.join(TRACE_METHODS)}")
        if method == "auto":
            method = "hutchinson" if self.kind == "hessian" else "exact"
        if method == "hutchinson":
            if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
                raise HarnessError(f"n_samples must be a positive integer, got {n_samples!r}")
            return hutchinson_trace(self.matvec, self.dim, n_samples=int(n_samples), seed=seed)
        if self.kind == "hessian":
            eye = np.eye(self.dim)
            return Trace(float(sum(self.matvec(e)[i] for i, e in enumerate(eye))), 0.0, self.dim)
        return Trace(float(np.sum(self.factor() ** 2)), 0.0, 0)

    def density(self, n_starts: int = 8, n_steps: int = 64, seed: int = 0, starts=None) -> Density:
        """Spectral density by stochastic Lanczos quadrature (:func:`harness.hessian.slq_density`):
        ``Density(nodes, weights, dim, n_hvp)`` with ``.on_grid(grid, sigma)``, ``.trace()``, ``.moment(p)``.
        ``starts`` (rows, ``dim`` entries each) replaces the Rademacher starts."""
        for name, v in (("n_starts", n_starts), ("n_steps", n_steps)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise HarnessError(f"{name} must be a positive integer, got {v!r}")
        if starts is not None:
            starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
            if starts.shape[1] != self.dim:
                raise HarnessError(f"starts have {starts.shape[1]} entries, the block has {self.dim}")
        return slq_density(self.matvec, self.dim, n_starts=int(n_starts), n_steps=int(n_steps), seed=seed,
                           starts=starts)


def curvature(backend, model, params, x, y, kind: str = "ggn", loss="mse",
              block: str | Sequence[str] | None = None) -> Curvature:
    """The curvature matrix ``kind`` (``"hessian"``, ``"ggn"`` or ``"ef"``, the empirical Fisher) of ``model``'s
    ``loss`` (``"mse"`` or ``"cross_entropy"``; the Hessian and the EF also take a loss function) on ``(x, y)`` at
    ``params`` (the backend's arrays), over the trainable parameters or the ``block`` named (a name such as
    ``"W1"`` or a list of names): a :class:`Curvature` with ``.matvec(v)``, ``.dense()``, ``.top_k(k)``,
    ``.trace(method)``, ``.density()``, ``.dim`` and ``.names``.

    >>> c = curvature(be, model, params, x, y, kind="ggn", block="W1")   # doctest: +SKIP
    >>> c.top_k(3).values, c.trace().value                               # doctest: +SKIP
    """
    return Curvature(backend, model, params, x, y, kind=kind, loss=loss, block=block)
