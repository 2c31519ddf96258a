"""Parametrisations of a fully connected net, generated from one abc-table.

Every layer has a *kind* (``input``, ``hidden``, ``output``, ``bias``) and a fan-in ``F``. A parametrisation is a
*base style* plus exponents of the width ratio ``m = width / base_width``:

=========  ==============================  ===================================
style      init std of W                   forward multiplier
=========  ==============================  ===================================
``sp``     ``s / sqrt(F) * m**-b``         ``m**-a``
``ntk``    ``m**-b`` (W ~ N(0, 1))         ``s / sqrt(F) * m**-a``
=========  ==============================  ===================================

and per-layer learning-rate multipliers ``m**-c_sgd`` (SGD) and ``m**-c_adam`` (Adam). ``s`` is the layer's weight
std (``bias_std`` for biases, whose fan-in is 1). The table (CLAIMS.md section D; Yang & Hu 2021, TP-V Table 3):

- ``standard`` (SP): sp style, every exponent 0: init var 1/fan_in everywhere, one global learning rate.
- ``ntk``: ntk style, every exponent 0: W ~ N(0, 1), multiplier s/sqrt(fan_in), one learning rate.
- ``mup``: sp style. input: SGD lr x m; hidden: Adam lr / m; output: init std x m^-1/2 (var ~ 1/n^2 when
  ``base_width`` = 1), SGD and Adam lr / m; the hidden layers' biases like the input layer (TP-V Table 3: a bias's
  SGD rate is x fan_out). ``zero_readout`` gives the zero-init variant.
- ``mean-field``: ntk style with the readout multiplier x m^-1/2 (so 1/n when ``base_width`` = 1) and every
  learning rate x m: the two-layer mean-field net (readout 1/n, lr x n). For deeper nets it is that scaling applied
  layer-wise, not a separate theory.

The readout's bias (kind ``output_bias``) has a finite fan-out (the output dimension), so no entry of any table
scales it with the width: init, multiplier and both learning rates as at ``m = 1``. (Until 2026-11-30 it shared the
``bias`` entry, which gave it muP's and mean-field's SGD rate x m: D2-SGD's optimum drifted down with the width.)

At ``m = 1`` (width == base_width) mup coincides with standard, and mean-field with ntk: the multipliers all equal 1.

**The distribution a layer's weights are drawn from** is the table's last column: ``init std`` above is the std of
whatever distribution the layer kind is given (:data:`DISTRIBUTIONS`, each drawn with mean 0 and variance 1 and
then multiplied by the std): ``normal`` (the default), ``uniform`` (on ``[-sqrt 3, sqrt 3]``), ``rademacher``
(``+-1``), or a sampler of the user's ``(rng, shape) -> array`` (a NumPy ``Generator``; unit variance is the
user's to keep, or the std no longer means the std). A built-in model's ``init_dist`` names one for every layer
(``"uniform"``) or one per layer kind (``{"input": "rademacher", "bias": "uniform"}``, the others normal), so a
paper's initialisation (uniform biases, +-1 input weights) keeps the table's scales, multipliers and learning
rates. With the default every model draws exactly what it drew before ``init_dist`` existed. The infinite-width
kernels (``analytic_kernels``) assume Gaussian first-layer pre-activations: with a non-normal ``input`` or ``bias``
distribution they refuse and point to :mod:`harness.montecarlo` (deeper layers are Gaussian in the limit whatever
their distribution, by the central limit theorem). The anti-symmetric (zero-output) initialisation composes with
all of this: :func:`harness.inits.antisymmetric`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import HarnessError

LAYER_KINDS = ("input", "hidden", "output", "bias", "output_bias")


@dataclass(frozen=True)
class ABC:
    """Exponents of m for one layer kind: forward multiplier a, init std b, learning rates c (SGD, Adam)."""
    a: float = 0.0
    b: float = 0.0
    c_sgd: float = 0.0
    c_adam: float = 0.0


@dataclass(frozen=True)
class Parametrisation:
    """One named parametrisation: its base ``style`` (``"sp"`` or ``"ntk"``, see the table above) and its
    ``table`` of :class:`ABC` exponents by layer kind (a kind it lacks has every exponent 0). Get one with
    :func:`get_parametrisation`; :data:`PARAMETRISATIONS` holds them all."""
    name: str
    style: str                      # "sp" or "ntk"
    table: dict                     # layer kind -> ABC

    def layer(self, kind: str, fan_in: int, weight_std: float, width: int, base_width: int) -> "LayerScales":
        """The scales of one layer of ``kind`` (one of ``LAYER_KINDS``) with ``fan_in`` inputs and weight std
        ``weight_std``, in a net of ``width`` relative to ``base_width``."""
        if kind not in LAYER_KINDS:
            raise HarnessError(f"unknown layer kind {kind!r}")
        m = width / base_width
        e = self.table.get(kind, ABC())
        s = float(weight_std)
        if self.style == "sp":
            std, mult = s / np.sqrt(fan_in) * m ** -e.b, m ** -e.a
        else:
            std, mult = m ** -e.b, s / np.sqrt(fan_in) * m ** -e.a
        return LayerScales(init_std=float(std), multiplier=float(mult),
                           lr_sgd=float(m ** -e.c_sgd), lr_adam=float(m ** -e.c_adam))


@dataclass(frozen=True)
class LayerScales:
    """One layer's scales: the std its weights are drawn with (``init_std``), the multiplier of its forward pass
    (``multiplier``) and its learning-rate multipliers for SGD (``lr_sgd``) and Adam (``lr_adam``)."""
    init_std: float
    multiplier: float
    lr_sgd: float
    lr_adam: float

    def lr(self, optimizer_kind: str) -> float:
        """The learning-rate multiplier for ``optimizer_kind`` (``"adam"``; anything else is SGD's)."""
        return self.lr_adam if optimizer_kind == "adam" else self.lr_sgd


PARAMETRISATIONS: dict[str, Parametrisation] = {
    "standard": Parametrisation("standard", "sp", {}),
    "ntk": Parametrisation("ntk", "ntk", {}),
    "mup": Parametrisation("mup", "sp", {
        "input": ABC(c_sgd=-1.0, c_adam=0.0),
        "bias": ABC(c_sgd=-1.0, c_adam=0.0),
        "hidden": ABC(c_sgd=0.0, c_adam=1.0),
        "output": ABC(b=0.5, c_sgd=1.0, c_adam=1.0),
    }),
    "mean-field": Parametrisation("mean-field", "ntk", {
        "input": ABC(c_sgd=-1.0, c_adam=0.0),
        "bias": ABC(c_sgd=-1.0, c_adam=0.0),
        "hidden": ABC(c_sgd=-1.0, c_adam=0.5),
        "output": ABC(a=0.5, c_sgd=-1.0, c_adam=0.0),
    }),
}


def get_parametrisation(name: str) -> Parametrisation:
    """The parametrisation named ``name`` (``standard``, ``ntk``, ``mup``, ``mean-field``); an unknown name raises
    :class:`~harness.errors.HarnessError` listing the known ones."""
    try:
        return PARAMETRISATIONS[name]
    except KeyError:
        raise HarnessError(
            f"unknown parametrisation {name!r}; known: {', '.join(PARAMETRISATIONS)}") from None


# -- the distribution of a layer's weights (the table's last column) -------------------------------------------------
SQRT3 = float(np.sqrt(3.0))

DISTRIBUTIONS: dict[str, Callable] = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "uniform": lambda rng, shape: rng.uniform(-SQRT3, SQRT3, shape),
    "rademacher": lambda rng, shape: 2.0 * rng.integers(0, 2, shape) - 1.0,
}
"""Mean-0, variance-1 samplers ``(rng, shape) -> array`` by name; a layer's weights are ``init_std`` times a draw."""

def check_init_dist(spec, owner: str = "model"):
    """``spec`` as a model stores it (hashable): a distribution name or a sampler (every layer), or a mapping
    ``{layer kind: name or sampler}`` (the kinds it lacks: normal) made a sorted tuple of pairs. Raises
    :class:`~harness.errors.HarnessError` naming the field for an unknown name or kind."""
    def one(v, where):
        if callable(v):
            return v
        if isinstance(v, str) and v in DISTRIBUTIONS:
            return v
        raise HarnessError(f"{owner}: field init_dist{where}: unknown distribution {v!r}; known: "
                           f"{', '.join(DISTRIBUTIONS)}, or a sampler (rng, shape) -> array")
    if isinstance(spec, dict):
        for k in spec:
            if k not in LAYER_KINDS:
                raise HarnessError(f"{owner}: field init_dist: unknown layer kind {k!r}; kinds: "
                                   f"{', '.join(LAYER_KINDS)}")
        return tuple(sorted((k, one(v, f"[{k!r}]")) for k, v in spec.items()))
    if isinstance(spec, tuple) and all(isinstance(u, tuple) and len(u) == 2 for u in spec):
        return check_init_dist(dict(spec), owner)
    return one(spec, "")


def init_dist_of(spec, kind: str):
    """The distribution (name or sampler) that ``spec`` (checked by :func:`check_init_dist`) gives ``kind``."""
    if isinstance(spec, tuple):
        table = dict(spec)
        # the readout's bias is a bias: it follows "bias" unless "output_bias" is named
        return table.get(kind, table.get("bias", "normal") if kind == "output_bias" else "normal")
    return spec


def draw(rng, shape, std: float, spec="normal", kind: str = "hidden") -> np.ndarray:
    """``std`` times a draw of ``shape`` from the distribution ``spec`` gives layer ``kind``: the one way every
    built-in model draws a weight (``normal``: ``std * rng.standard_normal(shape)``, as they always drew)."""
    dist = init_dist_of(spec, kind)
    sample = DISTRIBUTIONS[dist] if isinstance(dist, str) else dist
    out = np.asarray(sample(rng, tuple(shape)), dtype=float)
    if out.shape != tuple(shape):
        raise HarnessError(f"init_dist sampler {getattr(dist, '__name__', dist)!r} for {kind!r} returned shape "
                           f"{out.shape}, expected {tuple(shape)}")
    return std * out


def gaussian_first_layer(spec) -> bool:
    """Whether every pre-activation is Gaussian at infinite width under ``spec`` (what the analytic kernels
    assume): the ``input`` kind normal (the first layer sums finitely many inputs) and the ``bias`` kind normal (a
    bias enters each pre-activation unsummed); deeper weights are Gaussian in the limit whatever their
    distribution."""
    return all(init_dist_of(spec, k) == "normal" for k in ("input", "bias"))
