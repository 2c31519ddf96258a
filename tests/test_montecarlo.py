"""Monte Carlo NNGP and NTK of any model (harness.montecarlo, issue 25), on every selected backend, float64.

The reference is the analytic kernel of a one-hidden-layer MLP in the NTK parametrisation (harness.analytic): at
depth 1 the finite-width expectations E[f f'] and E[Theta] equal it exactly at every width, so the Monte Carlo
means are unbiased estimates of it and the statistical checks below have stated rates. Their seeds are fixed, so
each run is deterministic; a rate is the chance that a fresh choice of seeds would fail a correct implementation.

- agreement: every upper-triangle entry within t * se (Bonferroni over all entries of the three cases, alpha 1e-3
  per backend), and the negative checks (the NNGP against the NTK, a weight std 20% too large) rejected;
- calibration: over 64 independent runs the standardised errors (mc - analytic) / se have unit mean square (chi^2
  interval), and the squared standard error at 4x the networks is a quarter (t-test on the differences); both
  halves of the 1/sqrt(networks) law, 4 verdicts at alpha 2.5e-4 each (1e-3 per backend);
- definition (deterministic; also over hypothesis-drawn structures): the estimates are the sample mean and
  sd / sqrt(networks) of the per-network kernels computed one network at a time, whatever the batch or the path
  (batched ensemble, one at a time, FunctionModel);
- parity: the same seeds give the same kernels on torch and JAX (rtol 1e-9, roundoff only);
- bad input: one-line HarnessError.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from scipy import stats

from harness import MLP, FunctionModel, HarnessError, MonteCarloKernels, mlp_kernels, monte_carlo_kernels
from harness.data import sphere

N, D = 6, 5
X = sphere(N, D, 0)
UPPER = np.triu_indices(N)          # the distinct entries of a symmetric kernel (21)


def one_hidden(activation, bias=False, width=128, output_dim=2):
    return MLP(input_dim=D, width=width, depth=1, parametrisation="ntk", activation=activation, bias=bias,
               output_dim=output_dim)


# -- (1) agreement with the analytic kernel at depth 1 ---------------------------------------------------------------
AGREEMENT_CASES = [("relu", False), ("erf", True), ("tanh", False)]     # tanh's analytic kernel: quadrature, ~1e-8
AGREEMENT_NETWORKS = 256
AGREEMENT_ALPHA = 1e-3                                                   # per backend, over every entry of every case
AGREEMENT_ENTRIES = len(AGREEMENT_CASES) * 2 * len(UPPER[0])            # 3 cases x (NNGP, NTK) x 21 entries = 126
# two-sided, Bonferroni; Student t with networks - 1 degrees of freedom (the se is estimated): about 4.56
AGREEMENT_T = stats.t.isf(AGREEMENT_ALPHA / (2 * AGREEMENT_ENTRIES), AGREEMENT_NETWORKS - 1)


def max_abs_z(estimate, reference, se):
    return float(np.max(np.abs((estimate - reference) / se)[UPPER]))


@pytest.mark.parametrize("activation,bias", AGREEMENT_CASES, ids=[a for a, _ in AGREEMENT_CASES])
def test_agrees_with_the_analytic_kernels_at_depth_one(backend64, activation, bias):
    """Width 128, 2 outputs (averaged), 256 networks, fixed seeds. False-fail rate: every one of the 126 entries
    (21 per kernel, 2 kernels, 3 cases) lies within t * se, t = 4.56 for alpha = 1e-3 over all of them (Bonferroni,
    t with 255 df; nominal: the per-network kernels are not Gaussian, their means nearly are).

    False-pass side: the relative standard errors on the diagonal are about 0.07 (NNGP) and 0.009 (NTK), so an
    entry off by more than about (4.56 + 3.1) se, 55% of the NNGP or 7% of the NTK, fails with probability above
    0.999. Two wrong references must be rejected here: the NNGP estimate against the analytic NTK (a mix-up of the
    two kernels), and both estimates against the kernels of a weight std 20% too large (ReLU: x 2.07)."""
    model = one_hidden(activation, bias)
    mc = monte_carlo_kernels(backend64, model, X, networks=AGREEMENT_NETWORKS, seed=7, batch=64)
    assert isinstance(mc, MonteCarloKernels) and mc.networks == AGREEMENT_NETWORKS and mc.batched
    assert mc.nngp.shape == mc.ntk.shape == mc.nngp_se.shape == mc.ntk_se.shape == (N, N)
    exact = model.analytic_kernels(X)
    z_nngp, z_ntk = max_abs_z(mc.nngp, exact.nngp, mc.nngp_se), max_abs_z(mc.ntk, exact.ntk, mc.ntk_se)
    assert z_nngp <= AGREEMENT_T and z_ntk <= AGREEMENT_T, (z_nngp, z_ntk, AGREEMENT_T)

    # negative checks: a wrong kernel is rejected
    assert max_abs_z(mc.nngp, exact.ntk, mc.nngp_se) > AGREEMENT_T
    wrong = mlp_kernels(X, depth=1, activation=activation, weight_std=1.2 * model.s_w,
                        bias_std=model.bias_std if bias else 0.0)
    assert max_abs_z(mc.nngp, wrong.nngp, mc.nngp_se) > AGREEMENT_T
    assert max_abs_z(mc.ntk, wrong.ntk, mc.ntk_se) > AGREEMENT_T


# -- (2) the error shrinks as 1/sqrt(networks) ------------------------------------------------------------------------
RUNS = 64                       # independent runs (seed roots 1000..1063), each a fresh set of networks
SMALL, LARGE = 16, 64           # networks per run: LARGE = 4 x SMALL
CALIBRATION_ALPHA = 1e-3 / 4    # per verdict: chi^2 and t-test, for NNGP and NTK (1e-3 per backend)


def test_standard_errors_are_calibrated_and_shrink_as_root_networks(backend64):
    """Entries of one run's kernel share its networks, so their errors are correlated; each of the 64 independent
    runs contributes one entry (rotating through the 21), so the 64 statistics below are independent.

    (a) Calibration, at 64 networks: z_r = (mc - analytic) / se is Student t with 63 df for Gaussian per-network
    kernels, so sum_r z_r^2 (61/63) is about chi^2 with 64 df; it must lie in the two-sided 1 - 2.5e-4 interval
    (mean square in [0.48, 1.78]). An se off by a factor 2 either way (mean square 0.25 or 4) fails with
    probability above 0.9999.
    (b) The 1/sqrt(networks) law: se^2 * networks is the unbiased sample variance, so D_r = 4 se_r(64)^2 -
    se_r(16)^2 has mean 0 (the 16 networks are the first 16 of the 64: nested, which only lowers the variance).
    The t statistic of the 64 D_r must lie within the two-sided 2.5e-4 quantile of t with 63 df (3.9). An se
    that fell as 1/networks instead (mean of D_r < 0) gives t = -5.6 (NNGP) and -6.8 (NTK) with these seeds (and a
    mean square of z near 60 in (a))."""
    model = one_hidden("relu", width=64, output_dim=1)
    exact = model.analytic_kernels(X)
    z = {"nngp": [], "ntk": []}
    d = {"nngp": [], "ntk": []}
    for r in range(RUNS):
        entry = (UPPER[0][r % len(UPPER[0])], UPPER[1][r % len(UPPER[0])])
        large = monte_carlo_kernels(backend64, model, X, networks=LARGE, seed=1000 + r, batch=LARGE)
        small = monte_carlo_kernels(backend64, model, X, networks=SMALL, seed=1000 + r, batch=SMALL)
        np.testing.assert_array_equal(large.seeds[:SMALL], small.seeds)          # nested
        for name in z:
            est, se, se_small = getattr(large, name), getattr(large, name + "_se"), getattr(small, name + "_se")
            z[name].append((est[entry] - getattr(exact, name)[entry]) / se[entry])
            d[name].append(4 * se[entry] ** 2 - se_small[entry] ** 2)
    nu = LARGE - 1
    lo, hi = stats.chi2.ppf(CALIBRATION_ALPHA / 2, RUNS), stats.chi2.isf(CALIBRATION_ALPHA / 2, RUNS)
    t_crit = stats.t.isf(CALIBRATION_ALPHA / 2, RUNS - 1)
    for name in z:
        q = float(np.sum(np.square(z[name])) * (nu - 2) / nu)
        assert lo <= q <= hi, (name, "chi^2", q, (lo, hi))
        dd = np.asarray(d[name])
        t = float(dd.mean() / (dd.std(ddof=1) / np.sqrt(RUNS)))
        assert abs(t) <= t_crit, (name, "4 se(4n)^2 - se(n)^2", t, t_crit)


def per_network_kernels(backend, model, x1, x2, seeds, average=True):
    """The reference definition, one network at a time: (E, ...) stacks of f(x1) f(x2)^T and Theta."""
    k = model.output_dim
    x2e = x1 if x2 is None else x2
    nngps, ntks = [], []
    for s in seeds:
        p = backend.init(model, int(s))
        f1 = backend.apply(model, p, x1).reshape(len(x1), k)
        f2 = backend.apply(model, p, x2e).reshape(len(x2e), k)
        theta = backend.ntk(model, p, x1, x2, method="jacobian")
        if average or k == 1:
            nngps.append(f1 @ f2.T / k)
            ntks.append(theta if k == 1 else np.einsum("nmaa->nm", theta) / k)
        else:
            nngps.append(np.einsum("na,mb->nmab", f1, f2))
            ntks.append(theta)
    return np.stack(nngps), np.stack(ntks)


def assert_is_mean_and_se(mc, nngps, ntks):
    n = nngps.shape[0]
    for est, se, samples in ((mc.nngp, mc.nngp_se, nngps), (mc.ntk, mc.ntk_se, ntks)):
        np.testing.assert_allclose(est, samples.mean(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(se, samples.std(0, ddof=1) / np.sqrt(n), rtol=1e-8, atol=1e-12)


def test_estimates_are_the_mean_and_standard_error_of_the_networks(backend64):
    """Deterministic: for 10 networks in batches of 4 (4 + 4 + 2, so the running moments merge batches of
    different sizes), the result is the sample mean and sd (ddof=1) / sqrt(10) of the per-network kernels, every
    network being backend.init(model, seeds[e]); the seeds are SeedSequence(seed).generate_state(10), nested in any
    larger run; the one-at-a-time path gives the same numbers; and a cross kernel is a block of the joint one."""
    model = MLP(input_dim=D, width=16, depth=2, parametrisation="standard", activation="tanh", output_dim=2,
                bias=True)
    mc = monte_carlo_kernels(backend64, model, X, networks=10, seed=3, batch=4)
    np.testing.assert_array_equal(mc.seeds, np.random.SeedSequence(3).generate_state(10))
    np.testing.assert_array_equal(monte_carlo_kernels(backend64, model, X, networks=12, seed=3, ntk=False).seeds[:10],
                                  mc.seeds)
    assert mc.batched
    assert_is_mean_and_se(mc, *per_network_kernels(backend64, model, X, None, mc.seeds))

    alone = monte_carlo_kernels(backend64, model, X, networks=10, seed=3, batch=4, ensemble=False)
    assert not alone.batched
    for name in ("nngp", "ntk", "nngp_se", "ntk_se"):
        np.testing.assert_allclose(getattr(alone, name), getattr(mc, name), rtol=1e-10, atol=1e-13)

    full = monte_carlo_kernels(backend64, model, X, networks=10, seed=3, batch=4, average_outputs=False)
    assert full.nngp.shape == full.ntk.shape == (N, N, 2, 2)
    assert_is_mean_and_se(full, *per_network_kernels(backend64, model, X, None, mc.seeds, average=False))
    np.testing.assert_allclose(np.einsum("nmaa->nm", full.nngp) / 2, mc.nngp, rtol=1e-12)

    x1, x2 = X[:4], X[4:]
    cross = monte_carlo_kernels(backend64, model, x1, x2, networks=10, seed=3, batch=4)
    assert cross.nngp.shape == cross.ntk.shape == (4, 2)
    np.testing.assert_allclose(cross.nngp, mc.nngp[:4, 4:], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(cross.ntk, mc.ntk[:4, 4:], rtol=1e-10, atol=1e-13)

    only_nngp = monte_carlo_kernels(backend64, model, X, networks=10, seed=3, ntk=False)
    assert only_nngp.ntk is None and only_nngp.ntk_se is None
    np.testing.assert_allclose(only_nngp.nngp, mc.nngp, rtol=1e-10, atol=1e-13)


@given(k=st.integers(1, 3), n1=st.integers(1, 4), n2=st.one_of(st.none(), st.integers(1, 3)),
       networks=st.integers(2, 7), batch=st.integers(1, 8), average=st.booleans())
def test_shapes_and_definition_over_structures(backend64, k, n1, n2, networks, batch, average):
    """Structure only (the sampling is seeded): any output count, input counts, cross or joint kernel, batch size
    (smaller, equal or larger than the number of networks) and output convention gives the documented shapes and
    the per-network mean and standard error."""
    model = MLP(input_dim=3, width=8, depth=1, parametrisation="ntk", activation="tanh", output_dim=k, bias=True)
    x1 = sphere(n1, 3, 1)
    x2 = None if n2 is None else sphere(n2, 3, 2)
    mc = monte_carlo_kernels(backend64, model, x1, x2, networks=networks, seed=9, batch=batch,
                             average_outputs=average)
    shape = (n1, n1 if n2 is None else n2) + (() if average or k == 1 else (k, k))
    assert mc.nngp.shape == mc.ntk.shape == mc.nngp_se.shape == mc.ntk_se.shape == shape
    assert mc.networks == networks and mc.seeds.shape == (networks,) and mc.batched
    assert_is_mean_and_se(mc, *per_network_kernels(backend64, model, x1, x2, mc.seeds, average=average))


# -- FunctionModels: any model ----------------------------------------------------------------------------------------
def wrapped(model):
    """The MLP as a FunctionModel: the same parameters, the generic (Jacobian) NTK path."""
    return FunctionModel(f"wrapped-{model.activation}", model.init, model.apply, output_dim=model.output_dim)


def unbatchable_init(seed):
    rng = np.random.default_rng(seed)
    return {"W": rng.standard_normal((D, 32)), "v": rng.standard_normal(32)}


def unbatchable_apply(params, x, ops):
    """sum_j v_j tanh(x.W_j / sqrt(d)) / sqrt(n): an elementwise product with the 1-D readout, which does not
    broadcast over an ensemble axis (with as many networks as inputs it broadcasts silently, and wrongly)."""
    h = ops.tanh(ops.matmul(x, params["W"]) / np.sqrt(D))
    return ops.sum(h * params["v"], axis=-1, keepdims=True) / np.sqrt(32)


UNBATCHABLE = FunctionModel("unbatchable-tanh", unbatchable_init, unbatchable_apply)


def test_function_models(backend64):
    """A FunctionModel wrapping an MLP gives the MLP's kernels (batched forward, Jacobian NTK); one whose apply
    does not broadcast over the ensemble is detected by the probe (with batch = N it broadcasts silently and
    wrongly) and runs one network at a time, with the right kernels; ensemble=True then refuses it."""
    mlp = one_hidden("erf", width=32)
    a = monte_carlo_kernels(backend64, mlp, X, networks=8, seed=5, batch=4)
    b = monte_carlo_kernels(backend64, wrapped(mlp), X, networks=8, seed=5, batch=4)
    assert a.batched and b.batched
    for name in ("nngp", "ntk", "nngp_se", "ntk_se"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-9, atol=1e-12)

    for batch in (N, 4):
        mc = monte_carlo_kernels(backend64, UNBATCHABLE, X, networks=8, seed=5, batch=batch)
        assert not mc.batched
        assert_is_mean_and_se(mc, *per_network_kernels(backend64, UNBATCHABLE, X, None, mc.seeds))
    with pytest.raises(HarnessError, match="does not run as a batched ensemble"):
        monte_carlo_kernels(backend64, UNBATCHABLE, X, networks=8, seed=5, batch=N, ensemble=True)


# -- (3) parity ------------------------------------------------------------------------------------------------------
@pytest.mark.parity
@pytest.mark.parametrize("which", ["mlp-depth2", "function-model"])
def test_parity_torch_jax(parity_backends, which):
    """The same seeds give the same kernels and standard errors on torch and JAX in float64: the networks are drawn
    in NumPy, so the backends differ by roundoff only (rtol 1e-9 of each array's scale)."""
    tb, jb = parity_backends
    model = (MLP(input_dim=D, width=32, depth=2, parametrisation="ntk", activation="relu", output_dim=2, bias=True)
             if which == "mlp-depth2" else UNBATCHABLE)
    t = monte_carlo_kernels(tb, model, X, networks=12, seed=11, batch=5)
    j = monte_carlo_kernels(jb, model, X, networks=12, seed=11, batch=5)
    np.testing.assert_array_equal(t.seeds, j.seeds)
    assert t.batched == j.batched == (which == "mlp-depth2")
    for name in ("nngp", "ntk", "nngp_se", "ntk_se"):
        a, b = getattr(t, name), getattr(j, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * np.abs(b).max(), err_msg=name)


# -- (4) bad input ---------------------------------------------------------------------------------------------------
NO_INPUTS = FunctionModel("no-inputs", lambda seed: {"a": np.ones(3)}, lambda p, x, ops: p["a"])
BAD = [
    (dict(networks=1), "networks must be an integer >= 2"),
    (dict(networks=2.5), "networks must be an integer >= 2"),
    (dict(networks=True), "networks must be an integer >= 2"),
    (dict(batch=0), "batch must be an integer >= 1"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(method="magic"), "unknown NTK method"),
    (dict(ensemble="yes"), "ensemble must be"),
    (dict(x1=np.where(np.eye(N, D) > 0, np.nan, X)), "x1 contains NaN or inf"),
    (dict(x2=np.full((2, D), np.inf)), "x2 contains NaN or inf"),
    (dict(x1=X[0]), "x1 must be an array of shape"),
    (dict(x2=np.ones((2, D + 1))), "same feature shape"),
    (dict(x1=None), "needs inputs x1"),
    (dict(model=NO_INPUTS, x1=None), "needs inputs x1"),
    (dict(model="mlp"), "model must be a harness Model"),
]


@pytest.mark.parametrize("kwargs,match", BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line(backend64, kwargs, match):
    args = dict(model=one_hidden("relu", width=8), x1=X, x2=None, networks=4)
    args.update(kwargs)
    model, x1, x2 = args.pop("model"), args.pop("x1"), args.pop("x2")
    with pytest.raises(HarnessError, match=match) as err:
        monte_carlo_kernels(backend64, model, x1, x2, **args)
    assert "\n" not in str(err.value)
