"""Sweeps: a claim at a tier on a backend becomes independent, serialisable tasks, one per
(variant, scale, seed); an executor measures the ones the store lacks; the laws are then evaluated on the stored
points.

Seeds. Every (claim, case, variant, scale, replicate, base seed) gets its own derived seed: a control is measured
on networks (and data) of its own, so the claim and its control are independent samples. A paired design (two
arms on the same network or data, e.g. B4's two depths on one regression problem) is declared by measuring both
arms inside one task and writing the law on the paired difference. Seeds do not depend on the backend: torch and
JAX measure the same networks, so a run on both backends is a parity check, not a replication.

Family-wise alpha. ``alpha`` bounds the chance that a run refutes anything true: it is divided evenly
(Bonferroni) over every verdict the run makes, each law of the claim and each law a control is asked to refute,
for every case (and, in ``claims run``, every claim and backend): a law is evaluated at ``alpha / verdicts``.

:class:`Task` round-trips through JSON (``to_json`` / ``from_json``), so a distributed executor can ship tasks to
workers; :class:`LocalExecutor` (the default) runs them in this process, with a progress bar, committing each point
to the store as soon as it is measured.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..backends import get_backend
from .claim import Claim, Setting, derive_seed, get_claim
from ..errors import HarnessError
from .laws import HOLDS, INCONCLUSIVE, REFUTED, LawResult
from .stats import MIN_SEEDS
from .store import Store

DEFAULT_ALPHA = 0.05
HARNESS_VERSION = "0.2.0"


@dataclass(frozen=True)
class Task:
    setting: Setting
    tier: str
    replicate: int
    base_seed: int
    backend: str
    device: str
    dtype: str
    code: str = ""          # hash of the claim's measure code and the harness (``code_version``)

    def identity(self) -> dict:
        s = self.setting
        return {"claim": s.claim, "variant": s.variant, "case": s.case, "premise": s.premise, "scale": s.scale,
                "seed": s.seed, "tier": self.tier, "backend": self.backend, "device": self.device,
                "dtype": self.dtype, "code": self.code}

    def to_json(self) -> str:
        d = asdict(self)
        d["setting"] = self.setting._asdict()
        return json.dumps(d, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Task":
        d = json.loads(text)
        d["setting"] = Setting(**d["setting"])
        return cls(**d)

    def run(self) -> dict:
        """Measure this point (the claim is looked up in the registry by id)."""
        claim = get_claim(self.setting.claim)
        backend = get_backend(self.backend, self.device, self.dtype)
        out = claim.measure(self.setting, backend)
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}


_CODE: dict = {}


def code_version(claim: Claim) -> str:
    """A short hash of the source that measures a point: the module defining the claim's measure, every numerics
    module of the harness (models, backends, kernels, training...; not the engine, whose edits do not change a
    measurement) and the harness version. Part of each point's store key, so edited code never reuses stale
    points."""
    import hashlib
    import inspect
    from pathlib import Path
    try:
        src = inspect.getsourcefile(claim.measure) or ""
    except TypeError:
        src = ""
    if src not in _CODE:
        root = Path(__file__).resolve().parent.parent          # harness/
        files = [p for p in sorted(root.rglob("*.py"))
                 if p.relative_to(root).parts[0] != "engine" and p.relative_to(root) != Path("errors.py")]
        h = hashlib.sha256(HARNESS_VERSION.encode())
        for path in ([Path(src)] if src else []) + files:
            h.update(str(path.relative_to(root.parent) if root.parent in path.parents else path.name).encode())
            h.update(path.read_bytes())
        _CODE[src] = h.hexdigest()[:16]
    return _CODE[src]


def variants(claim: Claim, include_controls: bool = True) -> list[str]:
    return ["claim"] + ([c.name for c in claim.controls] if include_controls else [])


def tasks_for(claim: Claim, tier: str, backend: str, device: str = "cpu", case: str | None = None,
              seeds: int | None = None, base_seed: int = 0, include_controls: bool = True,
              overrides: dict | None = None) -> list[Task]:
    """Every point of one run: variants x scales x replicates, seeds derived from (claim, case, variant, scale,
    replicate, base seed) and independent of the backend, so both backends measure the same networks.

    ``overrides`` runs one ad-hoc case (named ``case``, default "drawn") with these premise settings, e.g. the
    settings a property test drew from the claim's ``scope``."""
    t = claim.tier(tier)
    n_seeds = t.seeds if seeds is None else int(seeds)
    if n_seeds < MIN_SEEDS:
        raise HarnessError(f"need at least {MIN_SEEDS} seeds per scale for a confidence interval, got {n_seeds}")
    if overrides is not None:
        unknown = set(overrides) - set(claim.premise)
        if unknown:
            raise HarnessError(f"claim {claim.id} has no premise settings {sorted(unknown)}")
        cases = {case or "drawn": dict(overrides)}
    else:
        cases = claim.cases if case is None else {case: _case(claim, case)}
    out = []
    code = code_version(claim)
    for case_name, case_over in cases.items():
        for variant in variants(claim, include_controls):
            premise = claim.premise_for(case_over, t, variant)
            scales = t.scales if variant == "claim" or t.control_scales is None else t.control_scales
            for scale in scales:
                for r in range(n_seeds):
                    seed = derive_seed(claim.id, case_name, variant, float(scale), r, base_seed)
                    s = Setting(claim.id, variant, case_name, premise, float(scale), seed)
                    out.append(Task(s, tier, r, base_seed, backend, device, claim.dtype, code))
    return out


def _case(claim: Claim, name: str) -> dict:
    if name not in claim.cases:
        raise HarnessError(f"claim {claim.id} has no case {name!r}; it has: {', '.join(claim.cases)}")
    return claim.cases[name]


class LocalExecutor:
    """Runs tasks in this process, in order, skipping stored points; each point is committed when done."""

    def __init__(self, progress: bool = True):
        self.progress = progress

    def run(self, tasks: list[Task], store: Store, label: str = "") -> dict:
        todo = [t for t in tasks if not store.has(t)]
        stats = {"total": len(tasks), "cached": len(tasks) - len(todo), "measured": 0, "seconds": 0.0}
        if not todo:
            return stats
        bar = None
        if self.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), transient=True)
            bar.start()
            job = bar.add_task(label or "sweep", total=len(todo))
        try:
            for task in todo:
                t0 = time.perf_counter()
                result = task.run()
                dt = time.perf_counter() - t0
                store.put(task, result, dt)
                stats["measured"] += 1
                stats["seconds"] += dt
                if bar is not None:
                    bar.advance(job)
        finally:
            if bar is not None:
                bar.stop()
        return stats


@dataclass
class VariantResult:
    variant: str
    laws: list              # [LawResult]
    scales: list
    samples: dict           # statistic -> list of per-scale arrays (seeds first)
    verdict: str            # claim: holds/refuted/inconclusive; control: rejected/not rejected


@dataclass
class RunResult:
    claim: str
    case: str
    premise: dict
    tier: str
    backend: str
    device: str
    dtype: str
    alpha: float            # the family-wise alpha of the run this result belongs to
    law_alpha: float        # each law's share of it: 1 - law_alpha is the level of every interval
    seeds: int
    base_seed: int
    seconds: float
    claim_result: VariantResult
    controls: list = field(default_factory=list)
    verdicts: int = 0       # how many verdicts ``alpha`` was divided over
    code: str = ""

    @property
    def verdict(self) -> str:
        return self.claim_result.verdict

    @property
    def controls_rejected(self) -> bool:
        return all(c.verdict == "rejected" for c in self.controls)

    @property
    def ok(self) -> bool:
        return self.verdict == HOLDS and self.controls_rejected


def control_laws(claim: Claim, control) -> list:
    return [l for l in claim.laws if not control.refutes or l.name in control.refutes]


def verdict_count(claim: Claim, n_cases: int = 1, include_controls: bool = True) -> int:
    """Verdicts one run of ``claim`` makes over ``n_cases`` cases: its laws, plus each control's laws."""
    per_case = len(claim.laws) + (sum(len(control_laws(claim, c)) for c in claim.controls)
                                  if include_controls else 0)
    return n_cases * per_case


def _gather(claim: Claim, tasks: list[Task], store: Store, variant: str):
    by_scale: dict[float, list[dict]] = {}
    seconds = 0.0
    for t in tasks:
        if t.setting.variant != variant:
            continue
        got = store.get(t)
        if got is None:
            raise HarnessError(f"point missing from the store: {t.to_json()}")
        res, sec = got
        seconds += sec
        by_scale.setdefault(t.setting.scale, []).append(res)
    scales = sorted(by_scale)
    stats = sorted({k for pts in by_scale.values() for p in pts for k in p})
    samples = {}
    for k in stats:
        missing = [s for s in scales if any(k not in p for p in by_scale[s])]
        if missing:
            raise HarnessError(f"claim {claim.id} ({variant}): the measure returned {k!r} at some points but not "
                               f"at scale {missing[0]:g}")
        samples[k] = [np.stack([p[k] for p in by_scale[s]]) for s in scales]
    return scales, samples, seconds


def evaluate(claim: Claim, tasks: list[Task], store: Store, alpha: float = DEFAULT_ALPHA,
             law_alpha: float | None = None, verdicts: int | None = None) -> RunResult:
    """Evaluate every law on the stored points of one run (one case): the claim must hold, each control must be
    refuted. Each law is evaluated at ``law_alpha``, by default ``alpha`` divided over this case's verdicts
    (:func:`verdict_count`); a caller that evaluates several cases or claims as one family passes its share."""
    if not 0 < alpha < 1:
        raise HarnessError(f"alpha must be in (0, 1), got {alpha}")
    first = tasks[0]
    present = {t.setting.variant for t in tasks}
    if law_alpha is None:
        verdicts = verdict_count(claim, 1, include_controls=len(present) > 1)
        law_alpha = alpha / verdicts
    seconds = 0.0

    def run_laws(variant, laws):
        nonlocal seconds
        scales, samples, sec = _gather(claim, tasks, store, variant)
        seconds += sec
        premise = next(t.setting.premise for t in tasks if t.setting.variant == variant)
        results = []
        for i, law in enumerate(laws):
            if law.statistic not in samples:
                raise HarnessError(f"claim {claim.id}: law {law.name} needs measurement {law.statistic!r}, "
                                   f"measure returned {sorted(samples)}")
            results.append(law.evaluate(scales, samples[law.statistic], premise, law_alpha,
                                        seed=first.base_seed * 1000 + i))
        return scales, samples, results

    scales, samples, results = run_laws("claim", claim.laws)
    verdict_set = {r.verdict for r in results}
    verdict = REFUTED if REFUTED in verdict_set else (HOLDS if verdict_set == {HOLDS} else INCONCLUSIVE)
    claim_res = VariantResult("claim", results, scales, samples, verdict)
    controls = []
    for c in claim.controls:
        if c.name not in present:
            continue
        cs, csamp, cres = run_laws(c.name, control_laws(claim, c))
        rejected = any(r.verdict == REFUTED for r in cres)
        controls.append(VariantResult(c.name, cres, cs, csamp, "rejected" if rejected else "not rejected"))
    premise = next(t.setting.premise for t in tasks if t.setting.variant == "claim")
    return RunResult(claim.id, first.setting.case, premise, first.tier, first.backend, first.device, first.dtype,
                     alpha, law_alpha, len({t.replicate for t in tasks}), first.base_seed, seconds, claim_res,
                     controls, verdicts or round(alpha / law_alpha), first.code)


def run_claim(claim: Claim | str, tier: str = "ci", backend: str = "jax", device: str = "cpu", *,
              case: str | None = None, seeds: int | None = None, base_seed: int = 0, alpha: float = DEFAULT_ALPHA,
              store: Store | None = None, executor=None, include_controls: bool = True,
              overrides: dict | None = None, progress: bool = False, law_alpha: float | None = None,
              verdicts: int | None = None) -> list[RunResult]:
    """Measure (what the store lacks) and evaluate a claim: one :class:`RunResult` per case (or one run of the
    ``overrides`` premise, see :func:`tasks_for`). ``alpha`` is family-wise over every verdict of this call (all
    its cases); ``law_alpha`` (with ``verdicts``, the family's size) overrides it when the call is part of a
    larger family, as in ``claims run``."""
    claim = get_claim(claim) if isinstance(claim, str) else claim
    get_backend(backend, device, claim.dtype)          # fail early, one line, if the backend is missing
    cases = [case or "drawn"] if overrides is not None else (list(claim.cases) if case is None else [case])
    if law_alpha is None:
        verdicts = verdict_count(claim, len(cases), include_controls)
        law_alpha = alpha / verdicts
    own = store is None
    store = store or Store()
    executor = executor or LocalExecutor(progress=progress)
    try:
        out = []
        for case_name in cases:
            tasks = tasks_for(claim, tier, backend, device, case_name, seeds, base_seed, include_controls,
                              overrides)
            executor.run(tasks, store, label=f"{claim.id}/{case_name} [{backend}]")
            out.append(evaluate(claim, tasks, store, alpha, law_alpha, verdicts))
        return out
    finally:
        if own:
            store.close()
