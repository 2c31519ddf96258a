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
for every case (and, in ``claims run``, every claim and backend): a law gets ``alpha / verdicts``.

Sequential verdicts. A variant (the claim, or one control) is measured in looks (``Tier.looks``: a first batch of
seeds per scale, doubling up to the tier's cap). At each look the laws not yet decided are evaluated on the seeds
measured so far at the law's alpha divided by the variant's number of looks (Bonferroni over the looks: valid
whatever rule stops them, since the chance that any of the looks' intervals misses is at most the sum of their
levels); a law's first conclusive verdict (holds or refuted) is its verdict. The claim stops when every law is
decided or one is refuted, a control as soon as it is refuted, either at its cap. Points of a smaller look are a
prefix of a larger one's (the replicate index is part of the derived seed), so nothing is measured twice, a
killed sweep resumes from the store at any look, and replaying the looks at a less strict level needs no new
point (its intervals are nested in the stricter ones, so it stops no later).

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
    cached = _SOURCES.get(first)
    if cached is not None and all(_mtime(p) == m for p, m in cached):
        return [p for p, _ in cached]
    harness_root = Path(__file__).resolve().parent.parent
    installed = [Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")]
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
    _SOURCES[first] = [(p, _mtime(p)) for p in sorted(seen)]
    return sorted(seen)


# measure_sources per claim module (its walk over module-level names and the install paths cost ~1.5 ms, and
# `claims design` asks once per calibration run), valid while none of the files it found has changed on disk
_SOURCES: dict = {}


def _mtime(path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


# Keyword arguments that only declare (how a claim is evaluated, sized, named or explained), never what a point
# measures: a point is keyed by its premise, scale and seed besides the code, so a tier's seed counts or scales, a
# law's wording or a change note can be edited without re-measuring any point or staling a calibration record.
DECLARATION_ONLY = frozenset({"tiers", "changes", "title", "statement", "paper", "why", "why_several", "what",
                              "design"})


def _other_claims(tree, claim_id: str) -> list:
    """The top-level statements ``NAME = Claim(id="other", ...)`` of a module that declare a claim other than
    ``claim_id`` (its ``id`` a string constant) and whose ``NAME`` nothing else in the module reads: another claim's
    declaration, which cannot change what this claim's measure computes. A declaration read elsewhere (a claim
    made as ``NAME.variant(...)``, a measure that reads ``NAME.premise``) is kept, and so is anything that is not a
    plain ``Claim(...)`` call."""
    import ast
    candidates = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Call)):
            continue
        f = node.value.func
        if not ((isinstance(f, ast.Name) and f.id == "Claim") or (isinstance(f, ast.Attribute) and f.attr == "Claim")):
            continue
        ids = [k.value for k in node.value.keywords if k.arg == "id"]
        if len(ids) == 1 and isinstance(ids[0], ast.Constant) and isinstance(ids[0].value, str) \
                and ids[0].value != claim_id:
            candidates[id(node)] = (node, node.targets[0].id)
    if not candidates:
        return []
    read = set()
    for stmt in tree.body:
        if id(stmt) in candidates:
            stmt = candidates[id(stmt)][0].value          # its own arguments may read names; its target is not read
        for n in ast.walk(stmt):
            if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Store):
                read.add(n.id)
            elif isinstance(n, ast.Constant) and isinstance(n.value, str):
                read.add(n.value)                         # a name given as a string (__all__, getattr)
    return [node for node, name in candidates.values() if name not in read]


def measured_source(path, claim_id: str | None = None) -> bytes:
    """The part of a source file that can change a measurement: its syntax (``ast.unparse``, so comments and
    layout do not count) without docstrings and without the keyword arguments in :data:`DECLARATION_ONLY`; with
    ``claim_id``, also without the declarations of the module's other claims that nothing reads
    (:func:`_other_claims`), so an edit to one claim's laws or premise leaves its neighbours' points and
    calibration records current. A file that does not parse is taken whole."""
    import ast
    from pathlib import Path
    text = Path(path).read_text()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text.encode()
    if claim_id is not None:
        drop = {id(n) for n in _other_claims(tree, claim_id)}
        tree.body = [n for n in tree.body if id(n) not in drop]
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        elif isinstance(node, ast.Call):
            node.keywords = [k for k in node.keywords if k.arg not in DECLARATION_ONLY]
    return ast.unparse(tree).encode()


def _module_file(root, parts):
    """The file of module ``parts`` (names below the package ``root``): a module file, or a package's
    ``__init__.py``; None when neither exists."""
    path = root.joinpath(*parts)
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def _imported_files(path, root) -> list:
    """The files of the package ``root`` that the source ``path`` imports, anywhere in it (a function's local
    import too, and a module named by a string such as ``"harness.backends.torch_adapters"``, which is imported by
    name), read statically from its syntax. ``from pkg import name`` names the submodule ``pkg.name`` when
    there is one and ``pkg/__init__.py`` otherwise; re-exports in ``__init__.py`` files are followed by
    :func:`harness_sources`."""
    import ast
    import re
    from pathlib import Path
    path, root = Path(path), Path(root)
    try:
        tree = ast.parse(path.read_text())
    except (SyntaxError, UnicodeDecodeError):
        return []
    inside = root in path.parents
    here = list(path.relative_to(root).parent.parts) if inside else []
    out = []

    def add(parts, names=()):
        base = _module_file(root, parts)
        if base is None:
            return
        if base.name != "__init__.py" or not names:
            out.append((base, ()))
            return
        for name in names:                       # from package import name: a submodule, or the package's name
            sub = _module_file(root, parts + [name]) if name != "*" else None
            out.append((sub, ()) if sub is not None else (base, (name,)))

    by_name = re.compile(rf"^{re.escape(root.name)}(\.\w+)+$")
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and by_name.match(node.value):
            add(node.value.split(".")[1:])          # a module imported by name ("harness.backends.torch")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                mod = alias.name.split(".")
                if mod[0] == root.name:
                    add(mod[1:], ("*",) if len(mod) == 1 else ())
        elif isinstance(node, ast.ImportFrom):
            names = tuple(a.name for a in node.names)
            if node.level:
                if not inside or node.level - 1 > len(here):
                    continue
                parts = here[:len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            else:
                mod = (node.module or "").split(".")
                if mod[0] != root.name:
                    continue
                parts = mod[1:]
            add(parts, names)
    return out


def _reexports(init, root) -> dict:
    """``{name: the file it comes from}`` for the names a package's ``__init__.py`` imports from its modules."""
    import ast
    from pathlib import Path
    tree = ast.parse(Path(init).read_text())
    here = list(Path(init).relative_to(root).parent.parts)
    table = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            parts = here[:len(here) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            f = _module_file(root, parts)
            for a in node.names:
                sub = _module_file(root, parts + [a.name])
                table[a.asname or a.name] = sub if (f is None or f.name == "__init__.py") and sub else f
    return table


def _backend_modules(root, backend: str | None = None) -> list:
    """The backend registry (``backends/__init__.py``) and the modules it names by string (``"harness.backends.
    torch"``: imported by name at run time, so no static import reaches them); with ``backend``, only that one's
    module. Other files in ``backends/`` (an adapter for users' modules) count only where something imports them."""
    init = root / "backends" / "__init__.py"
    if not init.is_file():
        return []
    named = _backend_names(root)
    if backend is not None:
        named = {n for n in named if n == backend}
    return [init] + [f for f in (_module_file(root, ["backends", n]) for n in sorted(named)) if f is not None]


def _backend_names(root) -> set:
    """The backend names the registry (``backends/__init__.py``) maps to modules ``harness.backends.<name>``."""
    import ast
    import re
    init = root / "backends" / "__init__.py"
    if not init.is_file():
        return set()
    pattern = re.compile(rf"^{re.escape(root.name)}\.backends\.(\w+)$")
    return {m.group(1) for node in ast.walk(ast.parse(init.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := pattern.match(node.value))}


def harness_sources(files, root=None, backend: str | None = None) -> list:
    """The numerics files of the harness (package ``root``, default ``harness/``) a claim's measure can run: the
    closure under static imports of what ``files`` (its claim modules) import from the harness, and of the
    backend registry and the backend modules it names (:func:`_backend_modules`: imported by name at run time).
    ``from harness import MLP`` counts the module ``MLP`` is re-exported from, not everything
    ``harness/__init__.py`` imports, so a harness module no claim reaches (a new model family, a pilot tool)
    leaves the claim's code hash alone. The engine (``engine/``: how
    points become verdicts, never what a point measures) and ``errors.py`` are not followed. With ``backend``
    (a point measured on it), the other backends' modules (``backends/<other>.py`` and ``backends/<other>_*.py``,
    their adapters) are not followed either: an edit to torch's backend stales no point measured on JAX."""
    from pathlib import Path
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    skipped = {root / "errors.py"}
    others = _backend_names(root) - {backend} if backend is not None else set()

    def kept(f):
        if f is None or f in skipped or "engine" in f.relative_to(root).parts[:1]:
            return False
        return not (f.parent == root / "backends" and f.stem.split("_")[0] in others)
    todo = [pair for src in files for pair in _imported_files(src, root)]
    todo += [(f, ()) for f in _backend_modules(root, backend)]
    seen, done = set(), set()
    while todo:
        f, names = todo.pop()
        if not kept(f) or (f, names) in done:
            continue
        done.add((f, names))
        if f.name == "__init__.py" and names and "*" not in names:
            table = _reexports(f, root)
            if all(n in table for n in names):   # a re-exported name: the module it comes from
                todo += [(table[n], ()) for n in names]
                continue
        seen.add(f)
        todo += [(g, ns) for g, ns in _imported_files(f, root)]
    return sorted(seen)


def code_version(claim: Claim, backend: str | None = None) -> str:
    """A short hash of the source that measures a point on ``backend``: the files of :func:`measure_sources` (the
    module defining the claim's measure and the claim modules it imports from), the harness's numerics modules
    they can run on that backend (:func:`harness_sources`: what they import, transitively, and the backend's own
    module; ``None``: every backend's) and the harness version, each as :func:`measured_source` reads it
    (docstrings, comments and declaration-only arguments such as a claim's ``tiers`` and ``changes`` do not
    count, nor the declarations of other claims in its modules that nothing reads). Part of each point's store
    key, so edited code never reuses stale points, and the freshness of a calibration record (measured on one
    backend: an edit to another backend's module leaves it current)."""
    import hashlib
    from pathlib import Path
    sources = measure_sources(claim.measure)
    key = (tuple(str(p) for p in sources), backend, claim.id)
    if key not in _CODE:
        root = Path(__file__).resolve().parent.parent          # harness/
        files = harness_sources(sources, root, backend)
        h = hashlib.sha256(HARNESS_VERSION.encode())
        for path in sources + files:
            h.update(str(path.relative_to(root.parent) if root.parent in path.parents else path.name).encode())
            h.update(measured_source(path, claim.id if path in sources else None))
        _CODE[key] = h.hexdigest()[:16]
    return _CODE[key]


def variants(claim: Claim, include_controls: bool = True) -> list[str]:
    return ["claim"] + ([c.name for c in claim.controls] if include_controls else [])


def tasks_for(claim: Claim, tier: str, backend: str, device: str = "cpu", case: str | None = None,
              seeds: int | None = None, base_seed: int = 0, include_controls: bool = True,
              overrides: dict | None = None) -> list[Task]:
    """Every point of one fixed-size run: variants x scales x replicates, seeds derived from (claim, case, variant,
    scale, replicate, base seed) and independent of the backend, so both backends measure the same networks.
    ``seeds`` per scale (default: each variant's first batch, the first look of the tier's sequential design;
    :func:`run_claims` adds the later looks' replicates as it needs them).

    ``overrides`` runs one ad-hoc case (named ``case``, default "drawn") with these premise settings, e.g. the
    settings a property test drew from the claim's ``scope``."""
    runs = plan([claim], tier, [backend], device, case=case, seeds=seeds, base_seed=base_seed,
                include_controls=include_controls, overrides=overrides)
    return [t for r in runs for v in r.variants for t in r.tasks(v, r.looks[v][0])]


def _cases_of(claim: Claim, case: str | None, overrides: dict | None) -> dict:
    if overrides is not None:
        unknown = set(overrides) - set(claim.premise)
        if unknown:
            raise HarnessError(f"claim {claim.id} has no premise settings {sorted(unknown)}")
        return {case or "drawn": dict(overrides)}
    return claim.cases if case is None else {case: _case(claim, case)}


def _case(claim: Claim, name: str) -> dict:
    if name not in claim.cases:
        raise HarnessError(f"claim {claim.id} has no case {name!r}; it has: {', '.join(claim.cases)}")
    return claim.cases[name]


@dataclass
class VariantResult:
    variant: str
    laws: list              # [LawResult]
    scales: list
    samples: dict           # statistic -> list of per-scale arrays (seeds first), at the last look measured
    verdict: str            # claim: holds/refuted/inconclusive; control: rejected/not rejected
    seeds: int = 0          # seeds per scale measured (the last look's)
    looks: tuple = ()       # the variant's sequential design: seeds per scale at each look
    final: list = field(default_factory=list)   # every law at the last look (decided or not), for the power record
    premise: dict = field(default_factory=dict)  # the premise it was measured on (a figure may need it)


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
    law_alpha: float        # each law's share of it, spent over the looks of its variant
    seeds: int              # seeds per scale the claim variant measured (its last look)
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


def _nonfinite_points(tasks, store, variant, law, show: int = 4) -> str:
    """Name the points where ``law``'s statistic is NaN or infinite at a scale the law reads (:meth:`Law.reads`;
    elsewhere it is not measured by declaration): scale and seed (empty when none)."""
    statistic = law.statistic
    mine = [t for t in tasks if t.setting.variant == variant]
    scales = sorted({t.setting.scale for t in mine})
    bad = []
    for t in mine:
        if not law.reads(t.setting.scale, scales):
            continue
        got = store.get(t)
        if got is not None and statistic in got[0] and not np.all(np.isfinite(got[0][statistic])):
            bad.append(f"scale {t.setting.scale:g} seed {t.setting.seed}")
    if not bad:
        return ""
    more = f" and {len(bad) - show} more" if len(bad) > show else ""
    return f"{statistic} is NaN or infinite at {len(bad)} point(s): {'; '.join(bad[:show])}{more}"


def nonfinite_warning(run: "PlannedRun", variant: str, laws, task: "Task", result: dict, seen: set) -> list[str]:
    """One line per measurement of ``result`` that is NaN or infinite where a law of the variant reads it (at this
    scale: :meth:`Law.reads`), the first time in this run and variant (``seen`` remembers). A measurement no law
    reads here says nothing: not measured here by declaration, or an auxiliary record (e.g. D2's per-rate losses,
    NaN where a run diverged, as a diverged run is recorded)."""
    s = task.setting
    scales = sorted(float(x) for x in run.claim.tier(run.tier).scales_for(variant))
    out = []
    for name, value in result.items():
        key = (variant, name)
        if key in seen or np.all(np.isfinite(np.asarray(value, dtype=float))):
            continue
        readers = [l for l in laws if l.statistic == name]
        if not any(l.reads(s.scale, scales) for l in readers):
            continue
        seen.add(key)
        what = "the laws " + ", ".join(l.name for l in readers) + " read it there and will be inconclusive"
        out.append(f"{run.claim.id} [{run.case}] {run.backend} {variant}: {name!r} is NaN or infinite at "
                   f"{run.claim.scale_name} {s.scale:g}, seed {s.seed} (replicate {task.replicate}): the first such "
                   f"point of this variant; {what}")
    return out


def _laws_of(claim: Claim, case: str, variant: str) -> list:
    laws = claim.laws_for(case) if case in claim.cases else tuple(l for l in claim.laws if not l.cases)
    if variant == "claim":
        return list(laws)
    c = claim.control(variant)
    return [l for l in laws if not c.refutes or l.name in c.refutes]


def _evaluate_laws(claim: Claim, tasks: list[Task], store: Store, variant: str, laws, premise: dict, level: float,
                   seed0: int):
    """The laws of one variant on the stored points of ``tasks``, each at ``level``: (scales, samples, seconds,
    [LawResult])."""
    scales, samples, seconds = _gather(claim, tasks, store, variant)
    results = []
    for law in laws:
        if law.statistic not in samples:
            raise HarnessError(f"claim {claim.id}: law {law.name} needs measurement {law.statistic!r}, "
                               f"measure returned {sorted(samples)}")
        i = [l.name for l in claim.laws].index(law.name)
        res = law.evaluate(scales, samples[law.statistic], premise, level, seed=seed0 + i)
        bad = _nonfinite_points(tasks, store, variant, law)
        if bad:
            est = res.estimate
            res = res._replace(estimate=est._replace(note=(est.note + "; " if est.note else "") + bad))
        results.append(res)
    return scales, samples, seconds, results


def _claim_verdict(results) -> str:
    verdict_set = {r.verdict for r in results}
    return REFUTED if REFUTED in verdict_set else (HOLDS if verdict_set == {HOLDS} else INCONCLUSIVE)


def evaluate(claim: Claim, tasks: list[Task], store: Store, alpha: float = DEFAULT_ALPHA,
             law_alpha: float | None = None, verdicts: int | None = None) -> RunResult:
    """Evaluate every law on the stored points of one fixed-size run (one case, one look): the claim must hold,
    each control must be refuted. Each law is evaluated at ``law_alpha``, by default ``alpha`` divided over this
    case's verdicts (:func:`verdict_count`); a caller that evaluates several cases or claims as one family passes
    its share. :func:`run_claims` evaluates the sequential design's looks instead."""
    if not 0 < alpha < 1:
        raise HarnessError(f"alpha must be in (0, 1), got {alpha}")
    first = tasks[0]
    present = list(dict.fromkeys(t.setting.variant for t in tasks))
    if law_alpha is None:
        case0 = first.setting.case
        verdicts = verdict_count(claim, [case0] if case0 in claim.cases else 1, include_controls=len(present) > 1)
        law_alpha = alpha / verdicts
    premises = {t.setting.variant: t.setting.premise for t in tasks}
    results, seconds = {}, 0.0
    for variant in ["claim"] + [c.name for c in claim.controls if c.name in premises]:
        mine = [t for t in tasks if t.setting.variant == variant]
        premise = premises[variant]
        if variant != "claim" and claim.control(variant).prediction == "claim":
            premise = premises["claim"]
        sc, samp, sec, res = _evaluate_laws(claim, mine, store, variant, _laws_of(claim, first.setting.case, variant),
                                            premise, law_alpha, first.base_seed * 1000)
        n = len({t.replicate for t in mine})
        res = [r._replace(seeds=n, look=1, looks=1, alpha=law_alpha) for r in res]
        seconds += sec
        verdict = _claim_verdict(res) if variant == "claim" else (
            "rejected" if any(r.verdict == REFUTED for r in res) else "not rejected")
        results[variant] = VariantResult(variant, res, sc, samp, verdict, n, (n,), list(res), premises[variant])
    cr = results.pop("claim")
    return RunResult(claim.id, first.setting.case, premises["claim"], first.tier, first.backend, first.device,
                     first.dtype, alpha, law_alpha, cr.seeds, first.base_seed, seconds, cr, list(results.values()),
                     verdicts or round(alpha / law_alpha), first.code)


@dataclass
class PlannedRun:
    """One run of a sweep: a claim case on a backend, with each variant's sequential design (``looks``: seeds per
    scale at each look); :meth:`tasks` gives a variant's points up to any seed count."""
    claim: Claim
    backend: str
    case: str
    tier: str
    device: str
    case_settings: dict
    base_seed: int
    looks: dict             # variant -> seeds per scale at each look
    code: str
    source: str

    @property
    def variants(self) -> list:
        return list(self.looks)

    def premise(self, variant: str = "claim") -> dict:
        return self.claim.premise_for(self.case_settings, self.claim.tier(self.tier), variant)

    def tasks(self, variant: str, seeds: int) -> list[Task]:
        """The points of ``variant`` with ``seeds`` replicates per scale (a prefix of any larger count's)."""
        t = self.claim.tier(self.tier)
        premise = self.premise(variant)
        scales = t.scales_for(variant)
        out = []
        for scale in scales:
            for r in range(int(seeds)):
                seed = derive_seed(self.claim.id, self.case, variant, float(scale), r, self.base_seed)
                s = Setting(self.claim.id, variant, self.case, premise, float(scale), seed)
                out.append(Task(s, self.tier, r, self.base_seed, self.backend, self.device, self.claim.dtype,
                                self.code, self.source))
        return out


def skipped_pairs(claims: list, backends) -> list[str]:
    """One line per (claim, backend) a sweep skips because the claim declares other backends; a claim that runs
    on none of ``backends`` is an error (one line)."""
    out = []
    for c in claims:
        off = [b for b in backends if not c.runs_on(b)]
        if off and len(off) == len(list(backends)):
            raise HarnessError(f"claim {c.id} runs on {', '.join(c.backends)} only (its declared backends); asked "
                               f"for {', '.join(backends)}")
        out += [f"skipped {c.id} on {b}: the claim declares backends {', '.join(c.backends)}" for b in off]
    return out


def plan(claims: list, tier: str = "ci", backends: Iterable[str] = ("jax",), device: str = "cpu", *,
         case: str | None = None, seeds: int | None = None, base_seed: int = 0, include_controls: bool = True,
         overrides: dict | None = None) -> list[PlannedRun]:
    """Every run (claim x backend x case) of a sweep with its sequential design, before anything is measured.
    ``seeds`` fixes the design at that many seeds per scale, one look (a pilot, a planted-error test)."""
    if seeds is not None and int(seeds) < MIN_SEEDS:
        raise HarnessError(f"need at least {MIN_SEEDS} seeds per scale for a confidence interval, got {seeds}")
    out = []
    for claim in claims:
        t = claim.tier(tier)
        cases = _cases_of(claim, case, overrides)
        looks = {v: (int(seeds),) if seeds is not None else t.looks(v) for v in variants(claim, include_controls)}
        source = source_of(claim.id)
        for backend in backends:
            if not claim.runs_on(backend):          # a claim declaring other backends: skipped (skipped_pairs)
                continue
            code = code_version(claim, backend)
            for case_name, settings in cases.items():
                out.append(PlannedRun(claim, backend, case_name, tier, device, dict(settings), base_seed, dict(looks),
                                      code, source))
    return out


@dataclass
class Looks:
    """One variant's progress through its sequential design (pure bookkeeping, no measurement): ``seeds`` and
    ``alpha`` say what the current look evaluates, :meth:`update` takes its law results and decides. A law's verdict
    is its first conclusive one (holds or refuted); the variant is done when a law is refuted, when every law is
    decided, or at its last look. Each look is at ``law_alpha / len(looks)``: the chance that any look's interval
    misses is at most ``law_alpha`` (Bonferroni), whatever the rule that stops them."""
    laws: list                                      # law names
    looks: tuple                                    # seeds per scale at each look
    law_alpha: float
    k: int = 0                                      # the current look (0-based)
    decided: dict = field(default_factory=dict)     # law name -> LawResult at the look that decided it
    latest: dict = field(default_factory=dict)      # law name -> LawResult at the last look evaluated
    done: bool = False

    @property
    def seeds(self) -> int:
        return self.looks[self.k]

    @property
    def alpha(self) -> float:
        return self.law_alpha / len(self.looks)

    def update(self, results: list) -> None:
        """The current look's results, one LawResult per law in order (every law, decided ones too, so that
        ``latest`` is each law at the last look); then stop, or move to the next look."""
        for name, r in zip(self.laws, results):
            r = r._replace(seeds=self.seeds, look=self.k + 1, looks=len(self.looks), alpha=self.alpha)
            self.latest[name] = r
            if name not in self.decided and r.verdict in (HOLDS, REFUTED):
                self.decided[name] = r
        refuted = any(r.verdict == REFUTED for r in self.decided.values())
        if refuted or len(self.decided) == len(self.laws) or self.k == len(self.looks) - 1:
            self.done = True
        else:
            self.k += 1

    def results(self) -> list:
        return [self.decided.get(name) or self.latest[name] for name in self.laws]


@dataclass
class _VariantState:
    """A variant's laws, its :class:`Looks`, and the data of its last look (for the report)."""
    variant: str
    laws: list
    looks: Looks
    scales: list = field(default_factory=list)
    samples: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def done(self) -> bool:
        return self.looks.done


class SequentialRun:
    """One claim case on one backend through its sequential design: at each look the laws not yet decided are
    evaluated on the first ``looks[k]`` seeds at ``law_alpha / len(looks)`` (Bonferroni over the looks); a law is
    decided by its first conclusive verdict (holds or refuted). The claim stops when every law is decided or one is
    refuted; a control stops as soon as one of its laws is refuted (or every one is decided); either stops at its
    cap. The chance that some look refutes a true law is at most the sum of the looks' levels, ``law_alpha``,
    whenever the looks stop (``tests/test_coverage.py`` measures it)."""

    def __init__(self, run: PlannedRun, alpha: float, law_alpha: float, verdicts: int):
        self.run, self.alpha, self.law_alpha, self.verdicts = run, alpha, law_alpha, verdicts
        self.states = {}
        for v, looks in run.looks.items():
            laws = _laws_of(run.claim, run.case, v)
            self.states[v] = _VariantState(v, laws, Looks([l.name for l in laws], tuple(looks), law_alpha))

    @property
    def done(self) -> bool:
        return all(s.done for s in self.states.values())

    def undecided(self) -> list:
        return [v for v, s in self.states.items() if not s.done]

    def wanted(self, variant: str | None = None) -> list[Task]:
        """The points the current look of ``variant`` (default: every undecided variant) needs (some may be stored
        already)."""
        return [t for v, s in self.states.items() if not s.done and variant in (None, v)
                for t in self.run.tasks(v, s.looks.seeds)]

    def step(self, store: Store, variant: str | None = None) -> None:
        """Evaluate ``variant`` (default: every undecided one) at its current look (its points must be stored), then
        stop it or move it to its next look."""
        claim = self.run.claim
        for v, s in self.states.items():
            if s.done or variant not in (None, v):
                continue
            premise = self.run.premise(v)
            if v != "claim" and claim.control(v).prediction == "claim":
                premise = self.run.premise("claim")
            # every law is evaluated (the decided ones too: ``latest`` is each law at the variant's last look, what
            # the power calculation reads); a law's verdict is its first conclusive one
            s.scales, s.samples, s.seconds, res = _evaluate_laws(
                claim, self.run.tasks(v, s.looks.seeds), store, v, s.laws, premise, s.looks.alpha,
                self.run.base_seed * 1000)
            s.looks.update(res)

    def result(self) -> RunResult:
        r, out = self.run, {}
        for v, s in self.states.items():
            res = s.looks.results()
            verdict = _claim_verdict(res) if v == "claim" else (
                "rejected" if any(x.verdict == REFUTED for x in res) else "not rejected")
            out[v] = VariantResult(v, res, s.scales, s.samples, verdict, s.looks.seeds, s.looks.looks,
                                   [s.looks.latest[l.name] for l in s.laws], r.premise(v))
        cr = out.pop("claim")
        return RunResult(r.claim.id, r.case, r.premise("claim"), r.tier, r.backend, r.device, r.claim.dtype,
                         self.alpha, self.law_alpha, cr.seeds, r.base_seed,
                         sum(s.seconds for s in self.states.values()), cr, list(out.values()), self.verdicts, r.code)


def replay(run: PlannedRun, store: Store, alpha: float, law_alpha: float, verdicts: int) -> RunResult | None:
    """The sequential design of ``run`` on the stored points alone (``claims report``): its result, or ``None`` when
    a look it reaches has points missing (an interrupted run, or one measured with a fixed ``--seeds``)."""
    seq = SequentialRun(run, alpha, law_alpha, verdicts)
    while not seq.done:
        if not all(store.has(t) for t in seq.wanted()):
            return None
        seq.step(store)
    return seq.result()


def dry_run(runs: list, store: Store, warn: Callable[[str], None] | None = None, warned: dict | None = None
            ) -> None:
    """For each claim that does not declare its ``outputs``: measure its first point here, before the sweep, so a
    measure that does not return what the laws need fails in one line before anything else is measured."""
    from .executors import measure_task
    seen = set()
    warned = {} if warned is None else warned
    for i, r in enumerate(runs):
        if r.claim.outputs or r.claim.id in seen:
            continue
        seen.add(r.claim.id)
        task = r.tasks("claim", 1)[0]
        got = store.get(task)
        if got is None:
            result, seconds = measure_task(task.to_json())
            store.put(task, result, seconds)
            if warn is not None:
                for line in nonfinite_warning(r, "claim", _laws_of(r.claim, r.case, "claim"), task, result,
                                              warned.setdefault(i, set())):
                    warn(line)
        else:
            r.claim.check_outputs(got[0], task.label())


def run_claims(claims: list, tier: str = "ci", backends: Iterable[str] = ("jax",), device: str = "cpu", *,
               case: str | None = None, seeds: int | None = None, base_seed: int = 0,
               alpha: float = DEFAULT_ALPHA, store: Store | None = None, executor: Executor | None = None,
               include_controls: bool = True, overrides: dict | None = None, progress: bool = False,
               law_alpha: float | None = None, verdicts: int | None = None, label: str = "",
               log: Callable[[str], None] | None = None,
               warn: Callable[[str], None] | None = None) -> list[RunResult]:
    """Measure (what the store lacks) and evaluate several claims on several backends as one sweep, look by look:
    every run's first batch goes to ``executor`` at once (so its workers stay busy across claims), each run
    (claim x backend x case) is evaluated, and the variants still undecided add their next look's seeds, all of
    them again as one batch, until every variant has stopped (:class:`SequentialRun`). ``alpha`` is family-wise
    over every verdict of the sweep, each claim case counted once across backends (they measure the same
    networks); ``law_alpha`` (with ``verdicts``, the family's size) overrides it when the sweep is part of a larger
    family. ``log`` receives one line each time a variant moves to its next look; ``warn`` one line the first time
    a measurement of a run's variant comes back NaN or infinite where it counts (:func:`nonfinite_warning`), as
    the point arrives, not when the sweep ends.

    The looks run as a pipeline (:func:`drive`): a variant whose look is measured is evaluated at once, and its next
    look queued behind the work already submitted, so the workers never wait for a whole stage to finish."""
    claims = [c if isinstance(c, Claim) else get_claim(c) for c in claims]
    backends = list(backends)
    skipped_pairs(claims, backends)                  # one line if a claim runs on none of them
    for c in claims:
        register(c)
        for b in backends:
            if c.runs_on(b):
                get_backend(b, device, c.dtype)      # fail early, one line, if the backend is missing
    runs = plan(claims, tier, backends, device, case=case, seeds=seeds, base_seed=base_seed,
                include_controls=include_controls, overrides=overrides)
    if law_alpha is None:
        verdicts = sum(verdict_count(c, 1 if overrides is not None else None if case is None else [case],
                                     include_controls) for c in claims)
        law_alpha = alpha / verdicts
    if not 0 < alpha < 1:
        raise HarnessError(f"alpha must be in (0, 1), got {alpha}")
    verdicts = verdicts or round(alpha / law_alpha)
    own_store, own_exec = store is None, executor is None
    store = store or Store()
    executor = executor or LocalExecutor(workers=1, progress=progress)
    name = label or (f"{claims[0].id} [{', '.join(backends)}]" if len(claims) == 1
                     else f"{len(claims)} claims [{', '.join(backends)}]")
    try:
        warned: dict = {}
        dry_run(runs, store, warn, warned)
        seqs = [SequentialRun(r, alpha, law_alpha, verdicts) for r in runs]
        with executor.pipeline(store, name) as pipe:
            drive(seqs, store, pipe, log, warn, warned)
        return [s.result() for s in seqs]
    finally:
        if own_exec:
            executor.close()
        if own_store:
            store.close()


def drive(seqs: list, store: Store, pipe, log: Callable[[str], None] | None = None,
          warn: Callable[[str], None] | None = None, warned: dict | None = None) -> None:
    """Take every :class:`SequentialRun` through its looks on one :class:`~harness.engine.executors.Pipeline`: a
    variant is evaluated as soon as its current look's points are stored, and its next look's points are submitted
    at once, while the rest of the sweep is still being measured (so no look waits for another claim's)."""
    from .store import point_key
    waiting: dict = {}          # (run index, variant) -> keys of the points its current look still lacks
    warned = {} if warned is None else warned   # run index -> (variant, measurement) already reported
    owners: dict = {}           # point key -> the (run index, variant) waiting for it
    ready: list = []

    def schedule(i, v):
        s = seqs[i]
        tasks = s.wanted(v)
        missing = {point_key(t) for t in tasks if not store.has(t)}
        look = s.states[v].looks
        if log is not None and look.k > 0:
            log(f"{s.run.claim.id} [{s.run.case}] {s.run.backend} {v}: undecided at {look.looks[look.k - 1]} seeds "
                f"per scale, look {look.k + 1} of {len(look.looks)} measures {look.seeds}")
        if not missing:
            ready.append((i, v))
            return
        waiting[(i, v)] = missing
        for k in missing:
            owners.setdefault(k, []).append((i, v))
        pipe.submit(tasks)

    for i, s in enumerate(seqs):
        for v in s.undecided():
            schedule(i, v)
    while ready or waiting:
        while ready:
            i, v = ready.pop(0)
            seqs[i].step(store, v)
            if not seqs[i].states[v].done:
                schedule(i, v)
        if not waiting:
            break
        done = pipe.wait()
        if not done:
            raise HarnessError("the executor returned no points while some were still awaited")
        for t in done:
            k = point_key(t)
            if warn is not None:
                for i, v in owners.get(k, []):
                    got = store.get(t)
                    if got is not None:
                        for line in nonfinite_warning(seqs[i].run, v, seqs[i].states[v].laws, t, got[0],
                                                      warned.setdefault(i, set())):
                            warn(line)
            for owner in owners.pop(k, []):
                if owner in waiting:
                    waiting[owner].discard(k)
                    if not waiting[owner]:
                        del waiting[owner]
                        ready.append(owner)


def run_claim(claim: Claim | str, tier: str = "ci", backend: str = "jax", device: str = "cpu", **kwargs
              ) -> list[RunResult]:
    """Measure (what the store lacks) and evaluate one claim on one backend: one :class:`RunResult` per case (or
    one run of the ``overrides`` premise, see :func:`tasks_for`). Keywords as :func:`run_claims`; by default the
    points are measured in this process (``executor=LocalExecutor(workers=N)`` for worker processes). A
    :class:`Claim` built in Python (not in a claim file) is registered for the run."""
    return run_claims([claim], tier, [backend], device, **kwargs)
