"""Residual networks with a branch multiplier (issue 22): depth-wise transfer's model (Yang, Yu, Zhu & Hayou 2023,
TP-VI; Bordelon et al. 2023).

:class:`ResMLP`: an input layer to ``width`` features, ``depth`` residual blocks ``h + branch * W2 phi(W1 h)``
(pre-activation, no normalisation), a linear readout. ``branch`` is ``"1"`` (a plain residual network) or
``"depth-mup"``: ``1 / sqrt(depth)``, the multiplier under which the blocks' contributions, and the best learning
rate, stay of the same order as the depth grows. Written against ``ops``; every layer takes its scales from the
parametrisation table (:mod:`harness.parametrisation`: the input layer ``input``, the blocks' matrices ``hidden``,
the readout ``output``), so ``standard``, ``ntk``, ``mup`` and ``mean-field`` are all available, and depth-muP is
the table's muP with ``branch="depth-mup"``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .activations import get_activation
from .errors import HarnessError
from .models import Model, _check_positive_int
from .parametrisation import get_parametrisation

BRANCHES = ("1", "depth-mup")


@dataclass(frozen=True)
class ResMLP(Model):
    """A residual MLP on ``(N, input_dim)`` inputs: input layer, ``depth`` blocks ``h + branch * W2 phi(W1 h)``
    of ``width`` features, readout ``output_dim``. ``branch``: ``"1"`` or ``"depth-mup"`` (``1/sqrt(depth)``);
    ``parametrisation`` from the table (required), relative to ``base_width``."""
    input_dim: int
    width: int
    depth: int
    parametrisation: str
    branch: str = "1"
    activation: str = "relu"
    output_dim: int = 1
    base_width: int = 1

    def __post_init__(self):
        name = f"ResMLP(width={self.width}, depth={self.depth})"
        for field in ("input_dim", "width", "depth", "output_dim", "base_width"):
            _check_positive_int(f"{name}: {field}", getattr(self, field))
        if self.branch not in BRANCHES:
            raise HarnessError(f"{name}: field branch must be one of {BRANCHES}, got {self.branch!r}")
        get_parametrisation(self.parametrisation)
        get_activation(self.activation)

    @property
    def branch_multiplier(self) -> float:
        """1, or ``1 / sqrt(depth)`` under depth-muP."""
        return 1.0 if self.branch == "1" else float(1 / np.sqrt(self.depth))

    @functools.cached_property
    def _layers(self):
        """{name: (shape, LayerScales)} in order."""
        p = get_parametrisation(self.parametrisation)
        s = get_activation(self.activation).default_weight_std
        n = self.width
        out = {"W_in": ((self.input_dim, n), p.layer("input", self.input_dim, 1.0, n, self.base_width))}
        for b in range(self.depth):
            out[f"W1_{b}"] = ((n, n), p.layer("hidden", n, 1.0, n, self.base_width))
            out[f"W2_{b}"] = ((n, n), p.layer("hidden", n, s, n, self.base_width))
        out["W_out"] = ((n, self.output_dim), p.layer("output", n, 1.0, n, self.base_width))
        return out

    def init(self, seed: int) -> dict:
        rng = np.random.default_rng(seed)
        return {k: sc.init_std * rng.standard_normal(shape) for k, (shape, sc) in self._layers.items()}

    def _lin(self, ops, h, params, name):
        y = ops.matmul(h, params[name])
        m = self._layers[name][1].multiplier
        return y if m == 1.0 else m * y

    def apply(self, params, x, ops):
        act = get_activation(self.activation)
        h = self._lin(ops, x, params, "W_in")
        for b in range(self.depth):
            r = self._lin(ops, act.fn(ops, self._lin(ops, act.fn(ops, h), params, f"W1_{b}")), params, f"W2_{b}")
            h = h + (r if self.branch == "1" else self.branch_multiplier * r)
        return self._lin(ops, h, params, "W_out")

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        return {k: sc.lr(optimizer_kind) for k, (_, sc) in self._layers.items()}
