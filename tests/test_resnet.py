"""harness.resnet: the residual MLP and CNN on both backends (parity, ensembles), the depth-muP branch multiplier
and what it is for (the output's scale stays of order one as the depth grows, where a plain residual net's grows),
and bad input."""
import numpy as np
import pytest

from harness import HarnessError, get_backend, sgd
from harness.backends import is_installed
from harness.resnet import ResCNN, ResMLP


@pytest.mark.parametrize("parametrisation", ["standard", "ntk", "mup", "mean-field"])
def test_resmlp_torch_equals_jax(parametrisation):
    if not (is_installed("torch") and is_installed("jax")):
        pytest.skip("parity needs torch and jax")
    t, j = get_backend("torch", dtype="float64"), get_backend("jax", dtype="float64")
    m = ResMLP(5, 16, 3, parametrisation, branch="depth-mup", base_width=4, output_dim=2)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((6, 5)), rng.standard_normal((6, 2))
    pt, pj = t.init(m, 1), j.init(m, 1)
    np.testing.assert_allclose(t.apply(m, pt, x), j.apply(m, pj, x), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(t.ntk(m, pt, x, method="jacobian"), j.ntk(m, pj, x, method="jacobian"), rtol=1e-10,
                               atol=1e-12)
    rt, rj = t.train(m, pt, x, y, sgd(0.05), 5), j.train(m, pj, x, y, sgd(0.05), 5)
    np.testing.assert_allclose(rt.history["loss"], rj.history["loss"], rtol=1e-10)


def test_resmlp_ensemble_is_each_network(backend64):
    m = ResMLP(3, 8, 2, "standard")
    x = np.random.default_rng(1).standard_normal((4, 3))
    out = backend64.apply(m, backend64.init_ensemble(m, [1, 2]), x)
    for e, s in enumerate([1, 2]):
        np.testing.assert_allclose(out[e], backend64.apply(m, backend64.init(m, s), x), rtol=1e-12, atol=1e-14)


def test_depth_mup_keeps_the_output_scale_as_depth_grows(backend64):
    """Over 64 networks, the output's RMS at init from depth 4 to depth 64: with branch 1/sqrt(depth) it changes by
    less than a factor 2; with branch 1 it grows by more than 10 (each block adds an O(1) increment)."""
    x = np.random.default_rng(2).standard_normal((8, 6))

    def rms(depth, branch):
        m = ResMLP(6, 64, depth, "standard", branch=branch)
        return float(np.sqrt(np.mean(backend64.apply(m, backend64.init_ensemble(m, range(64)), x) ** 2)))
    assert ResMLP(6, 8, 16, "mup", branch="depth-mup").branch_multiplier == pytest.approx(0.25)
    mup = rms(64, "depth-mup") / rms(4, "depth-mup")
    plain = rms(64, "1") / rms(4, "1")
    assert 0.5 < mup < 2 and plain > 10, (mup, plain)


@pytest.mark.parametrize("kw,match", [(dict(branch="half"), "field branch"), (dict(depth=0), "depth must be"),
                                      (dict(parametrisation="xavier"), "unknown parametrisation")])
def test_bad_resmlp_is_one_line(kw, match):
    args = dict(input_dim=3, width=8, depth=2, parametrisation="standard")
    args.update(kw)
    with pytest.raises(HarnessError, match=match):
        ResMLP(**args)


@pytest.mark.parametrize("parametrisation", ["standard", "ntk", "mup", "mean-field"])
@pytest.mark.parametrize("shape", [(6, 6, 2), (7, 3)], ids=["2d", "1d"])
def test_rescnn_torch_equals_jax(parametrisation, shape):
    """The residual CNN: the same weights give the same outputs, NTK and SGD trajectory on torch and JAX."""
    if not (is_installed("torch") and is_installed("jax")):
        pytest.skip("parity needs torch and jax")
    t, j = get_backend("torch", dtype="float64"), get_backend("jax", dtype="float64")
    m = ResCNN(shape, 6, 2, parametrisation, branch="depth-mup", base_channels=3, output_dim=2)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4,) + shape), rng.standard_normal((4, 2))
    pt, pj = t.init(m, 1), j.init(m, 1)
    np.testing.assert_allclose(t.apply(m, pt, x), j.apply(m, pj, x), rtol=1e-11, atol=1e-13)
    if parametrisation == "mup":             # the derivatives once: the same code path in every row
        np.testing.assert_allclose(t.ntk(m, pt, x, method="jacobian"), j.ntk(m, pj, x, method="jacobian"),
                                   rtol=1e-10, atol=1e-12)
    rt, rj = t.train(m, pt, x, y, sgd(0.05), 4), j.train(m, pj, x, y, sgd(0.05), 4)
    np.testing.assert_allclose(rt.history["loss"], rj.history["loss"], rtol=1e-10)


def test_rescnn_is_its_blocks_written_out(backend64):
    """Depth 1, branch 1, NTK parametrisation: the output is W_out^T GAP(h + W2 * relu(W1 * relu(h))) with
    h = W_in * x, each convolution harness.cnn.conv (itself checked against the frameworks') times the NTK
    parametrisation's W_std / sqrt(fan-in), fan-in the filter size times the input channels, W_std 1 except the
    block's second convolution (ReLU's sqrt(2), as in ResMLP)."""
    from harness.cnn import conv
    m = ResCNN((5, 5, 2), 4, 1, "ntk")
    p = m.init(0)
    x = np.random.default_rng(4).standard_normal((3, 5, 5, 2))

    class NP:                                   # NumPy as ops, enough for conv
        stack, reshape, matmul, concatenate = staticmethod(np.stack), staticmethod(np.reshape), \
            staticmethod(np.matmul), staticmethod(np.concatenate)

        @staticmethod
        def zeros_like(a):
            return np.zeros_like(a)
    c = lambda h, w: conv(NP, h, w, 1, "SAME", 2)            # noqa: E731
    relu = lambda a: np.maximum(a, 0)                         # noqa: E731
    h = c(x, p["W_in"]) / np.sqrt(9 * 2)
    h = h + c(relu(c(relu(h), p["W1_0"]) / np.sqrt(9 * 4)), p["W2_0"]) * np.sqrt(2) / np.sqrt(9 * 4)
    want = h.mean(axis=(1, 2)) @ p["W_out"] / np.sqrt(4)
    np.testing.assert_allclose(backend64.apply(m, backend64.init(m, 0), x), want, rtol=1e-11, atol=1e-13)


def test_rescnn_ensemble_is_each_network(backend64):
    m = ResCNN((5, 2), 4, 2, "standard")
    x = np.random.default_rng(5).standard_normal((3, 5, 2))
    out = backend64.apply(m, backend64.init_ensemble(m, [1, 2]), x)
    for e, s in enumerate([1, 2]):
        np.testing.assert_allclose(out[e], backend64.apply(m, backend64.init(m, s), x), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kw,match", [(dict(branch="half"), "field branch"), (dict(filter=7), "field filter"),
                                      (dict(input_shape=(6, 6, 2, 1)), "input_shape"),
                                      (dict(channels=0), "channels must be")])
def test_bad_rescnn_is_one_line(kw, match):
    args = dict(input_shape=(6, 6, 2), channels=4, depth=2, parametrisation="standard")
    args.update(kw)
    with pytest.raises(HarnessError, match=match):
        ResCNN(**args)
