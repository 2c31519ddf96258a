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
    w = np.asarray(weights, dtype=float)
    theta = np.array([p.value for p in parts])
    v = w ** 2 * np.array([p.var for p in parts])
    df_i = np.array([p.df for p in parts], dtype=float)
    est, var = float(w @ theta), float(v.sum())
    df = var ** 2 / np.sum(v ** 2 / df_i)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * np.sqrt(var)
    return est, est - half, est + half


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
    est, lo, hi = t_linear(parts, slope_weights(scales), confidence)
    return Estimate(est, lo, hi, confidence, "t")


def t_at(scale, sample, summary, confidence) -> Estimate:
    """One scale's summary, t interval with n - 1 df."""
    p = jackknife(sample, summary)
    note = _check([p], [scale], confidence, "the summary")
    if note:
        return undefined(confidence, "t", note, p.value)
    est, lo, hi = t_linear([p], [1.0], confidence)
    return Estimate(est, lo, hi, confidence, "t")


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
    return Estimate(value, float(pick([e.low for e in ests])), float(pick([e.high for e in ests])), confidence, "t")


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
    ints = [t_linear([parts[i], parts[i + 1]], [-1.0, 1.0], level) for i in range(len(diffs))]
    return Estimate(value, float(min(i[1] for i in ints)), float(min(i[2] for i in ints)), confidence, "t")


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
    return Estimate(value, lo, hi, confidence, "bootstrap")


def proportion(successes: int, trials: int, confidence: float) -> Estimate:
    """Exact (Clopper-Pearson) interval for a binomial proportion (``scipy.stats.binomtest``)."""
    if trials < 1:
        return undefined(confidence, "exact-binomial", "no trials")
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence, method="exact")
    return Estimate(successes / trials, float(ci.low), float(ci.high), confidence, "exact-binomial")


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
