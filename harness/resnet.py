"""Residual networks with a branch multiplier (issue 22): depth-wise transfer's model (Yang, Yu, Zhu & Hayou 2023,
TP-VI; Bordelon et al. 2023).

:class:`ResMLP`: an input layer to ``width`` features, ``depth`` residual blocks ``h + branch * W2 phi(W1 h)``
(pre-activation, no normalisation), a linear readout. ``branch`` is ``"1"`` (a plain residual network) or
``"depth-mup"``: ``1 / sqrt(depth)``, the multiplier under which the blocks' contributions, and the best learning
rate, stay of the same order as the depth grows. Written against ``ops``; every layer takes its scales from the
parametrisation table (:mod:`harness.parametrisation`: the input layer ``input``, the blocks' matrices ``hidden``,
the readout ``output``), so ``standard``, ``ntk``, ``mup`` and ``mean-field`` are all available, and depth-muP is
the table's muP with ``branch="depth-mup"``.

:class:`ResCNN`: the same with convolutional blocks: an input convolution to ``channels`` channels, ``depth``
blocks ``h + branch * conv2(phi(conv1(phi(h))))`` (``filter`` x ``filter``, SAME padding, stride 1, so every block
keeps the image's size), global average pooling and a linear readout; the convolutions are
:func:`harness.cnn.conv`, a layer's fan-in its filter size times its input channels. No analytic kernel yet
(:mod:`harness.cnn_kernels` has no residual sum).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .activations import get_activation
from .cnn import conv
from .errors import HarnessError
from .models import Model, _check_positive_int
from .parametrisation import check_init_dist, draw, get_parametrisation

BRANCHES = ("1", "depth-mup")


def _kind(name: str) -> str:
    """A residual net's parameter's row of the table: ``W_in`` input, ``W_out`` output, the blocks' hidden."""
    return {"W_in": "input", "W_out": "output"}.get(name, "hidden")


def _check_branch(name, branch, depth):
    if branch not in BRANCHES:
        raise HarnessError(f"{name}: field branch must be one of {BRANCHES}, got {branch!r}")
    return 1.0 if branch == "1" else float(1 / np.sqrt(depth))


@dataclass(frozen=True)
class ResMLP(Model):
    """A residual MLP on ``(N, input_dim)`` inputs: input layer, ``depth`` blocks ``h + branch * W2 phi(W1 h)``
    of ``width`` features, readout ``output_dim``. ``branch``: ``"1"`` or ``"depth-mup"`` (``1/sqrt(depth)``);
    ``parametrisation`` from the table (required), relative to ``base_width``; ``init_dist`` the weights'
    distribution (:mod:`harness.parametrisation`; default normal)."""
    input_dim: int
    width: int
    depth: int
    parametrisation: str
    branch: str = "1"
    activation: str = "relu"
    output_dim: int = 1
    base_width: int = 1
    init_dist: object = "normal"

    def __post_init__(self):
        name = f"ResMLP(width={self.width}, depth={self.depth})"
        object.__setattr__(self, "init_dist", check_init_dist(self.init_dist, name))
        for field in ("input_dim", "width", "depth", "output_dim", "base_width"):
            _check_positive_int(f"{name}: {field}", getattr(self, field))
        _check_branch(name, self.branch, self.depth)
        get_parametrisation(self.parametrisation)
        get_activation(self.activation)

    @property
    def branch_multiplier(self) -> float:
        """1, or ``1 / sqrt(depth)`` under depth-muP."""
        return _check_branch("ResMLP", self.branch, self.depth)

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
        return {k: draw(rng, shape, sc.init_std, self.init_dist, _kind(k))
                for k, (shape, sc) in self._layers.items()}

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


@dataclass(frozen=True)
class ResCNN(Model):
    """A residual CNN on ``(N, *input_shape)`` images, ``input_shape`` ``(H, C)`` or ``(H, W, C)``: an input
    convolution to ``channels`` channels, ``depth`` blocks ``h + branch * conv2(phi(conv1(phi(h))))`` with
    ``filter``-wide SAME convolutions, global average pooling, readout ``output_dim``. ``branch``: ``"1"`` or
    ``"depth-mup"`` (``1/sqrt(depth)``); ``parametrisation`` from the table (required), relative to
    ``base_channels``; ``init_dist`` the weights' distribution (:mod:`harness.parametrisation`; default normal)."""
    input_shape: tuple
    channels: int
    depth: int
    parametrisation: str
    branch: str = "1"
    activation: str = "relu"
    filter: int = 3
    output_dim: int = 1
    base_channels: int = 1
    init_dist: object = "normal"

    def __post_init__(self):
        shape = tuple(self.input_shape)
        object.__setattr__(self, "input_shape", shape)         # a tuple: the model is hashed (compile caches)
        name = f"ResCNN {shape}"
        object.__setattr__(self, "init_dist", check_init_dist(self.init_dist, name))
        if len(shape) not in (2, 3) or any(isinstance(u, bool) or int(u) != u or u < 1 for u in shape):
            raise HarnessError(f"{name}: input_shape must be (H, C) or (H, W, C) positive integers, got "
                               f"{self.input_shape!r}")
        for field in ("channels", "depth", "filter", "output_dim", "base_channels"):
            _check_positive_int(f"{name}: {field}", getattr(self, field))
        if self.filter > min(shape[:-1]):
            raise HarnessError(f"{name}: field filter {self.filter} is larger than the image {shape[:-1]}")
        _check_branch(name, self.branch, self.depth)
        get_parametrisation(self.parametrisation)
        get_activation(self.activation)

    @property
    def branch_multiplier(self) -> float:
        """1, or ``1 / sqrt(depth)`` under depth-muP."""
        return _check_branch("ResCNN", self.branch, self.depth)

    @property
    def spatial(self) -> int:
        return len(self.input_shape) - 1

    @functools.cached_property
    def _layers(self):
        """{name: (shape, LayerScales)} in order."""
        p = get_parametrisation(self.parametrisation)
        s = get_activation(self.activation).default_weight_std
        n, ks = self.channels, (self.filter,) * self.spatial
        k = int(np.prod(ks))
        c_in = int(self.input_shape[-1])
        out = {"W_in": (ks + (c_in, n), p.layer("input", k * c_in, 1.0, n, self.base_channels))}
        for b in range(self.depth):
            out[f"W1_{b}"] = (ks + (n, n), p.layer("hidden", k * n, 1.0, n, self.base_channels))
            out[f"W2_{b}"] = (ks + (n, n), p.layer("hidden", k * n, s, n, self.base_channels))
        out["W_out"] = ((n, self.output_dim), p.layer("output", n, 1.0, n, self.base_channels))
        return out

    def init(self, seed: int) -> dict:
        rng = np.random.default_rng(seed)
        return {k: draw(rng, shape, sc.init_std, self.init_dist, _kind(k))
                for k, (shape, sc) in self._layers.items()}

    def _conv(self, ops, h, params, name):
        y = conv(ops, h, params[name], 1, "SAME", self.spatial)
        m = self._layers[name][1].multiplier
        return y if m == 1.0 else m * y

    def apply(self, params, x, ops):
        act, spatial = get_activation(self.activation), self.spatial
        h = self._conv(ops, x, params, "W_in")
        for b in range(self.depth):
            r = self._conv(ops, act.fn(ops, self._conv(ops, act.fn(ops, h), params, f"W1_{b}")), params, f"W2_{b}")
            h = h + (r if self.branch == "1" else self.branch_multiplier * r)
        h = ops.mean(h, axis=tuple(range(-(spatial + 1), -1)))           # global average pooling
        y = ops.matmul(h, params["W_out"])
        m = self._layers["W_out"][1].multiplier
        return y if m == 1.0 else m * y

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        return {k: sc.lr(optimizer_kind) for k, (_, sc) in self._layers.items()}
