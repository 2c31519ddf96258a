"""Statistics behind every verdict: intervals whose coverage is measured at the levels the claims use.

The unit of replication is the *seed*: every (scale, seed) point is an independently initialised network (and,
where the claim says so, independently drawn data). A law reduces each scale's seeds to a *summary* (a mean, a
spread, a norm of the seed-mean) and the summaries to one number (a power-law slope, a value at one scale, the
worst scale, the smallest rise). Three interval methods, chosen per law:

- ``"t"`` (the default): the jackknife over seeds gives each scale's summary (after the law's transform, ``log``
  for a power law) a standard error with n - 1 degrees of freedom; a slope or a difference is a fixed linear
  combination of the per-scale values, so its variance is the weighted sum (delta method) and its degrees of
  freedom come from Welch-Satterthwaite; the interval is a Student t interval. For a seed mean the jackknife
  standard error is exactly s / sqrt(n), so at one scale this is the textbook t interval. Worst-case statistics
  (the largest value over scales, the smallest rise) take per-scale intervals at a Bonferroni-corrected level, so
  the interval of the worst case covers whenever every per-scale interval covers.
- ``"bootstrap"``: BCa bootstrap over seeds (``scipy.stats.bootstrap``, seeds resampled within each scale, the whole
  statistic recomputed), for statistics with no usable linear form and many seeds.
- ``"exact"``: a deterministic quantity (the same value for every seed) is compared as it is.

Proportions (a fraction of seeds that succeed) get the exact Clopper-Pearson interval (``binomtest``).

What the t intervals assume. The per-scale summary is taken to be close to normal across seeds. The slope laws
(a power law, a log-slope) combine several scales with weights of both signs, and their coverage holds at the
extreme levels ``claims run --all`` uses even for log-normal seed noise (measured). An interval of one scale's
mean, or of a worst case over scales (AtScale, EveryScale, Increasing), is covered for symmetric seed noise, but
the mean of *skewed* measurements is itself skewed, and at those levels its t interval misses on the side of the
long tail more often than alpha / 2: about 2x at skewness 0.25, 3x at 0.5 and up to 9x at 1 (gamma-distributed
seeds, 8-32 per scale, at 0.000526; ``tests/test_coverage.py`` holds the figures), and less often on the other
side. A law with a lower-bound band on a right-skewed statistic (or an upper bound on a left-skewed one) is
therefore refuted that much more often than its alpha when its truth sits exactly on the edge; the registered
laws' statistics have per-scale sample skewness within about +-1 in the pilot data, and their truths lie far
from the edges their controls test.

An interval never collapses: a non-finite measurement, a summary whose transform is undefined (log of a value
<= 0), or a summary that does not vary across seeds under a statistical method gives no interval at all, and the
law is inconclusive with the reason in ``Estimate.note``. Coverage of each method is measured by simulation in
``tests/test_coverage.py`` at the levels the registered claims use.
"""
from __future__ import annotations

import warnings
from typing import Callable, NamedTuple, Sequence

import numpy as np
from scipy import stats

from ..errors import HarnessError

MIN_SEEDS = 3          # per scale: the jackknife of a spread needs n - 1 >= 2, a t interval n - 1 >= 2 df
METHODS = ("t", "bootstrap", "exact")
NAN = float("nan")


class Estimate(NamedTuple):
    value: float
    low: float
    high: float
    confidence: float
    method: str = "t"
    note: str = ""          # why there is no interval (then low = high = nan), or what the rule dropped
    # What the interval was built from, for the power calculation (:mod:`harness.engine.power`): ``(value, se,
    # df, v_1, ..., v_k)`` per component of a t interval (v_i: scale i's share of the variance, se^2 = sum v_i;
    # a bootstrap interval has none), ``(successes, trials)`` per scale of a proportion; and how
    # the components combine: "one" (a single interval), "max" / "min" (the worst case over components, each at
    # level 1 - (1 - confidence) / k).
    parts: tuple = ()
    combine: str = "one"

    @property
    def defined(self) -> bool:
        return bool(np.isfinite(self.low) and np.isfinite(self.high))


def undefined(confidence: float, method: str, note: str, value: float = NAN) -> Estimate:
    return Estimate(float(value), NAN, NAN, confidence, method, note)


def power_law_slope(scales: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(values) against log(scales) (``scipy.stats.linregress``)."""
    scales = np.asarray(scales, dtype=float)
    values = np.asarray(values, dtype=float)
    if len(scales) < 2:
        raise HarnessError("a power-law fit needs at least 2 scales")
    if np.any(values <= 0) or np.any(scales <= 0):
        return NAN
    return float(slope_weights(scales) @ np.log(values))


def slope_weights(scales: Sequence[float]) -> np.ndarray:
    """w with slope = sum_i w_i y_i for the least-squares line of y against log(scale)."""
    x = np.log(np.asarray(scales, dtype=float))
    xc = x - x.mean()
    return xc / np.sum(xc ** 2)


# -- the per-scale building block -------------------------------------------------------------------------------
class ScaleStat(NamedTuple):
    """transform(summary(sample)) at one scale, its jackknife variance and degrees of freedom."""
    value: float
    var: float
    df: int


def leave_one_out(sample: np.ndarray, summary: Callable) -> np.ndarray:
    """summary(sample without seed i) for each seed i (closed forms for the seed mean and spread)."""
    n = sample.shape[0]
    flat = sample.reshape(n, -1)
    if summary is mean_over_seeds:
        return (flat.sum(0) - flat).mean(axis=1) / (n - 1)
    if summary is spread_over_seeds and n > 2:
        s1, s2 = flat.sum(0), (flat ** 2).sum(0)
        var = ((s2 - flat ** 2) - (s1 - flat) ** 2 / (n - 1)) / (n - 2)
        return np.sqrt(np.maximum(var, 0.0)).mean(axis=1)
    return np.array([float(summary(np.delete(sample, i, axis=0))) for i in range(n)])


def jackknife(sample: np.ndarray, summary: Callable, transform: Callable = lambda v: v) -> ScaleStat:
    """Jackknife (delete one seed) variance of ``transform(summary(sample))``."""
    sample = np.asarray(sample, dtype=float)
    n = sample.shape[0]
    with np.errstate(all="ignore"):
        value = float(transform(summary(sample)))
        loo = np.asarray(transform(leave_one_out(sample, summary)), dtype=float)
    var = float((n - 1) / n * np.sum((loo - loo.mean()) ** 2)) if np.all(np.isfinite(loo)) else NAN
    return ScaleStat(value, var, n - 1)


def t_linear(parts: Sequence[ScaleStat], weights: Sequence[float], confidence: float) -> tuple[float, float, float]:
    """(estimate, low, high) of sum_i w_i theta_i: delta-method variance, Welch-Satterthwaite df, t quantile."""
    return t_linear_full(parts, weights, confidence)[:3]


def t_linear_full(parts: Sequence[ScaleStat], weights: Sequence[float], confidence: float) -> tuple:
    """:func:`t_linear` with what the power calculation needs: (estimate, low, high, se, df, contributions), the
    contributions being each scale's share w_i^2 var_i of the variance."""
    w = np.asarray(weights, dtype=float)
    theta = np.array([p.value for p in parts])
    v = w ** 2 * np.array([p.var for p in parts])
    df_i = np.array([p.df for p in parts], dtype=float)
    est, var = float(w @ theta), float(v.sum())
    df = float(var ** 2 / np.sum(v ** 2 / df_i))
    half = t_quantile(confidence, df) * np.sqrt(var)
    return est, est - half, est + half, float(np.sqrt(var)), df, tuple(float(x) for x in v)


def t_quantile(confidence: float, df: float) -> float:
    """The two-sided Student t quantile of a ``confidence`` interval with ``df`` degrees of freedom."""
    return float(stats.t.ppf(0.5 + confidence / 2, df))


def t_estimate(parts: Sequence[ScaleStat], weights: Sequence[float], confidence: float) -> Estimate:
    """The t interval of sum_i w_i theta_i as an :class:`Estimate` that keeps its standard error and df."""
    est, lo, hi, se, df, v = t_linear_full(parts, weights, confidence)
    return Estimate(est, lo, hi, confidence, "t", parts=((est, se, df) + v,))


def _check(parts: Sequence[ScaleStat], scales, confidence, what) -> str:
    """'' when every part has a finite value and a positive finite variance, else the reason."""
    for sc, p in zip(scales, parts):
        if not np.isfinite(p.value):
            return f"{what} is undefined at scale {sc:g}"
        if not np.isfinite(p.var):
            return f"{what} is undefined after leaving one seed out at scale {sc:g}"
        if p.var == 0:
            return (f"{what} does not vary across seeds at scale {sc:g}: no statistical interval (declare the law "
                    f"exact if the quantity is deterministic)")
    return ""


def nonfinite_note(scales, samples) -> str:
    bad = [f"{sc:g} ({int(np.sum(~np.isfinite(s)))} values)" for sc, s in zip(scales, samples)
           if not np.all(np.isfinite(s))]
    return f"non-finite measurements at scale {', '.join(bad)}" if bad else ""


# -- the interval methods, one per law shape ----------------------------------------------------------------------
def t_slope(scales, samples, summary, confidence) -> Estimate:
    """Power-law exponent: slope of log(summary) against log(scale), t interval (see module docstring)."""
    parts = [jackknife(s, summary, np.log) for s in samples]
    note = _check(parts, scales, confidence, "log of the summary")
    point = power_law_slope(scales, [summary(s) for s in samples])
    if note:
        return undefined(confidence, "t", note, point)
    return t_estimate(parts, slope_weights(scales), confidence)


def t_at(scale, sample, summary, confidence) -> Estimate:
    """One scale's summary, t interval with n - 1 df."""
    p = jackknife(sample, summary)
    note = _check([p], [scale], confidence, "the summary")
    if note:
        return undefined(confidence, "t", note, p.value)
    return t_estimate([p], [1.0], confidence)


def t_worst(scales, samples, summary, confidence, worst: str) -> Estimate:
    """max (or min) over scales of the summary: per-scale t intervals at level 1 - (1 - confidence) / k, so the
    interval [max lo_i, max hi_i] covers max_i theta_i whenever all k intervals cover."""
    k = len(samples)
    level = 1 - (1 - confidence) / k
    ests = [t_at(sc, s, summary, level) for sc, s in zip(scales, samples)]
    pick = np.max if worst == "max" else np.min
    value = float(pick([e.value for e in ests]))
    bad = [e.note for e in ests if not e.defined]
    if bad:
        return undefined(confidence, "t", bad[0], value)
    return Estimate(value, float(pick([e.low for e in ests])), float(pick([e.high for e in ests])), confidence, "t",
                    parts=tuple(e.parts[0] for e in ests), combine=worst)


def t_smallest_rise(scales, samples, summary, confidence) -> Estimate:
    """min over consecutive scales of summary_{i+1} - summary_i: each difference a two-sample t interval (Welch) at
    level 1 - (1 - confidence) / (k - 1); the interval of the minimum is [min lo_i, min hi_i]."""
    parts = [jackknife(s, summary) for s in samples]
    diffs = [parts[i + 1].value - parts[i].value for i in range(len(parts) - 1)]
    value = float(np.min(diffs)) if diffs else NAN
    note = _check(parts, scales, confidence, "the summary")
    if note or not diffs:
        return undefined(confidence, "t", note or "needs at least 2 scales", value)
    level = 1 - (1 - confidence) / len(diffs)
    ints = [t_linear_full([parts[i], parts[i + 1]], [-1.0, 1.0], level) for i in range(len(diffs))]
    return Estimate(value, float(min(i[1] for i in ints)), float(min(i[2] for i in ints)), confidence, "t",
                    parts=tuple((i[0], i[3], i[4]) + i[5] for i in ints), combine="min")


def exact(scales, samples, summary, confidence, reduce: Callable) -> Estimate:
    """A deterministic quantity: every seed must give the same summary; ``reduce(scales, per-scale values)`` is the
    law's estimate, compared as it is."""
    vals = []
    for sc, s in zip(scales, samples):
        per_seed = np.array([summary(s[i:i + 1]) for i in range(s.shape[0])])
        if not np.allclose(per_seed, per_seed[0], rtol=1e-9, atol=0):
            return undefined(confidence, "exact", f"declared exact but varies across seeds at scale {sc:g}")
        vals.append(float(per_seed[0]))
    value = float(reduce(np.asarray(scales, dtype=float), vals))
    return Estimate(value, value, value, confidence, "exact")


def bootstrap(samples: Sequence[np.ndarray], statistic: Callable[[list[np.ndarray]], float], confidence: float,
              seed: int = 0, n_resamples: int = 4000, method: str = "BCa") -> Estimate:
    """Bootstrap CI of ``statistic(samples)``, resampling seeds (axis 0) within each sample (BCa by default).

    ``samples[i]`` holds scale i's per-seed measurements, shape (n_seeds_i, ...). ``statistic`` gets the list of
    resampled arrays. Implemented by bootstrapping seed *indices* with ``scipy.stats.bootstrap`` so that
    multi-dimensional measurements resample whole seeds. A resample whose statistic is not finite (a spread of
    zero under a log) makes the interval undefined, never a point.
    """
    samples = [np.asarray(s, dtype=float) for s in samples]
    with np.errstate(all="ignore"):
        value = float(statistic(samples))
    if any(s.shape[0] < 2 for s in samples):
        return undefined(confidence, "bootstrap", "the bootstrap needs at least 2 seeds at every scale", value)
    if not np.isfinite(value):
        return undefined(confidence, "bootstrap", "the statistic is not finite", value)
    idx = tuple(np.arange(s.shape[0], dtype=float) for s in samples)

    def stat(*ids):
        return statistic([s[np.asarray(i, dtype=int)] for s, i in zip(samples, ids)])

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        res = stats.bootstrap(idx, stat, vectorized=False, paired=False, n_resamples=n_resamples,
                              confidence_level=confidence, method=method, rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return undefined(confidence, "bootstrap", "some bootstrap resamples give a non-finite statistic", value)
    if lo == hi:
        return undefined(confidence, "bootstrap", "the statistic does not vary across resamples", value)
    se = (hi - lo) / (2 * float(stats.norm.ppf(0.5 + confidence / 2)))      # for the power calculation only
    return Estimate(value, lo, hi, confidence, "bootstrap", parts=((value, se, float("inf")),))


def proportion(successes: int, trials: int, confidence: float) -> Estimate:
    """Exact (Clopper-Pearson) interval for a binomial proportion: the beta quantiles that
    ``scipy.stats.binomtest(...).proportion_ci(method="exact")`` computes (equal, tested), without its overhead."""
    if trials < 1:
        return undefined(confidence, "exact-binomial", "no trials")
    k, n, a = int(successes), int(trials), 1 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return Estimate(k / n, low, high, confidence, "exact-binomial", parts=((k, n),))


def upper_bound(k: int, n: int, confidence: float = 0.95) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound on a rate observed as k of n."""
    if n < 1:
        return 1.0
    return 1.0 if k >= n else float(stats.beta.ppf(confidence, k + 1, n - k))


# -- per-scale summaries -------------------------------------------------------------------------------------------
def mean_over_seeds(sample: np.ndarray) -> float:
    """Seed mean of a scalar measurement (vector measurements are averaged over their entries too)."""
    return float(np.mean(sample))


def spread_over_seeds(sample: np.ndarray) -> float:
    """Across-seed standard deviation, averaged over the entries of a vector/matrix measurement."""
    return float(np.mean(np.std(sample, axis=0, ddof=1)))


def fraction_over_seeds(sample: np.ndarray) -> float:
    """Fraction of seeds whose (0/1) measurement is 1."""
    return float(np.mean(sample))
