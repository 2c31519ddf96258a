"""muP (or any parametrisation of the table) for a model of your own, by mup's recipe: from a *base* and a *delta*
model of other widths, infer which dimensions of each parameter grow with the width, hence its kind, then apply
the harness's abc-table (:mod:`harness.parametrisation`: init, forward multiplier, SGD and Adam rates) to the
model at its own width.

- :func:`infer_shapes`: ``{name: ParamShape}`` from three models (or parameter dicts) with the same names: a
  dimension is *infinite* where the base's and the delta's sizes differ (mup's ``set_base_shapes(model, base,
  delta=delta)``); the width multiplier is the target's size over the base's along the fan-in when it is infinite,
  else along the fan-out (mup's ``InfShape.width_mult``). The kind follows from which of the fan-in and fan-out
  axes are infinite: both ``hidden``; fan-out only ``input``; fan-in only ``output``; a vector ``bias`` (a
  bias, a LayerNorm gain) when infinite, else ``output_bias``; nothing infinite ``finite`` (left alone).
- :func:`parametrise`: the model in a named parametrisation, a :class:`Parametrised` model.

Where fan-in and fan-out sit depends on the framework: ``layout="out_in"`` (torch ``nn.Linear`` / ``nn.Conv*`` and
equinox: fan-out axis 0, fan-in axis 1, spatial axes after) or ``"in_out"`` (flax: fan-in axis -2, fan-out -1,
spatial axes before). The adapters (:mod:`harness.adapters`) say which through the model's ``framework``.

How the table is applied to weights the user's own code initialised. The table's effective weight at init is
``W_eff = multiplier * w`` with ``w ~ init_std``; with the table's constants at ``s = 1``, ``W_eff`` is the
standard parametrisation's times ``m**-(a + b)``. The user's init is taken as that standard one (variance ~
1/fan-in, whatever gain the user chose), so the stored parameter is ``w = W_user * init_std * sqrt(F)`` and
``apply`` substitutes ``multiplier * w`` for it: at init the network computes ``W_user * m**-(a + b)`` and its
gradients, per-layer rates and updates scale as the table says. ``F`` is the fan-in (the weight's size over its
fan-out; 1 for a vector). At ``m = 1`` (the target is the base) every parametrisation computes the user's network.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import HarnessError
from .models import FROZEN, Model
from .parametrisation import get_parametrisation

LAYOUTS = {"out_in": (1, 0), "in_out": (-2, -1)}        # (fan-in axis, fan-out axis)
FRAMEWORK_LAYOUT = {"torch": "out_in", "equinox": "out_in", "flax": "in_out", "nnx": "in_out"}


@dataclass(frozen=True)
class ParamShape:
    """One parameter's inferred shape: ``infinite`` flags per axis, its ``kind`` (a layer kind of the table, or
    ``finite``), the width multiplier ``width_mult`` (target over base) and the fan-in ``fan_in`` (its size over
    its fan-out; 1 for a vector)."""
    name: str
    shape: tuple
    base_shape: tuple
    infinite: tuple
    kind: str
    width_mult: float
    fan_in: int


def _shapes(x, what) -> dict:
    if isinstance(x, Model):
        x = x.init(0)
    if not isinstance(x, dict):
        raise HarnessError(f"{what} must be a harness model or a dict of parameters, got {type(x).__name__}")
    return {k: tuple(np.shape(v)) for k, v in x.items() if not k.startswith(FROZEN)}


def infer_shapes(model, base, delta, layout: str = "out_in") -> dict:
    """``{name: ParamShape}`` for ``model``'s trainable parameters from a ``base`` and a ``delta`` of other widths
    (each a harness model or a ``{name: array}``), mup's rule; one-line :class:`HarnessError` when the names or
    ranks differ, or when base and delta differ nowhere (no width to scale)."""
    if layout not in LAYOUTS:
        raise HarnessError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    target, b, d = _shapes(model, "model"), _shapes(base, "base"), _shapes(delta, "delta")
    if set(target) != set(b) or set(target) != set(d):
        odd = sorted(set(target) ^ set(b) | set(target) ^ set(d))
        raise HarnessError(f"model, base and delta must have the same parameters; these differ: {odd[:5]}")
    fi, fo = LAYOUTS[layout]
    out = {}
    for name in sorted(target):
        t, s0, s1 = target[name], b[name], d[name]
        if not len(t) == len(s0) == len(s1):
            raise HarnessError(f"parameter {name}: ranks differ between model {t}, base {s0} and delta {s1}")
        inf = tuple(a != c for a, c in zip(s0, s1))
        if len(t) == 0:
            kind, mult, fan_in = "finite", 1.0, 1
        elif len(t) == 1:
            kind = "bias" if inf[0] else "output_bias"
            mult, fan_in = (t[0] / s0[0] if inf[0] else 1.0), 1
        else:
            i, o = fi % len(t), fo % len(t)
            if any(flag for k, flag in enumerate(inf) if k not in (i, o)):
                raise HarnessError(f"parameter {name}: a width-dependent axis that is neither fan-in nor fan-out "
                                   f"(shapes base {s0}, delta {s1}, layout {layout})")
                # (a kernel's spatial size does not grow with the width)
            kind = {(True, True): "hidden", (False, True): "input", (True, False): "output"}.get(
                (inf[i], inf[o]), "finite")
            mult = t[i] / s0[i] if inf[i] else (t[o] / s0[o] if inf[o] else 1.0)
            fan_in = int(np.prod(t)) // t[o]
        out[name] = ParamShape(name, t, s0, inf, kind, float(mult), int(fan_in))
    if not any(any(s.infinite) for s in out.values()):
        raise HarnessError("base and delta have the same shape everywhere: no width to scale (give a delta of "
                           "another width)")
    return out


@dataclass(frozen=True, eq=False)
class Parametrised(Model):
    """``inner`` (a harness model, e.g. an adapter of the user's module) in the parametrisation ``parametrisation``
    of the table, given its inferred ``shapes`` (:func:`infer_shapes`). Parameters keep the inner model's names;
    ``apply`` substitutes each one's forward multiplier times it; ``lr_multipliers`` are the table's per-kind rates.
    A ``finite`` parameter (no infinite axis) keeps the user's init, multiplier 1 and rate 1."""
    inner: Model
    parametrisation: str
    shapes: dict

    def __post_init__(self):
        get_parametrisation(self.parametrisation)
        object.__setattr__(self, "_scales", {
            name: get_parametrisation(self.parametrisation).layer(s.kind, s.fan_in, 1.0, s.width_mult, 1)
            for name, s in self.shapes.items() if s.kind != "finite"})

    @property
    def output_dim(self):
        """The inner model's output dimension."""
        return self.inner.output_dim

    @property
    def framework(self):
        """The inner model's framework ("torch", "flax"...; None for a harness model): the backend it runs on."""
        return getattr(self.inner, "framework", None)

    def init(self, seed: int) -> dict:
        p = self.inner.init(seed)
        for name, sc in self._scales.items():
            p[name] = p[name] * (sc.init_std * np.sqrt(self.shapes[name].fan_in))
        return p

    def _effective(self, params):
        return {k: (self._scales[k].multiplier * v if k in self._scales and self._scales[k].multiplier != 1.0
                    else v) for k, v in params.items()}

    def apply(self, params, x, ops):
        return self.inner.apply(self._effective(params), x, ops)

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        base = dict(self.inner.lr_multipliers(optimizer_kind))
        for name, sc in self._scales.items():
            base[name] = base.get(name, 1.0) * sc.lr(optimizer_kind)
        return base

    def __getattr__(self, name):
        # preactivations (the coordinate check) and anything else the inner model offers, on effective weights
        if name == "preactivations" and hasattr(self.inner, "preactivations"):
            return lambda params, x, ops: self.inner.preactivations(self._effective(params), x, ops)
        raise AttributeError(name)


def parametrise(model: Model, parametrisation: str, base, delta, layout: str | None = None) -> Parametrised:
    """``model`` in ``parametrisation`` ("standard", "mup", "ntk", "mean-field"), the width dimensions inferred
    from ``base`` and ``delta`` (harness models or parameter dicts of other widths, as mup's
    ``set_base_shapes``). ``layout`` defaults to the adapter's framework's (:data:`FRAMEWORK_LAYOUT`)."""
    if layout is None:
        fw = getattr(model, "framework", None)
        if fw not in FRAMEWORK_LAYOUT:
            raise HarnessError(f"{type(model).__name__}: say where fan-in and fan-out sit: layout='out_in' (torch, "
                               f"equinox) or 'in_out' (flax)")
        layout = FRAMEWORK_LAYOUT[fw]
    return Parametrised(model, parametrisation, infer_shapes(model, base, delta, layout))
