"""Declaring a claim: a frozen record that reads like the paper.

A claim file builds :class:`Claim` objects at module level. The registry finds every ``Claim`` in every module of
the ``claims`` package and in the user's own files (``--path FILE_OR_DIR`` on every command, or the
``CLAIMS_PATH`` environment variable, paths separated by ``os.pathsep``), so verifying a new paper needs no edit
of this package. A claim bound to a name starting with ``_`` is a draft: built and checked, not registered. A claim never imports torch or jax: its ``measure`` function receives a backend and uses only
harness calls on it.

Declarations are checked when the claim is built, before anything is measured: a control's flip, a tier's
overrides, a case and a scope may only name premise settings; a law restricted to cases may only name the claim's
cases; a law at a named scale needs that scale in every tier; and when the claim declares its ``outputs`` (the
measurements ``measure`` returns), every law's statistic must be one of them. A claim file that fails to import or
to validate is reported in one line (its path, the claim and the field) and skipped by the commands that do not
need it.

Fields, always in this order: identity (``id``, ``title``, ``paper``, ``statement``), **premise** (settings as
data; ``scope`` lists the values a property test may draw for each setting), **measure** (one independent
(setting, scale, seed) point -> named measurements), **laws** (the expected laws), **controls** (the same premise
with one setting flipped; each must be refuted), **tiers** (``ci``: minutes on 2 CPU cores; ``full``: GPU scale),
and ``needs`` (backend requirements such as float64).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field, replace
from typing import Callable, NamedTuple

import numpy as np

from ..errors import HarnessError
from .laws import Law


def defined_at() -> str:
    """``file:line`` of the statement outside the engine that is building a declaration (a Tier, Control or law):
    recorded on it, so an error about it names its own line, not the ``Claim(`` call around it."""
    import sys
    from pathlib import Path
    engine = str(Path(__file__).resolve().parent)
    f = sys._getframe(1)
    while f is not None and (f.f_code.co_filename.startswith(engine) or f.f_code.co_filename.startswith("<")):
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else ""


class DeclarationError(HarnessError):
    """A claim's declaration is wrong; ``where`` is the ``file:line`` of the offending Tier, Control or law when
    known (the CLI prints it instead of the ``Claim(`` line)."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(message)
        self.where = where


def _location(obj) -> str:
    return getattr(obj, "_defined_at", "")


MAX_LOOKS = 6            # looks of a sequential design at most (each costs a Bonferroni share of a law's alpha)


# The power calculations behind the package's ci designs (issue 21), stated in each tier's ``design``.
_SEARCH = ("the cheapest sequential design (first batch, cap <= 1024, a control's first batch) whose predicted power "
           "at the level of `claims run --all` (0.05 over every verdict of the registry, split over the looks) is "
           ">= 0.9998 for every variant (the claim and each control) in every calibration group searched: `claims "
           "design --search --target 0.9998` on the first 3 runs of each group in calibration/ci (jax; cases: base "
           "seeds 31001..31003, scope: 32001..32003), predictive power from each law's distance to its band edge "
           "against its standard error per seed")
SEARCHED_DESIGN = _SEARCH + ", over the claim's cases and its scope (the claim tests' draws)"
SEARCHED_CASES_DESIGN = (_SEARCH + ", over the claim's cases only: over its scope no design within 1024 seeds per "
                         "scale reaches the target on those records (a single run per drawn premise leaves the truth "
                         "uncertain, and some premises lie near a band edge), so the claim tests' power over the "
                         "scope is below it (docs/calibration.md gives it)")
PILOT_DESIGN = ("the cheapest sequential design whose predicted power at the level of `claims run --all` was >= "
                "0.9995 per case on pilot records (8 runs per case, jax, base seeds 1001..1008, code of commit "
                "0dcf86c; the records were not kept, the machine was replaced): on calibration/ci no design within "
                "1024 seeds reaches 0.9998, because the power of a law already expressed in standard errors (A4's "
                "mean) does not grow with the seeds")

RAISED_DESIGN = ("the searched design (" + _SEARCH + "), its cap then raised on the 20-run records in calibration/ci "
                 "(jax; cases: base seeds 31001..31020, scope: 32001..32020) until the predicted power over the "
                 "scope (the claim tests' draws) at the cap was >= 0.999 as well as >= 0.9999 in every case, and, "
                 "where the extra looks of the higher cap would have raised the cases' expected seeds by more than "
                 "about 10%, its first batch raised with it: `claims design ID --from calibration/ci` gives both")


# A tier's ``design`` may name one of these instead of stating its calculation in full.
DESIGNS = {"searched": SEARCHED_DESIGN, "searched-cases": SEARCHED_CASES_DESIGN, "pilot": PILOT_DESIGN,
           "raised": RAISED_DESIGN}


@dataclass(frozen=True)
class Tier:
    """A sweep size: ``scales`` (widths, output scales, dimensions...), seeds per scale, premise overrides.

    Seeds come in a *sequential design*: ``seeds`` is the first batch; while a law is still inconclusive, more seeds
    are measured in stages (the count doubles) up to ``max_seeds`` (default ``seeds``: one look, a fixed design). A
    control starts from ``control_seeds`` (default ``seeds``) and stops as soon as it is refuted. Each look is
    evaluated at the law's alpha divided by the variant's number of looks (Bonferroni over looks), so the chance
    that any look refutes a true law stays within the law's alpha however the looks stop (see
    :mod:`harness.engine.sweep`). ``design`` states the power calculation the batch sizes come from (``claims
    design``: the estimate's distance from the band edge against its standard error per seed, on the claim's own
    calibration records).

    Fields:

    - ``scales``: the grid the claim is measured on (the ``scale`` of each :class:`Setting`), e.g. widths.
    - ``seeds``: seeds per scale in the first batch (at least 3, ``stats.MIN_SEEDS``); with no ``max_seeds``, the
      only batch.
    - ``overrides``: premise settings this tier changes (e.g. more training steps at GPU scale); they may only name
      premise settings.
    - ``control_scales``: the controls' own grid (default: ``scales``).
    - ``max_seeds``: the cap of the sequential design, seeds per scale at the last look (default: ``seeds``, one
      look); at least the first batches. Looks double from the first batch: ``Tier(seeds=8, max_seeds=64)``
      looks at 8, 16, 32 and 64 seeds per scale (:meth:`looks`), at most six looks.
    - ``control_seeds``: a control's first batch (default: ``seeds``), up to the same cap. A control usually needs
      fewer: it stops at its first refutation.
    - ``design``: the power calculation behind ``seeds``, ``max_seeds`` and ``control_seeds``, as text, or a key
      of ``DESIGNS`` (``"searched"``, ``"searched-cases"``, ``"pilot"``, ``"raised"``) naming a stated one;
      printed with the tier by ``claims list -v`` and in ``docs/claims.md``."""
    scales: tuple
    seeds: int
    overrides: dict = field(default_factory=dict)
    control_scales: tuple | None = None     # a control may need its own grid (default: ``scales``)
    max_seeds: int | None = None            # the cap of the sequential design (default: ``seeds``, one look)
    control_seeds: int | None = None        # a control's first batch (default: ``seeds``)
    design: str = ""                        # the power calculation behind seeds / max_seeds / control_seeds
                                            # (or a key of DESIGNS)

    def __post_init__(self):
        object.__setattr__(self, "_defined_at", defined_at())

    @property
    def design_text(self) -> str:
        """The power calculation behind the design: ``design``, or the text of :data:`DESIGNS` it names."""
        return DESIGNS.get(self.design, self.design)

    def looks(self, variant: str = "claim") -> tuple:
        """Seeds per scale at each look of ``variant`` ("claim" or a control's name): the first batch, doubling,
        then the cap."""
        return sequential_looks(self.seeds if variant == "claim" or self.control_seeds is None
                                else self.control_seeds, self.cap)

    def scales_for(self, variant: str = "claim") -> tuple:
        """The scales ``variant`` ("claim" or a control's name) is measured at: ``scales``, or a control's own
        ``control_scales`` when the tier has them."""
        return self.scales if variant == "claim" or self.control_scales is None else self.control_scales

    @property
    def cap(self) -> int:
        """Seeds per scale at the last look: ``max_seeds``, or ``seeds`` for a fixed design."""
        return self.seeds if self.max_seeds is None else self.max_seeds


def sequential_looks(first: int, cap: int) -> tuple:
    """``first``, ``2 first``, ``4 first``... while below ``cap``, then ``cap``: the seeds per scale at each look."""
    first, cap = int(first), int(max(cap, first))
    out = [first]
    while out[-1] * 2 < cap:
        out.append(out[-1] * 2)
    if out[-1] < cap:
        out.append(cap)
    return tuple(out)


@dataclass(frozen=True)
class Control:
    """Negative control: the premise with ``flip`` applied; at least one of the laws in ``refutes`` (default:
    all the claim's laws) must be refuted there. A control is measured on seeds of its own (independent of the
    claim's). It flips one setting; flipping more needs ``why_several``, the reason one is not enough.

    Fields:

    - ``name``: the control's name (its variant in reports, the store and ``claims list``).
    - ``flip``: ``{setting: value}``, the premise settings it changes; each must be a setting of the premise.
    - ``why``: why the claim should fail there (from the paper: what the flipped setting takes away).
    - ``refutes``: the names of the laws it is asked about; it is *rejected*, as it must be, when at least one of
      them is refuted under it, and *not rejected* (the claim run fails) otherwise. Default ``()``: every law of
      the claim. Name the laws the flip is meant to break; a law the flip leaves true (a law about something the
      control does not change) would only add verdicts, each at a smaller share of the alpha.
    - ``why_several``: required when ``flip`` changes more than one setting: why a single flip cannot make the
      claim fail (e.g. two settings that only together leave the regime). Printed beside ``why``.
    - ``prediction``: what the laws' bands and ``predicted`` see under the control: ``"claim"`` (default: the
      claim's premise, so the control asks whether the claim's prediction still holds without its premise) or
      ``"control"`` (the flipped premise's own prediction).

    What it asks: is the claim's law specific to its premise? If the laws held under the control too, they would
    not be evidence for the claim (the suite's sensitivity check); a claim run passes only when the claim holds
    and every control is rejected."""
    name: str
    flip: dict
    why: str
    refutes: tuple = ()
    why_several: str = ""
    # Which premise the laws' bands and predictions see: "claim" (default: the claim's prediction is held fixed,
    # so the control asks whether the claim's law still holds without its premise) or "control" (the flipped
    # premise's own prediction).
    prediction: str = "claim"

    def __post_init__(self):
        object.__setattr__(self, "_defined_at", defined_at())


class Setting(NamedTuple):
    """Everything one measurement needs; serialisable, so an executor can run it anywhere."""
    claim: str
    variant: str            # "claim" or the control's name
    case: str               # name of the premise case (e.g. "tanh")
    premise: dict
    scale: float
    seed: int


@dataclass(frozen=True)
class Claim:
    """A paper's claim as a declaration, checked when it is built (see the module's description). Fields, in the
    order a claim file gives them:

    - ``id``, ``title``, ``paper``, ``statement``: identity; ``statement`` in the paper's words.
    - ``premise``: ``{setting: value}``, everything ``measure`` needs, as data; ``scale_name`` names the scale
      (``"width"``).
    - ``measure``: ``measure(setting: Setting, backend) -> {output: float or array}``, one independent point (a
      scale and a seed), written with harness calls on ``backend`` only (with ``seed_batch > 1``: a list of
      settings that differ only in their seed, and a list of results).
    - ``laws``: the expected laws (:class:`~harness.engine.laws.Law` objects); every one must hold.
    - ``controls``: at least one :class:`Control`; each must be rejected.
    - ``tiers``: ``{name: Tier}``, at least ``"ci"`` (minutes on 2 CPU cores); ``"full"`` is GPU scale.
    - ``cases``: ``{case: premise overrides}`` run by default, each a run of its own (default: one case,
      ``"default"``); a law's ``cases`` restricts it to some.
    - ``scope``: ``{setting: values}`` a claim test may draw a premise from, uniformly (:func:`draw_premise`).
    - ``needs``: backend requirements (``"float64"``); ``dtype``: the dtype it is measured in.
    - ``backends``: the backends it runs on (default ``()``: every one).
    - ``log_scale``: plot the scale on a log axis.
    - ``changes``: what was changed after a pilot run, each entry the paper's version, the change and the reason.
    - ``outputs``: the measurements ``measure`` returns; declared, every law's statistic is checked against them
      when the claim is built, and every point when it is measured.
    - ``figure``: optional ``figure(variant_result, path, title) -> path``, a figure of the claim's own in the
      report.
    - ``seed_batch``: seeds measured in one call (see ``measure``); each point's value must not depend on which
      seeds share its call."""
    id: str
    title: str
    paper: str
    statement: str
    premise: dict
    scale_name: str
    measure: Callable           # measure(setting: Setting, backend) -> {name: float | array} (see seed_batch)
    laws: tuple
    controls: tuple
    tiers: dict
    cases: dict = field(default_factory=lambda: {"default": {}})   # premise cases run by default
    scope: dict = field(default_factory=dict)                       # setting -> values a property test may draw
    needs: frozenset = frozenset({"float64"})
    dtype: str = "float64"
    # The backends the claim runs on (default: every registered one). A claim about a model that exists in one
    # framework (a user's torch module, a flax model) declares that one; `claims run --backend all` runs each claim
    # where it can and says which it skipped and why.
    backends: tuple = ()
    log_scale: bool = True      # plot the scale axis on a log axis
    # Laws, grids or premises changed after a pilot run: each entry states the paper's (or catalogue's) version,
    # the change and its reason. Printed by `claims list -v` and in the report; a claim with entries is confirmed
    # by `claims calibrate` on fresh random base seeds, which nothing was tuned on.
    changes: tuple = ()
    # The measurements ``measure`` returns. Declared, the laws are checked against them when the claim is built
    # and every measured point against them when it is measured; undeclared, one point is measured first (a dry
    # run) and checked before the sweep.
    outputs: tuple = ()
    # A figure of the claim's own, drawn into the report beside the engine's per-law plot (e.g. the coordinate
    # check's per-step panels): ``figure(variant_result, path, title) -> path`` for one backend's claim or control
    # (a :class:`~harness.engine.sweep.VariantResult`: its ``scales`` and every output's ``samples``).
    figure: Callable | None = None
    # Seeds measured in one call (a training loop batched over networks, e.g. C2's tensor decompositions): with
    # ``seed_batch > 1`` the measure is ``measure(settings: list[Setting], backend) -> list[dict]``, called with up
    # to ``seed_batch`` settings that differ only in their seed, returning one result per setting in order. Each
    # point is still stored (and keyed) on its own, so its value must not depend on which seeds share its call:
    # it is the value a call with that seed alone returns (test it so). A batch interrupted before it returns
    # loses its points, as an interrupted point does.
    seed_batch: int = 1

    def __post_init__(self):
        from .stats import MIN_SEEDS
        self._check_declarations()
        if not isinstance(self.seed_batch, int) or self.seed_batch < 1:
            raise HarnessError(f"claim {self.id}: seed_batch must be an integer >= 1, got {self.seed_batch!r}")
        if not self.controls:
            raise HarnessError(f"claim {self.id}: a claim needs at least one negative control")
        if not self.laws or not all(isinstance(l, Law) for l in self.laws):
            raise HarnessError(f"claim {self.id}: laws must be a non-empty tuple of Law objects")
        if "ci" not in self.tiers:
            raise HarnessError(f"claim {self.id}: a claim needs a 'ci' tier")
        names = {l.name for l in self.laws}
        for c in self.controls:
            if not set(c.refutes) <= names:
                raise DeclarationError(f"claim {self.id}: control {c.name} refutes unknown laws "
                                       f"{set(c.refutes) - names}", _location(c))
            if len(c.flip) > 1 and not c.why_several:
                raise DeclarationError(f"claim {self.id}: control {c.name} flips {len(c.flip)} settings "
                                       f"({', '.join(c.flip)}); flip one, or say why in why_several", _location(c))
        for name, t in self.tiers.items():
            for what, n in (("seeds", t.seeds), ("control_seeds", t.control_seeds)):
                if n is not None and (not isinstance(n, int) or n < MIN_SEEDS):
                    raise DeclarationError(f"claim {self.id}: tier {name} has {what}={n!r} per scale; a "
                                           f"confidence interval needs at least {MIN_SEEDS}", _location(t))
            if t.max_seeds is not None and (not isinstance(t.max_seeds, int)
                                            or t.max_seeds < max(t.seeds, t.control_seeds or 0)):
                raise DeclarationError(f"claim {self.id}: tier {name} has max_seeds={t.max_seeds!r}, below its "
                                       f"first batch ({max(t.seeds, t.control_seeds or 0)} seeds)", _location(t))
            for variant in ["claim"] + [c.name for c in self.controls]:
                if len(t.looks(variant)) > MAX_LOOKS:
                    raise DeclarationError(f"claim {self.id}: tier {name} makes {len(t.looks(variant))} looks "
                                           f"{t.looks(variant)} for {variant}; at most {MAX_LOOKS} (raise the "
                                           f"first batch or lower max_seeds)", _location(t))

    def _check_declarations(self):
        def fail(msg, at=None):
            raise DeclarationError(f"claim {self.id}: {msg}", _location(at))
        known = set(self.premise)
        listing = ", ".join(sorted(known)) or "none"

        def check_keys(where, keys, at=None):
            bad = sorted(set(keys) - known)
            if bad:
                fail(f"{where} names {', '.join(map(repr, bad))}, not a premise setting (premise: {listing})", at)
        if not isinstance(self.tiers, dict) or not isinstance(self.cases, dict):
            fail("tiers and cases must be dicts")
        from ..backends import BACKENDS
        if isinstance(self.backends, str) or not all(b in BACKENDS for b in self.backends):
            fail(f"backends must be a tuple of backend names ({', '.join(BACKENDS)}), got {self.backends!r}")
        for c in self.controls:
            if not isinstance(c, Control):
                fail(f"controls must be Control objects, got {type(c).__name__}")
            check_keys(f"control {c.name}: flip", c.flip, c)
            if c.prediction not in ("claim", "control"):
                fail(f"control {c.name}: prediction must be 'claim' or 'control', got {c.prediction!r}", c)
        for name, t in self.tiers.items():
            if not isinstance(t, Tier):
                fail(f"tier {name} must be a Tier, got {type(t).__name__}")
            check_keys(f"tier {name}: overrides", t.overrides, t)
            if not t.scales:
                fail(f"tier {name} has no scales", t)
        for name, case in self.cases.items():
            check_keys(f"case {name}", case)
        check_keys("scope", self.scope)
        for law in self.laws:
            if not isinstance(law, Law):
                continue
            bad = sorted(set(law.cases) - set(self.cases))
            if bad:
                fail(f"law {law.name}: cases names {', '.join(map(repr, bad))}, not a case of the claim "
                     f"(cases: {', '.join(self.cases)})", law)
            if self.outputs and law.statistic not in self.outputs:
                fail(f"law {law.name}: statistic {law.statistic!r} is not among the declared outputs "
                     f"({', '.join(self.outputs)})", law)
            at = getattr(law, "scale", None)
            if at is not None:
                for name, t in self.tiers.items():
                    grids = [("scales", t.scales)]
                    if t.control_scales is not None and any(
                            not c.refutes or law.name in c.refutes for c in self.controls):
                        grids.append(("control_scales", t.control_scales))
                    for what, grid in grids:
                        if not any(np.isclose(float(at), float(s), rtol=1e-9, atol=0) for s in grid):
                            fail(f"law {law.name}: scale {at:g} is not in tier {name}'s {what} "
                                 f"{[float(s) for s in grid]}", law)

    def runs_on(self, backend: str) -> bool:
        """Whether the claim runs on ``backend`` (its declared ``backends``, or every backend)."""
        return not self.backends or backend in self.backends

    def laws_for(self, case: str) -> tuple:
        """The laws that apply in ``case`` (a law with ``cases`` applies only in those)."""
        return tuple(l for l in self.laws if not l.cases or case in l.cases)

    def variant(self, **changes) -> "Claim":
        """A copy with some fields replaced (as ``functools.partial`` does for optax aliases)."""
        return replace(self, **changes)

    def tier(self, name: str) -> Tier:
        """The tier named ``name``; an unknown name raises :class:`HarnessError` listing the claim's tiers."""
        try:
            return self.tiers[name]
        except KeyError:
            raise HarnessError(f"claim {self.id} has no tier {name!r}; it has: {', '.join(self.tiers)}") from None

    def control(self, name: str) -> Control:
        """The control named ``name``."""
        for c in self.controls:
            if c.name == name:
                return c
        raise HarnessError(f"claim {self.id} has no control {name!r}")

    def check_outputs(self, result: dict, where: str = "") -> None:
        """A measured point against the declared ``outputs`` (or, undeclared, against the laws' statistics)."""
        need = self.outputs or tuple(dict.fromkeys(l.statistic for l in self.laws))
        missing = [k for k in need if k not in result]
        if missing:
            what = "declared output" if self.outputs else "measurement a law needs"
            raise HarnessError(f"claim {self.id}: the measure did not return the {what} {missing[0]!r}"
                               f"{' at ' + where if where else ''} (it returned {', '.join(sorted(result)) or 'nothing'})")

    def premise_for(self, case: dict, tier: Tier, variant: str = "claim") -> dict:
        """The premise a point is measured with: the claim's premise, then the tier's ``overrides``, then the
        case's settings, then (for a control's ``variant``) the control's ``flip``."""
        p = {**self.premise, **tier.overrides, **case}
        if variant != "claim":
            p.update(self.control(variant).flip)
        return p


def derive_seed(*parts) -> int:
    """A 31-bit seed from any hashable parts (claim id, case, variant, scale, replicate, base seed): stable across
    processes and platforms (NumPy's SeedSequence over CRC32s), so a run repeats exactly."""
    import zlib
    words = [zlib.crc32(repr(p).encode()) for p in parts]
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)


def draw_premise(claim: Claim, seed: int) -> dict:
    """One premise from the claim's ``scope``: each setting's value drawn uniformly and independently, seeded (the
    distribution of the claim tests' draws; ``claims calibrate --scope`` measures power over it)."""
    rng = np.random.default_rng([int(seed), 0x5C0E])
    return {k: values[int(rng.integers(len(values)))] for k, values in claim.scope.items()}


_REGISTRY: dict[str, Claim] | None = None
_SOURCES: dict[str, str] = {}           # claim id -> the user file it came from ("" for the package and Python)
_LOADED: dict[str, list] = {}           # resolved user file -> the claims it defines
LOAD_ERRORS: dict[str, str] = {}        # file -> one line: why it was skipped


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    msg = text[0] if text else ""
    return msg if isinstance(e, HarnessError) else f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _where(e: BaseException, path) -> str:
    """``path:line`` of the offending declaration when the error names one in ``path`` (a Tier, Control or law:
    :class:`DeclarationError`), else of the deepest frame in ``path`` (the statement that failed), else ``path``."""
    import traceback
    where = getattr(e, "where", "")
    if where and where.rsplit(":", 1)[0] == str(path):
        return f"{path}:{where.rsplit(':', 1)[1]}"
    line = None
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename == str(path):
            line = frame.lineno
    return f"{path}:{line}" if line else str(path)


def _import_file(path):
    """Import one claim file under a private module name; its claims, or raise HarnessError (one line)."""
    import hashlib
    import importlib.util
    import sys
    from pathlib import Path
    path = Path(path).resolve()
    name = f"_claims_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise HarnessError(f"{path}: not a Python file")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod                  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(mod)
    except BaseException as e:              # noqa: BLE001 - any failure of a user file becomes one line
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise HarnessError(f"{_where(e, path)}: {_one_line(e)}") from None
    return [obj for name, obj in vars(mod).items() if isinstance(obj, Claim) and not name.startswith("_")]


def _files(path) -> list:
    from pathlib import Path
    p = Path(path).expanduser()
    if p.is_dir():
        return sorted(f.resolve() for f in p.glob("*.py") if not f.name.startswith("_"))
    if p.is_file():
        return [p.resolve()]
    raise HarnessError(f"{path}: no such claim file or directory")


def load_path(path, strict: bool = True) -> list[Claim]:
    """Register the claims of a user file, or of every ``*.py`` in a directory (not ``_*``); returns them.

    A file that fails to import or to validate is recorded in :data:`LOAD_ERRORS` (one line: path, line, claim,
    field) and skipped; with ``strict`` (a path the command was asked to run) it is an error instead, as is a
    path with no claims at all. A claim id defined twice (in two files, or in a file and the package) is an
    error either way."""
    reg = registry()
    found = []
    for f in _files(path):
        key = str(f)
        if key not in _LOADED:
            try:
                _LOADED[key] = _import_file(f)
                LOAD_ERRORS.pop(key, None)
            except HarnessError as e:
                LOAD_ERRORS[key] = str(e)
                if strict:
                    raise
                continue
        for c in _LOADED[key]:
            if c.id in reg and reg[c.id] is not c:
                other = _SOURCES.get(c.id) or "the claims package"
                raise HarnessError(f"{f}: claim id {c.id!r} is already defined in {other}")
            reg[c.id] = c
            _SOURCES[c.id] = key
            found.append(c)
    if not found and strict and not any(str(f) in LOAD_ERRORS for f in _files(path)):
        raise HarnessError(f"{path}: defines no Claim (a claim file builds Claim objects at module level)")
    return found


def env_paths() -> list[str]:
    import os
    return [p for p in os.environ.get("CLAIMS_PATH", "").split(os.pathsep) if p.strip()]


def registry(package: str = "claims") -> dict[str, Claim]:
    """Every :class:`Claim` defined at module level in the ``claims`` package and in the files named by
    ``CLAIMS_PATH``, by id (imported once). A module that fails to import is recorded in :data:`LOAD_ERRORS`
    and skipped."""
    global _REGISTRY
    if _REGISTRY is None:
        try:
            pkg = importlib.import_module(package)
        except ImportError as e:
            raise HarnessError(f"cannot import the claims package ({e})") from None
        found: dict[str, Claim] = {}
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if info.name.startswith("_"):
                continue
            try:
                mod = importlib.import_module(f"{package}.{info.name}")
            except Exception as e:       # noqa: BLE001 - one broken claim module must not break every command
                import os
                path = os.path.join(pkg.__path__[0], info.name + ".py")
                LOAD_ERRORS[path] = f"{_where(e, path)}: {_one_line(e)}"
                continue
            for name, obj in vars(mod).items():
                if isinstance(obj, Claim) and not name.startswith("_"):     # _NAME: a draft, not registered
                    if obj.id in found and found[obj.id] is not obj:
                        raise HarnessError(f"two claims share the id {obj.id!r}")
                    found[obj.id] = obj
        _REGISTRY = found
        for p in env_paths():
            load_path(p, strict=False)
    return _REGISTRY


def register(claim: Claim) -> Claim:
    """Add a claim built in Python to the registry (``run_claim`` does this), so its tasks find it by id."""
    reg = registry()
    if claim.id in reg and reg[claim.id] is not claim:
        if reg[claim.id] != claim:
            raise HarnessError(f"claim id {claim.id!r} is already registered for another claim "
                               f"({_SOURCES.get(claim.id) or 'the claims package'})")
        return reg[claim.id]
    reg[claim.id] = claim
    return claim


def package_claims() -> dict[str, Claim]:
    """The claims of the ``claims`` package only, by id: what the project's docs and calibration records describe,
    whatever user files or tests have registered besides."""
    return {cid: c for cid, c in sorted(registry().items())
            if not source_of(cid) and getattr(c.measure, "__module__", "").startswith("claims.")}


def source_of(claim_id: str) -> str:
    """The user file a claim was loaded from ("" for the package or a claim built in Python)."""
    return _SOURCES.get(claim_id, "")


def get_claim(claim_id: str) -> Claim:
    """The registered claim with id ``claim_id`` (see :func:`registry`); an unknown id raises
    :class:`HarnessError` naming the known ids and any claim file that was skipped."""
    reg = registry()
    try:
        return reg[claim_id]
    except KeyError:
        skipped = "".join(f"; skipped {e}" for e in LOAD_ERRORS.values())
        raise HarnessError(f"unknown claim {claim_id!r}; known: {', '.join(sorted(reg))}{skipped}") from None
