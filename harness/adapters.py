"""Your own model as a harness model (issue 23): a torch ``nn.Module``, a flax linen module and its variables, a
flax nnx module, an equinox module, or any JAX pytree with a pure apply function becomes a
:class:`~harness.models.Model`, so every :class:`~harness.backends._base.Backend` method (NTK by every generic
method, Jacobian, per-example gradients, loss, gradient, HVP, Hessian top eigenvalue, top-k, trace and density,
training with SGD or Adam, ensembles) runs on it::

    from harness import get_backend, adam
    from harness.adapters import from_torch

    model = from_torch(net)                      # net: a torch.nn.Module mapping (N, ...) inputs to (N, k)
    be = get_backend("torch", dtype="float64")   # a torch module runs on the torch backend, a JAX one on jax
    params = be.init(model, 0)                   # {"0.weight": ..., "frozen/1.running_mean": ...}: net's weights
    be.ntk(model, params, x); be.hessian_top_k(model, params, x, y, k=5); be.train(model, params, x, y, adam(1e-3), 100)

- :func:`from_torch` ``(module)``: parameters by ``module.named_parameters()`` ("0.weight",
  "attn.in_proj_weight"), buffers (BatchNorm's running statistics) and parameters with ``requires_grad=False`` as
  ``frozen/`` constants; the forward is ``torch.func.functional_call``, in whatever train/eval mode the module was
  left in.
- :func:`from_flax` ``(model, variables)``: a flax linen module and the variables of ``model.init``; parameters
  by their path in ``variables["params"]`` ("params/Dense_0/kernel"), every other collection (``batch_stats``)
  ``frozen/``; the forward is ``model.apply(variables, x, **apply_kwargs)``.
- :func:`from_nnx` ``(model)``: a flax nnx module; ``nnx.Param`` variables by path ("linear1/kernel"), other float
  variables (``BatchStat``) ``frozen/``, anything else (RNG keys and counts) kept as it is; the forward is
  ``nnx.merge(graphdef, state)(x)``.
- :func:`from_equinox` ``(model)``: ``eqx.partition(model, eqx.is_inexact_array)``; the float arrays by path
  ("layers/0/weight"), the rest (functions, ints, static fields) kept as it is; the forward is
  ``jax.vmap(eqx.combine(params, static))(x)`` (equinox modules take one example; ``per_example=False`` for one
  that takes the batch).
- :func:`from_jax` ``(apply_fn, params)``: any pytree of float arrays and a pure ``apply_fn(params, x) -> (N, k)``;
  names from the key paths ("w1", "layers/0/b").

Common keywords: ``name`` (messages and cache keys; default the module's class name), ``output_dim`` (``k``;
default: inferred from ``example_input`` by one forward pass when given, else from the module where it says so,
a torch module's last submodule with ``out_features`` or an equinox module's ``out_size``/``out_features``;
checked against the outputs on every call either way), ``lr`` (``{parameter name: learning-rate multiplier}``,
what :meth:`~harness.models.Model.lr_multipliers` returns), ``frozen`` (names, or prefixes ending in "/" or ".",
of parameters to keep constant besides the buffers) and ``reinit``.

**What the seed means.** ``init(seed)`` returns the weights the module holds when it is adapted (a snapshot, as
float64 NumPy), **for every seed**: the adapter measures the user's network as given, not a fresh draw. Pass
``reinit``, a function ``seed -> `` a new module (torch, nnx, equinox), new ``variables`` (flax) or new params
(:func:`from_jax`) of the same structure, to draw fresh weights per seed instead (``Backend.init_ensemble`` then
gives distinct networks); its names and shapes are checked against the adapted module's.

**dtype.** The module runs on the backend's arrays: parameters, buffers and inputs in the backend's dtype
(float64 under ``get_backend(..., dtype="float64")``, whatever the module was built in); integer and boolean
buffers are cast back to their own dtype inside the forward.

**Ensembles.** Parameters with leading axes in front of the module's own shapes (``Backend.init_ensemble``'s
``(E, *shape)``, :func:`harness.transfer.stack_params`' ``(L, 1, n)``) run as a vmap of the forward over the
members: ``apply`` returns ``(E, N, k)``, member by member equal to the single network. So batched Monte Carlo
kernels (:func:`harness.monte_carlo_kernels`) and the batched learning-rate grid
(:func:`harness.transfer.train_lr_grid`) work; kernels, Hessians and ``train`` take one network at a time, as for
every harness model.

**Checks** (one-line :class:`~harness.errors.HarnessError` naming the model): a torch model on the jax backend or
a JAX one on torch, before anything is measured (the model's ``backend`` attribute says which it needs; its
``framework`` is the library: "torch", "flax", "nnx", "equinox" or "jax", what :func:`harness.widths.parametrise`
reads for the layout); an output that is not one array (a tuple, a dict) or is not ``(N, output_dim)``; a pytree
leaf that is not a float array; a parameter of the wrong shape.

This module imports no framework: each adapter imports its backend's module (``harness.backends.torch_adapters``,
``harness.backends.jax_adapters``) by name when called, and only when the object can be of that framework (its
module is already imported), as einops finds backends.
"""
from __future__ import annotations

import importlib
import math
import sys
from typing import Callable

import numpy as np

from .errors import HarnessError
from .models import FROZEN, Model

ADAPTER_MODULES = {"torch": "harness.backends.torch_adapters", "jax": "harness.backends.jax_adapters"}


class Entry:
    """One array of the adapted model: its harness ``key`` (``frozen/`` prefixed when constant), the module's own
    ``name`` for it, its ``shape`` and its own ``dtype`` (a NumPy dtype name: integer buffers are cast back to it)."""
    __slots__ = ("key", "name", "shape", "dtype")

    def __init__(self, key, name, shape, dtype):
        self.key, self.name, self.shape, self.dtype = key, name, tuple(int(s) for s in shape), str(dtype)

    def __repr__(self):
        return f"Entry({self.key!r}, {self.shape})"


class AdaptedModel(Model):
    """A user's module as a harness :class:`~harness.models.Model` (the base of every adapter; the framework part,
    ``_forward``, ``_vmap`` and ``_is_array``, lives in ``harness.backends.torch_adapters`` / ``jax_adapters``).

    ``name``: the model's name in messages; ``framework``: the library ("torch", "flax", "nnx", "equinox",
    "jax"); ``backend``: the harness backend that runs it ("torch" or "jax"); ``output_dim``: ``k``. Two adapted
    models are equal only when they are the same object (backends cache compiled functions by model)."""
    framework: str = ""
    backend: str = ""

    def __init__(self, name: str, entries: list, weights: dict, output_dim: int, *, lr=None, reinit=None):
        self.name = name
        self.entries = tuple(entries)
        self._weights = weights
        self._reinit = reinit
        if isinstance(output_dim, bool) or not isinstance(output_dim, (int, np.integer)) or output_dim < 1:
            raise HarnessError(f"model {name!r}: output_dim must be a positive integer, got {output_dim!r}")
        self.output_dim = int(output_dim)
        trainable = {e.key for e in self.entries if not e.key.startswith(FROZEN)}
        lr = dict(lr or {})
        unknown = sorted(set(lr) - trainable)
        if unknown:
            raise HarnessError(f"model {name!r}: lr names {unknown}, not trainable parameters of the model "
                               f"(they are {sorted(trainable)[:8]}{'...' if len(trainable) > 8 else ''})")
        for k, v in lr.items():
            if not (isinstance(v, (int, float, np.floating)) and math.isfinite(v) and v > 0):
                raise HarnessError(f"model {name!r}: lr multiplier of {k!r} must be a finite number > 0, got {v!r}")
        self._lr = {k: float(v) for k, v in lr.items()}

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}: {self.framework}, output_dim={self.output_dim}>"

    # -- the Model interface ------------------------------------------------------------------------------------
    def init(self, seed: int) -> dict:
        """The module's weights as float64 NumPy, by harness name: the weights it held when adapted, **for every
        seed**, or, with ``reinit``, those of ``reinit(seed)`` (checked to have the same names and shapes)."""
        if self._reinit is None:
            return {k: v.copy() for k, v in self._weights.items()}
        fresh = self._snapshot(self._fresh(int(seed)))
        if set(fresh) != set(self._weights):
            odd = sorted(set(fresh) ^ set(self._weights))
            raise HarnessError(f"model {self.name!r}: reinit({seed}) gave other parameters than the adapted module "
                               f"(these differ: {odd[:5]})")
        for k, v in fresh.items():
            if v.shape != self._weights[k].shape:
                raise HarnessError(f"model {self.name!r}: reinit({seed}) gave {k} of shape {v.shape}, the adapted "
                                   f"module's is {self._weights[k].shape}")
        return fresh

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        """The ``lr`` given to the adapter (the same for SGD and Adam); 1 for every other parameter."""
        return dict(self._lr)

    def apply(self, params, x, ops):
        """The module's outputs ``(N, output_dim)`` on ``x`` (``(E, N, output_dim)`` for an ensemble), with its
        weights and buffers replaced by ``params``; refuses the other framework's backend first."""
        self._check_backend(ops)
        if x is None:
            raise HarnessError(f"model {self.name!r} needs inputs x (got None)")
        arrays, axes, members = self._gather(params)
        if members is None:
            out = self._forward(arrays, x)
        else:
            out = self._vmap(self._forward, arrays, axes, x)
        return self._check_output(out, x.shape[0], members)

    # -- helpers shared by every framework ------------------------------------------------------------------------
    def _snapshot(self, obj) -> dict:
        """``{harness name: float64 NumPy}`` of a module of the same structure (the framework's part)."""
        raise NotImplementedError

    def _fresh(self, seed: int):
        """``reinit(seed)`` (a framework may pin the state it runs in, so every caller gets the same draw)."""
        return self._reinit(seed)

    def _forward(self, arrays: dict, x):
        """The module on one network's ``{module name: array}`` (framework part)."""
        raise NotImplementedError

    def _vmap(self, fn, arrays, axes, x):
        """``fn`` vmapped over the members (``axes``: 0 or None per module name; framework part)."""
        raise NotImplementedError

    def _is_array(self, out) -> bool:
        raise NotImplementedError

    def _cast(self, value, entry):
        """``value`` in the entry's own dtype when that is not a float (integer or boolean buffers)."""
        return value

    def _check_backend(self, ops):
        fw = "torch" if hasattr(ops, "torch") else ("jax" if hasattr(ops, "jnp") else None)
        if fw is not None and fw != self.backend:
            raise HarnessError(f"model {self.name!r} is a {self.framework} module: it runs on the {self.backend} "
                               f"backend, not on {fw} (get_backend({self.backend!r}, ...))")

    def _gather(self, params):
        """``({module name: array}, {module name: 0 or None}, members or None)``: each parameter in the module's
        own shape, or, with leading ensemble axes, reshaped to ``(E, *shape)``."""
        values, leads = {}, {}
        for e in self.entries:
            try:
                v = params[e.key]
            except KeyError:
                raise HarnessError(f"model {self.name!r}: parameter {e.key!r} is missing from params") from None
            shape, own = tuple(v.shape), len(e.shape)
            if shape != e.shape and (len(shape) <= own or shape[len(shape) - own:] != e.shape):
                raise HarnessError(f"model {self.name!r}: parameter {e.key!r} has shape {shape}, the module's is "
                                   f"{e.shape} (or (members, *shape) for an ensemble)")
            values[e.name], leads[e.name] = v, (None if shape == e.shape else int(np.prod(shape[:len(shape) - own])))
        # the torch backend loads a 0-d array as shape (1,) (np.ascontiguousarray): a 0-d parameter of shape (1,)
        # is a single network's unless the others say there is an ensemble of one
        scalar_ones = {e.name for e in self.entries if e.shape == () and leads[e.name] == 1}
        counts = {m for n, m in leads.items() if m is not None and n not in scalar_ones}
        if len(counts) > 1:
            raise HarnessError(f"model {self.name!r}: ensemble parameters disagree on the number of members "
                               f"({sorted(counts)})")
        members = counts.pop() if counts else None
        arrays, axes = {}, {}
        for e in self.entries:
            v, m = values[e.name], leads[e.name]
            if e.name in scalar_ones and members is None:
                v, m = v.reshape(()), None
            if m is not None and members is None:
                members = m
            arrays[e.name] = self._cast(v if m is None else v.reshape((m,) + e.shape), e)
            axes[e.name] = None if m is None else 0
        return arrays, axes, members

    def _check_output(self, out, n, members):
        if not self._is_array(out):
            raise HarnessError(f"model {self.name!r}: the module returned a {type(out).__name__}, not one array of "
                               f"outputs (N, k); wrap it so that it returns the output array")
        k = self.output_dim
        lead = () if members is None else (members,)
        shape = tuple(out.shape)
        if shape == lead + (n, k):
            return out
        if k == 1 and shape == lead + (n,):
            return out.reshape(lead + (n, 1))
        raise HarnessError(f"model {self.name!r}: the module's outputs have shape {shape}, not {lead + (n, k)} "
                           f"(N={n}, output_dim={k}); pass output_dim= or make it return (N, k)")


# -- the front: one function per kind of model, each importing its backend's module by name -------------------------
def _adapter_module(framework: str, library: str, what: str, obj):
    """The backend's adapter module, imported by name, after checking ``obj`` can be a ``library`` object at all
    (its library is already imported when the user built one)."""
    root = library.split(".")[0]
    if root not in sys.modules:
        raise HarnessError(f"{what} needs a {library} model, got {type(obj).__name__} ({library} is not imported)")
    try:
        return importlib.import_module(ADAPTER_MODULES[framework])
    except ImportError as e:        # pragma: no cover - the library imported, so its backend's module does
        raise HarnessError(f"{what}: {framework} cannot be imported ({e})") from None


def from_torch(module, *, name: str | None = None, output_dim: int | None = None, example_input=None,
               lr: dict | None = None, frozen=(), reinit: Callable | None = None) -> AdaptedModel:
    """A ``torch.nn.Module`` as a harness model (runs on the torch backend).

    Parameters by their ``named_parameters()`` names ("0.weight", "attn.in_proj_weight"); buffers
    (``named_buffers()``: BatchNorm's running statistics) and parameters with ``requires_grad=False`` or named in
    ``frozen`` as ``frozen/<name>`` constants. The forward is ``torch.func.functional_call(module, arrays, (x,))``
    in the train/eval mode the module is in (``module.eval()`` first for BatchNorm's running statistics and no
    dropout; a buffer the forward updates in place is updated on a copy, never on ``params``; in training mode a
    BatchNorm's batch statistics are one input's in the Jacobian NTK, which is computed per input). ``x`` reaches the
    module as given (e.g. ``(N, C, H, W)`` images); the output must be one tensor ``(N, k)`` (or ``(N,)``, k = 1).
    ``init(seed)`` is the module's current weights for every seed (``reinit``: ``seed -> new module`` for fresh
    ones). See :mod:`harness.adapters` for ``output_dim``, ``example_input``, ``lr``, ``frozen``."""
    mod = _adapter_module("torch", "torch", "from_torch", module)
    return mod.adapt_torch(module, name=name, output_dim=output_dim, example_input=example_input, lr=lr,
                           frozen=frozen, reinit=reinit)


def from_flax(model, variables, *, name: str | None = None, output_dim: int | None = None, example_input=None,
              lr: dict | None = None, frozen=(), reinit: Callable | None = None,
              apply_kwargs: dict | None = None) -> AdaptedModel:
    """A flax linen module and its ``variables`` (from ``model.init``) as a harness model (runs on the jax
    backend).

    Parameters by path ("params/Dense_0/kernel"); every collection but ``params`` (``batch_stats``...) and the
    names in ``frozen`` as ``frozen/<path>``. The forward is ``model.apply(variables, x, **apply_kwargs)``
    (e.g. ``apply_kwargs={"train": False}``); it must not need a mutable collection (a BatchNorm with
    ``use_running_average=False`` does). ``reinit``: ``seed -> new variables``."""
    mod = _adapter_module("jax", "flax", "from_flax", model)
    return mod.adapt_flax(model, variables, name=name, output_dim=output_dim, example_input=example_input, lr=lr,
                          frozen=frozen, reinit=reinit, apply_kwargs=apply_kwargs)


def from_nnx(model, *, name: str | None = None, output_dim: int | None = None, example_input=None,
             lr: dict | None = None, frozen=(), reinit: Callable | None = None) -> AdaptedModel:
    """A flax nnx module as a harness model (runs on the jax backend): ``nnx.split(model, nnx.Param, ...)``; the
    ``Param`` variables by path ("linear1/kernel"), the other float variables (``BatchStat``) and the names in
    ``frozen`` as ``frozen/<path>``, non-float state (RNG keys and counts) kept as it is. The forward is
    ``nnx.merge(graphdef, ...)(x)``; state the call mutates is discarded. ``reinit``: ``seed -> new module``."""
    mod = _adapter_module("jax", "flax", "from_nnx", model)
    return mod.adapt_nnx(model, name=name, output_dim=output_dim, example_input=example_input, lr=lr,
                         frozen=frozen, reinit=reinit)


def from_equinox(model, *, name: str | None = None, output_dim: int | None = None, example_input=None,
                 lr: dict | None = None, frozen=(), reinit: Callable | None = None,
                 per_example: bool = True) -> AdaptedModel:
    """An equinox module as a harness model (runs on the jax backend): ``eqx.partition(model,
    eqx.is_inexact_array)``; the float arrays by path ("layers/0/weight"), the names in ``frozen`` as
    ``frozen/<path>``, everything else (activation functions, integers, static fields) kept as it is. The forward
    is ``jax.vmap(eqx.combine(params, static))(x)``: an equinox module maps one example (``per_example=False``
    for one that takes the batch). ``reinit``: ``seed -> new module``."""
    mod = _adapter_module("jax", "equinox", "from_equinox", model)
    return mod.adapt_equinox(model, name=name, output_dim=output_dim, example_input=example_input, lr=lr,
                             frozen=frozen, reinit=reinit, per_example=per_example)


def from_jax(apply_fn: Callable, params, *, name: str | None = None, output_dim: int | None = None,
             example_input=None, lr: dict | None = None, frozen=(), reinit: Callable | None = None,
             per_example: bool = False) -> AdaptedModel:
    """Any JAX model given as a pytree ``params`` of float arrays (dicts, lists, tuples, registered nodes) and a
    pure ``apply_fn(params, x) -> (N, k)`` (runs on the jax backend); names from the key paths ("w1",
    "layers/0/b"), those in ``frozen`` as ``frozen/<path>``. ``per_example=True``: ``apply_fn`` maps one example
    and is vmapped over the batch. ``reinit``: ``seed -> new params``."""
    if not callable(apply_fn):
        raise HarnessError(f"from_jax needs a function apply_fn(params, x), got {type(apply_fn).__name__}")
    if "jax" not in sys.modules:
        raise HarnessError("from_jax needs jax (import jax to build the params and apply_fn)")
    mod = importlib.import_module(ADAPTER_MODULES["jax"])
    return mod.adapt_jax(apply_fn, params, name=name, output_dim=output_dim, example_input=example_input, lr=lr,
                         frozen=frozen, reinit=reinit, per_example=per_example)


def is_frozen_name(name: str, frozen) -> bool:
    """Whether ``name`` is listed in ``frozen``: equal to an entry, or under one that ends in "/" or "."."""
    if isinstance(frozen, str):
        frozen = (frozen,)
    return any(name == f or (f.endswith(("/", ".")) and name.startswith(f)) for f in frozen)


def check_frozen_names(model_name: str, names, frozen):
    """One-line error for an entry of ``frozen`` that names no parameter."""
    if isinstance(frozen, str):
        frozen = (frozen,)
    unused = [f for f in frozen if not any(is_frozen_name(n, (f,)) for n in names)]
    if unused:
        raise HarnessError(f"model {model_name!r}: frozen names {unused}, which match no parameter "
                           f"(they are {sorted(names)[:8]}{'...' if len(names) > 8 else ''})")


def float64_snapshot(model_name: str, key: str, value) -> np.ndarray:
    """A float64 NumPy copy of one array (any framework's, already on the host)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise HarnessError(f"model {model_name!r}: {key} has dtype {arr.dtype}, not a real number type")
    out = np.array(arr, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise HarnessError(f"model {model_name!r}: {key} contains NaN or inf")
    return out


__all__ = ["from_torch", "from_flax", "from_nnx", "from_equinox", "from_jax", "AdaptedModel"]
