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
positions, ``N1 N2 (H W)^2`` numbers per layer; a network without pooling, read out by :class:`Flatten`, needs only
``p = p'``, ``N1 N2 H W`` (neural-tangents' ``diagonal_spatial``), chosen automatically. The image pairs (with
``x2`` omitted only ``i <= j``: the kernels are symmetric) are processed ``block`` pairs at a time, the NNGP and the
NTK stacked in one array so that each layer's map is one pass over both; by default a block's arrays are cache-sized
(256 KiB, at least 16 pairs, at most 64 MiB: :data:`BLOCK_BYTES`): on the 2-core machine the global-pooling problem
below took 0.64 s in blocks of 16 pairs (1 MiB) and 0.86-0.94 s in blocks of 16-32 MiB. Time grows like
``N1 N2 (H W)^2`` times the filter's width per layer. Measured on the 2-core machine, one thread, float64
(``asv_benchmarks/nt_cnn.py``, both halves in one sitting, twice, 2026-12-05): 64 8x8x3 images through three 3x3
ReLU convolutions and global average pooling took 0.62-0.63 s (neural-tangents' jitted ``kernel_fn`` 1.65-1.67 s)
and 127 MB peak RSS (24 MB over the interpreter's); with erf and average pooling 0.26 s against 0.50-0.51 s; 1-D
signals of length 16 0.021 s against 0.051-0.053 s; read out by flatten 7 ms against 7-8 ms, and with a stride-2
first convolution 2.5-2.7 ms against 2.0-2.1 ms (there numpy's per-call cost dominates and XLA's fused program is
faster). 64 16x16x3 images with pooling took 13 s and 488 MB peak RSS (the ``(H W)^2`` count says 16 times the 8x8
figure). The two agree to 3e-9 relative.
``tests/test_cnn_kernels.py`` checks the maps against a loop over pairs of positions, the MLP's kernels (1x1
images) and Monte Carlo over finite CNNs in NumPy.
"""
from __future__ import annotations

import functools
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


def _offsets(size, k, s, padding):
    """The filter offsets ``d`` of a window ``k`` (stride ``s``) over ``size`` positions that reach the input, each
    ``(d, first, last)``: output positions ``first..last`` read input ``o * s + d - lo`` (zero padding elsewhere);
    the output length and ``lo`` as :func:`_out_and_pad`."""
    out, lo, _ = _out_and_pad(size, k, s, padding)
    ranges = []
    for d in range(k):
        first = max(0, -(-(lo - d) // s))              # output o reads input o * s + d - lo where it exists
        last = min(out - 1, (size - 1 + lo - d) // s)
        if last >= first:
            ranges.append((d, first, last))
    return out, lo, ranges


@functools.lru_cache(maxsize=256)
def _filter_plan(ndim, axes, size, k, s, padding):
    """:func:`_filter_sum`'s slices for an array of ``ndim`` axes: the output length, the index of the slice the sum
    starts from (``None``: zeros) and the (destination, source) index pairs added into it, in the offsets' order."""
    out, lo, ranges = _offsets(size, k, s, padding)

    def index(r, src):
        idx = [slice(None)] * ndim
        d, first, last = r
        for i in axes:
            idx[i] = slice(first * s + d - lo, last * s + d - lo + 1, s) if src else slice(first, last + 1)
        return tuple(idx)
    full = next((j for j, r in enumerate(ranges[:2]) if r[1] == 0 and r[2] == out - 1), None)
    start = None if full is None else index(ranges[full], True)
    adds = tuple((index(r, False), index(r, True)) for j, r in enumerate(ranges) if j != full)
    return out, start, adds


def _filter_sum(a, axes, k, s, padding):
    """``sum_d a(o * s + d - lo)`` over the offsets of a window ``k``, zero padded, along each axis of ``axes`` (all
    shifted together: a pair of positions moved by the same offset), each offset added into its valid range in
    place. The sum is taken in the offsets' order, starting from zero; where one of the first two offsets covers
    every output position the sum starts from a copy of its slice instead, which gives the same floating-point
    numbers (``0 + x = x``, and two terms commute), so the kernels do not depend on this shortcut."""
    out, start, adds = _filter_plan(a.ndim, tuple(axes), a.shape[axes[0]], k, s, padding)
    if start is None:
        shape = list(a.shape)
        for i in axes:
            shape[i] = out
        acc = np.zeros(shape)
    else:
        acc = np.array(a[start])
    for dst, src in adds:
        acc[dst] += a[src]
    return acc


def _window_mean(a, axis, k, s, padding):
    """The mean of ``k`` consecutive entries (stride ``s``, zero padding) along ``axis``."""
    acc = _filter_sum(a, (axis % a.ndim,), k, s, padding)
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
        together). The filter is a product over the spatial axes, so this is one pass per axis (a 1-D filter along
        each pair of axes, as stax does), each offset added into its valid range (no padded copy). Leading axes of
        ``a`` (image pairs, NNGP and NTK stacked) broadcast."""
        ks = _tuple(layer.filter_shape, self.spatial, "filter_shape")
        ss = _tuple(layer.strides, self.spatial, "strides")
        for ax, k, s in zip(self.axes(a), ks, ss):
            a = _filter_sum(a, ax, k, s, layer.padding)
            a /= k
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
        """Per-position variances ``v (P, H[, W])`` against a pair array ``(P, H, H'[, W, W'])`` (an image's own, or
        the image pairs of a block): on the first and on the second position of each pair of positions."""
        if not self.full:
            return v, v
        n = v.shape[0]
        shape1, shape2 = [n], [n]
        for h in v.shape[1:]:
            shape1 += [h, 1]
            shape2 += [1, h]
        return v.reshape(shape1), v.reshape(shape2)


def _duals(act, a, st, b):
    """The activation's map on ``st`` (the NNGP ``s = st[0]`` and NTK ``t = st[1]``, stacked), in place:
    ``s <- E[phi(u) phi(v)]``, ``t <- t * E[phi'(u) phi'(v)]`` for variances ``a``, ``b`` and covariance ``s``.
    ReLU's and erf's with their shared terms computed once (:mod:`harness.activations`' formulas: ReLU's
    ``sqrt(a b) (sin + (pi - theta) cos) / 2 pi`` and ``(pi - theta) / 2 pi``, erf's ``2/pi arcsin(2 s / sqrt(D))``
    and ``4/pi / sqrt(D - 4 s^2)`` with ``D = (1 + 2a)(1 + 2b)``), the others from :mod:`harness.activations`."""
    s, t = st[0], st[1]
    if act.name == "relu":
        root = a * b                                  # the full pair array, by broadcasting
        root -= s * s
        np.maximum(root, 0.0, out=root)
        np.sqrt(root, out=root)                       # sqrt(a b - s^2) = sqrt(a b) sin(theta)
        theta = np.arctan2(root, s)                   # accurate near 0 (arccos of s / sqrt(a b) is not)
        np.subtract(np.pi, theta, out=theta)          # pi - theta
        s *= theta
        s += root
        s /= 2 * np.pi
        theta /= 2 * np.pi
        t *= theta
    elif act.name == "erf":
        d = (1 + 2 * a) * (1 + 2 * b)                 # the full pair array, by broadcasting
        q = s * s
        q *= -4
        q += d
        np.sqrt(q, out=q)                             # sqrt(D - 4 s^2)
        np.divide(4 / np.pi, q, out=q)
        t *= q
        np.sqrt(d, out=d)
        s *= 2
        s /= d
        np.clip(s, -1, 1, out=s)
        np.arcsin(s, out=s)
        s *= 2 / np.pi
    else:
        dd = ddual(act, a, s, b)
        s[...] = dual(act, a, s, b)
        t *= dd


def _cross(x1, x2, pairs):
    """The input covariance of each pair of images ``(x1[p], x2[p])``, ``x1 . x2 / C`` over pairs of positions:
    ``(P, H, H'[, W, W'])`` (or its diagonal ``(P, H[, W])``)."""
    c = x1.shape[-1]
    if pairs.full:
        sub = "apc,aqc->apq" if pairs.spatial == 1 else "ahwc,agvc->ahgwv"
    else:
        sub = "apc,apc->ap" if pairs.spatial == 1 else "ahwc,ahwc->ahw"
    return np.einsum(sub, x1, x2) / c


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
            cov = pairs.conv(cov, layer)
            cov *= layer.W_std ** 2
            cov += layer.b_std ** 2
        elif isinstance(layer, AvgPool):
            cov = pairs.pool(cov, layer)
        else:
            v = pairs.diagonal(cov) if pairs.full else cov
            a, b = pairs.self_var(v)
            cov = dual(get_activation(layer.name), a, cov, b)
    return out


BLOCK_BYTES = 2 ** 18           # a block's NNGP and NTK arrays together: 256 KiB, cache-sized ...
BLOCK_MIN_PAIRS = 16            # ... but at least 16 image pairs (fewer, larger steps where a pair's arrays are big)
BLOCK_MAX_BYTES = 2 ** 26       # ... within 64 MiB


def cnn_kernels(layers, x1, x2=None, *, block: int | None = None) -> Kernels:
    """(NNGP, NTK) of the CNN ``layers`` between the images ``x1`` ``(N1, H[, W], C)`` and ``x2`` (default
    ``x1``), each ``(N1, N2)`` float64: the infinite-channel limit in the NTK parametrisation, neural-tangents'
    ``stax`` conventions. The pairs of images (with ``x2`` omitted only those ``i <= j``: the kernels are
    symmetric) are processed ``block`` pairs at a time (memory and speed, see the module docstring); default: as
    many as keep a block's NNGP and NTK arrays within :data:`BLOCK_BYTES` (256 KiB) together, but at least
    :data:`BLOCK_MIN_PAIRS` (16) as long as that stays within :data:`BLOCK_MAX_BYTES` (64 MiB)."""
    x1 = _check_images(x1, "x1")
    x2 = x1 if x2 is None else _check_images(x2, "x2", x1.ndim - 2)
    if x2.shape[1:-1] != x1.shape[1:-1] or x2.shape[-1] != x1.shape[-1]:
        raise HarnessError(f"x1 {x1.shape[1:]} and x2 {x2.shape[1:]} must have the same image shape")
    spatial = x1.ndim - 2
    layers = _check_layers(layers, spatial)
    full = any(isinstance(layer, (AvgPool, GlobalAvgPool)) for layer in layers)
    if block is None:
        pair_bytes = 2 * 8 * int(np.prod(x1.shape[1:-1])) ** (2 if full else 1)
        block = max(1, min(max(BLOCK_BYTES // pair_bytes, BLOCK_MIN_PAIRS), BLOCK_MAX_BYTES // pair_bytes))
    if isinstance(block, bool) or int(block) != block or block < 1:
        raise HarnessError(f"block must be a positive integer, got {block!r}")
    block = int(block)
    pairs = _Pairs(spatial, full)
    flat_at = next(i for i, layer in enumerate(layers) if isinstance(layer, (Flatten, GlobalAvgPool)))
    same = x2 is x1
    own1 = _self_covariances(x1, layers[:flat_at], pairs)
    own2 = own1 if same else _self_covariances(x2, layers[:flat_at], pairs)
    var1 = [pairs.diagonal(c) if full else c for c in own1]         # per-position variances at each layer's input
    var2 = var1 if same else [pairs.diagonal(c) if full else c for c in own2]
    n1, n2 = x1.shape[0], x2.shape[0]
    if same:
        first, second = np.triu_indices(n1)
    else:
        first, second = np.repeat(np.arange(n1), n2), np.tile(np.arange(n2), n1)
    nngp = np.empty((n1, n2))
    ntk = np.empty_like(nngp)
    for start in range(0, len(first), block):
        i, j = first[start:start + block], second[start:start + block]
        s = _cross(x1[i], x2[j], pairs)      # (pairs, ...): image pair p is (x1[i[p]], x2[j[p]])
        st = None                   # the NNGP and NTK stacked, (2, ...); until the first convolution the NTK is 0
        for k, layer in enumerate(layers[:flat_at]):
            if isinstance(layer, Conv):
                if st is None:      # T' = W^2 mean_d T + S' with T = 0: S' itself
                    s = pairs.conv(s, layer)
                    s *= layer.W_std ** 2
                    st = np.empty((2,) + s.shape)
                    np.add(s, layer.b_std ** 2, out=st[0])
                    st[1] = st[0]
                else:
                    st = pairs.conv(st, layer)
                    st *= layer.W_std ** 2
                    st[0] += layer.b_std ** 2
                    st[1] += st[0]
            elif isinstance(layer, AvgPool):
                if st is None:
                    s = pairs.pool(s, layer)
                else:
                    st = pairs.pool(st, layer)
            else:
                if st is None:
                    st = np.stack([s, np.zeros_like(s)])
                a, b = pairs.self_var(var1[k][i])[0], pairs.self_var(var2[k][j])[1]
                _duals(get_activation(layer.name), a, st, b)
        if st is None:
            st = np.stack([s, np.zeros_like(s)])
        st = pairs.readout(st, layers[flat_at])
        s, t = st[0], st[1]
        for layer in layers[flat_at + 1:]:
            s = layer.W_std ** 2 * s + layer.b_std ** 2
            t = layer.W_std ** 2 * t + s
        nngp[i, j], ntk[i, j] = s, t
    if same:
        nngp[second, first], ntk[second, first] = nngp[first, second], ntk[first, second]
    return Kernels(nngp=nngp, ntk=ntk)
