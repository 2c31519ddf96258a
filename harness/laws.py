"""Expected laws: what a claim predicts about its statistic, and the three-way verdict on a measurement.

A law turns per-scale, per-seed measurements into an estimate with a bootstrap confidence interval at level
1 - alpha, and compares the interval with the law's *band* (``(low, high)``; ``None`` for an open side, so a band
with one open side is a bound):

- ``holds``: the CI lies inside the band;
- ``refuted``: the CI lies entirely outside the band. If the law is true and the CI covers, this happens with
  probability <= alpha: alpha is the law's false-alarm rate against refutation;
- ``inconclusive``: the CI straddles an edge (more seeds needed).

Bands come from the paper (an exponent, a bound, an equivalence margin stated beside it), never from a pilot run.
A band may depend on the premise (``band=lambda premise: ...``), e.g. an activation-specific exponent.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from .stats import Estimate, bootstrap, mean_over_seeds, power_law_slope

HOLDS, REFUTED, INCONCLUSIVE = "holds", "refuted", "inconclusive"


class LawResult(NamedTuple):
    law: str
    statistic: str
    estimate: Estimate
    band: tuple
    verdict: str
    description: str


def compare(est: Estimate, band) -> str:
    lo, hi = band
    lo = -np.inf if lo is None else lo
    hi = np.inf if hi is None else hi
    if lo <= est.low and est.high <= hi:
        return HOLDS
    if est.high < lo or est.low > hi:
        return REFUTED
    return INCONCLUSIVE


def fmt_band(band) -> str:
    lo, hi = band
    if lo is None:
        return f"<= {hi:g}"
    if hi is None:
        return f">= {lo:g}"
    return f"[{lo:g}, {hi:g}]"


@dataclass(frozen=True)
class Law:
    """Base: a named law on the measurement ``statistic``; subclasses define ``estimate``."""
    name: str
    statistic: str
    band: tuple | Callable
    summary: Callable = mean_over_seeds       # per-scale summary over seeds
    what: str = ""

    def band_for(self, premise: dict) -> tuple:
        return self.band(premise) if callable(self.band) else tuple(self.band)

    def point(self, scales, samples) -> float:
        raise NotImplementedError

    def describe(self) -> str:
        return self.what or type(self).__name__

    def evaluate(self, scales, samples, premise: dict, alpha: float, seed: int = 0) -> LawResult:
        scales = np.asarray(scales, dtype=float)
        est = bootstrap(samples, lambda s: self.point(scales, s), confidence=1 - alpha, seed=seed)
        band = self.band_for(premise)
        return LawResult(self.name, self.statistic, est, band, compare(est, band), self.describe())


@dataclass(frozen=True)
class PowerLaw(Law):
    """log(summary) is linear in log(scale) with slope (exponent) in ``band``."""

    def point(self, scales, samples):
        return power_law_slope(scales, [self.summary(s) for s in samples])

    def describe(self):
        return self.what or f"exponent of {self.statistic} vs scale"


@dataclass(frozen=True)
class AtScale(Law):
    """The summary at one scale (default: the largest) lies in ``band``."""
    scale: float | None = None

    def _index(self, scales):
        return int(np.argmax(scales)) if self.scale is None else int(np.argmin(np.abs(scales - self.scale)))

    def point(self, scales, samples):
        return self.summary(samples[self._index(scales)])

    def describe(self):
        where = "the largest scale" if self.scale is None else f"scale {self.scale:g}"
        return self.what or f"{self.statistic} at {where}"


@dataclass(frozen=True)
class EveryScale(Law):
    """The summary at every scale lies in ``band``: estimated as the worst case over scales (``worst="max"`` for
    an upper bound, ``"min"`` for a lower bound), bootstrapped together."""
    worst: str = "max"

    def point(self, scales, samples):
        vals = [self.summary(s) for s in samples]
        return float(np.max(vals) if self.worst == "max" else np.min(vals))

    def describe(self):
        return self.what or f"{self.statistic} at every scale"


@dataclass(frozen=True)
class Increasing(Law):
    """The summary increases with scale (over the scales <= ``upto``): estimate = the smallest increase between
    consecutive scales. With band ``(0, None)`` it holds when even the smallest step is confidently positive: a
    continuous statistic, so its bootstrap CI resolves small but real rises."""
    upto: float = float("inf")

    def point(self, scales, samples):
        vals = [self.summary(s) for sc, s in zip(scales, samples) if sc <= self.upto]
        return float(np.min(np.diff(vals)))

    def describe(self):
        return self.what or f"smallest increase of {self.statistic} between consecutive scales"
