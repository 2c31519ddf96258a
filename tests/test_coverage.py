"""Coverage of the verdict engine's intervals, measured by simulation at the levels the claims use.

Each test simulates a claim's design (its number of scales and seeds, its summary) with realistic seed noise
(log-normal, sigma 0.3, the spread seen in the NTK and lazy-training claims) around a known truth, evaluates the
law exactly as a claim run does (``Law.estimate``), and counts misses. The levels are those of the registered
claims: every law of ``claims run --all`` (family-wise 0.05 over all its verdicts), the claim tests (0.05 per
drawn premise over a claim's verdicts) and 0.95.

Tolerance: the observed miss count is compared with the nominal rate by a one-sided exact binomial test at level
``FALSE_FAIL`` = 1e-3, so each assertion fails with probability <= 1e-3 when the interval covers at its level (the
simulation's own binomial error sets the tolerance, nothing else). Power: at the reps used, a miss rate three times the
nominal one is detected with probability >= 0.9 at the ``claims run`` level and twice the nominal one at the
claim-test level (checked in ``test_power_of_the_coverage_check``); an interval evaluated at 50% instead of
1 - alpha fails every test here.
"""
import zlib

import numpy as np
import pytest
from scipy.stats import binom, binomtest

from harness.engine.claim import registry
from harness.engine.laws import HOLDS, INCONCLUSIVE, REFUTED, AtScale, EveryScale, Increasing, PowerLaw, Proportion, compare
from harness.engine.stats import spread_over_seeds
from harness.engine.sweep import verdict_count

FALSE_FAIL = 1e-3
SIGMA = 0.3


def run_level() -> float:
    """The interval level of every law in `claims run --all` (family-wise 0.05 over every verdict)."""
    return 1 - 0.05 / sum(verdict_count(c, len(c.cases)) for c in registry().values())


def claim_test_level():
    """The highest per-law level of a claim test (a drawn premise at FALSE_ALARM / EXAMPLES over its verdicts)."""
    from claimcheck import EXAMPLES, FALSE_ALARM
    return 1 - FALSE_ALARM / EXAMPLES / max(verdict_count(c) for c in registry().values())


LEVELS = {"run": run_level(), "test": claim_test_level(), "0.95": 0.95}


def assert_covers(misses: int, reps: int, level: float):
    p = binomtest(misses, reps, 1 - level, alternative="greater").pvalue
    assert p > FALSE_FAIL, f"{misses}/{reps} misses at nominal {1 - level:.3g} (p = {p:.2g})"


def simulate(law, scales, seeds, truth, make, level, reps, seed):
    """Misses of ``law``'s interval around ``truth`` over ``reps`` simulated sweeps; ``make(rng, scale, n)``
    returns one scale's per-seed measurements."""
    rng = np.random.default_rng(seed)
    misses = undefined = 0
    for _ in range(reps):
        est = law.estimate(scales, [make(rng, s, seeds) for s in scales], level)
        if not est.defined:
            undefined += 1
            continue
        misses += not (est.low <= truth <= est.high)
    assert undefined == 0
    return misses


def lognormal_power_law(exponent, c=2.0):
    """Per-seed measurement c n^b exp(sigma z - sigma^2 / 2): the seed mean is exactly c n^b."""
    return lambda rng, n, k: c * n ** exponent * np.exp(SIGMA * rng.standard_normal(k) - SIGMA ** 2 / 2)


# -- power laws on seed means: A1/A3 (5 widths, 10-16 seeds), B1 (4 alphas, 6 seeds), a 3-seed design ----------
@pytest.mark.parametrize("level_name, reps", [("run", 20000), ("test", 8000), ("0.95", 2000)])
@pytest.mark.parametrize("scales, seeds", [((128, 256, 512, 1024, 2048), 10), ((2, 8, 32, 128), 6),
                                           ((0.3, 1.0, 3.0), 3)])
def test_power_law_t_interval_covers(scales, seeds, level_name, reps):
    law = PowerLaw("p", "x", (None, None))
    misses = simulate(law, scales, seeds, -0.5, lognormal_power_law(-0.5), LEVELS[level_name], reps,
                      seed=zlib.crc32(repr((scales, seeds, level_name)).encode()))
    assert_covers(misses, reps, LEVELS[level_name])


def test_power_law_of_a_spread_covers():
    """A2's fluctuation law: the across-seed spread of a 4x4 matrix measurement (entries' sd c n^-1/2), 6
    widths x 40 seeds; the summary is the mean over entries of the seed sd, whose expectation is the sd times
    c4(40) at every width, so the slope's truth is exactly -1/2."""
    scales = (128, 256, 512, 1024, 2048, 4096)
    law = PowerLaw("f", "x", (None, None), summary=spread_over_seeds)
    sd = np.linspace(0.5, 2.0, 16).reshape(4, 4)

    def make(rng, n, k):
        return sd * n ** -0.5 * rng.standard_normal((k, 4, 4))
    reps, level = 3000, LEVELS["test"]
    assert_covers(simulate(law, scales, 40, -0.5, make, level, reps, seed=7), reps, level)


def test_every_scale_and_at_scale_cover_with_three_seeds():
    """B2/B4: the worst (largest) seed mean over 3 scales, and one scale's mean, each from 3 seeds (where a
    percentile bootstrap is [min, max] of three values and covers 75%)."""
    scales = (0.3, 1.0, 3.0)
    means = {0.3: 1.0, 1.0: 1.2, 3.0: 1.1}

    def make(rng, s, k):
        return means[s] * np.exp(SIGMA * rng.standard_normal(k) - SIGMA ** 2 / 2)
    level, reps = LEVELS["test"], 8000
    assert_covers(simulate(EveryScale("w", "x", (None, None)), scales, 3, 1.2, make, level, reps, 1), reps, level)
    assert_covers(simulate(AtScale("a", "x", (None, None), scale=3.0), scales, 3, 1.1, make, level, reps, 2),
                  reps, level)


def test_smallest_rise_covers():
    """B3's monotone law: the smallest rise of the seed mean between consecutive scales, 6 seeds."""
    scales = (0.01, 0.1, 0.3)
    means = {0.01: 1.0, 0.1: 1.1, 0.3: 1.5}

    def make(rng, s, k):
        return means[s] + 0.05 * rng.standard_normal(k)
    level, reps = LEVELS["test"], 8000
    law = Increasing("m", "x", (0.0, None))
    assert_covers(simulate(law, scales, 6, 0.1, make, level, reps, 3), reps, level)


def test_bootstrap_bca_covers_at_moderate_level():
    """The BCa bootstrap (for statistics with no linear form): a power law over 4 scales x 12 seeds at 0.9. No
    registered claim uses it today; its coverage at high levels would need far more resamples than a test can
    afford, so a claim that adopts it should measure coverage at its own level first."""
    law = PowerLaw("b", "x", (None, None), method="bootstrap")
    from harness.engine.stats import bootstrap
    rng = np.random.default_rng(11)
    scales, reps, level, misses = (64, 128, 256, 512), 150, 0.9, 0
    make = lognormal_power_law(-1.0)
    for r in range(reps):
        samples = [make(rng, s, 12) for s in scales]
        est = bootstrap(samples, lambda ss: law.point(scales, ss), level, seed=r, n_resamples=999)
        misses += not (est.low <= -1.0 <= est.high)
    assert_covers(misses, reps, level)


def test_exact_binomial_interval_covers():
    """Proportions (success rates) get Clopper-Pearson intervals: coverage >= the level at every p."""
    law = Proportion("s", "ok", (None, None))
    rng = np.random.default_rng(5)
    for p in (0.5, 0.9):
        misses, reps = 0, 1500
        for _ in range(reps):
            est = law.estimate([1.0], [(rng.random(20) < p).astype(float)], 0.95)
            misses += not (est.low <= p <= est.high)
        assert_covers(misses, reps, 0.95)


# -- the verdicts themselves: refuted at most alpha of the time when the truth is on the band's edge -------------
@pytest.mark.parametrize("edge", ["low", "high"])
def test_refutation_rate_on_the_band_edge_is_at_most_alpha(edge):
    """A1's design with the true exponent exactly on an edge of the band (-1 +- 0.15): the law is refuted with
    probability <= alpha / 2 (one side of a two-sided interval); checked over 4000 runs at alpha 0.02."""
    band = (-1.15, -0.85)
    truth = band[0] if edge == "low" else band[1]
    law = PowerLaw("rate", "x", band)
    rng = np.random.default_rng(17 if edge == "low" else 18)
    scales, reps, alpha = (128, 256, 512, 1024, 2048), 4000, 0.02
    make = lognormal_power_law(truth)
    verdicts = [law.evaluate(scales, [make(rng, s, 10) for s in scales], {}, alpha).verdict for _ in range(reps)]
    refuted = verdicts.count(REFUTED)
    assert binomtest(refuted, reps, alpha / 2, alternative="greater").pvalue > FALSE_FAIL, refuted
    assert verdicts.count(HOLDS) < reps       # on the edge it cannot hold every time


def test_power_of_the_coverage_check():
    """The coverage tests detect a tripled miss rate at the `claims run` level (20000 reps) and a doubled one at
    the claim-test level (8000 reps) with probability >= 0.9 (exact binomial power of the one-sided test)."""
    for level, reps, factor in ((LEVELS["run"], 20000, 3), (LEVELS["test"], 8000, 2)):
        p0 = 1 - level
        critical = binom.isf(FALSE_FAIL, reps, p0)
        assert binom.sf(critical, reps, factor * p0) >= 0.9, (level, reps, factor)


# -- intervals never collapse ---------------------------------------------------------------------------------------
def test_repeated_seed_gives_no_interval_not_a_point():
    """A spread of 0 (every seed the same) under a log: no interval, inconclusive, with the reason."""
    law = PowerLaw("f", "x", (-0.65, -0.35), summary=spread_over_seeds)
    samples = [np.full((4, 3), 1.0), np.full((4, 3), 2.0)]
    res = law.evaluate([1, 2], samples, {}, 0.01)
    assert res.verdict == INCONCLUSIVE and not res.estimate.defined and res.note


def test_constant_statistic_is_inconclusive_unless_declared_exact():
    """A measurement identical for every seed (B4's depth gain under a depth-2 control) cannot give a statistical
    verdict; a deterministic quantity declared exact is compared as it is."""
    samples = [np.zeros(3), np.zeros(3)]
    res = EveryScale("g", "gain", (1e-3, None), worst="min").evaluate([1, 2], samples, {}, 0.01)
    assert res.verdict == INCONCLUSIVE and "does not vary" in res.note
    res = AtScale("pd", "eig", (1e-12, None), method="exact").evaluate([1, 2], [np.full(3, .5), np.full(3, .7)],
                                                                      {}, 0.01)
    assert res.verdict == HOLDS and res.estimate.value == 0.7
    res = AtScale("pd", "eig", (1e-12, None), method="exact").evaluate([1, 2], [np.zeros(3), np.arange(3.)], {},
                                                                      0.01)
    assert res.verdict == INCONCLUSIVE and "varies" in res.note


def test_nonfinite_measurements_follow_the_stated_rule():
    """A diverged run (NaN) makes a law inconclusive, naming the scale; under ``drop-scale`` the law is fitted on
    the other scales and says which it dropped."""
    rng = np.random.default_rng(0)
    scales = [128, 256, 512, 1024]
    samples = [s ** -0.5 * np.exp(0.05 * rng.standard_normal(12)) for s in scales]
    samples[-1][2] = np.nan
    res = PowerLaw("r", "x", (-0.65, -0.35)).evaluate(scales, samples, {}, 0.01)
    assert res.verdict == INCONCLUSIVE and "1024" in res.note
    res = PowerLaw("r", "x", (-0.65, -0.35), nonfinite="drop-scale").evaluate(scales, samples, {}, 0.01)
    assert res.verdict == HOLDS and "dropped" in res.note and "1024" in res.note


def test_at_scale_names_a_scale_of_the_tier():
    from harness import HarnessError
    with pytest.raises(HarnessError, match="not among the measured scales"):
        AtScale("a", "x", (None, 1.0), scale=0.05).evaluate([0.01, 0.1], [np.ones(3), np.ones(3)], {}, 0.05)


def test_compare_without_interval_is_inconclusive():
    from harness.engine.stats import undefined
    assert compare(undefined(0.95, "t", "why"), (None, 1.0)) == INCONCLUSIVE


def test_exact_power_law_uses_the_scales():
    """A deterministic power law (every seed the same) declared exact: its exponent, from the real scales."""
    scales = [2.0, 4.0, 8.0]
    samples = [np.full(3, 5.0 * s ** -2) for s in scales]
    res = PowerLaw("p", "x", (-2.1, -1.9), method="exact").evaluate(scales, samples, {}, 0.01)
    assert res.verdict == HOLDS and res.estimate.value == pytest.approx(-2.0)
