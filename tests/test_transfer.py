"""Learning-rate sweeps and the laws of learning-rate transfer (issue 11): ``harness.transfer`` and the
``LogSlope`` / ``Invariance`` laws at the end of ``harness.engine.laws``.

Coverage tolerances follow tests/test_coverage.py: misses are compared with the nominal rate by a one-sided exact
binomial test at level 1e-3, so a test fails with probability <= 1e-3 when the interval covers at its level.
"""
import numpy as np
import pytest
from scipy.stats import binomtest

from harness import MLP, HarnessError
from harness.engine.laws import HOLDS, REFUTED, Invariance, LogSlope, coefficient_of_variation, compare
from harness.transfer import optimum_location, stack_params, teacher_classes, train_lr_grid

FALSE_FAIL = 1e-3


# -- optimum_location ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("vertex", [-6.0, -6.4, -5.55, -7.49])
def test_optimum_is_the_parabola_vertex(vertex):
    u = np.arange(-11, -2, dtype=float)
    loss = 0.3 + 0.05 * (u - vertex) ** 2
    o = optimum_location(2.0 ** u, loss)
    assert o.note == "" and o.location == pytest.approx(vertex, abs=1e-9)
    assert o.value == pytest.approx(loss.min())


def test_optimum_on_the_edge_or_beside_a_divergence_is_not_a_number():
    u = np.arange(-5, 1, dtype=float)
    edge = optimum_location(2.0 ** u, (u - 3.0) ** 2)
    assert np.isnan(edge.location) and "edge" in edge.note
    loss = (u + 2.0) ** 2
    loss[4] = np.nan                        # the rate above the minimum diverged
    loss[3] = -1.0                          # the minimum beside it: the grid minimum is the optimum
    above = optimum_location(2.0 ** u, loss)
    assert above.location == u[3] and "diverged" in above.note
    loss = (u + 2.0) ** 2
    loss[2] = np.inf                        # the rate below the minimum diverged: no bracket
    loss[3] = -1.0
    below = optimum_location(2.0 ** u, loss)
    assert np.isnan(below.location) and "diverged" in below.note
    none = optimum_location(2.0 ** u, np.full(6, np.nan))
    assert np.isnan(none.location) and none.index == -1


@pytest.mark.parametrize("lrs, losses", [([1e-3, 1e-2], [1.0, 2.0]), ([1e-3, 2e-3, 8e-3], [1, 0, 1]),
                                         ([1e-3, -1, 2e-3], [1, 0, 1])])
def test_optimum_bad_grids(lrs, losses):
    if min(lrs) <= 0:
        with pytest.raises((HarnessError, ValueError)), np.errstate(all="ignore"):
            optimum_location(lrs, losses)
    else:
        with pytest.raises(HarnessError):
            optimum_location(lrs, losses)


def test_teacher_classes_deterministic_one_hot():
    x, y = teacher_classes(50, 8, 3, seed=4)
    x2, y2 = teacher_classes(50, 8, 3, seed=4)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert np.allclose(y.sum(1), 1) and set(np.unique(y)) <= {0.0, 1.0}
    assert np.allclose(np.sum(x * x, 1), 8)
    assert len(np.unique(y.argmax(1))) > 1
    with pytest.raises(HarnessError):
        teacher_classes(10, 4, 1, seed=0)


# -- the batched grid trains each rate exactly as alone ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("par", ["mup", "standard"])
def test_batched_grid_equals_one_rate_at_a_time(backend64, kind, par):
    """The ensemble over rates (one batched step) gives each rate the loss it gets when trained alone (float64,
    a grid that stays stable), minibatches included."""
    x, y = teacher_classes(40, 5, 3, seed=0)
    model = MLP(input_dim=5, width=12, depth=2, parametrisation=par, activation="relu", output_dim=3, bias=True,
                base_width=4, zero_readout=par == "mup")
    params = backend64.init(model, 3)
    lrs = 2.0 ** np.arange(-8, -4) if kind == "adam" else 2.0 ** np.arange(-6, -2)
    a = train_lr_grid(backend64, model, params, x, y, kind, lrs, 7, "cross_entropy", batch_size=16, seed=2)
    b = train_lr_grid(backend64, model, params, x, y, kind, lrs, 7, "cross_entropy", batch_size=16, seed=2,
                      batched=False)
    assert np.all(np.isfinite(a.final_loss))
    np.testing.assert_allclose(a.final_loss, b.final_loss, rtol=1e-9)
    start = backend64.loss(model, params, x, y, "cross_entropy")
    assert np.all(a.final_loss < start)


def test_diverged_rate_is_recorded_as_diverged(backend64):
    x, y = teacher_classes(32, 5, 3, seed=0)
    # tanh and 0.5 * MSE: the readout's SGD update grows geometrically at a huge rate and overflows (a ReLU net
    # under cross-entropy can die instead, a finite loss)
    model = MLP(input_dim=5, width=16, depth=2, parametrisation="ntk", activation="tanh", output_dim=3)
    params = backend64.init(model, 0)
    for batched in (True, False):
        r = train_lr_grid(backend64, model, params, x, y, "sgd", [1e-2, 1e4], 200, "mse", batched=batched)
        assert np.isfinite(r.final_loss[0]) and r.diverged[0] == 0
        assert np.isnan(r.final_loss[1]) and r.diverged[1] == 1


def test_stack_params_shapes():
    p = {"W0": np.ones((3, 4)), "b0": np.arange(4.0)}
    s = stack_params(p, 5)
    assert s["W0"].shape == (5, 3, 4) and s["b0"].shape == (5, 1, 4)
    assert np.array_equal(s["b0"][2, 0], p["b0"])


# -- LogSlope ------------------------------------------------------------------------------------------------------
SCALES = np.array([32.0, 128.0, 512.0])


def test_log_slope_recovers_a_known_slope():
    truth = -0.5                      # log2 optimum moves half a step per doubling
    samples = [np.full(4, -6 + truth * np.log2(s / 32)) + np.array([0.1, -0.1, 0.05, -0.05]) for s in SCALES]
    law = LogSlope("slope", "opt", (-0.25, 0.25))
    est = law.estimate(SCALES, samples, 0.99)
    assert est.value == pytest.approx(truth)
    assert est.low < truth < est.high
    assert compare(est, (-0.25, 0.25)) == REFUTED
    assert compare(law.estimate(SCALES, [s - truth * np.log2(sc / 32) for s, sc in zip(samples, SCALES)], 0.99),
                   (-0.25, 0.25)) == HOLDS


def test_log_slope_base_converts_units():
    samples = [np.array([1.0, 1.2, 0.8]) * 0 + np.log2(s) + np.array([0.0, 0.1, -0.1]) for s in SCALES]
    assert LogSlope("a", "o", (0, 2)).estimate(SCALES, samples, 0.9).value == pytest.approx(1.0)
    assert LogSlope("a", "o", (0, 2), log_base=np.e).estimate(SCALES, samples, 0.9).value == pytest.approx(1 / np.log(2))


def test_log_slope_no_variation_is_inconclusive():
    est = LogSlope("a", "o", (-1, 1)).estimate(SCALES, [np.zeros(3)] * 3, 0.9)
    assert not est.defined and "does not vary" in est.note


@pytest.mark.parametrize("level", [0.95, 1 - 0.05 / 6])
def test_log_slope_interval_covers(level):
    """The design of D2 (3 widths, 4 seeds, optimum noise sd 0.2 in log2 units): coverage at the claim levels."""
    rng = np.random.default_rng(11)
    law = LogSlope("a", "o", (-0.25, 0.25))
    reps, misses = 600, 0
    for _ in range(reps):
        samples = [-6 - 0.1 * np.log2(s / 32) + 0.2 * rng.standard_normal(4) for s in SCALES]
        est = law.estimate(SCALES, samples, level)
        misses += not (est.low <= -0.1 <= est.high)
    p = binomtest(misses, reps, 1 - level, alternative="greater").pvalue
    assert p > FALSE_FAIL, f"{misses}/{reps} misses at nominal {1 - level:.3g}"


# -- Invariance (coefficient of variation across scales) -----------------------------------------------------------
def test_coefficient_of_variation():
    assert coefficient_of_variation([1.0, 1.0, 1.0]) == 0
    assert coefficient_of_variation([1.0, 2.0, 3.0]) == pytest.approx(0.5)


def test_invariance_holds_when_flat_and_is_refuted_when_growing():
    rng = np.random.default_rng(0)
    flat = [0.8 + 0.02 * rng.standard_normal(8) for _ in SCALES]
    growing = [s / 32 * (1 + 0.02 * rng.standard_normal(8)) for s in SCALES]
    law = Invariance("cv", "S", (None, 0.15))
    e1 = law.estimate(SCALES, flat, 0.99)
    assert e1.defined and compare(e1, law.band) == HOLDS
    e2 = law.estimate(SCALES, growing, 0.99)
    assert e2.value > 0.5 and compare(e2, law.band) == REFUTED
    e3 = Invariance("cv", "S", (None, 0.15), from_scale=100).estimate(SCALES, growing, 0.99)
    assert e3.value == pytest.approx(coefficient_of_variation([np.mean(g) for g in growing[1:]]))


def test_invariance_interval_covers():
    """Bootstrap interval of the CV (3 scales, 8 seeds, 10% seed noise around values with CV 0.1)."""
    rng = np.random.default_rng(5)
    means = np.array([0.9, 1.0, 1.1])
    truth = coefficient_of_variation(means)
    law = Invariance("cv", "S", (None, 0.15))
    reps, misses, level = 100, 0, 0.9
    for _ in range(reps):
        est = law.estimate(SCALES, [m * (1 + 0.1 * rng.standard_normal(8)) for m in means], level,
                           seed=int(rng.integers(1 << 30)))
        misses += not (est.low <= truth <= est.high)
    p = binomtest(misses, reps, 1 - level, alternative="greater").pvalue
    assert p > FALSE_FAIL, f"{misses}/{reps} misses at nominal {1 - level:.3g}"


# -- the coordinate check -----------------------------------------------------------------------------------------
def test_coord_check_data_slopes_and_plot(backend64, tmp_path):
    """coord_data has one row per step (row 0 zero), coord_slopes one slope per step and layer, and the plot is
    written; muP's hidden-layer slopes are small and the standard parametrisation's larger, on a tiny sweep."""
    from harness import adam
    from harness.coordcheck import coord_data, coord_slopes, plot_coord_check
    from harness.data import sin_cos_target, sphere
    x = sphere(16, 8, 0)
    y = sin_cos_target(x)
    out = {}
    for par in ("mup", "standard"):
        def make(w, par=par):
            return MLP(input_dim=8, width=w, depth=2, parametrisation=par, activation="tanh", base_width=32,
                       zero_readout=par == "mup")
        data = coord_data(backend64, make, [32, 128, 512], seeds=[0, 1], x=x, y=y, optimizer=adam(2.0 ** -6),
                          steps=3)
        assert set(data) == {32, 128, 512} and data[32].shape == (2, 4, 3)
        assert np.all(data[128][:, 0] == 0) and np.all(data[128][:, 1:] >= 0)
        out[par] = coord_slopes(data)
        assert out[par].shape == (3, 3)
        path = plot_coord_check(data, tmp_path / f"{par}.png", title=par)
        assert path.stat().st_size > 1000
    assert np.all(np.abs(out["mup"][-1, :2]) < 0.15)
    assert out["standard"][-1, 1] > 0.5
    with pytest.raises(HarnessError):
        coord_data(backend64, lambda w: MLP(input_dim=8, width=w, depth=1, parametrisation="mup"), [32], [0],
                   x, y, adam(0.01))
