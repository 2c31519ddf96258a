"""harness.cnn: the convolution against the frameworks' own (torch.nn.functional.conv1d/conv2d and
jax.lax.conv_general_dilated), the model on both backends (float64 parity, ensembles, the backend methods), the
empirical NTK's convergence to the analytic CNTK as the channels grow, and bad input."""
import numpy as np
import pytest

from harness import HarnessError, get_backend, sgd
from harness.backends import is_installed
from harness.cnn import CNN, conv
from harness.cnn_kernels import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, _out_and_pad

CASES = [((7, 6, 3), (3, 2), 1, "SAME"), ((7, 6, 3), (3, 3), 2, "SAME"), ((8, 5, 2), (2, 3), 1, "VALID"),
         ((9, 9, 2), (3, 3), 2, "VALID"), ((11, 3), (5,), 1, "SAME"), ((11, 3), (4,), 3, "VALID")]


@pytest.mark.parametrize("shape,filt,stride,padding", CASES)
def test_conv_is_the_frameworks_convolution(backend64, shape, filt, stride, padding):
    """ops-written im2col convolution == the framework's conv on random inputs (cross-correlation, lax's SAME)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4,) + shape)
    w = rng.standard_normal(tuple(filt) + (shape[-1], 5))
    with backend64._context():
        got = backend64.to_numpy(conv(backend64.ops, backend64.asarray(x), backend64.asarray(w), stride, padding))
    spatial = len(filt)
    if backend64.framework_name == "jax":
        import jax
        dims = ("NHWC", "HWIO", "NHWC") if spatial == 2 else ("NHC", "HIO", "NHC")
        with backend64._context():
            want = np.asarray(jax.lax.conv_general_dilated(x, w, (stride,) * spatial, padding,
                                                           dimension_numbers=dims))
    else:
        import torch
        import torch.nn.functional as F
        xt = torch.tensor(x).movedim(-1, 1)                                   # (N, C, *positions)
        pads = []
        for n, k in reversed(list(zip(shape[:-1], filt))):                    # F.pad: last axis first
            _, lo, hi = _out_and_pad(n, k, stride, padding)
            pads += [lo, hi]
        xt = F.pad(xt, pads)
        wt = torch.tensor(w).permute(*range(spatial + 1, spatial - 1, -1), *range(spatial))  # (C', C, *filter)
        f = F.conv2d if spatial == 2 else F.conv1d
        want = f(xt, wt, stride=stride).movedim(1, -1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def model(channels=6, parametrisation="ntk", **kw):
    layers = (Conv(3, W_std=1.4, b_std=0.2), Activation("relu"), AvgPool(2), Conv(3, 1, "SAME", W_std=1.3),
              Activation("erf"), GlobalAvgPool(), Dense(1.2, 0.1))
    return CNN((6, 6, 2), layers, channels, parametrisation, **kw)


@pytest.fixture
def both():
    if not (is_installed("torch") and is_installed("jax")):
        pytest.skip("parity needs torch and jax")
    return get_backend("torch", dtype="float64"), get_backend("jax", dtype="float64")


@pytest.mark.parametrize("parametrisation", ["ntk", "standard", "mup", "mean-field"])
def test_cnn_torch_equals_jax(both, parametrisation):
    """The same weights give the same outputs and SGD trajectory on torch and JAX in every parametrisation of the
    table, and (once: the same code path) the same NTK by Jacobian and NTVP and per-example gradients."""
    t, j = both
    m = model(parametrisation=parametrisation, base_channels=3, output_dim=2)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 6, 6, 2)), rng.standard_normal((5, 2))
    pt, pj = t.init(m, 3), j.init(m, 3)
    np.testing.assert_allclose(t.apply(m, pt, x), j.apply(m, pj, x), rtol=1e-11, atol=1e-13)
    if parametrisation == "ntk":        # the same code path in every row: the derivatives once
        for method in ("jacobian", "ntvp"):
            np.testing.assert_allclose(t.ntk(m, pt, x, method=method), j.ntk(m, pj, x, method=method), rtol=1e-10,
                                       atol=1e-12)
        np.testing.assert_allclose(t.per_example_grads(m, pt, x, y, flat=True),
                                   j.per_example_grads(m, pj, x, y, flat=True), rtol=1e-10, atol=1e-12)
    rt, rj = t.train(m, pt, x, y, sgd(0.05), 5), j.train(m, pj, x, y, sgd(0.05), 5)
    np.testing.assert_allclose(rt.history["loss"], rj.history["loss"], rtol=1e-10)
    assert rt.history["loss"][-1] < rt.history["loss"][0]
    assert set(m.lr_multipliers("sgd")) == set(m.init(0))


def test_cnn_ensemble_is_each_network(backend64):
    """Parameters stacked on a member axis (init_ensemble) give each network's own outputs, in one computation."""
    m = model(output_dim=3)
    x = np.random.default_rng(2).standard_normal((4, 6, 6, 2))
    ens = backend64.init_ensemble(m, [1, 4, 9])
    out = backend64.apply(m, ens, x)
    assert out.shape == (3, 4, 3)
    for e, s in enumerate([1, 4, 9]):
        np.testing.assert_allclose(out[e], backend64.apply(m, backend64.init(m, s), x), rtol=1e-12, atol=1e-14)


def test_empirical_ntk_approaches_the_cntk_as_channels_grow():
    """Arora et al. 2019: the NTK of a CNN at initialisation tends to the CNTK. Relative Frobenius error, averaged
    over 4 networks, at 8, 32 and 128 channels: it falls with the channels (by at least a factor 2 from 8 to 128,
    where n^-1/2 predicts 4) and is below 0.2 at 128; the NNGP in place of the NTK stays far off."""
    be = get_backend("jax" if is_installed("jax") else "torch", dtype="float64")
    layers = (Conv(3, W_std=1.4, b_std=0.1), Activation("relu"), Conv(3, W_std=1.4), Activation("relu"),
              GlobalAvgPool(), Dense(1.4))
    x = np.random.default_rng(3).standard_normal((6, 5, 5, 2))
    ref = CNN((5, 5, 2), layers, 8, "ntk").analytic_kernels(x)

    def err(channels, k):
        m = CNN((5, 5, 2), layers, channels, "ntk")
        return np.mean([np.linalg.norm(be.ntk(m, be.init(m, s), x) - k) / np.linalg.norm(k) for s in range(4)])
    errors = [err(c, ref.ntk) for c in (8, 32, 128)]
    assert errors[2] < errors[1] < errors[0] and errors[2] < errors[0] / 2 and errors[2] < 0.2, errors
    assert err(128, ref.nngp) > 3 * errors[2]


def test_flatten_readout_and_one_dimensional_signals(backend64):
    m = CNN([9, 2], [Conv(3, 2, W_std=1.3, b_std=0.1), Activation("relu"), Flatten(), Dense(1.3)], 4, "ntk")  # lists
    x = np.random.default_rng(4).standard_normal((3, 9, 2))
    p = backend64.init(m, 0)
    assert p["W0"].shape == (3, 2, 4) and p["W3"].shape == (5 * 4, 1)
    assert backend64.apply(m, p, x).shape == (3, 1)
    assert m.analytic_kernels(x).ntk.shape == (3, 3)


@pytest.mark.parametrize("kw,match", [
    (dict(input_shape=(4, 4, 1), layers=(Conv(5, padding="VALID"), Flatten(), Dense())), "field layers: layer 0 "
                                                                                        r"\(Conv\): a window of 5"),
    (dict(layers=(Conv(3), Activation("relu"), GlobalAvgPool())), "last layer must be Dense"),
    (dict(channels=0), "channels must be a positive integer"),
    (dict(parametrisation="xavier"), "unknown parametrisation"),
    (dict(input_shape=(4,)), "input_shape"),
])
def test_bad_cnn_is_one_line_before_anything_runs(kw, match):
    args = dict(input_shape=(6, 6, 2), layers=(Conv(3), Activation("relu"), GlobalAvgPool(), Dense()), channels=4,
                parametrisation="ntk")
    args.update(kw)
    with pytest.raises(HarnessError, match=match):
        CNN(**args)
    with pytest.raises(HarnessError, match="image shape"):
        model().analytic_kernels(np.ones((2, 5, 5, 2)))
