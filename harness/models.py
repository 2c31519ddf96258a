"""Backend-neutral model specs.

A model is *parameters plus a pure apply function*: ``init(seed) -> {name: numpy array}`` and
``apply(params, x, ops) -> outputs``, where ``ops`` is the backend's array namespace (``backend.ops``). Parameters
are created in NumPy from an explicit seed, so the same weights run on every backend. Names starting with
``frozen/`` are constants (not trained, not differentiated): centring keeps ``w0`` there.

- :class:`MLP`: fully connected net in a named parametrisation (required), with its per-layer learning-rate
  multipliers, a structured NTK (per-layer Gram factorisation) and its analytic infinite-width kernels beside it.
- :class:`FunctionModel`: any model from an ``init`` and an ``apply`` function (diagonal nets, tensor models...).
- :func:`output_scaled`: ``alpha * (f(w) - f(w0))`` (centred) or ``alpha * f(w)``, Chizat's lazy-training setting.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .activations import get_activation
from .errors import HarnessError
from .parametrisation import check_init_dist, draw, gaussian_first_layer, get_parametrisation

FROZEN = "frozen/"


def trainable_names(params) -> list[str]:
    return sorted(k for k in params if not k.startswith(FROZEN))


class Model:
    """Interface every model implements. Subclasses set ``output_dim`` (the number of outputs ``k``) and implement
    ``init`` and ``apply``; ``lr_multipliers`` and ``structured_ntk`` are optional. A backend
    (:class:`~harness.backends._base.Backend`) does the rest: it loads the parameters, compiles ``apply`` and
    differentiates it. A model must be hashable (backends cache compiled functions by model): a frozen dataclass
    is."""
    output_dim: int = 1

    def init(self, seed: int) -> dict:
        """The parameters drawn from ``seed``: ``{name: numpy array}``, in NumPy, so every backend gets the same
        weights (:meth:`Backend.init` loads them). Names starting with ``frozen/`` are constants: not trained, not
        differentiated."""
        raise NotImplementedError

    def apply(self, params, x, ops):
        """The outputs on inputs ``x`` (``(N, input_dim)``, or ``None`` for a model without inputs), ``(N,
        output_dim)`` for ``N`` inputs: a pure function of ``params`` (the backend's arrays, by name) written with
        ``ops`` only (the backend's array namespace, see the ops section), so it runs, compiles and differentiates
        on every backend."""
        raise NotImplementedError

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        """Per-parameter learning-rate multipliers (default: 1 for every trainable parameter)."""
        return {}

    def structured_ntk(self, params, x1, x2, ops):
        """Fast NTK if the model has one (returns None otherwise)."""
        return None


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise HarnessError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class MLP(Model):
    """Fully connected net: ``depth`` hidden layers of ``width`` units, then a linear readout. ``depth=0`` is the
    linear model ``x @ W0`` (no hidden layer; ``width`` is unused), e.g. a "no hidden layer" control.

    Ensembles: parameters stacked on a leading axis (``Backend.init_ensemble``) run as one batched computation;
    ``apply`` and ``preactivations`` then return ``(E, N, ...)``, network by network equal to the single ones.

    Layer l computes ``h_l = mult_l * (x_{l-1} @ W_l) + bias_mult_l * b_l`` and ``x_l = phi(h_l)``; the scales come
    from the parametrisation's abc-table (see :mod:`harness.parametrisation`) relative to ``base_width``.
    ``weight_std`` defaults to the activation's natural value (sqrt 2 for ReLU, 1 otherwise).
    ``zero_readout`` initialises the readout at zero (muP's variant). ``init_dist`` is the distribution the
    weights are drawn from (the std stays the table's): ``"normal"`` (default), ``"uniform"``, ``"rademacher"``, a
    sampler ``(rng, shape) -> array``, or a mapping by layer kind (``{"input": "rademacher", "bias": "uniform"}``;
    :mod:`harness.parametrisation`).
    """
    input_dim: int
    width: int
    depth: int
    parametrisation: str
    activation: str = "relu"
    output_dim: int = 1
    bias: bool = False
    weight_std: float | None = None
    bias_std: float = 0.1
    base_width: int = 1
    zero_readout: bool = False
    init_dist: object = "normal"

    def __post_init__(self):
        object.__setattr__(self, "init_dist", check_init_dist(self.init_dist, "MLP"))
        for name in ("input_dim", "width", "output_dim", "base_width"):
            _check_positive_int(name, getattr(self, name))
        if isinstance(self.depth, bool) or not isinstance(self.depth, (int, np.integer)) or self.depth < 0:
            raise HarnessError(f"depth must be a non-negative integer (0: a linear model), got {self.depth!r}")
        get_parametrisation(self.parametrisation)
        get_activation(self.activation)
        if self.bias_std < 0 or (self.weight_std is not None and self.weight_std <= 0):
            raise HarnessError("weight_std must be > 0 and bias_std >= 0")

    # -- scales -------------------------------------------------------------------------------------------------
    @property
    def s_w(self) -> float:
        """The weight std in use: ``weight_std``, or the activation's natural value when it is ``None``."""
        return float(self.weight_std if self.weight_std is not None else get_activation(self.activation).default_weight_std)

    def layers(self):
        """[(kind, fan_in, fan_out)] for the depth + 1 weight matrices."""
        out = []
        for l in range(self.depth + 1):
            fan_in = self.input_dim if l == 0 else self.width
            fan_out = self.output_dim if l == self.depth else self.width
            kind = "input" if l == 0 else ("output" if l == self.depth else "hidden")
            out.append((kind, fan_in, fan_out))
        return out

    def scales(self):
        """Per layer: (weight LayerScales, bias LayerScales). Computed once per model (eager torch runs the forward
        every step, where rebuilding them cost ~15% of a small net's training step)."""
        return self._scales

    @functools.cached_property
    def _scales(self):
        p = get_parametrisation(self.parametrisation)
        res = []
        for kind, fan_in, _ in self.layers():
            w = p.layer(kind, fan_in, self.s_w, self.width, self.base_width)
            # the readout's bias has no infinite dimension (fan-out = output_dim): its own kind
            b = p.layer("output_bias" if kind == "output" else "bias", 1, self.bias_std, self.width,
                        self.base_width)
            res.append((w, b))
        return tuple(res)

    # -- the model ----------------------------------------------------------------------------------------------
    def init(self, seed: int) -> dict:
        rng = np.random.default_rng(seed)
        params = {}
        for l, ((kind, fan_in, fan_out), (ws, bs)) in enumerate(zip(self.layers(), self.scales())):
            std = 0.0 if (kind == "output" and self.zero_readout) else ws.init_std
            params[f"W{l}"] = draw(rng, (fan_in, fan_out), std, self.init_dist, kind)
            if self.bias:
                params[f"b{l}"] = draw(rng, (fan_out,), bs.init_std, self.init_dist,
                                       "output_bias" if kind == "output" else "bias")
        return params

    def _forward(self, params, x, ops):
        act = get_activation(self.activation)
        scales = self.scales()
        xs, hs = [x], []
        for l in range(self.depth + 1):
            ws, bs = scales[l]
            # a multiplier of exactly 1 (standard, muP) is skipped: the same numbers, and eager torch saves a
            # kernel and its backward per layer
            w = params[f"W{l}"]
            if self.bias and w.ndim == 2 and xs[-1].ndim == 2 and hasattr(ops, "affine"):
                # one network: a backend's fused w_mult (x @ W) + b_mult b (torch's addmm: one kernel and one
                # backward node instead of up to four of each)
                h = ops.affine(xs[-1], w, params[f"b{l}"], ws.multiplier, bs.multiplier)
            else:
                h = ops.matmul(xs[-1], w)
                if ws.multiplier != 1.0:
                    h = ws.multiplier * h
                if self.bias:
                    b = params[f"b{l}"]
                    b = b[:, None, :] if b.ndim == 2 else b                       # (E, n) under an ensemble
                    h = h + (b if bs.multiplier == 1.0 else bs.multiplier * b)
            hs.append(h)
            if l < self.depth:
                xs.append(act.fn(ops, h))
        return xs, hs

    def apply(self, params, x, ops):
        return self._forward(params, x, ops)[1][-1]

    def preactivations(self, params, x, ops):
        """Pre-activations of every layer, the readout last."""
        return self._forward(params, x, ops)[1]

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        mults = {}
        for l, (ws, bs) in enumerate(self.scales()):
            mults[f"W{l}"] = ws.lr(optimizer_kind)
            if self.bias:
                mults[f"b{l}"] = bs.lr(optimizer_kind)
        return mults

    def structured_ntk(self, params, x1, x2, ops):
        """Empirical NTK by per-layer Gram factorisation.

        d f_a / d W_l = mult_l * x_{l-1} (x) delta_{l,a}, with delta_l = d f / d h_l, so
        Theta(x, x') = sum_l mult_l^2 <x_{l-1}, x'_{l-1}> <delta_l, delta'_l> (+ bias_mult_l^2 <delta_l, delta'_l>).
        Returns (N1, N2) for scalar output, (N1, N2, k, k) otherwise. Cost: O(N n^2 L + N^2 n L), no Jacobian.

        For speed: x1 and x2 go through one forward and one backward pass as a single batch; the backward pass runs
        on 2-D (N k, n) matrices (one GEMM per layer, not N batched GEMVs); and the scalar layer multipliers are
        carried as a running product and applied to the small (N1, N2) Grams instead of every (N, n) delta.
        """
        act = get_activation(self.activation)
        scales = self.scales()
        k, depth = self.output_dim, self.depth
        n1 = x1.shape[0]
        x = x1 if x2 is None else ops.concatenate([x1, x2], axis=0)
        n = x.shape[0]
        xs, hs = self._forward(params, x, ops)

        def halves(a):
            return (a, a) if x2 is None else (a[:n1], a[n1:])

        def gram(a):
            a1, a2 = halves(a)
            return ops.matmul(a1, ops.transpose(a2))

        # Layer-l terms: Gram of the layer's input times Gram of its output delta. The deltas are kept unscaled:
        # delta_l = c_l * d_l with c_l the product of the forward multipliers above layer l (a scalar).
        ws_out, bs_out = scales[depth]
        total = ws_out.multiplier ** 2 * gram(xs[depth])                       # readout: delta = identity
        if self.bias:
            total = total + bs_out.multiplier ** 2
        if k > 1:
            total = total[:, :, None, None] * ops.eye(k, like=total)[None, None]
        d, c = None, 1.0
        for l in range(depth - 1, -1, -1):
            w_next = params[f"W{l + 1}"]
            c = c * scales[l + 1][0].multiplier
            phi_d = act.deriv(ops, hs[l])                                       # (N, n)
            if d is None:   # from the readout: d f_a / d x_l = mult_L * W_L[:, a]
                d = ops.transpose(w_next)[None, :, :] * phi_d[:, None, :] if k > 1 else w_next[:, 0] * phi_d
            elif k == 1:
                d = ops.matmul(d, ops.transpose(w_next)) * phi_d               # (N, n)
            else:
                width = w_next.shape[0]
                back = ops.matmul(ops.reshape(d, (n * k, d.shape[-1])), ops.transpose(w_next))
                d = ops.reshape(back, (n, k, width)) * phi_d[:, None, :]        # (N, k, n)
            ws, bs = scales[l]
            coef = ws.multiplier ** 2 * gram(xs[l])
            if self.bias:
                coef = coef + bs.multiplier ** 2
            if k == 1:
                term = (c * c) * coef * gram(d)
            else:
                d1, d2 = halves(d)
                m1, m2 = d1.shape[0], d2.shape[0]
                dg = ops.matmul(ops.reshape(d1, (m1 * k, d1.shape[-1])),
                                ops.transpose(ops.reshape(d2, (m2 * k, d2.shape[-1]))))
                dg = ops.transpose4(ops.reshape(dg, (m1, k, m2, k)))           # (N1, N2, k, k)
                term = ((c * c) * coef)[:, :, None, None] * dg
            total = total + term
        return total

    def analytic_kernels(self, x1, x2=None):
        """Infinite-width (NNGP, NTK) of this architecture in the NTK parametrisation (numpy, float64). Gaussian
        first-layer weights and biases are assumed: another ``init_dist`` for them is refused (use
        :mod:`harness.montecarlo`'s kernels)."""
        from .analytic import mlp_kernels
        if not gaussian_first_layer(self.init_dist):
            raise HarnessError("MLP.analytic_kernels assumes normal input-layer weights and biases (init_dist "
                               f"{self.init_dist!r}); use harness.montecarlo's Monte Carlo kernels")
        return mlp_kernels(x1, x2, depth=self.depth, activation=self.activation,
                           weight_std=self.s_w, bias_std=self.bias_std if self.bias else 0.0)


@dataclass(frozen=True, eq=False)
class FunctionModel(Model):
    """Any model given as an ``init(seed) -> dict of numpy arrays`` and a pure ``apply(params, x, ops)``.

    - ``name``: identifies the model (in cache keys and messages); two FunctionModels are equal only when they are
      the same object, so build one per model, not one per call.
    - ``init_fn(seed: int) -> {name: array-like}``: the parameters drawn from ``seed`` (use
      ``np.random.default_rng(seed)``); :meth:`init` returns them as float64 NumPy arrays. A name starting with
      ``frozen/`` is a constant (not trained, not differentiated).
    - ``apply_fn(params, x, ops) -> outputs``: ``params`` the backend's arrays under the same names, ``x`` the
      inputs ``(N, d)`` (``None`` for models without inputs, e.g. a tensor decomposition, whose output is the
      tensor itself), ``ops`` the backend's array namespace (see the ops section: ``ops.matmul``, ``ops.sum``,
      ``ops.tanh``...). It must be pure and use only ``ops`` (never torch or jax), so it runs and differentiates
      on every backend. Outputs are ``(N, output_dim)`` for ``N`` inputs.
    - ``output_dim``: the number of outputs ``k``.
    - ``lr``: optional ``{parameter name: learning-rate multiplier}`` (1 where absent), what
      :meth:`lr_multipliers` returns for SGD and Adam alike.
    """
    name: str
    init_fn: Callable
    apply_fn: Callable
    output_dim: int = 1
    lr: dict = field(default_factory=dict)

    def init(self, seed: int) -> dict:
        return {k: np.asarray(v, dtype=float) for k, v in self.init_fn(seed).items()}

    def apply(self, params, x, ops):
        return self.apply_fn(params, x, ops)

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        return dict(self.lr)


@dataclass(frozen=True)
class OutputScaled(Model):
    """``alpha * (f(w) - f(w0))`` when ``centered`` (w0 kept frozen in the params), else ``alpha * f(w)``."""
    inner: Model
    alpha: float
    centered: bool = True

    @property
    def output_dim(self):
        """The inner model's ``output_dim``."""
        return self.inner.output_dim

    def init(self, seed: int) -> dict:
        p = self.inner.init(seed)
        if self.centered:
            p.update({FROZEN + k: v.copy() for k, v in list(p.items())})
        return p

    def _split(self, params):
        live = {k: v for k, v in params.items() if not k.startswith(FROZEN)}
        frozen = {k[len(FROZEN):]: v for k, v in params.items() if k.startswith(FROZEN)}
        return live, frozen

    def apply(self, params, x, ops):
        live, frozen = self._split(params)
        out = self.inner.apply(live, x, ops)
        if self.centered:
            out = out - self.inner.apply(frozen, x, ops)
        return self.alpha * out

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        return self.inner.lr_multipliers(optimizer_kind)

    def structured_ntk(self, params, x1, x2, ops):
        k = self.inner.structured_ntk(self._split(params)[0], x1, x2, ops)
        return None if k is None else self.alpha ** 2 * k


def output_scaled(model: Model, alpha: float, centered: bool = True) -> OutputScaled:
    """``model``'s output times ``alpha`` (> 0), centred at initialisation by default: ``alpha * (f(w) - f(w0))``
    (Chizat, Oyallon & Bach 2019's lazy-training setting; ``w0`` kept as ``frozen/`` parameters), or
    ``alpha * f(w)`` with ``centered=False``. See :class:`OutputScaled`."""
    if not alpha > 0:
        raise HarnessError(f"output scale alpha must be > 0, got {alpha!r}")
    return OutputScaled(model, float(alpha), centered)
