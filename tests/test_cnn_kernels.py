"""harness.cnn_kernels: the CNN-GP and CNTK maps against the MLP's kernels (1x1 images), a brute-force loop over
pairs of positions, and Monte Carlo over finite convolutional networks in NumPy. (Against neural-tangents' stax:
asv_benchmarks/nt_cnn.py, in the peer's own environment.)"""
import itertools

import numpy as np
import pytest

from harness import HarnessError, mlp_kernels
from harness.activations import ddual, dual, get_activation
from harness.cnn_kernels import (Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, _out_and_pad,
                                 cnn_kernels)


@pytest.mark.parametrize("readout", [Flatten, GlobalAvgPool])
@pytest.mark.parametrize("act,depth", [("relu", 2), ("erf", 1), ("relu", 0), ("linear", 1)])
def test_one_pixel_images_are_the_mlp(readout, act, depth):
    """On 1x1 images a 1x1 convolution is a dense layer: the CNN's kernels are the MLP's (same stds)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 1, 1, 4))
    layers = []
    for _ in range(depth):
        layers += [Conv(1, W_std=1.3, b_std=0.2), Activation(act)]
    if depth == 0:
        layers = [Conv(1, W_std=1.3, b_std=0.2)]
    k = cnn_kernels(layers + [readout(), Dense(1.3, 0.2)], x)
    m = mlp_kernels(x.reshape(6, 4), depth=depth, activation=act, weight_std=1.3, bias_std=0.2)
    if depth == 0:   # conv (no activation) then the readout: two linear layers
        m = mlp_kernels(x.reshape(6, 4), depth=1, activation="linear", weight_std=1.3, bias_std=0.2)
    np.testing.assert_allclose(k.nngp, m.nngp, rtol=1e-13)
    # an input with itself: E[phi'(u) phi'(v)] has an infinite slope at u = v (ReLU's angle is sqrt of the
    # rounding of a b - s^2), so the two computations' last-bit differences become ~1e-9 there; off it, 1e-13
    off = ~np.eye(6, dtype=bool)
    np.testing.assert_allclose(k.ntk[off], m.ntk[off], rtol=1e-13)
    np.testing.assert_allclose(np.diag(k.ntk), np.diag(m.ntk), rtol=3e-8)


def _brute(layers, x1, x2):
    """The recursion written as loops over pairs of positions and filter offsets (2-D images), no vectorisation."""
    def shape(a):
        return a.shape[0], a.shape[2]                  # (H, W) of a pair array (H, H', W, W')

    def conv(a, layer, bias):
        k, s, pad = layer.filter_shape, layer.strides, layer.padding
        (h, w) = shape(a)
        oh, lh, _ = _out_and_pad(h, k, s, pad)
        ow, lw, _ = _out_and_pad(w, k, s, pad)
        out = np.zeros((oh, oh, ow, ow))
        for i, i2, j, j2 in itertools.product(range(oh), range(oh), range(ow), range(ow)):
            acc = 0.0
            for di, dj in itertools.product(range(k), range(k)):
                p, p2 = i * s + di - lh, i2 * s + di - lh
                q, q2 = j * s + dj - lw, j2 * s + dj - lw
                if 0 <= p < h and 0 <= p2 < h and 0 <= q < w and 0 <= q2 < w:
                    acc += a[p, p2, q, q2]
            out[i, i2, j, j2] = layer.W_std ** 2 * acc / (k * k) + bias
        return out

    def pool(a, layer):
        k, s = layer.window_shape, layer.strides or layer.window_shape
        (h, w) = shape(a)
        oh, ow = (h - k) // s + 1, (w - k) // s + 1
        out = np.zeros((oh, oh, ow, ow))
        for i, i2, j, j2 in itertools.product(range(oh), range(oh), range(ow), range(ow)):
            for a1, a2, b1, b2 in itertools.product(range(k), repeat=4):
                out[i, i2, j, j2] += a[i * s + a1, i2 * s + a2, j * s + b1, j2 * s + b2] / k ** 4
        return out

    def pair(u, v):
        return np.einsum("hwc,gvc->hgwv", u, v) / u.shape[-1]

    nngp, ntk = np.zeros((len(x1), len(x2))), np.zeros((len(x1), len(x2)))
    for n1, n2 in itertools.product(range(len(x1)), range(len(x2))):
        s12, s11, s22 = pair(x1[n1], x2[n2]), pair(x1[n1], x1[n1]), pair(x2[n2], x2[n2])
        t = np.zeros_like(s12)
        for layer in layers:
            if isinstance(layer, Conv):
                s12, s11, s22 = (conv(a, layer, layer.b_std ** 2) for a in (s12, s11, s22))
                t = conv(t, layer, 0.0) + s12
            elif isinstance(layer, AvgPool):
                s12, s11, s22, t = (pool(a, layer) for a in (s12, s11, s22, t))
            elif isinstance(layer, Activation):
                act = get_activation(layer.name)
                v1 = np.einsum("hhww->hw", s11)
                v2 = np.einsum("hhww->hw", s22)
                a, b = v1[:, None, :, None], v2[None, :, None, :]
                new12 = dual(act, a, s12, b)
                t = t * ddual(act, a, s12, b)
                s11 = dual(act, v1[:, None, :, None], s11, v1[None, :, None, :])
                s22 = dual(act, v2[:, None, :, None], s22, v2[None, :, None, :])
                s12 = new12
            elif isinstance(layer, GlobalAvgPool):
                s12, t = s12.mean(), t.mean()
            elif isinstance(layer, Flatten):
                s12, t = np.einsum("hhww->hw", s12).mean(), np.einsum("hhww->hw", t).mean()
            else:
                s12 = layer.W_std ** 2 * s12 + layer.b_std ** 2
                t = layer.W_std ** 2 * t + s12
        nngp[n1, n2], ntk[n1, n2] = s12, t
    return nngp, ntk


ARCHITECTURES = {
    "same-relu-gap": [Conv(3, W_std=1.4, b_std=0.3), Activation("relu"), Conv(3, W_std=1.2), Activation("relu"),
                      GlobalAvgPool(), Dense(1.1, 0.2)],
    "stride-valid-erf-flatten": [Conv(3, 2, "SAME", W_std=1.5, b_std=0.1), Activation("erf"),
                                 Conv(2, 1, "VALID", W_std=1.3), Activation("relu"), Flatten(), Dense(1.2)],
    "avgpool-gap": [Conv(2, W_std=1.4), Activation("relu"), AvgPool(2), Conv(2, 1, "VALID", W_std=1.3, b_std=0.2),
                    Activation("relu"), GlobalAvgPool(), Dense(1.0, 0.1)],
}


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_kernels_are_the_recursion_over_pairs_of_positions(name):
    """The vectorised maps (one pass per axis, valid ranges instead of padding, the diagonal-only form without
    pooling, blocks of image pairs, only the upper triangle with one set) equal the recursion written as loops, on
    2-D images with two different sets and with one."""
    rng = np.random.default_rng(1)
    x1, x2 = rng.standard_normal((3, 5, 6, 2)), rng.standard_normal((2, 5, 6, 2))
    layers = ARCHITECTURES[name]
    k = cnn_kernels(layers, x1, x2, block=2)
    nngp, ntk = _brute(layers, x1, x2)
    np.testing.assert_allclose(k.nngp, nngp, rtol=1e-12)
    np.testing.assert_allclose(k.ntk, ntk, rtol=1e-12)
    same = cnn_kernels(layers, x1)
    np.testing.assert_allclose(same.ntk, same.ntk.T, rtol=1e-12)
    nngp, ntk = _brute(layers, x1, x1)
    for k in (same, cnn_kernels(layers, x1, block=1)):
        # an image with itself: ReLU's angle is 0 at p = p', where arctan2(sqrt(a b - s^2), s) turns rounding in
        # a b - s^2 into ~sqrt(eps) of the NTK (the loops' rounding is not the maps'); 1e-12 elsewhere above
        np.testing.assert_allclose(k.nngp, nngp, rtol=1e-12)
        np.testing.assert_allclose(k.ntk, ntk, rtol=1e-9)
    assert np.linalg.eigvalsh(same.nngp).min() > 0 and np.linalg.eigvalsh(same.ntk).min() > 0


def _finite_cnn(x, channels, rng, w_std, b_std):
    """One random conv layer (3x3, SAME, ReLU, ``channels`` channels, NTK parametrisation) then global average
    pooling and a dense readout, in NumPy: one network's outputs (N,)."""
    n, h, w, c = x.shape
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = np.stack([pad[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)], axis=3)  # (N,H,W,9,C)
    weights = rng.standard_normal((9, c, channels))
    pre = w_std * np.einsum("nhwkc,kco->nhwo", patches, weights) / np.sqrt(9 * c) + b_std * rng.standard_normal(
        channels)
    feat = np.maximum(pre, 0).mean(axis=(1, 2))                                   # (N, channels)
    return w_std * feat @ rng.standard_normal(channels) / np.sqrt(channels) + b_std * rng.standard_normal()


def test_nngp_is_the_output_covariance_of_random_cnns():
    """Over random initialisations the outputs of a finite CNN with one hidden convolution have covariance exactly
    the CNN-GP kernel (the hidden pre-activations are Gaussian at any width): 2000 networks of 32 channels, the
    Monte Carlo mean within 4.5 standard errors of it at every pair of images (false-fail rate about 1e-4 over
    the 10 entries checked, by Bonferroni)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 5, 5, 2))
    outs = np.stack([_finite_cnn(x, 32, rng, 1.4, 0.3) for _ in range(2000)])    # (networks, N)
    prods = outs[:, :, None] * outs[:, None, :]
    mean, se = prods.mean(0), prods.std(0, ddof=1) / np.sqrt(len(outs))
    k = cnn_kernels([Conv(3, W_std=1.4, b_std=0.3), Activation("relu"), GlobalAvgPool(), Dense(1.4, 0.3)], x)
    iu = np.triu_indices(4)
    z = np.abs(mean - k.nngp)[iu] / se[iu]
    assert z.max() < 4.5, z
    # and it can fail: the kernel of another weight std is rejected by the same criterion
    other = cnn_kernels([Conv(3, W_std=1.2, b_std=0.3), Activation("relu"), GlobalAvgPool(), Dense(1.4, 0.3)], x)
    assert (np.abs(mean - other.nngp)[iu] / se[iu]).max() > 4.5


def test_one_dimensional_convolutions():
    """1-D signals: a length-L signal with filter 1 equals the per-position MLP kernel averaged by Flatten; the
    diagonal-only form (Flatten) and the full form (GlobalAvgPool) agree where they must (the same diagonal)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 7, 3))
    flat = cnn_kernels([Conv(1, W_std=1.3, b_std=0.1), Activation("relu"), Flatten(), Dense(1.3, 0.1)], x)
    per = [mlp_kernels(x[:, p], depth=1, activation="relu", weight_std=1.3, bias_std=0.1) for p in range(7)]
    np.testing.assert_allclose(flat.nngp, 1.3 ** 2 * np.mean([(m.nngp - 0.01) / 1.69 for m in per], 0) + 0.01,
                               rtol=1e-12)
    gap = cnn_kernels([Conv(3, W_std=1.3), Activation("relu"), GlobalAvgPool(), Dense(1.3)], x)
    assert gap.nngp.shape == (4, 4) and np.all(np.isfinite(gap.ntk))


@pytest.mark.parametrize("layers,x_shape,match", [
    ([Conv(3), Activation("relu")], (2, 4, 4, 1), "readout"),
    ([Conv(3), Flatten(), Conv(3), Dense()], (2, 4, 4, 1), "after Flatten"),
    ([Conv(3), Activation("relu"), Dense()], (2, 4, 4, 1), "flat input"),
    ([Conv(5, padding="VALID"), Flatten(), Dense()], (2, 4, 4, 1), "larger than its input"),
    ([Conv(3, padding="FULL"), Flatten(), Dense()], (2, 4, 4, 1), "padding"),
    ([Conv((3, 3, 3)), Flatten(), Dense()], (2, 4, 4, 1), "one per spatial axis"),
    ([Conv(3), Activation("swish"), Flatten(), Dense()], (2, 4, 4, 1), "unknown activation"),
    ([Conv(3, W_std=0.0), Flatten(), Dense()], (2, 4, 4, 1), "W_std"),
    ([Conv(3), GlobalAvgPool(), Activation("relu"), Dense()], (2, 4, 4, 1), "only Dense"),
    ([Conv(3), Flatten(), Dense()], (2, 4), "images"),
])
def test_bad_networks_and_inputs_are_one_line(layers, x_shape, match):
    with pytest.raises(HarnessError, match=match):
        cnn_kernels(layers, np.ones(x_shape))
    with pytest.raises(HarnessError, match="NaN"):
        cnn_kernels([Conv(3), Flatten(), Dense()], np.full((2, 4, 4, 1), np.nan))
