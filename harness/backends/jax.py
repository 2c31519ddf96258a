"""JAX backend. Imports jax only when instantiated; float64 runs inside ``jax.enable_x64(True)`` so x64 never
leaks into the caller's process-wide config. Model functions are ``jax.jit``-compiled once per model and cached."""
from __future__ import annotations

import numpy as np

from ..errors import HarnessError
from ._base import Backend


class JaxOps:
    """The array namespace models and optimisers are written against (jax.numpy flavour)."""

    def __init__(self, jnp, jax):
        self.jnp, self._jax = jnp, jax
        for name in ("matmul", "einsum", "tanh", "sin", "cos", "exp", "log", "sqrt", "arcsinh", "sinh", "cosh",
                     "abs", "sign", "maximum", "minimum", "where", "zeros_like", "ones_like", "stack",
                     "concatenate", "reshape", "outer", "square", "prod", "arange", "clip", "log1p", "expm1"):
            setattr(self, name, getattr(jnp, name))
        self.asinh = jnp.arcsinh
        self.erf = jax.scipy.special.erf
        self.log_softmax = jax.nn.log_softmax
        self.logsumexp = jax.scipy.special.logsumexp

    def sum(self, x, axis=None, keepdims=False):
        """Sum over ``axis`` (an int or tuple; ``None``: every axis, a scalar), numpy-style."""
        return self.jnp.sum(x, axis=axis, keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        """Mean over ``axis`` (an int or tuple; ``None``: every axis, a scalar), numpy-style."""
        return self.jnp.mean(x, axis=axis, keepdims=keepdims)

    def relu(self, x):
        """``max(x, 0)`` elementwise."""
        return self.jnp.maximum(x, 0)

    def heaviside(self, x):
        """1 where ``x > 0``, else 0, in ``x``'s dtype (ReLU's derivative)."""
        return (x > 0).astype(x.dtype)

    def transpose(self, x):
        """Swap the last two axes (a matrix transpose, batched over leading axes)."""
        return self.jnp.swapaxes(x, -1, -2)

    def transpose4(self, x):
        """``(a, b, c, d) -> (a, c, b, d)``: the ``(N1, k, N2, k) -> (N1, N2, k, k)`` of a multi-output NTK."""
        return self.jnp.transpose(x, (0, 2, 1, 3))

    def eye(self, k, like):
        """The ``k x k`` identity in the dtype of the array ``like``."""
        return self.jnp.eye(k, dtype=like.dtype)


class JaxBackend(Backend):
    framework_name = "jax"

    def __init__(self, device: str = "cpu", dtype: str = "float32", train_chunk: int = 0):
        super().__init__(device, dtype, train_chunk)
        try:
            import jax
            import jax.numpy as jnp
        except ImportError as e:
            raise HarnessError(f"backend 'jax' is not installed ({e}); pip install jax") from None
        self.jax, self.jnp = jax, jnp
        platform = "gpu" if device == "cuda" else "cpu"
        try:
            devices = jax.devices(platform)
        except RuntimeError:
            devices = []
        if not devices:
            raise HarnessError(f"device {device!r} not available to jax (no {platform.upper()} backend found)")
        self._device = devices[0]
        self.ops = JaxOps(jnp, jax)

    def _context(self):
        return self.jax.enable_x64(self.dtype == "float64")

    def _asarray(self, x):
        return self.jax.device_put(self.jnp.asarray(x, dtype=self.dtype), self._device)

    def to_numpy(self, x):
        return np.asarray(x)

    def synchronize(self, x=None):
        if x is not None:
            self.jax.block_until_ready(x)
        else:
            self.jax.effects_barrier()

    def _compile(self, key, fn):
        key = (key, self.dtype)
        if key not in self._cache:
            self._cache[key] = self.jax.jit(fn)
        return self._cache[key]

    def _value_and_grad(self, fn):
        return self.jax.value_and_grad(fn)

    def _hvp_fn(self, fn):
        jax = self.jax

        def hvp(trainable, frozen, x, y, tangent):
            g = lambda p: jax.grad(fn)(p, frozen, x, y)
            return jax.jvp(g, (trainable,), (tangent,))[1]
        return hvp

    def _jacobian_ntk(self, f1, f2, trainable, weights):
        jax, jnp = self.jax, self.jnp

        def contract(p):
            j1 = jax.jacrev(f1)(p)
            j2 = j1 if f2 is f1 else jax.jacrev(f2)(p)
            out = 0.0
            for k in p:
                a = j1[k].reshape(j1[k].shape[0], -1)
                b = j2[k].reshape(j2[k].shape[0], -1)
                out = out + weights[k] * (a @ b.T)
            return out
        return contract(trainable)

    def _ntvp_ntk(self, f1, f2, trainable, weights):
        jax, jnp = self.jax, self.jnp

        def kernel(p):
            out2, vjp2 = jax.vjp(f2, p)
            basis = jnp.eye(out2.shape[0], dtype=out2.dtype)
            cot = jax.vmap(lambda e: vjp2(e)[0])(basis)            # rows of J2, as param-shaped tangents
            cot = {k: weights[k] * v for k, v in cot.items()}
            col = jax.vmap(lambda t: jax.jvp(f1, (p,), (t,))[1])(cot)   # (N2, N1) = (J1 J2^T)^T
            return col.T
        return kernel(trainable)

    # -- per-example gradients and the Jacobian (issue 12) ------------------------------------------------------
    def _per_example_grad_fn(self, fn):
        jax = self.jax
        return jax.vmap(jax.grad(fn), in_axes=(None, None, 0, 0))

    def _jacobian_fn(self, f):
        return self.jax.jacrev(f)

    def _example_jacobian_fn(self, f):
        jax = self.jax
        return jax.vmap(jax.jacrev(f), in_axes=(None, None, 0))

    def _run_steps(self, step, key, trainable, frozen, state, x, y, n):
        """With ``train_chunk`` K: the first step, then up to K - 1 more as one ``lax.fori_loop`` per call (the
        trip count traced: one compilation per model, optimizer and loss)."""
        if not self.train_chunk or n < 2:
            return super()._run_steps(step, key, trainable, frozen, state, x, y, n)
        k = (("train-loop", key), self.dtype)
        if k not in self._cache:
            lax = self.jax.lax

            def loop(tr, fr, st, xx, yy, m):
                tr, st, first = step(tr, fr, st, xx, yy)
                tr, st = lax.fori_loop(0, m, lambda i, c: step(c[0], fr, c[1], xx, yy)[:2], (tr, st))
                return tr, st, first
            self._cache[k] = self.jax.jit(loop)
        done, first, i32 = 0, None, self.jnp.int32
        while done < n:
            m = min(self.train_chunk, n - done)
            trainable, state, value = self._cache[k](trainable, frozen, state, x, y, self.jnp.asarray(m - 1, i32))
            first = value if first is None else first
            done += m
        return trainable, state, first

    def iterate(self, key, step, state, n):
        """``n`` applications of ``step`` as one compiled ``lax.fori_loop`` (``n`` traced: one compilation)."""
        with self._context():
            k = (("iterate-loop", key), self.dtype)
            if k not in self._cache:
                lax = self.jax.lax
                self._cache[k] = self.jax.jit(lambda s, m: lax.fori_loop(0, m, lambda i, t: step(t), s))
            return self._cache[k](state, self.jnp.asarray(int(n), dtype=self.jnp.int32))
