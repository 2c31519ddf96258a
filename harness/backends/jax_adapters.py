"""The JAX half of :mod:`harness.adapters`: flax linen, flax nnx, equinox and plain pytree models as harness models.

Imported by name from :func:`harness.adapters.from_flax`, :func:`~harness.adapters.from_nnx`,
:func:`~harness.adapters.from_equinox` and :func:`~harness.adapters.from_jax` only (no harness module imports it,
so the claims' code hash does not include it). flax and equinox are imported inside the functions that need them,
so a user of plain pytrees needs neither. Each adapter flattens the model's pytree once, with key paths: every
float leaf is a harness parameter named by its path, the rest is kept as it is; ``apply`` puts the backend's arrays
back in place of the leaves and calls the model, under the JAX backend's jit and transforms.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..adapters import AdaptedModel, Entry, check_frozen_names, float64_snapshot, is_frozen_name
from ..errors import HarnessError
from ..models import FROZEN


def path_name(path, drop_value: bool = False) -> str:
    """A pytree key path as a "/"-joined name: ``['params']['Dense_0']['kernel']`` -> "params/Dense_0/kernel",
    ``.layers[0].weight`` -> "layers/0/weight" (``drop_value``: without nnx's trailing ``.value``)."""
    parts = []
    for k in path:
        if isinstance(k, jax.tree_util.DictKey):
            parts.append(str(k.key))
        elif isinstance(k, jax.tree_util.GetAttrKey):
            parts.append(str(k.name))
        elif isinstance(k, jax.tree_util.SequenceKey):
            parts.append(str(k.idx))
        elif isinstance(k, jax.tree_util.FlattenedIndexKey):
            parts.append(str(k.key))
        else:
            parts.append(str(k).strip(".[]'\""))
    if drop_value and parts and parts[-1] == "value":
        parts = parts[:-1]
    return "/".join(parts)


def _is_float_array(leaf) -> bool:
    return (isinstance(leaf, (np.ndarray, jax.Array)) and not jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
            and jnp.issubdtype(leaf.dtype, jnp.floating))


class Tree:
    """One flattened pytree: its ``treedef``, and per leaf either the harness key of a parameter or a constant
    (``("const", leaf)``)."""

    def __init__(self, model_name, tree, *, classify, drop_value=False, strict=False, is_leaf=None):
        leaves, self.treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
        self.slots, self.entries, self.weights = [], [], {}
        for path, leaf in leaves:
            name = path_name(path, drop_value)
            if not _is_float_array(leaf):
                if strict:
                    what = (f"an array of {leaf.dtype}" if isinstance(leaf, (np.ndarray, jax.Array))
                            else f"of type {type(leaf).__name__}")
                    raise HarnessError(f"model {model_name!r}: leaf {name!r} is {what}, not a float array")
                self.slots.append(("const", leaf))
                continue
            key = FROZEN + name if classify(name) else name
            if key in self.weights:
                raise HarnessError(f"model {model_name!r}: two leaves are both named {name!r}")
            self.slots.append(("param", name))
            self.entries.append(Entry(key, name, np.shape(leaf), str(np.dtype(leaf.dtype))))
            self.weights[key] = float64_snapshot(model_name, name, np.asarray(leaf))

    def rebuild(self, arrays):
        return jax.tree_util.tree_unflatten(self.treedef, [arrays[v] if kind == "param" else v
                                                           for kind, v in self.slots])


class JaxAdapted(AdaptedModel):
    """A JAX model as a harness model: ``trees`` (one or more flattened pytrees) and ``call(rebuilt trees, x)``."""
    backend = "jax"

    def __init__(self, name, framework, trees, call, snapshot, output_dim, example_input, lr, reinit,
                 per_example, infer=None):
        self.framework = framework
        self._x64 = bool(jax.dtypes.canonicalize_dtype(np.float64) == np.float64)
        self._trees, self._call, self._snap, self._per_example = trees, call, snapshot, per_example
        entries, weights = [], {}
        for t in trees:
            entries += t.entries
            weights.update(t.weights)
        if not any(not e.key.startswith(FROZEN) for e in entries):
            raise HarnessError(f"model {name!r} has no trainable parameters (no float arrays outside frozen)")
        if output_dim is None:
            output_dim = self._infer_output_dim(name, example_input, infer)
        super().__init__(name, entries, weights, output_dim, lr=lr, reinit=reinit)

    def _snapshot(self, obj):
        return self._snap(obj)

    def _fresh(self, seed):
        # JAX draws other numbers with x64 on, and the backend's float64 context turns it on around init (not
        # around init_ensemble's draws): reinit runs in the x64 state the model was adapted in, whoever calls it
        with jax.enable_x64(self._x64):
            return self._reinit(seed)

    def _forward(self, arrays, x):
        rebuilt = [t.rebuild(arrays) for t in self._trees]
        if self._per_example:
            return jax.vmap(lambda xi: self._call(rebuilt, xi))(x)
        return self._call(rebuilt, x)

    def _vmap(self, fn, arrays, axes, x):
        return jax.vmap(lambda a: fn(a, x), in_axes=(axes,))(arrays)

    def _is_array(self, out):
        return isinstance(out, jax.Array) and jnp.issubdtype(out.dtype, jnp.inexact)

    def _infer_output_dim(self, name, example_input, infer):
        if example_input is not None:
            arrays = {e.name: t.weights[e.key].astype(np.float32) for t in self._trees for e in t.entries}
            xs = np.asarray(example_input, dtype=np.float32)
            out = jax.eval_shape(lambda a, xx: self._forward(a, xx), arrays, xs)
            if not isinstance(out, jax.ShapeDtypeStruct):
                raise HarnessError(f"model {name!r}: the module returned a {type(out).__name__}, not one array of "
                                   f"outputs (N, k); wrap it so that it returns the output array")
            if len(out.shape) not in (1, 2):
                raise HarnessError(f"model {name!r}: the module's outputs on example_input have shape "
                                   f"{tuple(out.shape)}, not (N, k)")
            return 1 if len(out.shape) == 1 else int(out.shape[1])
        k = infer() if infer is not None else None
        if k is None:
            raise HarnessError(f"model {name!r}: cannot tell its number of outputs; pass output_dim= or "
                               f"example_input=")
        return k


def _classifier(model_name, names, frozen, always=lambda name: False):
    check_frozen_names(model_name, names, frozen)
    return lambda name: always(name) or is_frozen_name(name, frozen)


def _leaf_names(tree, drop_value=False, is_leaf=None):
    return [path_name(p, drop_value) for p, leaf in jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]
            if _is_float_array(leaf)]


# -- flax linen -------------------------------------------------------------------------------------------------------
def adapt_flax(model, variables, *, name=None, output_dim=None, example_input=None, lr=None, frozen=(), reinit=None,
               apply_kwargs=None):
    """:func:`harness.adapters.from_flax`'s work (see there)."""
    import flax.linen as nn
    name = name or type(model).__name__
    if not isinstance(model, nn.Module):
        raise HarnessError(f"from_flax needs a flax.linen.Module, got {type(model).__name__}")
    kwargs = dict(apply_kwargs or {})

    def flatten(v):
        if not hasattr(v, "keys") or "params" not in v:
            raise HarnessError(f"model {name!r}: variables must be the dict model.init returns, with a 'params' "
                               f"collection; got {type(v).__name__}")
        classify = _classifier(name, _leaf_names(v), frozen, lambda n: not n.startswith("params/"))
        return Tree(name, v, classify=classify, strict=True)

    tree = flatten(variables)
    return JaxAdapted(name, "flax", [tree], lambda trees, x: model.apply(trees[0], x, **kwargs),
                      lambda v: flatten(v).weights, output_dim, example_input, lr, reinit, False)


# -- flax nnx ---------------------------------------------------------------------------------------------------------
def adapt_nnx(model, *, name=None, output_dim=None, example_input=None, lr=None, frozen=(), reinit=None):
    """:func:`harness.adapters.from_nnx`'s work (see there)."""
    from flax import nnx
    name = name or type(model).__name__
    if not isinstance(model, nnx.Module):
        raise HarnessError(f"from_nnx needs a flax.nnx.Module, got {type(model).__name__}")

    def split(m):
        if not isinstance(m, nnx.Module):
            raise HarnessError(f"model {name!r}: reinit must return a flax.nnx.Module, got {type(m).__name__}")
        graphdef, params, rest = nnx.split(m, nnx.Param, ...)
        names = _leaf_names(params, True)
        classify = _classifier(name, names + _leaf_names(rest, True), frozen)
        p = Tree(name, params, classify=classify, drop_value=True)
        r = Tree(name, rest, classify=lambda n: True, drop_value=True)
        return graphdef, p, r

    def snapshot(m):
        _, p, r = split(m)
        return {**p.weights, **r.weights}

    graphdef, p, r = split(model)
    return JaxAdapted(name, "nnx", [p, r], lambda trees, x: nnx.merge(graphdef, trees[0], trees[1])(x), snapshot,
                      output_dim, example_input, lr, reinit, False)


# -- equinox ----------------------------------------------------------------------------------------------------------
def adapt_equinox(model, *, name=None, output_dim=None, example_input=None, lr=None, frozen=(), reinit=None,
                  per_example=True):
    """:func:`harness.adapters.from_equinox`'s work (see there)."""
    import equinox as eqx
    name = name or type(model).__name__
    if not isinstance(model, eqx.Module):
        raise HarnessError(f"from_equinox needs an equinox.Module, got {type(model).__name__}")

    def partition(m):
        if not isinstance(m, eqx.Module):
            raise HarnessError(f"model {name!r}: reinit must return an equinox.Module, got {type(m).__name__}")
        params, static = eqx.partition(m, eqx.is_inexact_array)
        return Tree(name, params, classify=_classifier(name, _leaf_names(params), frozen)), static

    tree, static = partition(model)

    def infer():
        for attr in ("out_size", "out_features"):
            v = getattr(model, attr, None)
            if v == "scalar":
                return 1
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return None
    return JaxAdapted(name, "equinox", [tree], lambda trees, x: eqx.combine(trees[0], static)(x),
                      lambda m: partition(m)[0].weights, output_dim, example_input, lr, reinit, per_example, infer)


# -- any pytree and a pure apply function -----------------------------------------------------------------------------
def adapt_jax(apply_fn, params, *, name=None, output_dim=None, example_input=None, lr=None, frozen=(), reinit=None,
              per_example=False):
    """:func:`harness.adapters.from_jax`'s work (see there)."""
    name = name or getattr(apply_fn, "__name__", "jax model")

    def flatten(p):
        # None is a leaf here, so that a missing array is reported, not silently dropped
        return Tree(name, p, classify=_classifier(name, _leaf_names(p, is_leaf=_none), frozen), strict=True,
                    is_leaf=_none)

    tree = flatten(params)
    return JaxAdapted(name, "jax", [tree], lambda trees, x: apply_fn(trees[0], x), lambda p: flatten(p).weights,
                      output_dim, example_input, lr, reinit, per_example)


def _none(leaf):
    return leaf is None
