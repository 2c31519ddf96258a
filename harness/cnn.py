"""Convolutional networks: the finite model beside its infinite-width kernels (:mod:`harness.cnn_kernels`).

:class:`CNN` is a :class:`~harness.models.Model` built from the same layer specs the analytic kernels take
(:class:`~harness.cnn_kernels.Conv`, :class:`~harness.cnn_kernels.Activation`, :class:`~harness.cnn_kernels.AvgPool`,
then :class:`~harness.cnn_kernels.GlobalAvgPool` or :class:`~harness.cnn_kernels.Flatten`, then
:class:`~harness.cnn_kernels.Dense`), so ``model.analytic_kernels(x)`` is the limit of ``backend.ntk(model, params,
x)`` as ``channels`` grows. It is written against the backends' ``ops`` with what they already have: a
convolution is the filter's shifted slices stacked (``im2col``) and one ``matmul``, zero padding a
``concatenate``, pooling a mean of slices; so every backend method (NTK by Jacobian or NTVP, per-example
gradients, Hessians, training) runs on it, on torch and JAX alike, and ensembles (stacked parameters) broadcast.

Parametrisations come from the MLP's table (:mod:`harness.parametrisation`): the first convolution is the
``input`` kind, the others ``hidden``, the last :class:`Dense` ``output``; a layer's fan-in is its filter size times
its input channels, its width ``channels`` (``base_channels`` the base). ``W_std`` and ``b_std`` of each layer spec
are the weight and bias stds of the table's formulas (the NTK parametrisation: ``W_std / sqrt(fan_in)`` times the
filtered sum of N(0, 1) weights, plus ``b_std`` times an N(0, 1) bias, stax's convention); ``b_std = 0``: no bias.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .activations import get_activation
from .cnn_kernels import (Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, _check_layers, _out_and_pad,
                          _tuple, cnn_kernels)
from .errors import HarnessError
from .models import Model, _check_positive_int
from .parametrisation import check_init_dist, draw, gaussian_first_layer, get_parametrisation


def _pad(ops, x, axis, lo, hi):
    """Zeros before (``lo``) and after (``hi``) ``x`` along ``axis`` (negative), by concatenation."""
    if lo == 0 and hi == 0:
        return x
    idx = [slice(None)] * len(x.shape)
    idx[axis] = slice(0, 1)
    zero = ops.zeros_like(x[tuple(idx)])
    return ops.concatenate([zero] * lo + [x] + [zero] * hi, axis=axis)


def _windows(ops, x, ks, ss, padding, spatial):
    """The windows of the spatial axes (the ``spatial`` axes before the last): ``[(offsets, slice of x)]``, one
    strided slice per offset of the window, zero padded as ``padding`` says."""
    axes = [-(spatial + 1) + i for i in range(spatial)]
    outs = []
    for ax, k, s in zip(axes, ks, ss):
        out, lo, hi = _out_and_pad(x.shape[ax], k, s, padding)
        x = _pad(ops, x, ax, lo, hi)
        outs.append(out)
    parts = []
    for offset in np.ndindex(*ks):
        idx = [Ellipsis]
        for d, s, out in zip(offset, ss, outs):
            idx.append(slice(d, d + s * (out - 1) + 1, s))
        idx.append(slice(None))
        parts.append(x[tuple(idx)])
    return parts, outs


def conv(ops, x, w, strides=1, padding="SAME", spatial: int | None = None):
    """Convolution (cross-correlation, as the frameworks' conv layers) of ``x`` ``(..., N, *positions, C)`` with
    ``w`` ``(*filter, C, C')`` (or an ensemble's ``(E, *filter, C, C')``: give ``spatial``, the number of
    position axes, which is otherwise ``w.ndim - 2``), ``strides`` an int or one per spatial axis, ``padding``
    "SAME" or "VALID" (lax's rules): ``(..., N, *out, C')``. The filter's shifted slices stacked (im2col) and one
    ``matmul``."""
    spatial = len(w.shape) - 2 if spatial is None else spatial
    ks = tuple(int(k) for k in w.shape[-(spatial + 2):-2])
    c, c_out = int(w.shape[-2]), int(w.shape[-1])
    parts, outs = _windows(ops, x, ks, _tuple(strides, spatial, "strides"), padding, spatial)
    patches = ops.stack(parts, axis=-2)                                   # (..., N, *outs, K, C)
    lead = tuple(patches.shape[:-(spatial + 3)])
    n = patches.shape[-(spatial + 3)]
    fan_in = int(np.prod(ks)) * c
    cols = ops.reshape(patches, lead + (n * int(np.prod(outs)), fan_in))
    h = ops.matmul(cols, ops.reshape(w, tuple(w.shape[:-(spatial + 2)]) + (fan_in, c_out)))
    return ops.reshape(h, tuple(h.shape[:-2]) + (n,) + tuple(outs) + (c_out,))


@dataclass(frozen=True)
class CNN(Model):
    """A convolutional network on ``input_shape`` = ``(H, C)`` (1-D) or ``(H, W, C)`` (2-D) inputs: ``layers`` as
    for :func:`harness.cnn_kernels.cnn_kernels` (convolutions, activations and average pooling, one readout,
    then :class:`Dense` layers, the last with ``output_dim`` outputs, the others ``channels``); every convolution
    has ``channels`` output channels; ``parametrisation`` from the table (required), relative to
    ``base_channels``. Inputs are ``(N, *input_shape)``, outputs ``(N, output_dim)``. ``init_dist``: the
    distribution of the weights, by layer kind or for all (:mod:`harness.parametrisation`; default normal)."""
    input_shape: tuple
    layers: tuple
    channels: int
    parametrisation: str
    output_dim: int = 1
    base_channels: int = 1
    init_dist: object = "normal"

    def __post_init__(self):
        name = f"CNN {self.input_shape}"
        object.__setattr__(self, "init_dist", check_init_dist(self.init_dist, name))
        shape = tuple(self.input_shape)
        object.__setattr__(self, "input_shape", shape)         # tuples: the model is hashed (compile caches)
        object.__setattr__(self, "layers", tuple(self.layers))
        if len(shape) not in (2, 3) or any(isinstance(u, bool) or int(u) != u or u < 1 for u in shape):
            raise HarnessError(f"{name}: input_shape must be (H, C) or (H, W, C) positive integers, got "
                               f"{self.input_shape!r}")
        for field in ("channels", "output_dim", "base_channels"):
            _check_positive_int(f"{name}: {field}", getattr(self, field))
        get_parametrisation(self.parametrisation)
        try:
            _check_layers(self.layers, len(shape) - 1)
            if not isinstance(self.layers[-1], Dense):
                raise HarnessError("the last layer must be Dense (the readout)")
            self._plan
        except HarnessError as e:
            raise HarnessError(f"{name}, field layers: {e}") from None

    @property
    def spatial(self) -> int:
        """The number of spatial axes (1 or 2)."""
        return len(self.input_shape) - 1

    @functools.cached_property
    def _plan(self):
        """Per layer: (spec, kind, fan_in, fan_out, weight shape, LayerScales of weight, of bias), shapes checked."""
        p = get_parametrisation(self.parametrisation)
        sizes, c = list(self.input_shape[:-1]), int(self.input_shape[-1])
        dense = [i for i, layer in enumerate(self.layers) if isinstance(layer, Dense)]
        plan, convs = [], 0
        for i, layer in enumerate(self.layers):
            where = f"layer {i} ({type(layer).__name__})"
            if isinstance(layer, (Conv, AvgPool)):
                ks = _tuple(layer.filter_shape if isinstance(layer, Conv) else layer.window_shape, self.spatial,
                            f"{where} window")
                ss = ks if layer.strides is None else _tuple(layer.strides, self.spatial, f"{where} strides")
                try:
                    sizes = [_out_and_pad(n, k, s, layer.padding)[0] for n, k, s in zip(sizes, ks, ss)]
                except HarnessError as e:
                    raise HarnessError(f"{where}: {e}") from None
            if isinstance(layer, Conv):
                fan_in, fan_out = int(np.prod(ks)) * c, self.channels
                kind = "input" if convs == 0 else "hidden"
                convs += 1
                shape = tuple(ks) + (c, fan_out)
                c = fan_out
            elif isinstance(layer, (Flatten, GlobalAvgPool)):
                c = c * int(np.prod(sizes)) if isinstance(layer, Flatten) else c
                plan.append((layer, None, None, None, None, None, None))
                continue
            elif isinstance(layer, Dense):
                last = i == dense[-1]
                fan_in, fan_out = c, (self.output_dim if last else self.channels)
                kind = "output" if last else ("input" if convs == 0 and i == dense[0] else "hidden")
                shape = (fan_in, fan_out)
                c = fan_out
            else:
                plan.append((layer, None, None, None, None, None, None))
                continue
            ws = p.layer(kind, fan_in, layer.W_std, self.channels, self.base_channels)
            bs = p.layer("output_bias" if kind == "output" else "bias", 1, layer.b_std, self.channels,
                         self.base_channels) if layer.b_std > 0 else None
            plan.append((layer, kind, fan_in, fan_out, shape, ws, bs))
        return tuple(plan)

    def init(self, seed: int) -> dict:
        rng = np.random.default_rng(seed)
        params = {}
        for l, (layer, kind, _, fan_out, shape, ws, bs) in enumerate(self._plan):
            if kind is None:
                continue
            params[f"W{l}"] = draw(rng, shape, ws.init_std, self.init_dist, kind)
            if bs is not None:
                params[f"b{l}"] = draw(rng, (fan_out,), bs.init_std, self.init_dist,
                                       "output_bias" if kind == "output" else "bias")
        return params

    def apply(self, params, x, ops):
        h, spatial = x, self.spatial
        for l, (layer, kind, fan_in, fan_out, shape, ws, bs) in enumerate(self._plan):
            if isinstance(layer, Conv):
                h = conv(ops, h, params[f"W{l}"], layer.strides, layer.padding, spatial)
            elif isinstance(layer, Dense):
                h = ops.matmul(h, params[f"W{l}"])
            elif isinstance(layer, Activation):
                h = get_activation(layer.name).fn(ops, h)
                continue
            elif isinstance(layer, AvgPool):
                ks = _tuple(layer.window_shape, spatial, "window")
                ss = ks if layer.strides is None else _tuple(layer.strides, spatial, "strides")
                parts, _ = _windows(ops, h, ks, ss, layer.padding, spatial)
                h = ops.mean(ops.stack(parts, axis=0), axis=0)
                continue
            elif isinstance(layer, GlobalAvgPool):
                h = ops.mean(h, axis=tuple(range(-(spatial + 1), -1)))
                continue
            else:                                                          # Flatten
                h = ops.reshape(h, tuple(h.shape[:-(spatial + 1)]) + (int(np.prod(h.shape[-(spatial + 1):])),))
                continue
            if ws.multiplier != 1.0:
                h = ws.multiplier * h
            if bs is not None:
                b = params[f"b{l}"]
                if len(b.shape) > 1:        # an ensemble's (E, C'): one per member, broadcast over inputs and positions
                    b = ops.reshape(b, tuple(b.shape[:-1]) + (1,) * (len(h.shape) - len(b.shape)) + (b.shape[-1],))
                h = h + (b if bs.multiplier == 1.0 else bs.multiplier * b)
        return h

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        out = {}
        for l, (layer, kind, _, _, _, ws, bs) in enumerate(self._plan):
            if kind is None:
                continue
            out[f"W{l}"] = ws.lr(optimizer_kind)
            if bs is not None:
                out[f"b{l}"] = bs.lr(optimizer_kind)
        return out

    def analytic_kernels(self, x1, x2=None, block: int | None = None):
        """Infinite-width (NNGP, NTK) of this architecture in the NTK parametrisation (stax's), float64:
        :func:`harness.cnn_kernels.cnn_kernels` on ``(N, *input_shape)`` images. Gaussian first-layer weights
        and biases are assumed: another ``init_dist`` for them is refused (use :mod:`harness.montecarlo`)."""
        if not gaussian_first_layer(self.init_dist):
            raise HarnessError(f"CNN {self.input_shape}: analytic_kernels assumes normal input-layer weights and "
                               f"biases (init_dist {self.init_dist!r}); use harness.montecarlo's Monte Carlo kernels")
        for name, x in (("x1", x1), ("x2", x2)):
            if x is not None and tuple(np.shape(x)[1:]) != tuple(self.input_shape):
                raise HarnessError(f"CNN {self.input_shape}: {name} has image shape {tuple(np.shape(x)[1:])}")
        return cnn_kernels(self.layers, x1, x2, block=block)
