"""Power by design: how many seeds a claim case needs, from its own calibration records.

TensorFlow Probability's statistical tests choose their sample sizes from two stated rates, the false-fail and
the false-pass rate; so do the tiers here. The false-refutation rate is the law's alpha (spent over the looks of
the sequential design, :mod:`harness.engine.sweep`); the other rate, a true claim left inconclusive (or a control
left unrejected), is ``1 - power``, and power depends on how far the estimate lies from the band's edge against
its standard error per seed. Both come from calibration runs of the claim case (``claims calibrate``), which
record, for every law at the last look of every run, the components of its interval (:attr:`Estimate.parts`):
``(value, se, df)`` for a t or bootstrap interval, ``(successes, trials)`` for a proportion.

**Predictive power.** For a law measured at ``n`` seeds, the power at ``n'`` seeds and level ``1 - alpha'`` is the
probability that the interval at ``n'`` lies inside the band (claim) or outside it (control), averaged over what
the calibration says about the truth: each component's true value is drawn from its posterior given the record
(normal around the estimate with the record's standard error; a success rate from its Jeffreys posterior
Beta(s + 1/2, n - s + 1/2)), the estimate at ``n'`` from its sampling distribution (the standard error scaled by
sqrt(n / n'), the degrees of freedom by (n' - 1) / (n - 1); a binomial count), and the interval is built as the
law builds it (t quantile; worst case over components at level alpha' / k; Clopper-Pearson). This is the
"assurance" of a design: it does not take the pilot's estimate as the truth, so a pilot near the band's edge
predicts low power rather than a false certainty. Laws of one variant are combined as independent (a product of
holding probabilities for the claim; one minus the product of non-refutation probabilities for a control), and
runs of a calibration (a fixed premise, or premises drawn from the scope) are averaged.

**Design.** :func:`design` chooses a variant's first batch and the cap: the smallest expected number of seeds
per scale (from the predicted chance of stopping at each look) among the designs whose predicted power at the cap,
at the level of each look (``law_alpha / looks``), reaches ``target``. The tier states the result
(``Tier.design``), and ``claims design`` prints the calculation from the committed records.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .claim import MAX_LOOKS, sequential_looks
from .stats import MIN_SEEDS

DRAWS = 4000


def _t_interval(value, se, df, level):
    q = float(stats.t.ppf(0.5 + level / 2, df)) if np.isfinite(df) else float(stats.norm.ppf(0.5 + level / 2))
    return value - q * se, value + q * se


_T_GRID = np.linspace(math.log(0.5), math.log(1e8), 3001)          # log df
_T_SPLINES: dict = {}


def _t_quantile(p: float, df):
    """``stats.t.ppf(p, df)`` for an array of degrees of freedom, through a cubic spline of log t against log df
    built once per ``p`` (relative error below 2e-9 over df 0.5..1e8 at the levels the claims use, tests/test_engine.py; exact outside): the
    simulated intervals ask for the quantile at 4000 freshly drawn df per call, and scipy's inversion took most of
    `claims design`'s time."""
    from scipy.interpolate import CubicSpline
    if p not in _T_SPLINES:
        _T_SPLINES[p] = CubicSpline(_T_GRID, np.log(stats.t.ppf(p, np.exp(_T_GRID))))
    df = np.asarray(df, dtype=float)
    inside = (df >= 0.5) & (df <= 1e8)
    out = np.exp(_T_SPLINES[p](np.log(np.where(inside, df, 1.0))))
    if not inside.all():
        out = np.where(inside, out, stats.t.ppf(p, df))
    return out


def _cp_interval(s, n, level):
    a = 1 - level
    lo = np.where(s > 0, stats.beta.ppf(a / 2, np.maximum(s, 1e-12), n - s + 1), 0.0)
    hi = np.where(s < n, stats.beta.ppf(1 - a / 2, s + 1, np.maximum(n - s, 1e-12)), 1.0)
    return lo, hi


def simulate_intervals(parts, combine: str, method: str, n_from: int, n_to: int, alpha: float, draws: int = DRAWS,
                       rng=None, truth_se=None):
    """(low, high) arrays of ``draws`` predicted intervals at ``n_to`` seeds per scale and level ``1 - alpha``, from
    a record of ``parts`` measured at ``n_from`` (see the module docstring)."""
    rng = np.random.default_rng(0) if rng is None else rng
    k = max(len(parts), 1)
    per_level = 1 - alpha / k if combine in ("max", "min") else 1 - alpha
    lows, highs = [], []
    for i, part in enumerate(parts):
        if method == "exact-binomial":
            s, n = part
            n_new = int(round(n * n_to / n_from))
            p = rng.beta(s + 0.5, n - s + 0.5, size=draws)
            s_new = rng.binomial(n_new, p)
            table_lo, table_hi = _cp_interval(np.arange(n_new + 1, dtype=float), float(n_new), per_level)
            lo, hi = table_lo[s_new], table_hi[s_new]
        else:
            value, se, df = part[:3]
            contributions = np.asarray(part[3:], dtype=float) * n_from / n_to
            ts = truth_se[i] if truth_se is not None else se     # a pooled record knows the truth better
            se_new = se * math.sqrt(n_from / n_to)
            truth = value + ts * rng.standard_normal(draws)
            est = truth + se_new * rng.standard_normal(draws)
            if contributions.size and np.isfinite(df):
                # the interval's standard error and Welch df are themselves estimated: each scale's variance
                # share varies as a chi-square with n - 1 degrees of freedom
                d = max(n_to - 1, 1)
                seen = contributions[:, None] * rng.chisquare(d, (contributions.size, draws)) / d
                var = seen.sum(0)
                df_seen = var ** 2 / np.maximum((seen ** 2).sum(0) / d, 1e-300)
                q = _t_quantile(0.5 + per_level / 2, df_seen)
                lo, hi = est - q * np.sqrt(var), est + q * np.sqrt(var)
            else:
                lo, hi = _t_interval(est, se_new, np.inf, per_level)
        lows.append(lo)
        highs.append(hi)
    lows, highs = np.array(lows), np.array(highs)
    if combine == "max":
        return lows.max(0), highs.max(0)
    if combine == "min":
        return lows.min(0), highs.min(0)
    return lows[0], highs[0]


def law_power(record: dict, n_to: int, alpha: float, want: str, draws: int = DRAWS, rng=None) -> float:
    """Predicted probability that a law recorded as ``record`` (a calibration record's law entry: ``parts``,
    ``combine``, ``method``, ``seeds``, ``band``, ``verdict``) is ``want`` ("holds" or "refuted") at ``n_to`` seeds
    and level ``1 - alpha``. A record without an interval (non-finite data, no variation) predicts 0; a deterministic
    quantity (``method="exact"``) predicts its own verdict."""
    if record["method"] == "exact":
        return float(record.get("rates", {}).get(want, record["verdict"] == want))
    if "defined" in record:                 # a pooled record: the share of runs in which the interval existed
        return record["defined"] * law_power({k: v for k, v in record.items() if k != "defined"}, n_to, alpha,
                                             want, draws, rng)
    parts = [tuple(p) for p in record.get("parts") or ()]
    if not parts or not all(np.all(np.isfinite(np.asarray(p, dtype=float)[:2])) for p in parts):
        return 0.0
    lo, hi = simulate_intervals(parts, record.get("combine", "one"), record["method"], int(record["seeds"]),
                                int(n_to), alpha, draws, rng, record.get("truth_se"))
    b_lo, b_hi = record["band"]
    b_lo = -np.inf if b_lo is None else b_lo
    b_hi = np.inf if b_hi is None else b_hi
    if want == "holds":
        return float(np.mean((lo >= b_lo) & (hi <= b_hi)))
    return float(np.mean((hi < b_lo) | (lo > b_hi)))


def variant_power(laws: list, n_to: int, alpha: float, control: bool, draws: int = DRAWS, rng=None) -> float:
    """A claim variant holds when every law holds; a control is rejected when one of its laws is refuted (laws
    combined as independent); each law at level ``1 - alpha``."""
    rng = np.random.default_rng(0) if rng is None else rng
    if control:
        return 1 - float(np.prod([1 - law_power(r, n_to, alpha, "refuted", draws, rng) for r in laws]))
    return float(np.prod([law_power(r, n_to, alpha, "holds", draws, rng) for r in laws]))


def variant_decided(laws: list, n_to: int, alpha: float, control: bool, draws: int = DRAWS, rng=None) -> float:
    """Predicted chance that the variant stops at a look of ``n_to`` seeds: every law conclusive (claim; a refuted
    law stops it too, a chance within alpha), or one law refuted (control)."""
    rng = np.random.default_rng(0) if rng is None else rng
    if control:
        return variant_power(laws, n_to, alpha, True, draws, rng)
    return float(np.prod([law_power(r, n_to, alpha, "holds", draws, rng)
                          + law_power(r, n_to, alpha, "refuted", draws, rng) for r in laws]))


def pool(runs: list) -> list:
    """One record per law from calibration runs of one fixed premise (i.i.d. replications): a t component's truth
    is the inverse-variance weighted mean of the runs' estimates, known to within its pooled standard error; its
    standard error per seed, the runs' median; a proportion's successes and trials add up; a deterministic law
    keeps the share of runs with each verdict. Runs whose interval did not exist (a non-finite measurement) count
    against the power as the share ``defined``."""
    out = []
    for j, first in enumerate(runs[0]):
        recs = [r[j] for r in runs]
        base = {k: first[k] for k in ("law", "method", "combine", "band")}
        if first["method"] == "exact":
            out.append({**base, "verdict": first["verdict"], "seeds": first["seeds"],
                        "parts": [], "rates": {v: float(np.mean([r["verdict"] == v for r in recs]))
                                               for v in ("holds", "refuted", "inconclusive")}})
            continue
        good = [r for r in recs if r["parts"] and all(np.all(np.isfinite(np.asarray(p, float)[:2])) for p in r["parts"])
                and len(r["parts"]) == len(first["parts"] or r["parts"])]
        if not good:
            out.append({**base, "verdict": "inconclusive", "seeds": first["seeds"], "parts": []})
            continue
        k = len(good[0]["parts"])
        good = [r for r in good if len(r["parts"]) == k]
        if first["method"] == "exact-binomial":
            parts = [[sum(r["parts"][i][0] for r in good), sum(r["parts"][i][1] for r in good)] for i in range(k)]
            seeds = sum(r["seeds"] for r in good)
        else:
            seeds = int(np.median([r["seeds"] for r in good]))
            parts, truth_se = [], []
            for i in range(k):
                v = np.array([r["parts"][i][0] for r in good])
                se = np.array([r["parts"][i][1] for r in good])
                df = np.array([r["parts"][i][2] for r in good])
                n = np.array([r["seeds"] for r in good], dtype=float)
                w = 1 / np.maximum(se, 1e-300) ** 2
                # each scale's variance share per seed (share x seeds), averaged over the runs (the mean of variance
                # estimates is unbiased; a median of few-seed estimates is not), at the reference seeds
                shares = [np.asarray(r["parts"][i][3:], dtype=float) * r["seeds"] for r in good]
                shares = np.mean(np.array(shares), axis=0) / seeds if len({len(x) for x in shares}) == 1 else []
                per_seed = float(np.sqrt(np.mean(se ** 2 * n)))
                df_ref = float(np.median(df * (seeds - 1) / np.maximum(n - 1, 1))) if np.all(np.isfinite(df)) else np.inf
                parts.append([float(w @ v / w.sum()), per_seed / math.sqrt(seeds), df_ref, *map(float, shares)])
                truth_se.append(float(1 / math.sqrt(w.sum())))
        out.append({**base, "verdict": first["verdict"], "seeds": seeds, "parts": parts,
                    "defined": len(good) / len(recs), **({"truth_se": truth_se} if first["method"] != "exact-binomial"
                                                        else {})})
    return out


@dataclass
class Design:
    first: int
    cap: int
    looks: tuple
    power: float            # predicted power at the cap (averaged over the records' runs)
    expected_seeds: float   # predicted seeds per scale, averaged over the records' runs

    def line(self) -> str:
        return (f"looks {', '.join(map(str, self.looks))} seeds: predicted power {self.power:.4f} at the cap, "
                f"expected {self.expected_seeds:.1f} seeds per scale")


def evaluate_design(runs: list, looks: tuple, law_alpha: float, control: bool, draws: int = DRAWS) -> Design:
    """Predicted power at the cap and expected seeds of the sequential design ``looks`` for one variant, averaged
    over ``runs`` (each a list of the variant's law records from one calibration run)."""
    alpha = law_alpha / len(looks)
    powers, costs = [], []
    for i, laws in enumerate(runs):
        rng = np.random.default_rng(i)
        powers.append(variant_power(laws, looks[-1], alpha, control, draws, rng))
        stopped, cost = 0.0, 0.0
        for j, n in enumerate(looks):
            p = 1.0 if j == len(looks) - 1 else max(stopped, variant_decided(laws, n, alpha, control, draws, rng))
            cost += n * (p - stopped)
            stopped = p
        costs.append(cost)
    return Design(looks[0], looks[-1], tuple(looks), float(np.mean(powers)), float(np.mean(costs)))


def _grid(low: int, high: int, points: int) -> list:
    return sorted({max(MIN_SEEDS, int(round(x))) for x in np.geomspace(max(low, MIN_SEEDS), max(high, MIN_SEEDS),
                                                                          points)} | {max(high, MIN_SEEDS)})


def design(groups: list, law_alpha: float, control: bool, target: float, max_cap: int, draws: int = 2000,
           min_cap: int = MIN_SEEDS, first: int | None = None) -> tuple | None:
    """The sequential design for one variant that every group of calibration runs must satisfy (a group: the runs
    of one claim case, or of the scope; a run: the list of the variant's law records from one calibration run):
    among the designs (first batch, cap <= ``max_cap``, at most ``MAX_LOOKS`` looks) whose predicted power at the
    cap reaches ``target`` in every group, the one with the fewest expected seeds per scale summed over the
    groups. ``first`` fixes the first batch; ``min_cap`` bounds the cap from below. Returns ``(first, cap,
    [Design per group])``, or ``None`` when no design within ``max_cap`` reaches the target (the claim case
    cannot reach it on this budget: a full-tier law)."""
    caps = [c for c in _grid(MIN_SEEDS, max_cap, 24) if c >= min_cap] or [max(min_cap, MIN_SEEDS)]
    cap_needed = None
    for cap in caps:                               # the smallest cap that reaches the target in one look
        if all(evaluate_design(g, (cap,), law_alpha, control, draws).power >= target for g in groups):
            cap_needed = cap
            break
    if cap_needed is None:
        return None
    firsts = [first] if first is not None else _grid(MIN_SEEDS, cap_needed, 12)
    best = None
    for f in firsts:
        for cap in caps:
            if cap < cap_needed or cap < f:
                continue
            looks = sequential_looks(f, cap)
            if len(looks) > MAX_LOOKS:
                continue
            ds = [evaluate_design(g, looks, law_alpha, control, draws) for g in groups]
            if all(d.power >= target for d in ds):
                cost = sum(d.expected_seeds for d in ds)
                if best is None or cost < best[0] - 1e-9:
                    best = (cost, f, cap, ds)
                break                              # a larger cap only costs more for this first batch
    return None if best is None else best[1:]


def group_records(runs: list, variant: str, scope: bool) -> list:
    """The records of ``variant`` from a group of calibration runs, as :func:`evaluate_design` takes them: one
    pooled record set for a fixed premise (:func:`pool`), one per run for premises drawn from a scope."""
    rs = [r["records"][variant] for r in runs if variant in r["records"]]
    return rs if not rs or scope else [pool(rs)]


def predict_case(claim, tier, runs: list, law_alpha: float, scope: bool, draws: int = 2000) -> dict:
    """The tier's design for one group of calibration runs (a claim case, or the scope): ``{variant: Design}``,
    the claim's and each control's predicted power at its cap and expected seeds."""
    out = {}
    for v in ["claim"] + [c.name for c in claim.controls]:
        rs = group_records(runs, v, scope)
        if rs:
            out[v] = evaluate_design(rs, tier.looks(v), law_alpha, v != "claim", draws)
    return out
