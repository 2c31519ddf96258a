"""Coverage of the verdict engine's intervals, measured at the levels the claims use, and the error rates of the
sequential design's looks.

Levels. Every verdict of ``claims run --all`` and of the claim tests is evaluated at ``0.05 / verdicts`` (the
registry's), spent over the looks of its variant's sequential design (Bonferroni over looks): the per-look
level is at most ``0.05 / verdicts / looks``. ``LEVELS`` holds that strictest per-look level ("look"), the
level of a one-look law at ``claims run --all`` ("run") and 0.95.

Interval methods, each checked where a law can produce it:
- the t interval of a power-law slope on seed means (PowerLaw, and LogSlope's linear form), one scale's mean
  (AtScale), the worst case over scales (EveryScale: per-scale intervals at level / k) and the smallest rise
  between scales (Increasing: Welch differences at level / (k - 1)): simulated with realistic seed noise
  (log-normal, sigma 0.3) around a known truth. At the per-look levels (misses ~1e-4) a simulation needs ~10^5
  sweeps, so each method is simulated by a vectorised replica of its formula, which is first checked to give the
  same interval as the law itself (``Law.estimate``) on the first sweeps: the coverage measured is the law's;
- the exact Clopper-Pearson interval of a proportion (Proportion) and the calibration's one-sided exact bounds
  (``upper_bound``, and ``1 - upper_bound`` as a power's lower bound): their coverage is computed exactly, summing
  the binomial distribution, at every success rate of a grid;
- the BCa bootstrap (no registered claim uses it) at 0.9;
- the sequential design: with the truth on a band edge, the chance that *any* look refutes the law stays within
  the law's alpha (measured through :class:`harness.engine.sweep.Looks`, the engine's own bookkeeping), while
  evaluating every look at the full alpha does not.

Tolerance: an observed miss count is compared with the nominal rate by a one-sided exact binomial test at level
``FALSE_FAIL`` = 1e-3, so each assertion fails with probability <= 1e-3 when the interval covers at its level (the
simulation's own binomial error sets the tolerance, nothing else). Power: at the reps used, a miss rate three times
the nominal one is detected with probability >= 0.9 (``test_power_of_the_coverage_check``).
"""
import zlib

import numpy as np
import pytest
from scipy import stats
from scipy.stats import binom, binomtest

from harness.engine.claim import registry
from harness.engine.laws import (HOLDS, INCONCLUSIVE, REFUTED, AtScale, EveryScale, Increasing, Limit, LogSlope,
                                 PowerLaw, Proportion, compare)
from harness.engine.stats import proportion, spread_over_seeds, upper_bound
from harness.engine.sweep import Looks, verdict_count

FALSE_FAIL = 1e-3
SIGMA = 0.3


def all_law_alpha() -> float:
    """Each law's alpha in `claims run --all` and in the claim tests (family-wise 0.05 over every verdict)."""
    return 0.05 / sum(verdict_count(c, len(c.cases)) for c in registry().values())


def most_looks() -> int:
    return max(len(c.tier(t).looks(v)) for c in registry().values() for t in c.tiers
               for v in ["claim"] + [x.name for x in c.controls])


LEVELS = {"look": 1 - all_law_alpha() / most_looks(), "run": 1 - all_law_alpha(), "0.95": 0.95}
REPS = {"look": 120000, "run": 30000, "0.95": 3000}


def assert_covers(misses: int, reps: int, level: float):
    p = binomtest(misses, reps, 1 - level, alternative="greater").pvalue
    assert p > FALSE_FAIL, f"{misses}/{reps} misses at nominal {1 - level:.3g} (p = {p:.2g})"


def lognormal(rng, means, reps, seeds):
    """(reps, scales, seeds) measurements mean_i exp(sigma z - sigma^2 / 2): the seed mean's expectation is mean_i."""
    z = rng.standard_normal((reps, len(means), seeds))
    return np.asarray(means)[None, :, None] * np.exp(SIGMA * z - SIGMA ** 2 / 2)


# -- vectorised replicas of the t intervals (each checked against the law itself) ------------------------------------
def _jackknife_mean(x, log=False):
    """Per-scale jackknife value and variance of the seed mean (or its log) over the last axis, and df = n - 1."""
    n = x.shape[-1]
    loo = (x.sum(-1, keepdims=True) - x) / (n - 1)
    f = np.log if log else (lambda v: v)
    loo, value = f(loo), f(x.mean(-1))
    var = (n - 1) / n * ((loo - loo.mean(-1, keepdims=True)) ** 2).sum(-1)
    return value, var, n - 1


def _t_combination(values, variances, df_i, weights, confidence):
    v = weights ** 2 * variances
    est, var = (weights * values).sum(-1), v.sum(-1)
    df = var ** 2 / (v ** 2 / df_i).sum(-1)
    half = stats.t.ppf(0.5 + confidence / 2, df) * np.sqrt(var)
    return est - half, est + half


def slope_intervals(x, scales, confidence, log=True):
    """PowerLaw (log=True) / LogSlope on the seed means: the slope's t interval for each sweep."""
    from harness.engine.stats import slope_weights
    value, var, df = _jackknife_mean(x, log)
    w = slope_weights(scales) * (1.0 if log else np.log(2.0))
    return _t_combination(value, var, df, w, confidence)


def worst_intervals(x, confidence, worst="max"):
    """EveryScale: per-scale t intervals at level 1 - (1 - confidence) / k; [pick lo, pick hi]."""
    k = x.shape[1]
    value, var, df = _jackknife_mean(x)
    q = stats.t.ppf(0.5 + (1 - (1 - confidence) / k) / 2, df)
    lo, hi = value - q * np.sqrt(var), value + q * np.sqrt(var)
    pick = np.max if worst == "max" else np.min
    return pick(lo, axis=1), pick(hi, axis=1)


def rise_intervals(x, confidence):
    """Increasing: Welch intervals of consecutive differences at level 1 - (1 - confidence) / (k - 1); the min."""
    k = x.shape[1]
    value, var, df = _jackknife_mean(x)
    level = 1 - (1 - confidence) / (k - 1)
    los, his = [], []
    for i in range(k - 1):
        lo, hi = _t_combination(value[:, [i, i + 1]], var[:, [i, i + 1]], df, np.array([-1.0, 1.0]), level)
        los.append(lo)
        his.append(hi)
    return np.min(los, axis=0), np.min(his, axis=0)


def check_replica(law, scales, x, lows, highs, confidence, sweeps=20):
    """The replica's intervals are the law's own, on the first ``sweeps`` simulated sweeps."""
    for r in range(sweeps):
        est = law.estimate(scales, list(x[r]), confidence)
        assert est.defined and np.isclose(est.low, lows[r], rtol=1e-9, atol=1e-12) \
            and np.isclose(est.high, highs[r], rtol=1e-9, atol=1e-12), (r, est, lows[r], highs[r])


# -- power laws on seed means: A1/A3 (5 widths), B1 (4 alphas), G1 (n >= 512), a small design -----------------------
DESIGNS = [((128, 256, 512, 1024, 2048), 16), ((128, 256, 512, 1024, 2048), 4), ((2, 8, 32, 128), 6),
           ((0.3, 1.0, 3.0), 3)]


@pytest.mark.parametrize("level_name", list(LEVELS))
@pytest.mark.parametrize("scales, seeds", DESIGNS)
def test_power_law_t_interval_covers(scales, seeds, level_name):
    level, reps = LEVELS[level_name], REPS[level_name]
    rng = np.random.default_rng(zlib.crc32(repr((scales, seeds, level_name)).encode()))
    x = lognormal(rng, 2.0 * np.asarray(scales, float) ** -0.5, reps, seeds)
    lo, hi = slope_intervals(x, np.asarray(scales, float), level)
    check_replica(PowerLaw("p", "x", (None, None)), scales, x, lo, hi, level)
    assert_covers(int(np.sum((lo > -0.5) | (hi < -0.5))), reps, level)


@pytest.mark.parametrize("level_name", ["look", "run"])
def test_log_slope_t_interval_covers(level_name):
    """D2's LogSlope: the slope of an already-logarithmic summary (the optimum's log2 rate, noise ~0.4 octave)
    against log2 width, 3 widths x 6 seeds (its smallest first batch)."""
    level, reps = LEVELS[level_name], REPS[level_name]
    scales = np.array([32.0, 128.0, 512.0])
    rng = np.random.default_rng(21)
    x = -1.3 + 0.05 * np.log2(scales)[None, :, None] + 0.4 * rng.standard_normal((reps, 3, 6))
    lo, hi = slope_intervals(x, scales, level, log=False)
    check_replica(LogSlope("s", "x", (None, None), log_base=2.0), scales, x, lo, hi, level)
    assert_covers(int(np.sum((lo > 0.05) | (hi < 0.05))), reps, level)


@pytest.mark.parametrize("level_name", ["look", "run"])
@pytest.mark.parametrize("seeds", [6, 16])
def test_limit_t_interval_covers(level_name, seeds):
    """Limit (the transformer coordinate check's nonzero-limit law): the intercept of the seed means against
    width^-1/2 over widths 128..1024, a truth 0.3 + 2.5 n^-1/2 (the pilot's second-block logits: 0.44 at 128 shrinking
    toward ~0.2) with log-normal seed noise (sigma 0.3: skewed, as the changes are); the interval is the law's
    replica: the t combination of the per-scale jackknife values with the intercept's weights."""
    level, reps = LEVELS[level_name], REPS[level_name]
    scales = np.array([128.0, 256.0, 512.0, 1024.0])
    rng = np.random.default_rng(seeds + 40)
    x = lognormal(rng, 0.3 + 2.5 * scales ** -0.5, reps, seeds)
    value, var, df = _jackknife_mean(x)
    law = Limit("l", "x", (None, None))
    lo, hi = _t_combination(value, var, df, law._weights(scales), level)
    check_replica(law, scales, x, lo, hi, level)
    assert_covers(int(np.sum((lo > 0.3) | (hi < 0.3))), reps, level)


def test_power_law_of_a_spread_covers():
    """A2's fluctuation law: the across-seed spread of a 4x4 matrix measurement (entries' sd c n^-1/2), 6
    widths x 40 seeds; the summary is the mean over entries of the seed sd, whose expectation is the sd times
    c4(40) at every width, so the slope's truth is exactly -1/2. (Through the law itself: its jackknife of a
    spread has no closed form replica here; 4000 sweeps at the `claims run` level.)"""
    scales = (128, 256, 512, 1024, 2048, 4096)
    law = PowerLaw("f", "x", (None, None), summary=spread_over_seeds)
    sd = np.linspace(0.5, 2.0, 16).reshape(4, 4)
    rng = np.random.default_rng(7)
    reps, level, misses = 4000, LEVELS["run"], 0
    for _ in range(reps):
        est = law.estimate(scales, [sd * n ** -0.5 * rng.standard_normal((40, 4, 4)) for n in scales], level)
        misses += not (est.low <= -0.5 <= est.high)
    assert_covers(misses, reps, level)


def normal(rng, means, reps, seeds, sd=0.1):
    return np.asarray(means)[None, :, None] + sd * rng.standard_normal((reps, len(means), seeds))


@pytest.mark.parametrize("level_name", ["look", "run"])
@pytest.mark.parametrize("seeds", [3, 8])
def test_every_scale_worst_case_covers(level_name, seeds):
    """EveryScale (B2, C3, D3, A3): the worst (largest) seed mean over 3 scales, whose truth is the largest
    per-scale mean; and the smallest (``worst="min"``). Symmetric seed noise (see the skewed case below)."""
    level, reps = LEVELS[level_name], REPS[level_name]
    scales = (0.3, 1.0, 3.0)
    rng = np.random.default_rng(seeds)
    x = normal(rng, [1.0, 1.2, 1.1], reps, seeds)
    for worst, truth in (("max", 1.2), ("min", 1.0)):
        lo, hi = worst_intervals(x, level, worst)
        check_replica(EveryScale("w", "x", (None, None), worst=worst), scales, x, lo, hi, level)
        assert_covers(int(np.sum((lo > truth) | (hi < truth))), reps, level)


@pytest.mark.parametrize("level_name", ["look", "run"])
def test_at_scale_covers(level_name):
    """AtScale (A2, A4, B3, B4, G1): one scale's seed mean, 8 seeds, symmetric seed noise."""
    level, reps = LEVELS[level_name], REPS[level_name]
    rng = np.random.default_rng(12)
    x = normal(rng, [1.0, 1.1], reps, 8)
    lo, hi = worst_intervals(x[:, 1:], level)            # one scale: the worst case of one is its own interval
    check_replica(AtScale("a", "x", (None, None)), (1.0, 3.0), x, lo, hi, level)
    assert_covers(int(np.sum((lo > 1.1) | (hi < 1.1))), reps, level)


def _unbiased_msd_intervals(x, confidence):
    """A4's mean law on (reps, seeds, points) residuals: the jackknife t interval of mean over points of
    (seed mean^2 - seed variance / seeds), the leave-one-out values from running sums."""
    n = x.shape[1]
    s1, s2 = x.sum(1, keepdims=True), (x ** 2).sum(1, keepdims=True)

    def msd(m, ss, k):                                   # mean, sum of squares about zero, count -> the summary
        var = (ss - k * m ** 2) / (k - 1)
        return (m ** 2 - var / k).mean(-1)
    value = msd(s1[:, 0] / n, s2[:, 0], n)
    loo = msd((s1 - x) / (n - 1), s2 - x ** 2, n - 1)     # (reps, seeds)
    var = (n - 1) / n * ((loo - loo.mean(1, keepdims=True)) ** 2).sum(1)
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * np.sqrt(var)
    return value - half, value + half


# A4's mean law: how much more often than nominal its interval misses on its long (upper) side, by level
MSD_LONG_SIDE_FACTOR = {"0.95": 2.0, "run": 8.0}


@pytest.mark.parametrize("seeds", [48, 288])
def test_ensemble_mean_deviation_interval_at_the_band_edge(seeds):
    """A4's mean law (the registered law object): the unbiased mean squared deviation of the ensemble mean from the
    NTK-GP mean, in GP variances, over 16 test points, with the truth on the band's edge (0.15^2) and unit-variance
    residuals; 48 seeds and the claim's first batch of 288. The statistic is a quadratic form, skewed to the right,
    and its jackknife t interval behaves like a skewed mean's (above): at the level of `claims run --all` its short
    side (the interval above a true edge: a false refutation) is covered, its long side (below it: the law holds
    though the deviation is on the edge) misses up to ``MSD_LONG_SIDE_FACTOR`` times alpha / 2 (measured 4-6x at
    that level, 1.2-1.5x at 0.95). It errs toward holding an edge case, never toward refuting a true law."""
    law = next(l for l in registry()["ntk-ensemble-gp"].laws if l.name == "mean")
    rng = np.random.default_rng(31)
    mu = rng.standard_normal(16)
    mu *= 0.15 / np.sqrt(np.mean(mu ** 2))                 # the mean of mu^2 is the edge, 0.0225
    for level_name in ("0.95", "run"):
        level = LEVELS[level_name]
        reps = REPS[level_name] if seeds == 48 else REPS[level_name] // 5
        x = mu + rng.standard_normal((reps, seeds, 16))
        lo, hi = _unbiased_msd_intervals(x, level)
        check_replica(law, (512.0,), x[:, None], lo, hi, level, sweeps=5)
        long_side, short_side = int(np.sum(hi < 0.0225)), int(np.sum(lo > 0.0225))
        half = (1 - level) / 2
        assert binomtest(short_side, reps, half, alternative="greater").pvalue > FALSE_FAIL, (level_name, short_side)
        factor = MSD_LONG_SIDE_FACTOR[level_name]
        assert binomtest(long_side, reps, factor * half, alternative="greater").pvalue > FALSE_FAIL, \
            (level_name, long_side, reps * half)


@pytest.mark.parametrize("level_name", ["look", "run"])
def test_smallest_rise_covers(level_name):
    """Increasing (B3's monotone law): the smallest rise of the seed mean between consecutive scales, 6 seeds."""
    level, reps = LEVELS[level_name], REPS[level_name]
    scales = (0.01, 0.1, 0.3)
    rng = np.random.default_rng(3)
    x = normal(rng, [1.0, 1.1, 1.5], reps, 6, sd=0.05)
    lo, hi = rise_intervals(x, level)
    check_replica(Increasing("m", "x", (0.0, None)), scales, x, lo, hi, level)
    assert_covers(int(np.sum((lo > 0.1) | (hi < 0.1))), reps, level)


# Measured one-sided miss rate of a one-scale t interval on skewed seeds (gamma-distributed, 8-32 seeds), relative
# to the nominal alpha / 2, at the `claims run --all` level (LEVELS["run"]); stated in harness/engine/stats.py.
SKEWED_MISS_FACTOR = {0.25: 2.0, 0.5: 3.0, 1.0: 9.0}


@pytest.mark.parametrize("skewness", sorted(SKEWED_MISS_FACTOR))
def test_t_interval_of_a_skewed_mean_undercovers_on_its_long_side_as_stated(skewness):
    """A limit the engine states rather than hides: the seed mean of skewed measurements is itself skewed, and at
    the extreme levels of `claims run --all` the t interval misses on the side of the long tail (the truth above
    the interval, for a right skew) more often than alpha / 2: up to ``SKEWED_MISS_FACTOR`` times (the registered
    AtScale / EveryScale statistics have sample skewness within about +-1 per scale in the pilot data). It errs
    in that direction only: a law with a lower-bound band on a right-skewed statistic can be refuted that much
    more often than its alpha when its truth sits on the edge. The slope laws (PowerLaw, LogSlope) combine scales
    with weights of both signs and are covered at these levels (above). If this test fails because the miss rate
    fell, the engine improved: update the factor and stats.py."""
    level, reps = LEVELS["run"], 200000
    shape = (2 / skewness) ** 2
    rng = np.random.default_rng(int(skewness * 100))
    worst = 0.0
    for n in (8, 16, 32):
        x = rng.gamma(shape, 1 / shape, (reps, 1, n))
        lo, hi = worst_intervals(x, level)
        long_side, short_side = int(np.sum(hi < 1.0)), int(np.sum(lo > 1.0))
        nominal = reps * (1 - level) / 2
        # the short side is covered
        assert binomtest(short_side, reps, (1 - level) / 2, alternative="greater").pvalue > FALSE_FAIL, short_side
        worst = max(worst, long_side / nominal)
        assert binomtest(long_side, reps, SKEWED_MISS_FACTOR[skewness] * (1 - level) / 2,
                         alternative="greater").pvalue > FALSE_FAIL, (n, long_side, nominal)
    assert worst > 1.2, f"the long side now misses {worst:.2f}x nominal: update SKEWED_MISS_FACTOR and stats.py"


def test_bootstrap_bca_covers_at_moderate_level():
    """The BCa bootstrap (for statistics with no linear form): a power law over 4 scales x 12 seeds at 0.9. No
    registered claim uses it today; its coverage at high levels would need far more resamples than a test can
    afford, so a claim that adopts it should measure coverage at its own level first."""
    law = PowerLaw("b", "x", (None, None), method="bootstrap")
    from harness.engine.stats import bootstrap
    rng = np.random.default_rng(11)
    scales, reps, level, misses = (64, 128, 256, 512), 150, 0.9, 0
    for r in range(reps):
        samples = list(lognormal(rng, np.asarray(scales, float) ** -1.0, 1, 12)[0])
        est = bootstrap(samples, lambda ss: law.point(scales, ss), level, seed=r, n_resamples=999)
        misses += not (est.low <= -1.0 <= est.high)
    assert_covers(misses, reps, level)


# -- exact intervals: coverage computed, not simulated ---------------------------------------------------------------
@pytest.mark.parametrize("level_name", list(LEVELS))
@pytest.mark.parametrize("trials", [20, 80, 200])
def test_exact_binomial_interval_covers_at_every_rate(level_name, trials):
    """Proportion's Clopper-Pearson interval (C2, C3): its coverage, summed exactly over the binomial distribution,
    is at least the level at every success rate of a grid (including C2/C3's band edge 0.9)."""
    level = LEVELS[level_name]
    table = [proportion(k, trials, level) for k in range(trials + 1)]
    for k in (0, 1, trials // 2, trials - 1, trials):        # the engine's formula is scipy's exact interval
        ci = binomtest(k, trials).proportion_ci(level, method="exact")
        assert (table[k].low, table[k].high) == pytest.approx((ci.low, ci.high), rel=1e-7, abs=1e-12)
    lo = np.array([e.low for e in table])
    hi = np.array([e.high for e in table])
    for p in np.concatenate([np.linspace(0.01, 0.99, 99), [0.9]]):
        pmf = binom.pmf(np.arange(trials + 1), trials, p)
        coverage = pmf[(lo <= p) & (p <= hi)].sum()
        assert coverage >= level - 1e-12, (p, coverage, level)
    # the law combines scales as a worst case at level / k: its interval is the smallest of the k exact ones
    law = Proportion("s", "ok", (0.9, None))
    est = law.estimate([1.0, 2.0], [np.ones(trials), np.r_[np.zeros(1), np.ones(trials - 1)]], level)
    assert est.low == pytest.approx(proportion(trials - 1, trials, 1 - (1 - level) / 2).low)


@pytest.mark.parametrize("runs", [16, 30, 100])
def test_calibration_one_sided_bounds_cover(runs):
    """`claims calibrate`'s one-sided exact 95% bounds: the upper bound on a refutation (or not-holding) rate, and
    the lower bound on a power (1 - the upper bound of the failures), cover with probability >= 0.95 at every
    rate of a grid (summed exactly over the binomial distribution)."""
    ub = np.array([upper_bound(k, runs) for k in range(runs + 1)])
    for p in np.linspace(0.0, 1.0, 201):
        pmf = binom.pmf(np.arange(runs + 1), runs, p)
        assert pmf[ub >= p].sum() >= 0.95 - 1e-12, (runs, p)
        power_lower = 1 - ub[::-1]                   # k successes of runs: 1 - upper_bound(runs - k, runs)
        assert pmf[power_lower <= p].sum() >= 0.95 - 1e-12, (runs, p)


# -- the sequential design: any look refutes a true law at most alpha of the time ------------------------------------
def _sequential_refutations(law, make, looks, law_alpha, reps, rng, every_look_full=False):
    """Refuted runs of the sequential design ``looks`` (through the engine's :class:`Looks`): each run draws the
    largest look's seeds and evaluates the first ``n`` of them at each look, until ``Looks`` stops."""
    refuted = 0
    for _ in range(reps):
        data = make(rng, looks[-1])
        state = Looks([law.name], tuple(looks), law_alpha * (len(looks) if every_look_full else 1))
        while not state.done:
            n = state.seeds
            state.update([law.evaluate(data[0], [s[:n] for s in data[1]], {}, state.alpha)])
        refuted += state.results()[0].verdict == REFUTED
    return refuted


@pytest.mark.parametrize("edge", ["low", "high"])
def test_sequential_refutation_on_the_band_edge_is_at_most_alpha(edge):
    """A1's design (5 widths, looks of 4, 8, 16, 32 seeds) with the true exponent exactly on an edge of the band
    (-1 +- 0.15): over the looks, the law is refuted with probability <= alpha / 2 (one side of a two-sided
    interval) at alpha 0.02; evaluating every look at the full alpha instead (no spending) exceeds it."""
    band = (-1.15, -0.85)
    truth = band[0] if edge == "low" else band[1]
    law = PowerLaw("rate", "x", band)
    scales = np.array([128.0, 256.0, 512.0, 1024.0, 2048.0])

    def make(rng, n):
        return scales, list(lognormal(rng, 2.0 * scales ** truth, 1, n)[0])
    reps, alpha, looks = 2000, 0.02, (4, 8, 16, 32)
    refuted = _sequential_refutations(law, make, looks, alpha, reps, np.random.default_rng(17 if edge == "low" else 18))
    assert binomtest(refuted, reps, alpha / 2, alternative="greater").pvalue > FALSE_FAIL, refuted
    naive = _sequential_refutations(law, make, looks, alpha, reps, np.random.default_rng(27), every_look_full=True)
    assert binomtest(naive, reps, alpha / 2, alternative="greater").pvalue < 0.01, naive


def test_sequential_proportion_on_the_band_edge_is_at_most_alpha():
    """C2/C3's recovery law (a success rate >= 0.9, Clopper-Pearson, worst of 3 scales) with the true rate 0.9 at
    every scale, looks of 25, 50, 100 seeds: refuted at most alpha / 2 of the time over the looks (alpha 0.05)."""
    law = Proportion("recovery", "ok", (0.9, None))
    scales = np.array([10.0, 20.0, 40.0])

    def make(rng, n):
        return scales, [(rng.random(n) < 0.9).astype(float) for _ in scales]
    reps, alpha = 3000, 0.05
    refuted = _sequential_refutations(law, make, (25, 50, 100), alpha, reps, np.random.default_rng(31))
    assert binomtest(refuted, reps, alpha / 2, alternative="greater").pvalue > FALSE_FAIL, refuted


def test_looks_stop_at_the_first_conclusive_verdict():
    """A claim stops when every law is decided or one is refuted; a law keeps its first conclusive verdict."""
    from harness.engine.laws import LawResult
    from harness.engine.stats import Estimate

    def res(name, verdict):
        return LawResult(name, "x", Estimate(0.0, -1.0, 1.0, 0.99), (None, None), verdict, "")
    s = Looks(["a", "b"], (4, 8, 16), 0.03)
    assert s.seeds == 4 and s.alpha == pytest.approx(0.01)
    s.update([res("a", HOLDS), res("b", INCONCLUSIVE)])
    assert not s.done and s.seeds == 8
    s.update([res("a", INCONCLUSIVE), res("b", HOLDS)])
    assert s.done and [r.verdict for r in s.results()] == [HOLDS, HOLDS]
    assert [r.look for r in s.results()] == [1, 2] and s.results()[0].seeds == 4
    s = Looks(["a", "b"], (4, 8, 16), 0.03)
    s.update([res("a", REFUTED), res("b", INCONCLUSIVE)])
    assert s.done and s.results()[0].verdict == REFUTED
    s = Looks(["a"], (4, 8), 0.03)
    s.update([res("a", INCONCLUSIVE)])
    s.update([res("a", INCONCLUSIVE)])
    assert s.done and s.results()[0].verdict == INCONCLUSIVE and s.results()[0].look == 2


def test_power_of_the_coverage_check():
    """The simulated coverage tests detect a tripled miss rate at each level with probability >= 0.9 (exact
    binomial power of the one-sided test at the reps used)."""
    for name, level in LEVELS.items():
        p0, reps = 1 - level, REPS[name]
        critical = binom.isf(FALSE_FAIL, reps, p0)
        assert binom.sf(critical, reps, 3 * p0) >= 0.9, (name, level, reps)


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
