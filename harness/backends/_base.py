"""The contract every backend implements, and the backend-neutral parts they share.

A backend turns backend-neutral specs (:mod:`harness.models`, :mod:`harness.optim`, :mod:`harness.losses`) into
computation. Subclasses supply a handful of primitives (array conversion, autodiff, compilation); everything built
from them (argument checks, Hessian spectra, the training loop, history) lives here once.

Public methods take and return NumPy arrays (or dicts of them); ``params`` are the backend's own arrays, made by
:meth:`Backend.init` or :meth:`Backend.load_params`, and exported with :meth:`Backend.export_params`.
"""
from __future__ import annotations

import contextlib
from typing import Callable, NamedTuple

import numpy as np

from ..errors import HarnessError
from ..hessian import Eig, Trace, hutchinson_trace, lanczos_top_eigenvalue, power_top_eigenvalue
from ..losses import get_loss
from ..models import FROZEN, Model, trainable_names
from ..optim import Optimizer

DTYPES = ("float32", "float64")
DEVICES = ("cpu", "cuda")
NTK_METHODS = ("auto", "structured", "jacobian", "ntvp")


class TrainResult(NamedTuple):
    """What :meth:`Backend.train` returns: the trained ``params`` (backend arrays, frozen ones included), the
    ``steps`` at which ``history`` was recorded, and ``history`` (``loss`` and every recorded name, each stacked
    over the recorded steps as a NumPy array)."""
    params: dict            # backend arrays, trained
    steps: np.ndarray       # the steps at which ``history`` was recorded
    history: dict           # name -> np.ndarray stacked over recorded steps


class Backend:
    """Abstract backend. ``get_backend(name, device, dtype)`` returns an instance of a subclass (one per framework,
    ``framework_name`` ``"torch"`` or ``"jax"``) computing on ``device`` (``"cpu"`` or ``"cuda"``) in ``dtype``
    (``"float32"`` or ``"float64"``).

    Its methods take models (:class:`~harness.models.Model`), NumPy inputs and targets, and ``params`` in the
    backend's own arrays (from :meth:`init`, :meth:`init_ensemble` or :meth:`load_params`), and return NumPy arrays
    (or dicts of them). ``ops`` is the backend's array namespace, the one a model's ``apply`` computes with (see
    the ops section). A loss is a name (``"mse"``, ``"cross_entropy"``) or a function ``(outputs, y, ops)``.

    ``train_chunk`` (``get_backend(..., train_chunk=K)``; default 0, off): :meth:`train`'s full-batch steps between
    two records run up to ``K`` at a time in one compiled call (JAX: a ``lax.fori_loop``; torch: ``torch.compile``
    of ``K`` steps, which costs seconds to compile per model and optimizer and pays back over thousands of steps).
    The numbers equal the one-step-per-call default's up to rounding; the claims never set it."""
    framework_name: str = ""

    def __init__(self, device: str = "cpu", dtype: str = "float32", train_chunk: int = 0):
        if isinstance(train_chunk, bool) or not isinstance(train_chunk, (int, np.integer)) or train_chunk < 0:
            raise HarnessError(f"train_chunk must be a non-negative integer, got {train_chunk!r}")
        self.train_chunk = int(train_chunk)
        if dtype not in DTYPES:
            raise HarnessError(f"unknown dtype {dtype!r}; choose float32 or float64")
        if device not in DEVICES:
            raise HarnessError(f"unknown device {device!r}; choose cpu or cuda")
        self.device, self.dtype = device, dtype
        self.np_dtype = np.dtype(dtype)
        self._cache: dict = {}
        self._no_vmap: set = set()          # per-example NTK keys the framework could not vmap (batch Jacobian)

    def __repr__(self):
        return f"<{self.framework_name} backend {self.device} {self.dtype}>"

    # -- primitives a subclass provides -------------------------------------------------------------------------
    ops = None

    def _asarray(self, x):                       # numpy -> backend array on self.device, self.dtype
        raise NotImplementedError

    def to_numpy(self, x) -> np.ndarray:
        """A backend array (or anything array-like) as a NumPy array on the host."""
        raise NotImplementedError

    def synchronize(self):
        """Wait for queued device work (cuda synchronize / block_until_ready)."""

    def _context(self):
        return contextlib.nullcontext()

    def _compile(self, key, fn):
        """Cache (and, where the framework compiles, compile) ``fn`` under ``key``."""
        if key not in self._cache:
            self._cache[key] = fn
        return self._cache[key]

    def _value_and_grad(self, fn: Callable) -> Callable:
        """fn(trainable, *args) -> scalar  ==>  g(trainable, *args) -> (value, grads dict)."""
        raise NotImplementedError

    def _jacobian_ntk(self, f1, f2, trainable, weights):
        raise NotImplementedError

    def _ntvp_ntk(self, f1, f2, trainable, weights):
        raise NotImplementedError

    def _hvp_fn(self, fn: Callable) -> Callable:
        """fn(trainable) -> scalar  ==>  h(trainable, tangent dict) -> Hessian-vector product dict."""
        raise NotImplementedError

    # -- arrays and parameters ----------------------------------------------------------------------------------
    def asarray(self, x, name: str = "x"):
        """NumPy (or list) -> backend array, after checking it is finite."""
        arr = np.asarray(x, dtype=self.np_dtype)
        if not np.all(np.isfinite(arr)):
            raise HarnessError(f"{name} contains NaN or inf")
        with self._context():        # JAX: float64 arrays need x64 on, also when called from outside the backend
            return self._asarray(arr)

    def load_params(self, params: dict) -> dict:
        """Dict of NumPy arrays -> backend parameters."""
        return {k: self.asarray(v, name=f"parameter {k}") for k, v in params.items()}

    def export_params(self, params: dict) -> dict:
        """Backend parameters -> dict of float64 NumPy arrays (loadable by any backend)."""
        return {k: self.to_numpy(v).astype(np.float64) for k, v in params.items()}

    def init(self, model: Model, seed: int) -> dict:
        """Initialise ``model`` from ``seed`` (in NumPy, so every backend gets the same weights)."""
        with self._context():
            return self.load_params(model.init(int(seed)))

    def init_ensemble(self, model: Model, seeds) -> dict:
        """``len(seeds)`` networks stacked on a leading ensemble axis: parameter ``k`` has shape ``(E, *shape)``
        and network ``e`` is exactly ``init(model, seeds[e])``. :class:`MLP` (and any model whose ``apply`` uses
        ``ops.matmul`` on the last two axes) broadcasts over it: ``apply(model, params, x)`` returns
        ``(E, N, k)``, so one task measures a whole ensemble in one batched computation (statistics over many
        networks, e.g. a kurtosis or an output variance). Training and kernels take one network at a time."""
        seeds = [int(s) for s in np.atleast_1d(seeds)]
        if not seeds:
            raise HarnessError("init_ensemble needs at least one seed")
        inits = [model.init(s) for s in seeds]
        with self._context():
            return self.load_params({k: np.stack([p[k] for p in inits]) for k in inits[0]})

    @staticmethod
    def _split(params):
        return ({k: params[k] for k in trainable_names(params)},
                {k: v for k, v in params.items() if k.startswith(FROZEN)})

    def _x(self, x, name="x"):
        if x is None:
            return None
        if isinstance(x, np.ndarray) or isinstance(x, (list, tuple, float, int)):
            return self.asarray(x, name)
        return x

    # -- forward ------------------------------------------------------------------------------------------------
    def apply(self, model: Model, params: dict, x) -> np.ndarray:
        """Model outputs on ``x`` as NumPy."""
        with self._context():
            fn = self._compile(("apply", model), lambda p, xx: model.apply(p, xx, self.ops))
            return self.to_numpy(fn(params, self._x(x)))

    def preactivations(self, model: Model, params: dict, x) -> list:
        """Every layer's pre-activation (models that define ``preactivations``, e.g. :class:`MLP`)."""
        if not hasattr(model, "preactivations"):
            raise HarnessError(f"{type(model).__name__} has no preactivations")
        with self._context():
            fn = self._compile(("pre", model), lambda p, xx: model.preactivations(p, xx, self.ops))
            return [self.to_numpy(h) for h in fn(params, self._x(x))]

    # -- kernels ------------------------------------------------------------------------------------------------
    def ntk(self, model: Model, params: dict, x1, x2=None, method: str = "auto", weights: dict | None = None
            ) -> np.ndarray:
        """Empirical NTK Theta(x1, x2) = J(x1) J(x2)^T over the trainable parameters.

        ``method``: ``structured`` (per-layer Gram factorisation; MLPs), ``jacobian`` (full Jacobian contraction),
        ``ntvp`` (NTK-vector products: vjp then jvp, never materialising J), or ``auto`` (structured when the model
        has it, else jacobian). Returns (N1, N2) for scalar outputs, (N1, N2, k, k) for k outputs.
        ``weights`` (parameter name -> multiplier, e.g. ``model.lr_multipliers("sgd")``) gives the kernel
        J diag(weights) J^T that governs gradient descent with per-layer learning rates (generic paths only).
        """
        if method not in NTK_METHODS:
            raise HarnessError(f"unknown NTK method {method!r}; choose one of {', '.join(NTK_METHODS)}")
        return self.to_numpy(self.ntk_raw(model, params, x1, x2, method, weights))

    def ntk_raw(self, model, params, x1, x2=None, method="auto", weights=None):
        """As :meth:`ntk` but returns the backend array (no host transfer); used by benchmarks."""
        with self._context():
            x1 = self._x(x1, "x1")
            x2 = self._x(x2, "x2")
            if weights is not None and all(float(w) == 1.0 for w in weights.values()):
                weights = None
            if weights is not None and method == "structured":
                raise HarnessError("a weighted NTK has no structured path; use method='jacobian' or 'ntvp'")
            if method in ("auto", "structured") and weights is None:
                fn = self._compile(("sntk", model, x2 is None),
                                   lambda p, a, b: model.structured_ntk(p, a, b, self.ops))
                out = fn(params, x1, x2)
                if out is not None:
                    return out
                if method == "structured":
                    raise HarnessError(f"{type(model).__name__} has no structured NTK; use method='jacobian'")
            trainable, frozen = self._split(params)
            k = model.output_dim
            x2e = x1 if x2 is None else x2
            w = {name: float((weights or {}).get(name, 1.0)) for name in trainable}
            if method != "ntvp":
                k_flat = self._example_jacobian_ntk(model, trainable, frozen, x1, x2, w)
                if k_flat is not None:
                    return self._ntk_shape(k_flat, x1.shape[0], x2e.shape[0], k)
            prim = self._ntvp_ntk if method == "ntvp" else self._jacobian_ntk

            def kern(trainable, frozen, a, b):
                def f(xx):
                    return lambda p: self.ops.reshape(model.apply({**p, **frozen}, xx, self.ops), (-1,))
                return prim(f(a), f(b), trainable, w)
            key = ("gntk", model, prim.__name__, tuple(sorted(w.items())))
            k_flat = self._compile(key, kern)(trainable, frozen, x1, x2e)
            return self._ntk_shape(k_flat, x1.shape[0], x2e.shape[0], k)

    def _ntk_shape(self, k_flat, n1, n2, k):
        """(N1 k, N2 k) -> (N1, N2) for scalar outputs, else (N1, N2, k, k)."""
        if k == 1:
            return self.ops.reshape(k_flat, (n1, n2))
        return self.ops.transpose4(self.ops.reshape(k_flat, (n1, k, n2, k)))

    def _example_jacobian_ntk(self, model, trainable, frozen, x1, x2, weights):
        """The Jacobian-contraction NTK, (N1 k, N2 k), from per-example Jacobians: a vmap over the inputs of the
        Jacobian of one input's outputs (N backward passes over one input each, neural-tangents' ``vmap_axes=0``),
        where the Jacobian of the whole batch's outputs takes N k passes over all N inputs. The same derivatives
        for any model whose outputs for one input do not depend on the others in its batch (every harness model).
        A model whose ``apply`` mixes the batch's inputs gets each input's NTK as if it were alone: a torch
        module's BatchNorm in training mode (``BatchNorm1d`` then fails on one input and the batch route is taken;
        ``BatchNorm2d`` does not fail); put such modules in eval mode, as the adapters ask, or use ``ntvp``.
        ``None`` when the framework cannot vmap the model (a user's torch module with an op functorch does not
        support): the caller falls back to the batch Jacobian."""
        key = ("pe-ntk", model, tuple(sorted(weights.items())), x2 is None)
        if key in self._no_vmap:
            return None
        jac = self._example_jacobians(model)

        def kern(trainable, frozen, a, b):
            ja = jac(trainable, frozen, a)
            jb = ja if b is None else jac(trainable, frozen, b)
            out = 0.0
            for name in ja:
                u = ja[name].reshape(ja[name].shape[0] * ja[name].shape[1], -1)
                v = jb[name].reshape(jb[name].shape[0] * jb[name].shape[1], -1)
                out = out + weights[name] * (u @ v.T)
            return out
        try:
            return self._compile(key, kern)(trainable, frozen, x1, x2)
        except HarnessError:
            raise
        except Exception:                       # noqa: BLE001 - an op the framework cannot vmap: the batch path
            self._no_vmap.add(key)
            return None

    def _example_jacobians(self, model):
        """j(trainable, frozen, x) -> {name: (N, k, *shape)}: every input's own Jacobian, vmapped."""
        k = model.output_dim
        ops = self.ops

        def one(tr, fr, xi):
            return ops.reshape(model.apply({**tr, **fr}, xi[None], ops), (k,))
        return self._example_jacobian_fn(one)

    # -- losses, gradients, Hessians ----------------------------------------------------------------------------
    def _loss_fn(self, model, loss):
        lf = get_loss(loss)
        return lambda trainable, frozen, x, y: lf(model.apply({**trainable, **frozen}, x, self.ops), y, self.ops)

    def loss(self, model: Model, params: dict, x, y, loss="mse") -> float:
        """The loss of ``model`` on ``(x, y)`` (a name of :data:`harness.losses.LOSSES` or a function), a float."""
        with self._context():
            trainable, frozen = self._split(params)
            fn = self._compile(("loss", model, loss), self._loss_fn(model, loss))
            return float(self.to_numpy(fn(trainable, frozen, self._x(x), self._x(y, "y"))))

    def grad(self, model: Model, params: dict, x, y, loss="mse") -> dict:
        """The gradient of the loss over the trainable parameters: ``{name: NumPy array}`` (``frozen/`` ones
        excluded)."""
        with self._context():
            trainable, frozen = self._split(params)
            g = self._compile(("grad", model, loss), self._value_and_grad(self._loss_fn(model, loss)))
            _, grads = g(trainable, frozen, self._x(x), self._x(y, "y"))
            return {k: self.to_numpy(v) for k, v in grads.items()}

    def _flat_hvp(self, model, params, x, y, loss, precondition: dict | None = None):
        """A function flat numpy vector -> flat numpy H v, over trainable params in sorted-name order; with
        ``precondition`` (parameter name -> positive multiplier, 1 where absent), D^1/2 H D^1/2 v instead."""
        trainable, frozen = self._split(params)
        names = sorted(trainable)
        shapes = [tuple(trainable[n].shape) for n in names]
        sizes = [int(np.prod(s)) for s in shapes]
        if precondition is not None:
            unknown = sorted(set(precondition) - set(names))
            if unknown:
                raise HarnessError(f"precondition names {unknown}, not trainable parameters of the model {names}")
            mults = [float(precondition.get(n, 1.0)) for n in names]
            if not all(np.isfinite(u) and u > 0 for u in mults):
                raise HarnessError(f"precondition multipliers must be finite and > 0, got {dict(zip(names, mults))}")
            root = np.concatenate([np.full(z, np.sqrt(u)) for z, u in zip(sizes, mults)])
            inner, dim = self._flat_hvp(model, params, x, y, loss)
            return (lambda v: root * inner(root * np.asarray(v, dtype=np.float64))), dim
        with self._context():
            xb, yb = self._x(x), self._x(y, "y")
        lf = self._loss_fn(model, loss)
        hv = self._compile(("hvp", model, loss), self._hvp_fn(lf))

        def flat(v):
            with self._context():
                parts = np.split(np.asarray(v, dtype=self.np_dtype), np.cumsum(sizes)[:-1])
                tangent = {n: self._asarray(p.reshape(s)) for n, p, s in zip(names, parts, shapes)}
                out = hv(trainable, frozen, xb, yb, tangent)
                return np.concatenate([self.to_numpy(out[n]).ravel() for n in names]).astype(np.float64)
        return flat, int(sum(sizes))

    def hvp(self, model: Model, params: dict, x, y, v, loss="mse") -> np.ndarray:
        """Hessian of the loss (over trainable params, sorted by name, flattened) times the flat vector ``v``."""
        fn, dim = self._flat_hvp(model, params, x, y, loss)
        v = np.asarray(v, dtype=np.float64).ravel()
        if v.shape[0] != dim:
            raise HarnessError(f"v has {v.shape[0]} entries, the model has {dim} trainable parameters")
        return fn(v)

    def hessian_top_eigenvalue(self, model, params, x, y, loss="mse", method="lanczos", tol=1e-3, seed=0,
                               precondition: dict | None = None) -> Eig:
        """Top Hessian eigenvalue: ``lanczos`` (reorthogonalised, residual-bound stop) or ``power``; returns (value, n_hvp).

        ``precondition`` (parameter name -> learning-rate multiplier, e.g. ``model.lr_multipliers("sgd")``): the
        top eigenvalue of D^1/2 H D^1/2, D the diagonal of per-parameter multipliers. Gradient descent with
        per-layer rates lr * D is linearly stable only while lr * lambda_max(D^1/2 H D^1/2) < 2, so this is the
        sharpness that matters when the rates differ by layer (muP); with one global rate it is lambda_max(H)."""
        fn, dim = self._flat_hvp(model, params, x, y, loss, precondition)
        if method == "lanczos":
            return lanczos_top_eigenvalue(fn, dim, tol=tol, seed=seed)
        if method == "power":
            return power_top_eigenvalue(fn, dim, tol=tol, seed=seed)
        raise HarnessError(f"unknown eigenvalue method {method!r}; choose lanczos or power")

    def hessian_trace(self, model, params, x, y, loss="mse", n_samples=32, seed=0) -> Trace:
        """Hutchinson estimate of tr(H) with its standard error."""
        fn, dim = self._flat_hvp(model, params, x, y, loss)
        return hutchinson_trace(fn, dim, n_samples=n_samples, seed=seed)

    # -- training -----------------------------------------------------------------------------------------------
    def train_step_fn(self, model: Model, optimizer: Optimizer, loss="mse"):
        """Compiled step (trainable, frozen, state, x, y) -> (trainable, state, loss value)."""
        mults = model.lr_multipliers(optimizer.kind)
        vg = self._value_and_grad(self._loss_fn(model, loss))

        def step(trainable, frozen, state, x, y):
            value, grads = vg(trainable, frozen, x, y)
            trainable, state = optimizer.update(grads, state, trainable, mults, self.ops)
            return trainable, state, value
        return self._compile(("step", model, optimizer, loss), step)

    def train(self, model: Model, params: dict, x, y, optimizer: Optimizer, steps: int, loss="mse",
              batch_size: int | None = None, seed: int = 0, record: dict | None = None,
              record_every: int = 1) -> TrainResult:
        """Train for ``steps`` steps; full-batch GD unless ``batch_size`` is given (minibatches drawn from ``seed``).

        ``record`` maps names to ``fn(params, step) -> array-like``, evaluated every ``record_every`` steps and at
        the end (params are backend arrays, frozen ones included); the training loss is always recorded as
        ``loss``. The per-layer learning-rate multipliers come from ``model.lr_multipliers(optimizer.kind)``.
        Full-batch steps between records run ``train_chunk`` at a time where the backend was given one (see the
        class); many networks at once: :func:`harness.ensembles.train_ensemble`.
        """
        if isinstance(steps, bool) or int(steps) != steps or steps < 0:
            raise HarnessError(f"steps must be a non-negative integer, got {steps!r}")
        if record_every < 1:
            raise HarnessError("record_every must be >= 1")
        record = dict(record or {})
        with self._context():
            xa, ya = self._x(x), self._x(y, "y")
            n = xa.shape[0] if xa is not None else 1
            if batch_size is not None and not 1 <= batch_size <= n:
                raise HarnessError(f"batch_size must be in 1..{n}, got {batch_size}")
            trainable, frozen = self._split(params)
            state = optimizer.init(trainable, self.ops)
            step = self.train_step_fn(model, optimizer, loss)
            lossfn = self._compile(("loss", model, loss), self._loss_fn(model, loss))
            rng = np.random.default_rng(seed)
            order, pos = None, 0
            steps_rec, hist = [], {"loss": []}
            hist.update({k: [] for k in record})

            full_batch = batch_size is None or batch_size == n

            def snapshot(t, with_loss=True):
                p = {**trainable, **frozen}
                steps_rec.append(t)
                if with_loss:
                    hist["loss"].append(float(self.to_numpy(lossfn(trainable, frozen, xa, ya))))
                for name, fn in record.items():
                    hist[name].append(np.asarray(fn(p, t)))

            t = 0
            while t < int(steps):
                recorded = t % record_every == 0
                if recorded:
                    # full batch: the step's own loss value (at these parameters) is recorded, no second forward
                    snapshot(t, with_loss=not full_batch)
                if full_batch:
                    # every step up to the next record (or the end) at once: the backend may run them in fewer
                    # dispatches (``train_chunk``); the value returned is the first step's
                    m = min(record_every - t % record_every, int(steps) - t)
                    trainable, state, value = self._run_steps(step, (model, optimizer, loss), trainable, frozen,
                                                              state, xa, ya, m)
                else:
                    m = 1
                    if order is None or pos + batch_size > n:
                        order, pos = rng.permutation(n), 0
                    idx = self._index(order[pos:pos + batch_size])
                    pos += batch_size
                    trainable, state, value = step(trainable, frozen, state, xa[idx], ya[idx])
                if recorded and full_batch:
                    hist["loss"].append(float(self.to_numpy(value)))
                t += m
            snapshot(int(steps))
            history = {k: np.stack(v) if v else np.zeros(0) for k, v in hist.items()}
            return TrainResult({**trainable, **frozen}, np.asarray(steps_rec), history)

    def _index(self, idx: np.ndarray):
        return idx

    def _run_steps(self, step, key, trainable, frozen, state, x, y, n: int):
        """``n`` >= 1 full-batch steps of the compiled ``step`` (from :meth:`train_step_fn` for ``key`` = (model,
        optimizer, loss)): ``(trainable, state, the first step's loss value)``. Here one dispatch per step; a
        backend with ``train_chunk`` > 0 runs up to that many steps per dispatch (its own numbers, equal to these
        up to rounding)."""
        trainable, state, first = step(trainable, frozen, state, x, y)
        for _ in range(n - 1):
            trainable, state, _ = step(trainable, frozen, state, x, y)
        return trainable, state, first

    # -- per-example gradients and the Jacobian of the outputs (issue 12) ---------------------------------------
    # Primitives: ``_per_example_grad_fn`` and ``_jacobian_fn``, one per framework (torch.func / jax transforms).
    def _per_example_grad_fn(self, fn: Callable) -> Callable:
        """fn(trainable, frozen, x_i, y_i) -> scalar on ONE example  ==>
        g(trainable, frozen, x, y) -> {name: (N, *shape)}, the gradient of every example's own loss."""
        raise NotImplementedError

    def _jacobian_fn(self, f: Callable) -> Callable:
        """f(trainable, frozen, x) -> outputs (N, k)  ==>  j(trainable, frozen, x) -> {name: (N, k, *shape)}."""
        raise NotImplementedError

    def _example_jacobian_fn(self, f: Callable) -> Callable:
        """f(trainable, frozen, x_i) -> outputs (k,) of ONE input  ==>  j(trainable, frozen, x) -> {name: (N, k,
        *shape)}: a vmap over the inputs of f's Jacobian."""
        raise NotImplementedError

    def _flatten_by_name(self, tree: dict, lead: int) -> np.ndarray:
        """{name: array (lead dims..., *shape)} -> one array (lead dims..., P), names sorted (the HVP's order)."""
        parts = []
        for name in sorted(tree):
            a = self.to_numpy(tree[name])
            parts.append(a.reshape(a.shape[:lead] + (-1,)))
        return np.concatenate(parts, axis=-1)

    def per_example_grads(self, model: Model, params: dict, x, y, loss="mse", flat: bool = False):
        """Per-example gradients: row i is the gradient over the trainable parameters of example i's own loss,
        ``loss(model(x[i:i+1]), y[i:i+1])`` (a batch of one, so for ``"mse"`` g_i = (f_i - y_i) J_i), computed in
        one vectorised pass (vmap of grad), never by a Python loop over examples.

        Returns {name: (N, *shape)} NumPy arrays, or with ``flat=True`` one (N, P) array with the parameters in
        sorted-name order (the order of :meth:`hvp`'s flat vectors). The batch mean of the rows is the gradient of
        the mean loss (:meth:`grad`) for losses that are means over samples (both built-in losses).
        """
        if x is None or y is None:
            raise HarnessError("per-example gradients need inputs x and targets y")
        lf = get_loss(loss)
        with self._context():
            xb, yb = self._x(x), self._x(y, "y")
            if xb.shape[0] != yb.shape[0]:
                raise HarnessError(f"x has {xb.shape[0]} examples, y has {yb.shape[0]}")
            trainable, frozen = self._split(params)

            def one(tr, fr, xi, yi):
                return lf(model.apply({**tr, **fr}, xi[None], self.ops), yi[None], self.ops)
            g = self._compile(("pegrad", model, loss), self._per_example_grad_fn(one))
            out = g(trainable, frozen, xb, yb)
            if flat:
                return self._flatten_by_name(out, 1)
            return {k: self.to_numpy(v) for k, v in out.items()}

    def jacobian(self, model: Model, params: dict, x, flat: bool = False):
        """Jacobian of the outputs with respect to the trainable parameters, d f_a(x_i) / d theta.

        Returns {name: (N, k, *shape)} NumPy arrays, or with ``flat=True`` one (N, k, P) array, parameters in
        sorted-name order. J J^T (over the flat axis) is the empirical NTK (:meth:`ntk`, ``method="jacobian"``).
        Computed per input (a vmap of one input's Jacobian), or, for a model the framework cannot vmap, as the
        Jacobian of the whole batch's outputs.
        """
        with self._context():
            xb = self._x(x)
            trainable, frozen = self._split(params)
            k = model.output_dim

            out = None
            if ("pejac", model) not in self._no_vmap:
                try:                            # every input's own Jacobian, vmapped (see _example_jacobian_ntk)
                    out = self._compile(("pejac", model), self._example_jacobians(model))(trainable, frozen, xb)
                except HarnessError:
                    raise
                except Exception:               # noqa: BLE001 - an op the framework cannot vmap: the batch path
                    self._no_vmap.add(("pejac", model))
            if out is None:
                def f(tr, fr, xx):
                    y = model.apply({**tr, **fr}, xx, self.ops)
                    return self.ops.reshape(y, (y.shape[0], k))
                out = self._compile(("jac", model), self._jacobian_fn(f))(trainable, frozen, xb)
            if flat:
                return self._flatten_by_name(out, 2)
            return {k_: self.to_numpy(v) for k_, v in out.items()}

    # -- Hessian spectrum: top-k eigenpairs and the density (issue 12; numerics in harness.hessian) ---------------
    def hessian_top_k(self, model, params, x, y, k: int = 10, loss="mse", tol: float = 1e-3, seed: int = 0,
                      block_size: int = 1, ncv: int | None = None, which: str = "LA"):
        """The k largest Hessian eigenpairs by (block) Lanczos, each Ritz pair certified by its residual
        (:func:`harness.hessian.lanczos_top_k`); returns ``TopK(values, vectors (P, k), residuals, bound, n_hvp,
        converged)``, vectors in the flat sorted-name order of :meth:`hvp`."""
        from ..hessian import lanczos_top_k
        fn, dim = self._flat_hvp(model, params, x, y, loss)
        if isinstance(k, bool) or int(k) != k or not 1 <= k <= dim:
            raise HarnessError(f"k must be an integer in 1..{dim} (the number of trainable parameters), got {k!r}")
        if isinstance(block_size, bool) or int(block_size) != block_size or not 1 <= block_size <= dim:
            raise HarnessError(f"block_size must be an integer in 1..{dim}, got {block_size!r}")
        if which not in ("LA", "LM"):
            raise HarnessError(f"which must be 'LA' or 'LM', got {which!r}")
        return lanczos_top_k(fn, dim, int(k), tol=tol, seed=seed, block_size=int(block_size), ncv=ncv, which=which)

    def hessian_density(self, model, params, x, y, loss="mse", n_starts: int = 8, n_steps: int = 64,
                        seed: int = 0):
        """Spectral density of the Hessian by stochastic Lanczos quadrature (:func:`harness.hessian.slq_density`):
        ``Density(nodes, weights, dim, n_hvp)``; ``.on_grid(grid, sigma)`` gives the Gaussian-broadened density,
        ``.trace()`` and ``.moment(p)`` the trace and moments with standard errors over the starts."""
        from ..hessian import slq_density
        for name, v in (("n_starts", n_starts), ("n_steps", n_steps)):
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise HarnessError(f"{name} must be a positive integer, got {v!r}")
        fn, dim = self._flat_hvp(model, params, x, y, loss)
        return slq_density(fn, dim, n_starts=int(n_starts), n_steps=int(n_steps), seed=seed)

    # -- iterated maps (the tensor model's training, harness/tensor.py) -----------------------------------------
    def iterate(self, key, step: Callable, state: dict, n: int) -> dict:
        """Apply the pure map ``step(state) -> state`` (a dict of backend arrays, written with ``ops``) ``n``
        times; ``key`` names the map for the compile cache (it must determine ``step``). Default: a Python loop
        over the compiled step; a backend that can compile loops (JAX) runs the ``n`` steps as one dispatch."""
        with self._context():
            fn = self._compile(("iterate", key), step)
            for _ in range(int(n)):
                state = fn(state)
            return state
