"""Statistics behind every verdict: power-law fits and bootstrap confidence intervals (scipy.stats).

The unit of replication is the *seed*: every (scale, seed) point is an independently initialised network (and,
where the claim says so, independently drawn data). Confidence intervals resample seeds independently within each
scale (``scipy.stats.bootstrap`` with one sample per scale) and recompute the whole statistic, so a statistic that
summarises across seeds (a spread, a mean) and the fit on top of it are bootstrapped together.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np
from scipy import stats

from .errors import HarnessError


class Estimate(NamedTuple):
    value: float
    low: float
    high: float
    confidence: float


def power_law_slope(scales: Sequence[float], values: Sequence[float]) -> float:
    """Least-squares slope of log(values) against log(scales) (``scipy.stats.linregress``)."""
    scales = np.asarray(scales, dtype=float)
    values = np.asarray(values, dtype=float)
    if len(scales) < 2:
        raise HarnessError("a power-law fit needs at least 2 scales")
    if np.any(values <= 0) or np.any(scales <= 0):
        return float("nan")
    return float(stats.linregress(np.log(scales), np.log(values)).slope)


def bootstrap(samples: Sequence[np.ndarray], statistic: Callable[[list[np.ndarray]], float], confidence: float,
              seed: int = 0, n_resamples: int = 2000) -> Estimate:
    """Percentile bootstrap CI of ``statistic(samples)``, resampling seeds (axis 0) within each sample.

    ``samples[i]`` holds scale i's per-seed measurements, shape (n_seeds_i, ...). ``statistic`` gets the list of
    resampled arrays. Implemented by bootstrapping seed *indices* with ``scipy.stats.bootstrap`` so that
    multi-dimensional measurements resample whole seeds.
    """
    samples = [np.asarray(s, dtype=float) for s in samples]
    value = float(statistic(samples))
    if all(s.shape[0] < 2 for s in samples):
        return Estimate(value, value, value, confidence)
    idx = tuple(np.arange(s.shape[0], dtype=float) for s in samples)

    def stat(*ids):
        return statistic([s[np.asarray(i, dtype=int)] for s, i in zip(samples, ids)])

    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap(idx, stat, vectorized=False, paired=False, n_resamples=n_resamples,
                              confidence_level=confidence, method="percentile",
                              rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        lo = hi = value
    return Estimate(value, min(lo, value), max(hi, value), confidence)


def mean_over_seeds(sample: np.ndarray) -> float:
    """Seed mean of a scalar measurement (vector measurements are averaged over their entries too)."""
    return float(np.mean(sample))


def spread_over_seeds(sample: np.ndarray) -> float:
    """Across-seed standard deviation, averaged over the entries of a vector/matrix measurement."""
    return float(np.mean(np.std(sample, axis=0, ddof=1)))
