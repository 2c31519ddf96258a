"""Expected laws: what a claim predicts about its statistic, and the three-way verdict on a measurement.

A law turns per-scale, per-seed measurements into an estimate with a confidence interval at level 1 - alpha
(alpha is the law's share of the run's family-wise alpha, see :mod:`harness.engine.sweep`), and compares the interval
with the law's *band* (``(low, high)``; ``None`` for an open side, so a band with one open side is a bound):

- ``holds``: the CI lies inside the band;
- ``refuted``: the CI lies entirely outside the band. If the law is true and the CI covers, this happens with
  probability <= alpha: alpha is the law's false-alarm rate against refutation;
- ``inconclusive``: the CI straddles an edge (more seeds needed), or there is no interval at all; the reason is
  in the estimate's ``note`` (a non-finite measurement, a log of a value <= 0, no seed-to-seed variation).

Interval methods (``method``): ``"t"`` (default), ``"bootstrap"`` or ``"exact"``; see :mod:`harness.engine.stats`, where
each is described, and ``tests/test_coverage.py``, where its coverage is measured at the levels the claims use.

Non-finite measurements (a diverged training run is recorded as NaN or inf, never as a large number) follow the
law's stated rule ``nonfinite``: ``"inconclusive"`` (default: no interval, the law says why) or ``"drop-scale"``
(the law is evaluated on the scales where every seed is finite, at least 2 of them, and the note names the
dropped scales: for a statistic whose divergence at large scales is itself part of what the claim or control
predicts).

Bands come from the paper (an exponent, a bound, an equivalence margin stated beside it), never from a pilot run.
A band may depend on the premise (``band=lambda premise: ...``), e.g. an activation-specific exponent.

What a paper's law needs beyond a band, declared on the law (the claim file stays declarative):

- ``predicted=lambda scale, premise: ...``: the law is on measured / predicted, per point, for a prediction
  that depends on the scale and the premise (e.g. a finite-width formula);
- ``scale_range=(low, high)``: the law sees only the scales in that closed range (``None`` for an open side),
  e.g. a power law that holds only asymptotically;
- ``cases=("tanh",)``: the law applies only in those premise cases of the claim.

Under a control the band and the prediction see the claim's premise by default (the control asks whether the
claim's prediction still holds without its premise; ``Control(prediction="control")`` for the flipped one).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import numpy as np

from ..errors import HarnessError
from .stats import (METHODS, Estimate, bootstrap, exact, fraction_over_seeds, mean_over_seeds, nonfinite_note,
                    power_law_slope, proportion, t_at, t_slope, t_smallest_rise, t_worst, undefined)

HOLDS, REFUTED, INCONCLUSIVE = "holds", "refuted", "inconclusive"
NONFINITE_RULES = ("inconclusive", "drop-scale")


class LawResult(NamedTuple):
    law: str
    statistic: str
    estimate: Estimate
    band: tuple
    verdict: str
    description: str
    # Where the sequential design decided it (:mod:`harness.engine.sweep`): seeds per scale at that look, the look
    # (1-based) out of ``looks``, and the level ``alpha`` of that look (the law's alpha / looks).
    seeds: int = 0
    look: int = 1
    looks: int = 1
    alpha: float = float("nan")

    @property
    def note(self) -> str:
        return self.estimate.note


def compare(est: Estimate, band) -> str:
    if not (np.isfinite(est.low) and np.isfinite(est.high)):
        return INCONCLUSIVE
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
    """Base: a named law on the measurement ``statistic``; subclasses define ``point`` (the point estimate from
    per-scale samples) and ``interval`` (the estimate with its CI by the ``"t"`` method); :meth:`estimate` picks
    the method and :meth:`evaluate` gives the verdict.

    Fields, shared by every law:

    - ``name``: the law's name (in verdicts, reports and a control's ``refutes``).
    - ``statistic``: the measurement it reads, one of the claim's ``outputs``.
    - ``band``: ``(low, high)``, the values the paper allows for the estimate, ``None`` for an open side (a bound);
      or ``band(premise) -> (low, high)`` when it depends on the premise.
    - ``summary``: the per-scale summary over seeds (default: the mean).
    - ``what``: what the estimate is, in words (for reports; default from the law's kind).
    - ``method``: the interval, ``"t"``, ``"bootstrap"`` or ``"exact"`` (a deterministic value).
    - ``nonfinite``: what a NaN or infinite measurement does: ``"inconclusive"`` or ``"drop-scale"``.
    - ``predicted``: ``predicted(scale, premise) -> value``; the law is then on measured / predicted.
    - ``scale_range``: ``(low, high)``, the scales the law sees (``None`` for an open side).
    - ``cases``: the claim's cases it applies in (default: all)."""
    name: str
    statistic: str
    band: tuple | Callable
    summary: Callable = mean_over_seeds       # per-scale summary over seeds
    what: str = ""
    method: str = "t"
    nonfinite: str = "inconclusive"
    predicted: Callable | None = None       # predicted(scale, premise) -> value: the law is on measured / predicted
    scale_range: tuple | None = None        # (low, high), None for an open side: the scales the law sees
    cases: tuple = ()                       # the claim's cases the law applies in (default: all)

    def __post_init__(self):
        from .claim import defined_at
        object.__setattr__(self, "_defined_at", defined_at())
        if isinstance(self.cases, str):
            object.__setattr__(self, "cases", (self.cases,))
        if self.scale_range is not None and (len(self.scale_range) != 2 or self.scale_range == (None, None)):
            raise HarnessError(f"law {self.name}: scale_range must be (low, high) with at most one side None")
        if self.predicted is not None and not callable(self.predicted):
            raise HarnessError(f"law {self.name}: predicted must be a function (scale, premise) -> value")
        if self.method not in METHODS:
            raise HarnessError(f"law {self.name}: method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.nonfinite not in NONFINITE_RULES:
            raise HarnessError(f"law {self.name}: nonfinite must be one of {', '.join(NONFINITE_RULES)}")

    def band_for(self, premise: dict) -> tuple:
        """The band ``(low, high)`` under ``premise`` (``band`` itself, or ``band(premise)``)."""
        return self.band(premise) if callable(self.band) else tuple(self.band)

    def point(self, scales, samples) -> float:
        """The point estimate from the per-scale samples (one array of seeds per scale); defined by each law."""
        raise NotImplementedError

    def reads(self, scale: float, scales) -> bool:
        """Whether the law reads its statistic at ``scale`` (one of the variant's ``scales``): every scale in its
        ``scale_range``. A measurement no law reads at a scale is *not measured* there by declaration (a measure
        may return ``None`` or NaN for it): never evaluated, never reported as non-finite."""
        if self.scale_range is None:
            return True
        lo, hi = self.scale_range
        return (lo is None or scale >= lo * (1 - 1e-12)) and (hi is None or scale <= hi * (1 + 1e-12))

    def select(self, scales, samples, premise: dict):
        """The scales this law sees (``scale_range``) and the samples it evaluates (``/ predicted``)."""
        scales = np.asarray(scales, dtype=float)
        samples = [np.asarray(s, dtype=float) for s in samples]
        if self.scale_range is not None:
            lo, hi = self.scale_range
            keep = [i for i, sc in enumerate(scales) if (lo is None or sc >= lo * (1 - 1e-12))
                    and (hi is None or sc <= hi * (1 + 1e-12))]
            if not keep:
                raise HarnessError(f"law {self.name}: no measured scale lies in its scale_range "
                                   f"{self.scale_range} (measured: {[float(x) for x in scales]})")
            scales, samples = scales[keep], [samples[i] for i in keep]
        if self.predicted is not None:
            samples = [s / float(self.predicted(float(sc), premise)) for sc, s in zip(scales, samples)]
        return scales, samples

    def interval(self, scales, samples, confidence) -> Estimate:
        """The estimate with its interval at level ``confidence`` by the ``"t"`` method; defined by each law."""
        raise NotImplementedError

    def exact_reduce(self, scales, values) -> float:
        """The estimate from per-scale values of a deterministic quantity (``method="exact"``)."""
        return self.point(scales, [np.array([v]) for v in values])

    def describe(self) -> str:
        """What the estimate is, in words: ``what``, or a default from the law's kind and statistic."""
        return self.what or type(self).__name__

    def estimate(self, scales, samples, confidence: float, seed: int = 0) -> Estimate:
        """The estimate and its interval at level ``confidence`` by the law's ``method`` (``seed`` seeds the
        bootstrap), after the ``nonfinite`` rule; no interval (inconclusive, with a note) when it cannot have one."""
        scales = np.asarray(scales, dtype=float)
        samples = [np.asarray(s, dtype=float) for s in samples]
        note = nonfinite_note(scales, samples)
        if note:
            if self.nonfinite == "inconclusive":
                return undefined(confidence, self.method, note)
            keep = [i for i, s in enumerate(samples) if np.all(np.isfinite(s))]
            if len(keep) < self.min_scales():
                return undefined(confidence, self.method, note + "; too few scales left after dropping them")
            est = self.estimate(scales[keep], [samples[i] for i in keep], confidence, seed)
            return est._replace(note=f"dropped by the nonfinite rule: {note}" + (f"; {est.note}" if est.note else ""))
        if self.method == "exact":
            return exact(scales, samples, self.summary, confidence, self.exact_reduce)
        if self.method == "bootstrap":
            return bootstrap(samples, lambda s: self.point(scales, s), confidence, seed=seed)
        return self.interval(scales, samples, confidence)

    def min_scales(self) -> int:
        """The fewest scales the law needs (2 for a slope)."""
        return 1

    def evaluate(self, scales, samples, premise: dict, alpha: float, seed: int = 0) -> LawResult:
        """The verdict at level ``1 - alpha``; ``premise`` is what the band and the prediction see."""
        scales, samples = self.select(scales, samples, premise)
        est = self.estimate(scales, samples, 1 - alpha, seed)
        band = self.band_for(premise)
        return LawResult(self.name, self.statistic, est, band, compare(est, band), self.describe())


@dataclass(frozen=True)
class PowerLaw(Law):
    """log(summary) is linear in log(scale) with slope (exponent) in ``band``."""

    def point(self, scales, samples):
        return power_law_slope(scales, [self.summary(s) for s in samples])

    def interval(self, scales, samples, confidence):
        return t_slope(scales, samples, self.summary, confidence)

    def min_scales(self):
        return 2

    def describe(self):
        return self.what or f"exponent of {self.statistic} vs scale"


@dataclass(frozen=True)
class AtScale(Law):
    """The summary at one scale (default: the largest) lies in ``band``. The scale must be one of the tier's."""
    scale: float | None = None

    def _index(self, scales):
        scales = np.asarray(scales, dtype=float)
        if self.scale is None:
            return int(np.argmax(scales))
        hit = np.flatnonzero(np.isclose(scales, self.scale, rtol=1e-9, atol=0))
        if not len(hit):
            raise HarnessError(f"law {self.name}: scale {self.scale:g} is not among the measured scales "
                               f"{[float(s) for s in scales]}")
        return int(hit[0])

    def point(self, scales, samples):
        return self.summary(samples[self._index(scales)])

    def interval(self, scales, samples, confidence):
        i = self._index(scales)
        return t_at(scales[i], samples[i], self.summary, confidence)

    def exact_reduce(self, scales, values):
        return values[0]                        # estimate() passes the named scale alone

    def estimate(self, scales, samples, confidence, seed=0):
        i = self._index(scales)                # only the named scale's seeds matter
        return Law.estimate(self, np.asarray(scales, float)[i:i + 1], [samples[i]], confidence, seed)

    def reads(self, scale, scales):
        return bool(np.isclose(float(scales[self._index(scales)]), float(scale), rtol=1e-9, atol=0))

    def describe(self):
        where = "the largest scale" if self.scale is None else f"scale {self.scale:g}"
        return self.what or f"{self.statistic} at {where}"


@dataclass(frozen=True)
class EveryScale(Law):
    """The summary at every scale lies in ``band``: estimated as the worst case over scales (``worst="max"`` for
    an upper bound, ``"min"`` for a lower bound), with a simultaneous interval (Bonferroni over scales).

    ``worst`` says which side of the band is checked at every scale. With ``"max"`` (default) the estimate is the
    largest per-scale summary and its interval runs from the largest per-scale lower limit to the largest upper
    limit (each scale's t interval at level ``1 - (1 - confidence) / k`` over ``k`` scales): the law holds when
    every scale's interval lies below the band's upper edge and is refuted when any scale's lies wholly above it.
    Give it a band ``(None, high)``; a lower edge would be checked against the largest per-scale summary only. With
    ``"min"`` the same for the smallest summary, with a band ``(low, None)``."""
    worst: str = "max"

    def point(self, scales, samples):
        vals = [self.summary(s) for s in samples]
        return float(np.max(vals) if self.worst == "max" else np.min(vals))

    def interval(self, scales, samples, confidence):
        return t_worst(scales, samples, self.summary, confidence, self.worst)

    def exact_reduce(self, scales, values):
        return float(np.max(values) if self.worst == "max" else np.min(values))

    def describe(self):
        return self.what or f"{self.statistic} at every scale"


@dataclass(frozen=True)
class Increasing(Law):
    """The summary increases with scale (over the scales <= ``upto``): estimate = the smallest increase between
    consecutive scales. With band ``(0, None)`` it holds when even the smallest step is confidently positive
    (each step a Welch t interval, Bonferroni over the steps)."""
    upto: float = float("inf")

    def _keep(self, scales):
        return [i for i, sc in enumerate(scales) if sc <= self.upto]

    def point(self, scales, samples):
        vals = [self.summary(samples[i]) for i in self._keep(scales)]
        return float(np.min(np.diff(vals)))

    def interval(self, scales, samples, confidence):
        keep = self._keep(scales)
        return t_smallest_rise([scales[i] for i in keep], [samples[i] for i in keep], self.summary, confidence)

    def min_scales(self):
        return 2

    def describe(self):
        return self.what or f"smallest increase of {self.statistic} between consecutive scales"


@dataclass(frozen=True)
class Proportion(Law):
    """The fraction of seeds whose 0/1 measurement is 1, at one scale (``scale``, default: every scale, worst =
    the smallest fraction), lies in ``band``: exact Clopper-Pearson intervals (Bonferroni over scales)."""
    summary: Callable = fraction_over_seeds
    scale: float | None = None
    method: str = "exact"

    def point(self, scales, samples):
        return float(np.min([self.summary(s) for s in samples]))

    def estimate(self, scales, samples, confidence, seed=0):
        scales = np.asarray(scales, dtype=float)
        samples = [np.asarray(s, dtype=float) for s in samples]
        note = nonfinite_note(scales, samples)
        if note:
            return undefined(confidence, "exact-binomial", note)
        if self.scale is not None:
            i = AtScale._index(self, scales)
            scales, samples = scales[i:i + 1], [samples[i]]
        level = 1 - (1 - confidence) / len(samples)
        ests = [proportion(int(np.sum(s > 0.5)), s.size, level) for s in samples]
        worst = min(range(len(ests)), key=lambda j: ests[j].value)
        return Estimate(ests[worst].value, min(e.low for e in ests), min(e.high for e in ests), confidence,
                        "exact-binomial", parts=tuple(e.parts[0] for e in ests), combine="min")

    def describe(self):
        where = "every scale (smallest)" if self.scale is None else f"scale {self.scale:g}"
        return self.what or f"fraction of seeds with {self.statistic} at {where}"


@dataclass(frozen=True)
class CountPowerLaw(PowerLaw):
    """A power law for a count that is deterministic under the claim and random under its control (C1: the
    smallest m whose lazy tangent span fits a generic target is fixed by the dimension count, while gradient
    descent's smallest sufficient m varies with the seed). Where every scale's seeds give the same count, the
    exponent is compared exactly (as ``method="exact"``); otherwise it gets :class:`PowerLaw`'s t interval.
    (A random count that agreed across every seed at every scale would be taken as exact: with the >= 6 seeds
    per scale the claims use and a count that varies, that is a remote event, and it errs in the direction of the
    data: the exponent is then the one measured.)

    A random count can agree across the seeds of one scale while it varies at others (C1's control: at d = 12
    every one of 6 seeds needed the same m). That scale's seeds then carry no variance to put in the t interval,
    and the count is not deterministic either. Its variance is taken as the largest per-seed variance of the count
    at any scale where it varies (for the seed-mean summary, through the delta method: var / (n mean^2) on the log
    scale), with that scale's degrees of freedom: a stand-in that errs wide, toward inconclusive, never a
    collapsed interval. The estimate's note names the scales it was used at."""

    def estimate(self, scales, samples, confidence, seed=0):
        arrs = [np.asarray(s, dtype=float) for s in samples]
        if all(np.all(np.isfinite(s)) and np.allclose(s, s[0], rtol=1e-9, atol=0) for s in arrs):
            return exact(np.asarray(scales, dtype=float), arrs, self.summary, confidence, self.exact_reduce)
        return Law.estimate(self, scales, samples, confidence, seed)

    def interval(self, scales, samples, confidence):
        from .stats import ScaleStat, jackknife, slope_weights, t_estimate
        if self.summary is not mean_over_seeds:
            return PowerLaw.interval(self, scales, samples, confidence)
        arrs = [np.asarray(s, dtype=float) for s in samples]
        parts = [jackknife(s, self.summary, np.log) for s in arrs]
        agree = [i for i, (s, p) in enumerate(zip(arrs, parts)) if p.var == 0 and np.isfinite(p.value)
                 and np.all(s == s[0])]
        vary = [i for i, p in enumerate(parts) if np.isfinite(p.var) and p.var > 0]
        if not agree or not vary or len(agree) + len(vary) < len(parts):
            return PowerLaw.interval(self, scales, samples, confidence)
        widest = max(vary, key=lambda i: float(np.var(arrs[i], ddof=1)))
        count_var = float(np.var(arrs[widest], ddof=1))
        for i in agree:
            parts[i] = ScaleStat(parts[i].value, count_var / (len(arrs[i]) * float(arrs[i][0]) ** 2),
                                 parts[widest].df)
        est = t_estimate(parts, slope_weights(scales), confidence)
        where = ", ".join(f"{scales[i]:g}" for i in agree)
        return est._replace(note=f"every seed gave the same count at scale {where}: its variance taken as at scale "
                                 f"{scales[widest]:g}, where the count varies most")

# -- laws for learning-rate transfer and width-independence (issue 11) --------------------------------------------
@dataclass(frozen=True)
class LinearInSummaries(Law):
    """Base of the laws whose estimate is a fixed linear combination ``_weights(scales) @ summaries`` of the
    per-scale seed summaries (no log taken, so it may be negative): the ``"t"`` interval on them (jackknife, delta
    method, Welch-Satterthwaite df). Subclasses define ``_weights``."""

    def _weights(self, scales):
        raise NotImplementedError

    def point(self, scales, samples):
        return float(self._weights(scales) @ np.array([self.summary(s) for s in samples]))

    def interval(self, scales, samples, confidence):
        from .stats import _check, jackknife, t_estimate
        parts = [jackknife(s, self.summary) for s in samples]
        note = _check(parts, scales, confidence, "the summary")
        if note:
            return undefined(confidence, "t", note, self.point(scales, samples))
        return t_estimate(parts, self._weights(scales), confidence)

    def min_scales(self):
        return 2


@dataclass(frozen=True)
class LogSlope(LinearInSummaries):
    """The summary (already on a log scale, e.g. log2 of an optimal learning rate) is linear in log(scale): the
    least-squares slope against ``log_base`` log(scale) lies in ``band``. With ``log_base=2`` and the summary in
    log2 units, a slope s means the summary moves s grid steps per doubling of the scale (and 4 s over 16x).
    Interval: the ``"t"`` method on the per-scale seed summaries (jackknife, delta method, Welch df); unlike
    :class:`PowerLaw` no log is taken of the summary, so it may be negative."""
    log_base: float = 2.0

    def _weights(self, scales):
        from .stats import slope_weights
        return slope_weights(scales) * np.log(self.log_base)

    def describe(self):
        return self.what or f"slope of {self.statistic} against log{self.log_base:g}(scale)"


@dataclass(frozen=True)
class Limit(LinearInSummaries):
    """The summary's limit as the scale grows: the intercept ``a`` of the least-squares line of the per-scale
    summaries against ``scale ** -rate`` (``summary ~ a + b scale^-rate``; ``rate=0.5``: a finite-width correction of
    order n^-1/2), in ``band``. With band ``(0, None)`` it says the quantity converges to a nonzero limit, the
    non-vanishing half of "Theta(1) in the width", while a drift toward that limit is allowed: a quantity that
    vanishes as ``n^-rate`` has limit 0 (its interval straddles 0: inconclusive), one that vanishes faster has a
    negative intercept (refuted). Interval: the ``"t"`` method on the per-scale seed summaries (jackknife,
    Welch-Satterthwaite df), as :class:`LogSlope`'s, with the intercept's weights; the extrapolation to
    ``scale^-rate = 0`` makes it wider than the summary's interval at any one scale."""
    rate: float = 0.5

    def _weights(self, scales):
        x = np.asarray(scales, dtype=float) ** -self.rate
        xc = x - x.mean()
        return 1.0 / len(x) - x.mean() * xc / np.sum(xc ** 2)

    def describe(self):
        return self.what or f"limit of {self.statistic} (intercept of a + b scale^-{self.rate:g})"


def coefficient_of_variation(values) -> float:
    """Sample standard deviation over mean (ddof 1) of per-scale values."""
    v = np.asarray(values, dtype=float)
    return float(np.std(v, ddof=1) / np.mean(v))


@dataclass(frozen=True)
class Invariance(Law):
    """The per-scale summaries are the same at every scale (over the scales >= ``from_scale``): the estimate is
    their coefficient of variation (sd / mean across scales), compared with an upper ``band`` such as
    ``(None, 0.15)``. A nonlinear statistic of several scales' seeds, so its interval is the BCa bootstrap over
    seeds within each scale (``method="bootstrap"``, the default here)."""
    method: str = "bootstrap"
    from_scale: float = 0.0

    def _keep(self, scales):
        return [i for i, sc in enumerate(scales) if sc >= self.from_scale]

    def point(self, scales, samples):
        keep = self._keep(scales)
        if len(keep) < 2:
            return float("nan")
        return coefficient_of_variation([self.summary(samples[i]) for i in keep])

    def interval(self, scales, samples, confidence):
        from .stats import bootstrap
        return bootstrap(samples, lambda s: self.point(scales, s), confidence)

    def min_scales(self):
        return 2

    def describe(self):
        return self.what or f"coefficient of variation of {self.statistic} across scales"
