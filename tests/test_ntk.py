"""Empirical NTK (structured / jacobian / ntvp) and the analytic infinite-width kernels.

Numerical tolerances below are float64 identities: two exact formulas for the same quantity, differing only by
roundoff in O(width * depth) accumulations, so 1e-10 relative to max|K| leaves ~5 orders of magnitude of margin
over double precision while still catching any real discrepancy (a missing layer or factor changes entries at
O(1) relative). Statistical tolerances (analytic vs Monte-Carlo) are derived from the across-seed spread.
"""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from harness import MLP, FunctionModel, HarnessError, mlp_kernels, output_scaled
from harness.activations import ACTIVATIONS, _gauss_expectation, ddual, dual

FLOAT64_REL = 1e-10      # see module docstring
ACTIVATION_NAMES = ("relu", "tanh", "erf", "linear")
PARAMETRISATION_NAMES = ("standard", "ntk", "mup", "mean-field")
# every example builds a new model, which JAX compiles anew (~0.5 s per kernel): a third of the profile's examples
EXPENSIVE = settings(max_examples=max(3, settings.default.max_examples // 3))


def seed_of(*settings) -> int:
    """A seed derived from the drawn structure (hypothesis draws structure, never seeds)."""
    return zlib.crc32(repr(settings).encode())


@st.composite
def mlp_cases(draw):
    cfg = dict(
        activation=draw(st.sampled_from(ACTIVATION_NAMES)),
        depth=draw(st.integers(1, 3)),
        width=draw(st.integers(4, 32)),
        input_dim=draw(st.integers(1, 6)),
        bias=draw(st.booleans()),
        parametrisation=draw(st.sampled_from(PARAMETRISATION_NAMES)),
        output_dim=draw(st.sampled_from([1, 2])),
    )
    n1 = draw(st.integers(1, 6))
    n2 = draw(st.integers(1, 4))
    return cfg, n1, n2


def build(cfg, n1, n2):
    seed = seed_of(sorted(cfg.items()), n1, n2)
    model = MLP(cfg["input_dim"], cfg["width"], cfg["depth"], cfg["parametrisation"], cfg["activation"],
                output_dim=cfg["output_dim"], bias=cfg["bias"])
    rng = np.random.default_rng(seed)
    x1 = rng.standard_normal((n1, cfg["input_dim"]))
    x2 = rng.standard_normal((n2, cfg["input_dim"]))
    return model, seed, x1, x2


def as_matrix(k):
    """(N1, N2) or (N1, N2, k, k) -> the (N1 k, N2 k) Gram matrix."""
    if k.ndim == 2:
        return k
    n1, n2, a, b = k.shape
    return k.transpose(0, 2, 1, 3).reshape(n1 * a, n2 * b)


# -- empirical NTK: structure -----------------------------------------------------------------------------------
@EXPENSIVE
@given(case=mlp_cases())
def test_empirical_ntk_symmetric_psd(backend64, case):
    model, seed, x1, _ = build(*case)
    p = backend64.init(model, seed)
    k = backend64.ntk(model, p, x1)
    n, kout = x1.shape[0], model.output_dim
    assert k.shape == ((n, n) if kout == 1 else (n, n, kout, kout))
    g = as_matrix(k)
    scale = np.abs(g).max()
    assert scale > 0
    np.testing.assert_allclose(g, g.T, rtol=0, atol=FLOAT64_REL * scale)
    eig = np.linalg.eigvalsh(0.5 * (g + g.T))
    assert eig.min() >= -FLOAT64_REL * scale, eig
    # the diagonal is a squared gradient norm (zero only when every ReLU unit is dead at that input)
    assert np.all(np.diag(g) >= 0)


@EXPENSIVE
@given(case=mlp_cases())
def test_ntk_methods_agree(backend64, case):
    model, seed, x1, x2 = build(*case)
    p = backend64.init(model, seed)
    xj = np.concatenate([x1, x2])
    n1 = len(x1)
    ref = backend64.ntk(model, p, xj, method="jacobian")
    scale = np.abs(ref).max()
    for m in ("structured", "jacobian", "ntvp"):
        joint = backend64.ntk(model, p, xj, method=m)
        cross = backend64.ntk(model, p, x1, x2, method=m)      # the x2 path: must be the off-diagonal block
        assert joint.shape == ref.shape
        np.testing.assert_allclose(joint, ref, rtol=0, atol=FLOAT64_REL * scale, err_msg=m)
        np.testing.assert_allclose(cross, ref[:n1, n1:], rtol=0, atol=FLOAT64_REL * scale, err_msg=m)
    np.testing.assert_array_equal(backend64.ntk(model, p, xj), backend64.ntk(model, p, xj, method="structured"))


# -- generic path: FunctionModel and output_scaled ------------------------------------------------------------------
def _diag_net(dim):
    def init(seed):
        rng = np.random.default_rng(seed)
        return {"u": rng.standard_normal(dim), "v": rng.standard_normal(dim)}
    return FunctionModel(f"diag{dim}", init, lambda p, x, ops: ops.matmul(x, p["u"] ** 2 - p["v"] ** 2))


@pytest.mark.parametrize("dim,n", [(1, 1), (3, 4), (7, 5)])
def test_diagonal_net_ntk_closed_form(backend64, dim, n):
    model = _diag_net(dim)
    seed = seed_of("diag", dim, n)
    p = backend64.init(model, seed)
    p_np = backend64.export_params(p)
    x = np.random.default_rng(seed + 1).standard_normal((n, dim))
    # f = x . (u^2 - v^2): df/du = 2 u x, df/dv = -2 v x  =>  Theta = x diag(4 u^2 + 4 v^2) x'^T
    expect = x @ np.diag(4 * p_np["u"] ** 2 + 4 * p_np["v"] ** 2) @ x.T
    for method in ("auto", "jacobian", "ntvp"):
        np.testing.assert_allclose(backend64.ntk(model, p, x, method=method), expect, rtol=FLOAT64_REL,
                                   atol=FLOAT64_REL * np.abs(expect).max(), err_msg=method)
    with pytest.raises(HarnessError):
        backend64.ntk(model, p, x, method="structured")


def _two_layer_function_model(d, n, k):
    def init(seed):
        rng = np.random.default_rng(seed)
        return {"A": rng.standard_normal((d, n)), "c": rng.standard_normal((n, k))}

    def apply(p, x, ops):
        return ops.matmul(ops.tanh(ops.matmul(x, p["A"]) / np.sqrt(d)), p["c"]) / np.sqrt(n)
    return FunctionModel(f"two{d}x{n}x{k}", init, apply, output_dim=k)


@pytest.mark.parametrize("k", [1, 3])
def test_function_model_matches_equivalent_mlp(backend64, k):
    d, n, N = 3, 9, 5
    fm = _two_layer_function_model(d, n, k)
    mlp = MLP(d, n, 1, "ntk", "tanh", output_dim=k)      # same function: ntk style, s_w = 1
    seed = seed_of("fm", k)
    p_fm = backend64.init(fm, seed)
    p_np = backend64.export_params(p_fm)
    p_mlp = backend64.load_params({"W0": p_np["A"], "W1": p_np["c"]})
    x = np.random.default_rng(seed).standard_normal((N, d))
    np.testing.assert_allclose(backend64.apply(fm, p_fm, x), backend64.apply(mlp, p_mlp, x), rtol=1e-12)
    ref = backend64.ntk(mlp, p_mlp, x, method="structured")
    scale = np.abs(ref).max()
    for method in ("auto", "jacobian", "ntvp"):
        got = backend64.ntk(fm, p_fm, x, method=method)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=FLOAT64_REL * scale, err_msg=method)


@pytest.mark.parametrize("centered", [True, False])
@pytest.mark.parametrize("alpha", [0.5, 7.0])
def test_output_scaled_ntk(backend64, alpha, centered):
    inner = MLP(3, 10, 2, "ntk", "tanh", bias=True)
    model = output_scaled(inner, alpha, centered=centered)
    seed = seed_of("os", alpha, centered)
    p = backend64.init(model, seed)
    assert any(k.startswith("frozen/") for k in p) == centered
    x = np.random.default_rng(seed).standard_normal((6, 3))
    if centered:   # f(w0) - f(w0) = 0 at init
        np.testing.assert_array_equal(backend64.apply(model, p, x), np.zeros((6, 1)))
    k_inner = backend64.ntk(inner, backend64.init(inner, seed), x, method="jacobian")
    scale = alpha ** 2 * np.abs(k_inner).max()
    ks = {m: backend64.ntk(model, p, x, method=m) for m in ("structured", "jacobian", "ntvp")}
    for m, kk in ks.items():
        # frozen w0 is not differentiated: the kernel is exactly alpha^2 times the inner one
        np.testing.assert_allclose(kk, alpha ** 2 * k_inner, rtol=0, atol=FLOAT64_REL * scale, err_msg=m)


# -- analytic kernels: exact checks -----------------------------------------------------------------------------------
@given(depth=st.integers(0, 4), n=st.integers(1, 6), d=st.integers(1, 5),
       s_w=st.floats(0.3, 2.0, allow_nan=False))
def test_analytic_linear_closed_form(depth, n, d, s_w):
    x = np.random.default_rng(seed_of("lin", depth, n, d)).standard_normal((n, d))
    k = mlp_kernels(x, depth=depth, activation="linear", weight_std=s_w)
    base = x @ x.T / d
    np.testing.assert_allclose(k.nngp, s_w ** (2 * (depth + 1)) * base, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(k.ntk, (depth + 1) * s_w ** (2 * (depth + 1)) * base, rtol=1e-12, atol=1e-14)


@given(s11=st.floats(0.05, 3.0), s22=st.floats(0.05, 3.0), rho=st.floats(-0.98, 0.98))
def test_erf_dual_matches_quadrature(s11, s22, rho):
    # erf and its derivative are entire: Gauss-Hermite converges geometrically; 160 nodes reach ~1e-14 here.
    act = ACTIVATIONS["erf"]
    s12 = rho * np.sqrt(s11 * s22)
    q = _gauss_expectation(act.np_fn, act.np_fn, s11, s12, s22, n_nodes=160)
    qd = _gauss_expectation(act.np_deriv, act.np_deriv, s11, s12, s22, n_nodes=160)
    assert abs(dual(act, s11, s12, s22) - q) < 1e-8
    assert abs(ddual(act, s11, s12, s22) - qd) < 1e-8


def _relu_conditional(s11, s12, s22, deriv):
    """E[relu(u) relu(v)] (or of the Heaviside derivatives) as a 1-D integral: v | u is Gaussian, so the inner
    expectation is closed form and the outer integrand is smooth on z > 0 (adaptive quad, ~1e-12)."""
    a = np.sqrt(s11)
    b = s12 / a
    c = np.sqrt(max(s22 - b * b, 1e-300))
    phi, Phi = stats.norm.pdf, stats.norm.cdf
    if deriv:
        f = lambda z: phi(z) * Phi(b * z / c)
    else:
        f = lambda z: phi(z) * a * z * (b * z * Phi(b * z / c) + c * phi(b * z / c))
    return integrate.quad(f, 0, np.inf, epsabs=1e-13, epsrel=1e-12)[0]


@given(s11=st.floats(0.05, 3.0), s22=st.floats(0.05, 3.0), rho=st.floats(-0.98, 0.98))
def test_relu_dual_matches_integral(s11, s22, rho):
    act = ACTIVATIONS["relu"]
    s12 = rho * np.sqrt(s11 * s22)
    assert abs(dual(act, s11, s12, s22) - _relu_conditional(s11, s12, s22, False)) < 1e-8
    assert abs(ddual(act, s11, s12, s22) - _relu_conditional(s11, s12, s22, True)) < 1e-8


@given(s11=st.floats(0.05, 2.0), s22=st.floats(0.05, 2.0), rho=st.floats(-0.95, 0.95))
def test_tanh_quadrature_converges(s11, s22, rho):
    # tanh has no closed form: the quadrature must converge (150 vs 200 nodes agree to 1e-8 on the variances the
    # recursion meets for tanh nets on sphere inputs). The default 48 nodes are coarser: ~4e-7 at variance 1 and
    # ~1e-5 at variance 2 for E[phi'phi'] (poles of sech^2 at +-i pi/2), far below any Monte-Carlo resolution here.
    act = ACTIVATIONS["tanh"]
    s12 = rho * np.sqrt(s11 * s22)
    for f in (act.np_fn, act.np_deriv):
        ref = _gauss_expectation(f, f, s11, s12, s22, n_nodes=200)
        assert abs(_gauss_expectation(f, f, s11, s12, s22, n_nodes=150) - ref) < 1e-8
    default = _gauss_expectation(act.np_deriv, act.np_deriv, s11, s12, s22)
    assert abs(ddual(act, s11, s12, s22) - default) == 0          # ddual(tanh) is the default quadrature


def sphere(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d))
    return np.sqrt(d) * x / np.linalg.norm(x, axis=1, keepdims=True)


@given(activation=st.sampled_from(["relu", "erf", "tanh"]), depth=st.integers(1, 3), n=st.integers(2, 10),
       d=st.integers(2, 6), bias=st.booleans())
def test_analytic_ntk_positive_definite_on_sphere(activation, depth, n, d, bias):
    x = sphere(n, d, seed_of("pd", activation, depth, n, d, bias))
    s_w = ACTIVATIONS[activation].default_weight_std
    k = mlp_kernels(x, depth=depth, activation=activation, weight_std=s_w, bias_std=0.1 if bias else 0.0)
    np.testing.assert_allclose(k.ntk, k.ntk.T, rtol=1e-12)
    eig = np.linalg.eigvalsh(k.ntk)
    assert eig[0] > 1e-8 * eig[-1], eig


def test_analytic_kernels_reject_bad_input():
    with pytest.raises(HarnessError):
        mlp_kernels(np.ones((2, 2)), depth=1, activation="softsign", weight_std=1.0)


# -- analytic NTK vs Monte-Carlo over seeds at large width ------------------------------------------------------------
MC_ALPHA = 1e-3
MC_SEEDS = 20
MC_WIDTH = 2048


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("activation", ["relu", "erf", "tanh"])
def test_analytic_ntk_matches_monte_carlo(mc_backend, activation, depth, bias):
    """Seed mean of the empirical NTK at width 2048 equals the analytic NTK within its standard error.

    For each of the n(n+1)/2 distinct entries, t = (seed mean - analytic) / (seed std / sqrt(S)) is Student-t with
    S - 1 degrees of freedom (an entry is an average over 2048 units, so near-Gaussian across seeds). The test
    fails if max |t| exceeds the Bonferroni-corrected quantile t_{S-1}(1 - alpha / (2 n_entries)), alpha = 1e-3:
    a false-alarm rate of at most 1e-3 per parametrised case. The finite-width bias of the mean is O(1/width)
    (zero at depth 1, where first-layer pre-activations are exactly Gaussian), ~10x below the standard error.
    Power check: the same statistic against the NNGP kernel must reject.
    """
    d, n = 4, 8
    x = sphere(n, d, seed_of("mc", activation, depth, bias))
    model = MLP(d, MC_WIDTH, depth, "ntk", activation, bias=bias)
    ks = np.stack([mc_backend.ntk(model, mc_backend.init(model, 10_000 + s), x, method="structured")
                   for s in range(MC_SEEDS)])
    analytic = model.analytic_kernels(x)
    iu = np.triu_indices(n)
    mean = ks.mean(0)[iu]
    se = ks.std(0, ddof=1)[iu] / np.sqrt(MC_SEEDS)
    assert np.all(se > 0)
    crit = stats.t.ppf(1 - MC_ALPHA / (2 * len(mean)), df=MC_SEEDS - 1)
    t_ntk = np.abs(mean - analytic.ntk[iu]) / se
    assert t_ntk.max() < crit, (t_ntk.max(), crit)
    t_nngp = np.abs(mean - analytic.nngp[iu]) / se
    assert t_nngp.max() > crit, "test has no power: the NNGP kernel passes too"


def _batch_route(backend):
    """``backend`` with the per-example Jacobian route switched off (its batch-Jacobian fallback)."""
    import copy
    be = copy.copy(backend)
    be._cache, be._no_vmap = {}, set()
    be._example_jacobian_ntk = lambda *a, **k: None
    be._example_jacobians = lambda model: (_ for _ in ()).throw(RuntimeError("off"))
    return be


@pytest.mark.parametrize("arch", ["cnn", "transformer", "output-scaled"])
def test_per_example_jacobians_give_the_batch_jacobians_ntk(backend64, arch):
    """The Jacobian-contraction NTK and ``jacobian`` are computed per input (a vmap of one input's Jacobian,
    neural-tangents' vmap_axes=0: 37x faster on asv's CNN); they are the batch Jacobian's, to rounding, with a
    second input set and per-layer weights too."""
    from harness.cnn import CNN
    from harness.cnn_kernels import Activation, Conv, Dense, GlobalAvgPool
    from harness.transformer import Transformer
    rng = np.random.default_rng(3)
    if arch == "cnn":
        model = CNN((5, 5, 2), (Conv(3, W_std=1.4, b_std=0.1), Activation("relu"), GlobalAvgPool(), Dense(1.4)), 4,
                    "ntk", output_dim=2)
        x = rng.standard_normal((6, 5, 5, 2))
    elif arch == "transformer":
        model = Transformer(input_dim=3, seq_len=4, width=8, heads=2, depth=1, parametrisation="mup", base_width=4)
        x = rng.standard_normal((6, 4, 3))
    else:
        model = output_scaled(MLP(input_dim=3, width=8, depth=2, parametrisation="mup", base_width=4), 2.0)
        x = rng.standard_normal((6, 3))
    params = backend64.init(model, 0)
    weights = {k: 1.0 + i for i, k in enumerate(model.lr_multipliers("sgd") or backend64._split(params)[0])}
    slow = _batch_route(backend64)
    for kw in ({}, {"weights": weights}):
        for x2 in (None, x[:2] + 0.5):
            np.testing.assert_allclose(backend64.ntk(model, params, x, x2, method="jacobian", **kw),
                                       slow.ntk(model, params, x, x2, method="jacobian", **kw), rtol=1e-12,
                                       atol=1e-14)
    fast, ref = backend64.jacobian(model, params, x), slow.jacobian(model, params, x)
    assert fast.keys() == ref.keys()
    for k in fast:
        np.testing.assert_allclose(fast[k], ref[k], rtol=1e-12, atol=1e-14)
    assert not backend64._no_vmap


def test_a_model_the_framework_cannot_vmap_takes_the_batch_jacobian():
    """A torch model with an op functorch cannot batch (``nonzero``: a data-dependent shape) gets the batch
    Jacobian's NTK, and the backend remembers not to try the per-example route for it again."""
    torch = pytest.importorskip("torch")
    from harness import get_backend
    be = get_backend("torch", dtype="float64")

    def apply(p, x, ops):
        keep = torch.nonzero(x[:, 0] == x[:, 0]).reshape(-1)          # every row, by a data-dependent shape
        return ops.matmul(ops.tanh(ops.matmul(x[keep], p["W"])), p["v"])
    rng = np.random.default_rng(0)
    model = FunctionModel("unbatchable", lambda s: {"W": np.random.default_rng(s).standard_normal((3, 5)),
                                                   "v": np.random.default_rng(s + 1).standard_normal((5, 1))},
                          apply)
    params, x = be.init(model, 0), rng.standard_normal((4, 3))
    k = be.ntk(model, params, x, method="jacobian")
    assert be._no_vmap
    np.testing.assert_allclose(k, be.ntk(model, params, x, method="ntvp"), rtol=1e-10)


def test_torch_takes_expanded_weights_where_the_model_broadcasts_and_the_vmap_where_it_mixes_the_batch():
    """torch's per-example Jacobians come from expanded weights (each input a member of an ensemble sharing the
    weights: one batched backward pass) once a first call has found them equal to functorch's vmap; a model that
    mixes the inputs of its batch (here: it centres them) gives other numbers on the member axis and stays on the
    vmap, with the vmap's NTK; so does a first call on a single input, which cannot tell the two apart."""
    pytest.importorskip("torch")
    import copy

    from harness import get_backend
    from harness.backends._base import Backend
    from harness.cnn import CNN
    from harness.cnn_kernels import Activation, Conv, Dense, GlobalAvgPool
    cnn = CNN((5, 5, 2), (Conv(3, W_std=1.4, b_std=0.1), Activation("relu"), GlobalAvgPool(), Dense(1.4)), 4, "ntk",
              output_dim=2)
    seen = []

    def spy(p, x, ops):                 # the CNN, recording the rank of each input it is applied to
        seen.append(len(x.shape))
        return cnn.apply(p, x, ops)

    def centred(p, x, ops):             # mixes the batch: each input minus the batch's mean input
        seen.append(len(x.shape))
        return cnn.apply(p, x - ops.mean(x, axis=0, keepdims=True), ops)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 5, 5, 2))
    for apply_fn, broadcasts in ((spy, True), (centred, False)):
        be = get_backend("torch", dtype="float64")
        model = FunctionModel(apply_fn.__name__, cnn.init, apply_fn, output_dim=2)
        params = be.init(model, 0)
        vmapped = copy.copy(be)
        vmapped._cache, vmapped._no_vmap = {}, set()
        vmapped._example_jacobians = lambda m, _be=vmapped: Backend._example_jacobians(_be, m)
        want = vmapped.ntk(model, params, x, method="jacobian")
        seen.clear()
        be.ntk(model, params, x[:1], method="jacobian")              # one input: the vmap, nothing decided
        assert 5 not in seen
        first = be.ntk(model, params, x, method="jacobian")          # both routes, compared
        assert 5 in seen
        seen.clear()
        again = be.ntk(model, params, x, method="jacobian")
        assert (5 in seen) is broadcasts and (4 in seen) is not broadcasts, seen
        for k in (first, again):
            np.testing.assert_allclose(k, want, rtol=1e-12, atol=1e-14)
