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

:class:`Task` round-trips through JSON (``to_json`` / ``from_json``), so an executor
(:mod:`harness.engine.executors`: in process, local worker processes, Ray) can ship tasks to workers; the driver
commits each point to the store as soon as it arrives.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..backends import get_backend
from .claim import Claim, Setting, derive_seed, get_claim, load_path, register, registry, source_of
from .executors import Executor, LocalExecutor  # noqa: F401  (LocalExecutor: re-exported)
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
    source: str = ""        # the user claim file defining the claim ("" for the package): a worker loads it

    def identity(self) -> dict:
        """What determines the point's value (the store key); ``source`` is where to load it, not part of it."""
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

    def label(self) -> str:
        s = self.setting
        return (f"{s.claim} [{s.case}] {s.variant} at {s.scale:g}, seed {s.seed} ({self.backend}/{self.device})")

    def _resolve(self):
        """The claim (looked up in the registry by id, loading ``source`` if need be) and the backend."""
        if self.source and self.setting.claim not in registry():
            load_path(self.source)
        return get_claim(self.setting.claim), get_backend(self.backend, self.device, self.dtype)

    def run(self) -> dict:
        """Measure this point."""
        return run_batch([self])[0]


def _checked(claim: Claim, out, task: Task) -> dict:
    if not isinstance(out, dict):
        raise HarnessError(f"claim {claim.id}: measure must return a dict of named measurements, got "
                           f"{type(out).__name__}")
    claim.check_outputs(out, task.label())
    try:
        return {k: np.asarray(v, dtype=float) for k, v in out.items()}
    except (TypeError, ValueError) as e:
        raise HarnessError(f"claim {claim.id}: a measurement at {task.label()} is not numeric ({e})") from None


def batch_key(task: Task) -> tuple:
    """What the tasks measured in one call (and compiled kernels) share: all but the seed."""
    s = task.setting
    return (s.claim, s.case, s.variant, s.scale, json.dumps(s.premise, sort_keys=True, default=str), task.tier,
            task.backend, task.device, task.dtype, task.code)


def run_batch(tasks: list) -> list:
    """Measure tasks that differ only in their seed: in one call of the claim's measure when it batches seeds
    (``Claim.seed_batch`` > 1, at most that many per call), else one by one. One result dict per task, in order."""
    tasks = list(tasks)
    if not tasks:
        return []
    claim, backend = tasks[0]._resolve()
    if claim.seed_batch == 1:
        return [_checked(claim, claim.measure(t.setting, backend), t) for t in tasks]
    if len({batch_key(t) for t in tasks}) != 1 or len(tasks) > claim.seed_batch:
        raise HarnessError(f"claim {claim.id}: one batched call takes at most {claim.seed_batch} tasks that differ "
                           f"only in their seed")
    outs = claim.measure([t.setting for t in tasks], backend)
    if not isinstance(outs, (list, tuple)) or len(outs) != len(tasks):
        got = f"{len(outs)} results" if isinstance(outs, (list, tuple)) else type(outs).__name__
        raise HarnessError(f"claim {claim.id}: a batched measure (seed_batch={claim.seed_batch}) must return a list "
                           f"of one dict per setting: {len(tasks)} settings, got {got}")
    return [_checked(claim, out, t) for out, t in zip(outs, tasks)]


def seed_batch_of(task: Task) -> int:
    """The claim's ``seed_batch`` for a task (1 where the claim is not loaded in this process)."""
    try:
        return get_claim(task.setting.claim).seed_batch
    except HarnessError:
        return 1


_CODE: dict = {}


def measure_sources(measure) -> list:
    """The source files a claim's measure depends on, beyond the harness (hashed whole) and installed packages:
    the module defining it (always), and, transitively, every module its module-level names come from that is
    neither (e.g. a claim file that imports a model builder from another claim file: D3 takes coord-check's)."""
    import inspect
    import sys
    import sysconfig
    from pathlib import Path
    harness_root = Path(__file__).resolve().parent.parent
    installed = [Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")]

    def file_of(module) -> Path | None:
        f = getattr(module, "__file__", None)
        return Path(f).resolve() if f and f.endswith(".py") else None

    def own(module) -> Path | None:
        path = file_of(module)
        if path is None or harness_root in path.parents or any(r in path.parents for r in installed):
            return None
        return path
    first = inspect.getmodule(measure)
    if first is None or file_of(first) is None:
        return []
    seen, todo = {}, [first]
    while todo:
        module = todo.pop()
        path = file_of(module) if module is first else own(module)
        if path is None or path in seen:
            continue
        seen[path] = module
        for value in list(vars(module).values()):
            dep = value if inspect.ismodule(value) else sys.modules.get(getattr(value, "__module__", None) or "")
            if dep is not None:
                todo.append(dep)
    return sorted(seen)


def code_version(claim: Claim) -> str:
    """A short hash of the source that measures a point: the files of :func:`measure_sources` (the module
    defining the claim's measure and the claim modules it imports from), every numerics module of the harness
    (models, backends, kernels, training...; not the engine, whose edits do not change a measurement) and the
    harness version. Part of each point's store key, so edited code never reuses stale points."""
    import hashlib
    from pathlib import Path
    sources = measure_sources(claim.measure)
    key = tuple(str(p) for p in sources)
    if key not in _CODE:
        root = Path(__file__).resolve().parent.parent          # harness/
        files = [p for p in sorted(root.rglob("*.py"))
                 if p.relative_to(root).parts[0] != "engine" and p.relative_to(root) != Path("errors.py")]
        h = hashlib.sha256(HARNESS_VERSION.encode())
        for path in sources + files:
            h.update(str(path.relative_to(root.parent) if root.parent in path.parents else path.name).encode())
            h.update(path.read_bytes())
        _CODE[key] = h.hexdigest()[:16]
    return _CODE[key]


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
    code, source = code_version(claim), source_of(claim.id)
    for case_name, case_over in cases.items():
        for variant in variants(claim, include_controls):
            premise = claim.premise_for(case_over, t, variant)
            scales = t.scales if variant == "claim" or t.control_scales is None else t.control_scales
            for scale in scales:
                for r in range(n_seeds):
                    seed = derive_seed(claim.id, case_name, variant, float(scale), r, base_seed)
                    s = Setting(claim.id, variant, case_name, premise, float(scale), seed)
                    out.append(Task(s, tier, r, base_seed, backend, device, claim.dtype, code, source))
    return out


def _case(claim: Claim, name: str) -> dict:
    if name not in claim.cases:
        raise HarnessError(f"claim {claim.id} has no case {name!r}; it has: {', '.join(claim.cases)}")
    return claim.cases[name]


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


def control_laws(claim: Claim, control, case: str | None = None) -> list:
    laws = claim.laws if case is None else claim.laws_for(case)
    return [l for l in laws if not control.refutes or l.name in control.refutes]


def verdict_count(claim: Claim, cases=1, include_controls: bool = True) -> int:
    """Verdicts one run of ``claim`` makes: in each case its laws (those that apply in the case), plus each
    control's. ``cases``: case names (``None``: all the claim's), or a number of cases (default 1; an unnamed
    case, such as a property test's draw, is counted with the laws that apply in every case)."""
    if cases is None:
        cases = list(claim.cases)
    names = [None] * cases if isinstance(cases, int) else list(cases)
    total = 0
    for case in names:
        laws = [l for l in claim.laws if not l.cases] if case is None else claim.laws_for(case)
        total += len(laws)
        if include_controls:
            total += sum(len([l for l in laws if not c.refutes or l.name in c.refutes]) for c in claim.controls)
    return total


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


def _nonfinite_points(tasks, store, variant, statistic, show: int = 4) -> str:
    """Name the points where ``statistic`` is NaN or infinite: scale, seed and replicate (empty when none)."""
    bad = []
    for t in tasks:
        if t.setting.variant != variant:
            continue
        got = store.get(t)
        if got is not None and statistic in got[0] and not np.all(np.isfinite(got[0][statistic])):
            bad.append(f"scale {t.setting.scale:g} seed {t.setting.seed}")
    if not bad:
        return ""
    more = f" and {len(bad) - show} more" if len(bad) > show else ""
    return f"{statistic} is NaN or infinite at {len(bad)} point(s): {'; '.join(bad[:show])}{more}"


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
        case0 = first.setting.case
        verdicts = verdict_count(claim, [case0] if case0 in claim.cases else 1, include_controls=len(present) > 1)
        law_alpha = alpha / verdicts
    seconds = 0.0

    claim_premise = next(t.setting.premise for t in tasks if t.setting.variant == "claim")
    case = first.setting.case

    def run_laws(variant, laws):
        nonlocal seconds
        scales, samples, sec = _gather(claim, tasks, store, variant)
        seconds += sec
        premise = next(t.setting.premise for t in tasks if t.setting.variant == variant)
        if variant != "claim" and claim.control(variant).prediction == "claim":
            premise = claim_premise             # the claim's prediction, held fixed under the control
        results = []
        for i, law in enumerate(laws):
            if law.statistic not in samples:
                raise HarnessError(f"claim {claim.id}: law {law.name} needs measurement {law.statistic!r}, "
                                   f"measure returned {sorted(samples)}")
            res = law.evaluate(scales, samples[law.statistic], premise, law_alpha, seed=first.base_seed * 1000 + i)
            bad = _nonfinite_points(tasks, store, variant, law.statistic)
            if bad:
                est = res.estimate
                res = res._replace(estimate=est._replace(note=(est.note + "; " if est.note else "") + bad))
            results.append(res)
        return scales, samples, results

    laws = claim.laws_for(case) if case in claim.cases else tuple(l for l in claim.laws if not l.cases)
    scales, samples, results = run_laws("claim", laws)
    verdict_set = {r.verdict for r in results}
    verdict = REFUTED if REFUTED in verdict_set else (HOLDS if verdict_set == {HOLDS} else INCONCLUSIVE)
    claim_res = VariantResult("claim", results, scales, samples, verdict)
    controls = []
    for c in claim.controls:
        if c.name not in present:
            continue
        cs, csamp, cres = run_laws(c.name, [l for l in laws if not c.refutes or l.name in c.refutes])
        rejected = any(r.verdict == REFUTED for r in cres)
        controls.append(VariantResult(c.name, cres, cs, csamp, "rejected" if rejected else "not rejected"))
    premise = next(t.setting.premise for t in tasks if t.setting.variant == "claim")
    return RunResult(claim.id, first.setting.case, premise, first.tier, first.backend, first.device, first.dtype,
                     alpha, law_alpha, len({t.replicate for t in tasks}), first.base_seed, seconds, claim_res,
                     controls, verdicts or round(alpha / law_alpha), first.code)


@dataclass
class PlannedRun:
    """One run of a sweep: a claim case on a backend, and its tasks."""
    claim: Claim
    backend: str
    case: str
    tasks: list


def plan(claims: list, tier: str = "ci", backends: Iterable[str] = ("jax",), device: str = "cpu", *,
         case: str | None = None, seeds: int | None = None, base_seed: int = 0, include_controls: bool = True,
         overrides: dict | None = None) -> list[PlannedRun]:
    """Every run (claim x backend x case) of a sweep with its tasks, before anything is measured."""
    out = []
    for claim in claims:
        cases = [case or "drawn"] if overrides is not None else (list(claim.cases) if case is None else [case])
        for backend in backends:
            for case_name in cases:
                out.append(PlannedRun(claim, backend, case_name,
                                      tasks_for(claim, tier, backend, device, case_name, seeds, base_seed,
                                                include_controls, overrides)))
    return out


def dry_run(runs: list, store: Store) -> None:
    """For each claim that does not declare its ``outputs``: measure its first point here, before the sweep, so a
    measure that does not return what the laws need fails in one line before anything else is measured."""
    from .executors import measure_task
    seen = set()
    for r in runs:
        if r.claim.outputs or r.claim.id in seen:
            continue
        seen.add(r.claim.id)
        task = r.tasks[0]
        got = store.get(task)
        if got is None:
            result, seconds = measure_task(task.to_json())
            store.put(task, result, seconds)
        else:
            r.claim.check_outputs(got[0], task.label())


def run_claims(claims: list, tier: str = "ci", backends: Iterable[str] = ("jax",), device: str = "cpu", *,
               case: str | None = None, seeds: int | None = None, base_seed: int = 0,
               alpha: float = DEFAULT_ALPHA, store: Store | None = None, executor: Executor | None = None,
               include_controls: bool = True, overrides: dict | None = None, progress: bool = False,
               law_alpha: float | None = None, verdicts: int | None = None, label: str = "") -> list[RunResult]:
    """Measure (what the store lacks) and evaluate several claims on several backends as one sweep: every task
    of every run goes to ``executor`` at once (so its workers stay busy across claims), then each run (claim x
    backend x case) is evaluated. ``alpha`` is family-wise over every verdict of the sweep, each claim case
    counted once across backends (they measure the same networks); ``law_alpha`` (with ``verdicts``, the
    family's size) overrides it when the sweep is part of a larger family."""
    claims = [c if isinstance(c, Claim) else get_claim(c) for c in claims]
    backends = list(backends)
    for c in claims:
        register(c)
        for b in backends:
            get_backend(b, device, c.dtype)          # fail early, one line, if the backend is missing
    runs = plan(claims, tier, backends, device, case=case, seeds=seeds, base_seed=base_seed,
                include_controls=include_controls, overrides=overrides)
    if law_alpha is None:
        verdicts = sum(verdict_count(c, 1 if overrides is not None else None if case is None else [case],
                                     include_controls) for c in claims)
        law_alpha = alpha / verdicts
    own_store, own_exec = store is None, executor is None
    store = store or Store()
    executor = executor or LocalExecutor(workers=1, progress=progress)
    try:
        dry_run(runs, store)
        tasks = [t for r in runs for t in r.tasks]
        executor.run(tasks, store, label=label or (f"{claims[0].id} [{', '.join(backends)}]" if len(claims) == 1
                                                  else f"{len(claims)} claims [{', '.join(backends)}]"))
        return [evaluate(r.claim, r.tasks, store, alpha, law_alpha, verdicts) for r in runs]
    finally:
        if own_exec:
            executor.close()
        if own_store:
            store.close()


def run_claim(claim: Claim | str, tier: str = "ci", backend: str = "jax", device: str = "cpu", **kwargs
              ) -> list[RunResult]:
    """Measure (what the store lacks) and evaluate one claim on one backend: one :class:`RunResult` per case (or
    one run of the ``overrides`` premise, see :func:`tasks_for`). Keywords as :func:`run_claims`; by default the
    points are measured in this process (``executor=LocalExecutor(workers=N)`` for worker processes). A
    :class:`Claim` built in Python (not in a claim file) is registered for the run."""
    return run_claims([claim], tier, [backend], device, **kwargs)
