"""Analytic infinite-width kernels of convolutional networks (the CNTK and the CNN-GP), in NumPy, float64.

Arora et al. 2019 ("On Exact Computation with an Infinitely Wide Neural Net"), Novak et al. 2019 (Bayesian CNNs
with many channels are Gaussian processes); conventions of neural-tangents' ``stax`` (NTK parametrisation,
``shared_weights``), so that ``cnn_kernels(layers, x)`` is ``stax.serial(...)``'s ``kernel_fn(x, x, ("nngp",
"ntk"))`` for the same layers. A network is a tuple of layer specs, each of which carries its kernel map (the stax
pattern; the finite layers of issue 22 will sit beside them):

- :class:`Conv` ``(filter_shape, strides, padding, W_std, b_std)``: 1-D or 2-D, "SAME" or "VALID".
  With ``S`` the covariance over pairs of positions ``(p, p')``: ``S'(p, p') = W_std^2 mean_d S(p + d, p' + d) +
  b_std^2`` (the mean over the filter's offsets ``d``, zero padding), ``T' = W_std^2 mean_d T(p + d, p' + d) +
  S'``.
- :class:`Dense` ``(W_std, b_std)``: a fully connected layer on a flattened or pooled (position-free) input.
- :class:`Activation` ``(name)``: ``S' = E[phi(u) phi(v)]``, ``T' = T * E[phi'(u) phi'(v)]`` with ``(u, v)``
  Gaussian of covariance ``[[S(p, p), S(p, p')], [S(p, p'), S(p', p')]]``
  (:mod:`harness.activations`' dual kernels: exact for ReLU, erf and linear, quadrature otherwise).
- :class:`AvgPool` ``(window_shape, strides, padding)``: the window's mean on each position of the pair.
- :class:`GlobalAvgPool`: the mean over all pairs of positions. :class:`Flatten`: the mean over ``p = p'``.

**What it costs.** Global average pooling (and average pooling) needs the covariance between every pair of
positions, ``N1 N2 (H W)^2`` numbers per layer; a network without pooling, read out by :class:`Flatten`, needs
only ``p = p'``, ``N1 N2 H W`` (neural-tangents' ``diagonal_spatial``), chosen automatically. Image pairs are
processed ``block`` rows of ``x1`` at a time (with ``x2`` omitted, only the columns from the block's first row on:
the kernels are symmetric, which halves the work), so memory is ``block * N2 * (H W)^2 * 8`` bytes per live array
(64 images of 8x8, block 16: 32 MiB each); time grows like ``N1 N2 (H W)^2`` times the filter's width per layer.
Measured on the 2-core machine, one thread, float64 (``asv_benchmarks/nt_cnn.py``, both halves in one sitting,
twice): 64 8x8x3 images through three 3x3 ReLU convolutions and global average pooling took 1.9 s and 284 MB peak
RSS, neural-tangents' jitted ``kernel_fn`` 1.9-2.0 s; with erf and average pooling 0.82-0.87 s against 0.60-0.74 s;
read out by flatten 0.015 s against 0.009 s; 1-D signals of length 16 0.045 s against 0.067 s. By the ``(H W)^2``
count, 16x16 images with pooling cost about 16 times the 8x8 figure (time and memory). The two agree to 3e-9
relative. ``tests/test_cnn_kernels.py`` checks the maps against a loop over pairs of positions, the MLP's kernels
(1x1 images) and Monte Carlo over finite CNNs in NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .activations import ddual, dual, get_activation
from .analytic import Kernels
from .errors import HarnessError

PADDINGS = ("SAME", "VALID")


def _tuple(v, n, name):
    t = (int(v),) * n if np.isscalar(v) else tuple(int(u) for u in v)
    if len(t) != n or any(u < 1 for u in t):
        raise HarnessError(f"{name} must be {n} positive integers (one per spatial axis), got {v!r}")
    return t


def _out_and_pad(size, k, s, padding):
    """Output length and low padding of a window ``k`` with stride ``s`` over ``size`` positions (lax's rules)."""
    if padding == "VALID":
        if k > size:
            raise HarnessError(f"a window of {k} is larger than its input of {size} positions (padding VALID)")
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


@dataclass(frozen=True)
class Conv:
    """A convolution: ``filter_shape`` (an int or one per spatial axis), ``strides`` (default 1), ``padding``
    ("SAME" or "VALID"), weight std ``W_std`` and bias std ``b_std`` (NTK parametrisation: the weights are N(0, 1)
    and the pre-activation is ``W_std / sqrt(fan_in)`` times the filtered sum)."""
    filter_shape: int | tuple = 3
    strides: int | tuple = 1
    padding: str = "SAME"
    W_std: float = 1.0
    b_std: float = 0.0


@dataclass(frozen=True)
class Dense:
    """A fully connected layer (after :class:`Flatten` or :class:`GlobalAvgPool`): weight std ``W_std``, bias std
    ``b_std``, NTK parametrisation."""
    W_std: float = 1.0
    b_std: float = 0.0


@dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity by name (:data:`harness.activations.ACTIVATIONS`: relu, erf, tanh, linear)."""
    name: str = "relu"


@dataclass(frozen=True)
class AvgPool:
    """Average pooling over ``window_shape`` with ``strides`` (default: the window) and ``padding`` ("VALID" or
    "SAME", zeros counted in the mean as in stax's default ``normalize_edges=False``)."""
    window_shape: int | tuple = 2
    strides: int | tuple | None = None
    padding: str = "VALID"


@dataclass(frozen=True)
class GlobalAvgPool:
    """The mean over all positions (a readout needs a :class:`Dense` after it)."""


@dataclass(frozen=True)
class Flatten:
    """All positions and channels as one vector (a readout needs a :class:`Dense` after it)."""


def _check_layers(layers, spatial):
    layers = tuple(layers)
    if not layers:
        raise HarnessError("a CNN needs at least one layer")
    flat = False
    for i, layer in enumerate(layers):
        where = f"layer {i} ({type(layer).__name__})"
        if isinstance(layer, (Conv, AvgPool)):
            if flat:
                raise HarnessError(f"{where}: a spatial layer after Flatten or GlobalAvgPool")
            if layer.padding not in PADDINGS:
                raise HarnessError(f"{where}: padding must be one of {PADDINGS}, got {layer.padding!r}")
            _tuple(layer.filter_shape if isinstance(layer, Conv) else layer.window_shape, spatial, f"{where} window")
            if layer.strides is not None:
                _tuple(layer.strides, spatial, f"{where} strides")
        elif isinstance(layer, (Flatten, GlobalAvgPool)):
            if flat:
                raise HarnessError(f"{where}: the input is already flat")
            flat = True
        elif isinstance(layer, Dense):
            if not flat:
                raise HarnessError(f"{where}: Dense needs a flat input (Flatten or GlobalAvgPool before it)")
        elif isinstance(layer, Activation):
            get_activation(layer.name)
            if flat:
                raise HarnessError(f"{where}: after the readout (Flatten or GlobalAvgPool) only Dense layers")
        else:
            raise HarnessError(f"{where}: not a CNN layer (Conv, Dense, Activation, AvgPool, GlobalAvgPool, Flatten)")
        if isinstance(layer, (Conv, Dense)) and not (layer.W_std > 0 and layer.b_std >= 0):
            raise HarnessError(f"{where}: W_std must be > 0 and b_std >= 0")
    if not flat:
        raise HarnessError("a CNN's kernel needs a readout: Flatten or GlobalAvgPool, then Dense")
    return layers


def _check_images(x, name, spatial=None):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (3, 4):
        raise HarnessError(f"{name} must be (N, H, C) or (N, H, W, C) images, got shape {x.shape}")
    if spatial is not None and x.ndim - 2 != spatial:
        raise HarnessError(f"{name} has {x.ndim - 2} spatial axes, the other input {spatial}")
    if not np.all(np.isfinite(x)):
        raise HarnessError(f"{name} contains NaN or inf")
    return x


def _window_mean(a, axis, k, s, padding):
    """The mean of ``k`` consecutive entries (stride ``s``, zero padding) along ``axis``."""
    size = a.shape[axis]
    out, lo, _ = _out_and_pad(size, k, s, padding)
    shape = list(a.shape)
    shape[axis] = out
    acc = np.zeros(shape)
    for d in range(k):
        first = max(0, -(-(lo - d) // s))              # output o reads input o * s + d - lo where it exists
        last = min(out - 1, (size - 1 + lo - d) // s)
        if last >= first:
            src, dst = [slice(None)] * a.ndim, [slice(None)] * a.ndim
            src[axis] = slice(first * s + d - lo, last * s + d - lo + 1, s)
            dst[axis] = slice(first, last + 1)
            acc[tuple(dst)] += a[tuple(src)]
    acc /= k
    return acc


class _Pairs:
    """Covariances over pairs of positions: ``full`` arrays are ``(..., H, H', W, W')`` (each spatial axis next to
    its partner), diagonal ones ``(..., H, W)`` (``p = p'`` only)."""

    def __init__(self, spatial, full):
        self.spatial, self.full = spatial, full

    def axes(self, a):
        """The (first, second) axis of each spatial pair, from the end of ``a``."""
        if self.full:
            return [(a.ndim - 2 * (self.spatial - i), a.ndim - 2 * (self.spatial - i) + 1) for i in range(self.spatial)]
        return [(a.ndim - self.spatial + i,) for i in range(self.spatial)]

    def conv(self, a, layer):
        """``mean_d a(p + d, p' + d)`` over the filter's offsets, zero padded, strided (both positions shifted
        together). The filter is a product over the spatial axes, so this is one pass per axis (a 1-D filter
        along each pair of axes, as stax does), each offset added into its valid range (no padded copy)."""
        ks = _tuple(layer.filter_shape, self.spatial, "filter_shape")
        ss = _tuple(layer.strides, self.spatial, "strides")
        for ax, k, s in zip(self.axes(a), ks, ss):
            size = a.shape[ax[0]]
            out, lo, _ = _out_and_pad(size, k, s, layer.padding)
            shape = list(a.shape)
            for i in ax:
                shape[i] = out
            acc = np.zeros(shape)
            for d in range(k):
                # output position o reads input o * s + d - lo, where that is inside 0..size-1
                first = max(0, -(-(lo - d) // s))
                last = min(out - 1, (size - 1 + lo - d) // s)
                if last < first:
                    continue
                src, dst = [slice(None)] * a.ndim, [slice(None)] * a.ndim
                for i in ax:
                    src[i] = slice(first * s + d - lo, last * s + d - lo + 1, s)
                    dst[i] = slice(first, last + 1)
                acc[tuple(dst)] += a[tuple(src)]
            a = acc / k
        return a

    def pool(self, a, layer):
        """The window's mean on each position of the pair, independently (a box filter on every spatial axis),
        each offset added into its valid range."""
        ks = _tuple(layer.window_shape, self.spatial, "window_shape")
        ss = ks if layer.strides is None else _tuple(layer.strides, self.spatial, "strides")
        for ax, k, s in zip(self.axes(a), ks, ss):
            for i in ax:
                a = _window_mean(a, i, k, s, layer.padding)
        return a

    def diagonal(self, a):
        """``a(p, p)`` of a full array: ``(..., H, H', W, W') -> (..., H, W)``."""
        for i in range(self.spatial):
            a = np.diagonal(a, axis1=a.ndim - 2 * self.spatial + i, axis2=a.ndim - 2 * self.spatial + i + 1)
        return a

    def readout(self, a, layer):
        """Flatten: the mean over ``p = p'``; GlobalAvgPool: the mean over every pair."""
        if isinstance(layer, Flatten):
            a = self.diagonal(a) if self.full else a
            return a.mean(axis=tuple(range(a.ndim - self.spatial, a.ndim)))
        return a.mean(axis=tuple(range(a.ndim - 2 * self.spatial, a.ndim)))

    def self_var(self, v):
        """Per-position variances ``v (N, H[, W])`` against an image's own pair array ``(N, H, H'[, W, W'])``: on
        the first and on the second position of each pair."""
        if not self.full:
            return v, v
        n = v.shape[0]
        shape1, shape2 = [n], [n]
        for h in v.shape[1:]:
            shape1 += [h, 1]
            shape2 += [1, h]
        return v.reshape(shape1), v.reshape(shape2)

    def outer_var(self, v1, v2):
        """Broadcast per-position variances ``v1 (N1, H, W)``, ``v2 (N2, H, W)`` against a pair array
        ``(N1, N2, ...)``: ``v1`` on the first position of each pair, ``v2`` on the second."""
        n1, n2 = v1.shape[0], v2.shape[0]
        if not self.full:
            return v1[:, None], v2[None, :]
        shape1, shape2 = [n1, 1], [1, n2]
        for h in v1.shape[1:]:
            shape1 += [h, 1]
            shape2 += [1, h]
        return v1.reshape(shape1), v2.reshape(shape2)


def _duals(act, a, s, b, t):
    """``(E[phi(u) phi(v)], t * E[phi'(u) phi'(v)])`` for variances ``a``, ``b`` and covariance ``s``; ReLU's
    with one angle for both and in place (:func:`harness.activations._relu_dual`'s formulas), the others from
    :mod:`harness.activations`."""
    if act.name != "relu":
        return dual(act, a, s, b), t * ddual(act, a, s, b)
    root = a * b                                      # the full pair array, by broadcasting
    root -= s * s
    np.maximum(root, 0.0, out=root)
    np.sqrt(root, out=root)                           # sqrt(a b - s^2) = sqrt(a b) sin(theta)
    sdot = np.arctan2(root, s)                        # theta, accurate near 0 (arccos of s / sqrt(a b) is not)
    np.subtract(np.pi, sdot, out=sdot)                # pi - theta
    k = np.multiply(sdot, s)
    k += root
    k /= 2 * np.pi                                    # sqrt(a b) (sin + (pi - theta) cos) / 2 pi
    sdot /= 2 * np.pi
    return k, np.multiply(t, sdot, out=sdot)


def _self_covariances(x, layers, pairs):
    """Each image's own covariance over pairs of positions ``(N, H, H'[, W, W'])`` (or its diagonal ``(N, H[,
    W])``) at the input of each of ``layers`` (the spatial ones): what the activations' variances need."""
    c = x.shape[-1]
    if pairs.full:
        cov = np.einsum("apc,aqc->apq" if pairs.spatial == 1 else "ahwc,agvc->ahgwv", x, x) / c
    else:
        cov = np.einsum("...c,...c->...", x, x) / c
    out = []
    for layer in layers:
        out.append(cov)
        if isinstance(layer, Conv):
            cov = layer.W_std ** 2 * pairs.conv(cov, layer) + layer.b_std ** 2
        elif isinstance(layer, AvgPool):
            cov = pairs.pool(cov, layer)
        else:
            v = pairs.diagonal(cov) if pairs.full else cov
            a, b = pairs.self_var(v)
            cov = dual(get_activation(layer.name), a, cov, b)
    return out


def cnn_kernels(layers, x1, x2=None, *, block: int = 16) -> Kernels:
    """(NNGP, NTK) of the CNN ``layers`` between the images ``x1`` ``(N1, H[, W], C)`` and ``x2`` (default
    ``x1``), each ``(N1, N2)`` float64: the infinite-channel limit in the NTK parametrisation, neural-tangents'
    ``stax`` conventions. ``block`` rows of ``x1`` are processed at a time (memory, see the module docstring)."""
    x1 = _check_images(x1, "x1")
    x2 = x1 if x2 is None else _check_images(x2, "x2", x1.ndim - 2)
    if x2.shape[1:-1] != x1.shape[1:-1] or x2.shape[-1] != x1.shape[-1]:
        raise HarnessError(f"x1 {x1.shape[1:]} and x2 {x2.shape[1:]} must have the same image shape")
    if isinstance(block, bool) or int(block) != block or block < 1:
        raise HarnessError(f"block must be a positive integer, got {block!r}")
    spatial = x1.ndim - 2
    layers = _check_layers(layers, spatial)
    full = any(isinstance(layer, (AvgPool, GlobalAvgPool)) for layer in layers)
    pairs = _Pairs(spatial, full)
    flat_at = next(i for i, layer in enumerate(layers) if isinstance(layer, (Flatten, GlobalAvgPool)))
    own1 = _self_covariances(x1, layers[:flat_at], pairs)
    own2 = own1 if x2 is x1 else _self_covariances(x2, layers[:flat_at], pairs)
    c = x1.shape[-1]
    nngp = np.empty((x1.shape[0], x2.shape[0]))
    ntk = np.empty_like(nngp)
    same = x2 is x1                 # symmetric: a block of rows needs only the columns from its first row on
    for start in range(0, x1.shape[0], int(block)):
        rows = slice(start, start + int(block))
        cols = slice(start if same else 0, x2.shape[0])
        if full:
            sub = "apc,bqc->abpq" if spatial == 1 else "ahwc,bgvc->abhgwv"
        else:
            sub = "apc,bpc->abp" if spatial == 1 else "ahwc,bhwc->abhw"
        s = np.einsum(sub, x1[rows], x2[cols]) / c
        t = np.zeros_like(s)
        for i, layer in enumerate(layers[:flat_at]):
            if isinstance(layer, Conv):
                s = layer.W_std ** 2 * pairs.conv(s, layer) + layer.b_std ** 2
                t = layer.W_std ** 2 * pairs.conv(t, layer) + s
            elif isinstance(layer, AvgPool):
                s, t = pairs.pool(s, layer), pairs.pool(t, layer)
            else:
                act = get_activation(layer.name)
                v1 = pairs.diagonal(own1[i][rows]) if full else own1[i][rows]
                v2 = pairs.diagonal(own2[i][cols]) if full else own2[i][cols]
                a, b = pairs.outer_var(v1, v2)
                s, t = _duals(act, a, s, b, t)
        s, t = pairs.readout(s, layers[flat_at]), pairs.readout(t, layers[flat_at])
        for layer in layers[flat_at + 1:]:
            s = layer.W_std ** 2 * s + layer.b_std ** 2
            t = layer.W_std ** 2 * t + s
        nngp[rows, cols], ntk[rows, cols] = s, t
    if same:
        nngp, ntk = (np.triu(k) + np.triu(k, 1).T for k in (nngp, ntk))
    return Kernels(nngp=nngp, ntk=ntk)
