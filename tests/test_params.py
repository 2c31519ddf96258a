"""The parametrisation abc-table: coincidences at base width, muP/mean-field scalings, NTK scale across widths,
parameter export/load, and per-layer learning-rate multipliers in training."""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from harness import MLP, PARAMETRISATIONS, adam, sgd

EXPENSIVE = settings(max_examples=max(3, settings.default.max_examples // 3))


def seed_of(*a):
    return zlib.crc32(repr(a).encode())


@st.composite
def arch(draw):
    return dict(input_dim=draw(st.integers(1, 4)), width=draw(st.integers(2, 16)), depth=draw(st.integers(1, 3)),
                activation=draw(st.sampled_from(["relu", "tanh", "erf"])), bias=draw(st.booleans()),
                output_dim=draw(st.sampled_from([1, 2])))


def test_table_is_complete():
    assert set(PARAMETRISATIONS) == {"standard", "ntk", "mup", "mean-field"}


@pytest.mark.parametrize("a,b", [("standard", "mup"), ("ntk", "mean-field")])
@EXPENSIVE
@given(cfg=arch())
def test_coincide_at_base_width(backend64, a, b, cfg):
    """At width == base_width every m-exponent is inert: same weights, outputs, NTK and multipliers all 1
    (as mup's own test checks SP == muP at base shape). At another width they must differ (control)."""
    seed = seed_of(a, b, sorted(cfg.items()))
    x = np.random.default_rng(seed).standard_normal((4, cfg["input_dim"]))
    ma, mb = (MLP(parametrisation=p, base_width=cfg["width"], **cfg) for p in (a, b))
    pa, pb = backend64.init(ma, seed), backend64.init(mb, seed)
    for k, v in backend64.export_params(pa).items():
        np.testing.assert_array_equal(v, backend64.export_params(pb)[k])
    np.testing.assert_array_equal(backend64.apply(ma, pa, x), backend64.apply(mb, pb, x))
    np.testing.assert_array_equal(backend64.ntk(ma, pa, x), backend64.ntk(mb, pb, x))
    for kind in ("sgd", "adam"):
        assert ma.lr_multipliers(kind) == mb.lr_multipliers(kind)
        assert set(ma.lr_multipliers(kind).values()) == {1.0}
    # control: at twice the base width the tables differ somewhere (scales or learning rates)
    wa, wb = (MLP(parametrisation=p, base_width=cfg["width"], **{**cfg, "width": 2 * cfg["width"]})
              for p in (a, b))
    assert wa.scales() != wb.scales() or wa.lr_multipliers("sgd") != wb.lr_multipliers("sgd")


@pytest.mark.parametrize("width", [3, 16, 100])
def test_mup_table_values(width):
    """muP with base_width = 1 (m = width): readout init std s_w / width (variance 1/n^2), SGD lr x m on the
    input layer and biases, / m on the readout; Adam lr / m on hidden and readout layers, 1 on the input."""
    m = MLP(5, width, 2, "mup", "tanh", bias=True, base_width=1)
    (w_in, b_in), (w_hid, _), (w_out, b_out) = m.scales()
    s = m.s_w
    assert w_out.init_std == pytest.approx(s / width, rel=1e-14)
    assert w_hid.init_std == pytest.approx(s / np.sqrt(width), rel=1e-14)
    assert w_in.init_std == pytest.approx(s / np.sqrt(5), rel=1e-14)
    assert all(sc.multiplier == 1.0 for sc in (w_in, w_hid, w_out))
    sgd_m, adam_m = m.lr_multipliers("sgd"), m.lr_multipliers("adam")
    assert sgd_m["W0"] == pytest.approx(width) and sgd_m["b0"] == pytest.approx(width)
    assert sgd_m["W1"] == 1.0 and sgd_m["W2"] == pytest.approx(1 / width)
    assert adam_m["W0"] == 1.0 and adam_m["W1"] == pytest.approx(1 / width) and adam_m["W2"] == pytest.approx(1 / width)
    # biases (TP-V Table 3: SGD rate x fan_out): a hidden layer's x m, the readout's (fan-out 2) width-independent
    assert sgd_m["b1"] == pytest.approx(width) and sgd_m["b2"] == 1.0
    assert adam_m["b0"] == adam_m["b1"] == adam_m["b2"] == 1.0
    assert (b_out.init_std, b_out.multiplier) == (b_in.init_std, b_in.multiplier) == (m.bias_std, 1.0)
    # mean-field: ntk style, readout multiplier s_w / sqrt(n) * n^-1/2 = s_w / n, every SGD lr x n
    mf = MLP(5, width, 1, "mean-field", "tanh", base_width=1)
    assert mf.scales()[-1][0].multiplier == pytest.approx(mf.s_w / width, rel=1e-14)
    assert set(np.round(list(mf.lr_multipliers("sgd").values()), 9)) == {float(width)}


def _one_sgd_step_output_change(backend, parametrisation, width, base_width, seed):
    """mean |f_1(x) - f_0(x)| after one full-batch SGD step at rate 0.5 on 0.5 * MSE, ReLU MLP with biases, zero
    readout, every target 1 (so the readout's and its bias's contributions add, with no cancellation)."""
    x = np.random.default_rng(seed).standard_normal((16, 8)) / np.sqrt(8)
    y = np.ones((16, 1))
    m = MLP(8, width, 2, parametrisation, "relu", bias=True, base_width=base_width, zero_readout=True)
    p = backend.init(m, seed)
    res = backend.train(m, p, x, y, sgd(0.5), steps=1)
    return float(np.mean(np.abs(backend.apply(m, res.params, x) - backend.apply(m, p, x))))


def test_mup_sgd_step_moves_the_output_independently_of_width(backend64, monkeypatch):
    """TP-V's defining property, with biases: under muP one SGD step changes the output by O(1) at every width.
    With a zero readout the change is the readout layer's own update, (lr / m) |x_L|^2 g ~ O(1), plus the readout
    bias's, lr g: a bias rate x m (the hidden biases' rule, wrongly applied to the readout's finite fan-out: the
    table before 2026-11-30) makes the second grow ~ width. Widths 64 and 4096 (m = 1 and 64), 4 seeds, float64,
    deterministic. Measured: ratio of the mean changes about 0.9 with the correct table, about 12 with the planted
    rate; the band [1/4, 4] puts its edges about half-way, in log scale, between 1 and 12. Control: the planted
    rate must land above 4."""
    from harness.parametrisation import Parametrisation

    def ratio(backend):
        small = np.mean([_one_sgd_step_output_change(backend, "mup", 64, 64, s) for s in range(4)])
        wide = np.mean([_one_sgd_step_output_change(backend, "mup", 4096, 64, s) for s in range(4)])
        return wide / small
    r = ratio(backend64)
    assert 1 / 4 < r < 4, r
    mup = PARAMETRISATIONS["mup"]
    planted = Parametrisation("mup", mup.style, {**mup.table, "output_bias": mup.table["bias"]})
    monkeypatch.setitem(PARAMETRISATIONS, "mup", planted)
    fresh = type(backend64)(device="cpu", dtype="float64")       # its compiled steps hold the table they saw
    assert ratio(fresh) > 4, "the planted readout-bias rate x m was not detected"


def test_mup_readout_init_std_sampled():
    """The sampled readout weights have the tabled std: (N-1) s^2 / sigma^2 ~ chi2(N-1); two-sided test at
    alpha = 1e-6 (false-alarm rate 1e-6). Power: the SP std sqrt(width) times larger is rejected."""
    width, out = 400, 50
    m = MLP(3, width, 1, "mup", "relu", output_dim=out, base_width=1)
    w = m.init(seed_of("mup-std"))["W1"]
    sigma = m.scales()[-1][0].init_std
    n = w.size
    lo, hi = stats.chi2.ppf([0.5e-6, 1 - 0.5e-6], df=n - 1)
    for s_true, expect in ((sigma, True), (sigma * np.sqrt(width), False)):
        stat = (n - 1) * w.var(ddof=1) / s_true ** 2
        assert (lo < stat < hi) == expect, (stat, lo, hi)


def test_ntk_scale_across_widths(backend64):
    """NTK parametrisation: Theta(x, x) at init is O(1) in width; standard: it grows ~ width (the readout gradient
    is the hidden activation, of squared norm ~ n). From width 64 to 512 (x8) the mean diagonal must grow by more
    than 8^0.75 in SP and stay within 8^(+-1/4) in NTK param: halfway, in log scale, between the two theories."""
    x = np.random.default_rng(0).standard_normal((6, 4))

    def mean_diag(p, width):
        m = MLP(4, width, 2, p, "relu")
        return np.mean([np.mean(np.diag(backend64.ntk(m, backend64.init(m, s), x))) for s in range(3)])
    r_sp = mean_diag("standard", 512) / mean_diag("standard", 64)
    r_ntk = mean_diag("ntk", 512) / mean_diag("ntk", 64)
    assert r_sp > 8 ** 0.75, r_sp
    assert 8 ** -0.25 < r_ntk < 8 ** 0.25, r_ntk


def test_export_load_roundtrip_same_backend(backend64):
    m = MLP(3, 7, 2, "mup", "tanh", output_dim=2, bias=True)
    p = backend64.init(m, 11)
    exported = backend64.export_params(p)
    assert all(v.dtype == np.float64 for v in exported.values())
    x = np.random.default_rng(1).standard_normal((4, 3))
    np.testing.assert_array_equal(backend64.apply(m, backend64.load_params(exported), x), backend64.apply(m, p, x))


@pytest.mark.parity
@pytest.mark.parametrize("parametrisation", sorted(PARAMETRISATIONS))
def test_export_from_torch_load_into_jax(parity_backends, parametrisation):
    tb, jb = parity_backends
    m = MLP(3, 7, 2, parametrisation, "tanh", output_dim=2, bias=True)
    x = np.random.default_rng(2).standard_normal((5, 3))
    pt = tb.init(m, 5)
    # perturb away from the seed's weights, so the load (not the shared seed) is what makes them equal
    pt = tb.load_params({k: v + 0.01 * np.cos(np.arange(v.size)).reshape(v.shape)
                         for k, v in tb.export_params(pt).items()})
    pj = jb.load_params(tb.export_params(pt))
    for k, v in jb.export_params(pj).items():
        np.testing.assert_array_equal(v, tb.export_params(pt)[k])        # float64 round trip is bit-exact
    out_t, out_j = tb.apply(m, pt, x), jb.apply(m, pj, x)
    # same float64 weights, same function; only operation order differs (a few ulps of a 2-layer product)
    np.testing.assert_allclose(out_j, out_t, rtol=1e-12, atol=1e-13 * np.abs(out_t).max())


@pytest.mark.parametrize("parametrisation", ["mup", "mean-field"])
@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_training_honours_lr_multipliers(backend64, parametrisation, kind):
    """One optimiser step equals the manual update with the model's per-layer multipliers."""
    m = MLP(3, 8, 2, parametrisation, "tanh", bias=True, base_width=2)      # m = 4: multipliers are not all 1
    mults = m.lr_multipliers(kind)
    assert set(mults.values()) != {1.0}
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    p = backend64.init(m, 7)
    p0 = backend64.export_params(p)
    g = backend64.grad(m, p, x, y)
    lr = 0.01
    opt = sgd(lr) if kind == "sgd" else adam(lr)
    res = backend64.train(m, p, x, y, opt, steps=1)
    p1 = backend64.export_params(res.params)
    for k in p0:
        # Adam's first step is lr * g / (|g| + eps) elementwise (bias-corrected moments equal g and g^2)
        step = g[k] if kind == "sgd" else g[k] / (np.abs(g[k]) + opt.eps)
        expect = p0[k] - lr * mults[k] * step
        np.testing.assert_allclose(p1[k], expect, rtol=1e-12, atol=1e-15, err_msg=k)   # float64: one fused op
    assert res.history["loss"][0] == pytest.approx(backend64.loss(m, p, x, y), rel=1e-13)
