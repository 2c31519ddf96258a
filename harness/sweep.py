"""Sweeps: a claim at a tier on a backend becomes independent, serialisable tasks, one per
(variant, scale, seed); an executor measures the ones the store lacks; the laws are then evaluated on the stored
points.

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

from .backends import get_backend
from .claim import Claim, Setting, derive_seed, get_claim
from .errors import HarnessError
from .laws import HOLDS, INCONCLUSIVE, REFUTED, LawResult
from .store import Store

DEFAULT_ALPHA = 0.05


@dataclass(frozen=True)
class Task:
    setting: Setting
    tier: str
    replicate: int
    base_seed: int
    backend: str
    device: str
    dtype: str

    def identity(self) -> dict:
        s = self.setting
        return {"claim": s.claim, "variant": s.variant, "case": s.case, "premise": s.premise, "scale": s.scale,
                "seed": s.seed, "tier": self.tier, "backend": self.backend, "device": self.device,
                "dtype": self.dtype}

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


def variants(claim: Claim, include_controls: bool = True) -> list[str]:
    return ["claim"] + ([c.name for c in claim.controls] if include_controls else [])


def tasks_for(claim: Claim, tier: str, backend: str, device: str = "cpu", case: str | None = None,
              seeds: int | None = None, base_seed: int = 0, include_controls: bool = True,
              overrides: dict | None = None) -> list[Task]:
    """Every point of one run: variants x scales x replicates, seeds derived from (claim, case, scale, replicate,
    base seed) and independent of the backend, so both backends measure the same networks.

    ``overrides`` runs one ad-hoc case (named ``case``, default "drawn") with these premise settings, e.g. the
    settings a property test drew from the claim's ``scope``."""
    t = claim.tier(tier)
    n_seeds = t.seeds if seeds is None else int(seeds)
    if n_seeds < 2:
        raise HarnessError("need at least 2 seeds per scale for a confidence interval")
    if overrides is not None:
        unknown = set(overrides) - set(claim.premise)
        if unknown:
            raise HarnessError(f"claim {claim.id} has no premise settings {sorted(unknown)}")
        cases = {case or "drawn": dict(overrides)}
    else:
        cases = claim.cases if case is None else {case: _case(claim, case)}
    out = []
    for case_name, case_over in cases.items():
        for variant in variants(claim, include_controls):
            premise = claim.premise_for(case_over, t, variant)
            scales = t.scales if variant == "claim" or t.control_scales is None else t.control_scales
            for scale in scales:
                for r in range(n_seeds):
                    seed = derive_seed(claim.id, case_name, float(scale), r, base_seed)
                    s = Setting(claim.id, variant, case_name, premise, float(scale), seed)
                    out.append(Task(s, tier, r, base_seed, backend, device, claim.dtype))
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
    alpha: float
    law_alpha: float
    seeds: int
    base_seed: int
    seconds: float
    claim_result: VariantResult
    controls: list = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return self.claim_result.verdict

    @property
    def controls_rejected(self) -> bool:
        return all(c.verdict == "rejected" for c in self.controls)

    @property
    def ok(self) -> bool:
        return self.verdict == HOLDS and self.controls_rejected


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
    samples = {k: [np.stack([p[k] for p in by_scale[s]]) for s in scales] for k in stats}
    return scales, samples, seconds


def evaluate(claim: Claim, tasks: list[Task], store: Store, alpha: float = DEFAULT_ALPHA) -> RunResult:
    """Evaluate every law on the stored points of one run (one case): the claim must hold, each control must be
    refuted. The run's alpha is split evenly (Bonferroni) across the claim's laws."""
    if not 0 < alpha < 1:
        raise HarnessError(f"alpha must be in (0, 1), got {alpha}")
    first = tasks[0]
    law_alpha = alpha / len(claim.laws)
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
    verdicts = {r.verdict for r in results}
    verdict = REFUTED if REFUTED in verdicts else (HOLDS if verdicts == {HOLDS} else INCONCLUSIVE)
    claim_res = VariantResult("claim", results, scales, samples, verdict)
    controls = []
    present = {t.setting.variant for t in tasks}
    for c in claim.controls:
        if c.name not in present:
            continue
        laws = [l for l in claim.laws if not c.refutes or l.name in c.refutes]
        cs, csamp, cres = run_laws(c.name, laws)
        rejected = any(r.verdict == REFUTED for r in cres)
        controls.append(VariantResult(c.name, cres, cs, csamp, "rejected" if rejected else "not rejected"))
    premise = next(t.setting.premise for t in tasks if t.setting.variant == "claim")
    return RunResult(claim.id, first.setting.case, premise, first.tier, first.backend, first.device, first.dtype,
                     alpha, law_alpha, len({t.replicate for t in tasks}), first.base_seed, seconds, claim_res,
                     controls)


def run_claim(claim: Claim | str, tier: str = "ci", backend: str = "jax", device: str = "cpu", *,
              case: str | None = None, seeds: int | None = None, base_seed: int = 0, alpha: float = DEFAULT_ALPHA,
              store: Store | None = None, executor=None, include_controls: bool = True,
              overrides: dict | None = None, progress: bool = False) -> list[RunResult]:
    """Measure (what the store lacks) and evaluate a claim: one :class:`RunResult` per case (or one run of the
    ``overrides`` premise, see :func:`tasks_for`)."""
    claim = get_claim(claim) if isinstance(claim, str) else claim
    get_backend(backend, device, claim.dtype)          # fail early, one line, if the backend is missing
    own = store is None
    store = store or Store()
    executor = executor or LocalExecutor(progress=progress)
    try:
        out = []
        cases = [case or "drawn"] if overrides is not None else (list(claim.cases) if case is None else [case])
        for case_name in cases:
            tasks = tasks_for(claim, tier, backend, device, case_name, seeds, base_seed, include_controls,
                              overrides)
            executor.run(tasks, store, label=f"{claim.id}/{case_name} [{backend}]")
            out.append(evaluate(claim, tasks, store, alpha))
        return out
    finally:
        if own:
            store.close()
