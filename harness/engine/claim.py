"""Declaring a claim: a frozen record that reads like the paper.

A claim file in ``claims/`` builds :class:`Claim` objects at module level; the registry finds every ``Claim``
in every module of the ``claims`` package, so adding a claim needs no edit in ``harness``. A claim never imports
torch or jax: its ``measure`` function receives a backend and uses only harness calls on it.

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


@dataclass(frozen=True)
class Tier:
    """A sweep size: ``scales`` (widths, output scales, dimensions...), ``seeds`` per scale, premise overrides."""
    scales: tuple
    seeds: int
    overrides: dict = field(default_factory=dict)
    control_scales: tuple | None = None     # a control may need its own grid (default: ``scales``)


@dataclass(frozen=True)
class Control:
    """Negative control: the premise with ``flip`` applied; at least one of the laws in ``refutes`` (default:
    all the claim's laws) must be refuted there. A control is measured on seeds of its own (independent of the
    claim's). It flips one setting; flipping more needs ``why_several``, the reason one is not enough."""
    name: str
    flip: dict
    why: str
    refutes: tuple = ()
    why_several: str = ""


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
    id: str
    title: str
    paper: str
    statement: str
    premise: dict
    scale_name: str
    measure: Callable           # measure(setting: Setting, backend) -> {name: float | array}
    laws: tuple
    controls: tuple
    tiers: dict
    cases: dict = field(default_factory=lambda: {"default": {}})   # premise cases run by default
    scope: dict = field(default_factory=dict)                       # setting -> values a property test may draw
    needs: frozenset = frozenset({"float64"})
    dtype: str = "float64"
    log_scale: bool = True      # plot the scale axis on a log axis
    # Laws, grids or premises changed after a pilot run: each entry states the paper's (or catalogue's) version,
    # the change and its reason. Printed by `claims list -v` and in the report; a claim with entries is confirmed
    # by `claims calibrate` on fresh random base seeds, which nothing was tuned on.
    changes: tuple = ()

    def __post_init__(self):
        from .stats import MIN_SEEDS
        if not self.controls:
            raise HarnessError(f"claim {self.id}: a claim needs at least one negative control")
        if not self.laws or not all(isinstance(l, Law) for l in self.laws):
            raise HarnessError(f"claim {self.id}: laws must be a non-empty tuple of Law objects")
        if "ci" not in self.tiers:
            raise HarnessError(f"claim {self.id}: a claim needs a 'ci' tier")
        names = {l.name for l in self.laws}
        for c in self.controls:
            if not set(c.refutes) <= names:
                raise HarnessError(f"claim {self.id}: control {c.name} refutes unknown laws {set(c.refutes) - names}")
            if len(c.flip) > 1 and not c.why_several:
                raise HarnessError(f"claim {self.id}: control {c.name} flips {len(c.flip)} settings "
                                   f"({', '.join(c.flip)}); flip one, or say why in why_several")
        for name, t in self.tiers.items():
            if t.seeds < MIN_SEEDS:
                raise HarnessError(f"claim {self.id}: tier {name} has {t.seeds} seeds per scale; a confidence "
                                   f"interval needs at least {MIN_SEEDS}")

    def variant(self, **changes) -> "Claim":
        """A copy with some fields replaced (as ``functools.partial`` does for optax aliases)."""
        return replace(self, **changes)

    def tier(self, name: str) -> Tier:
        try:
            return self.tiers[name]
        except KeyError:
            raise HarnessError(f"claim {self.id} has no tier {name!r}; it has: {', '.join(self.tiers)}") from None

    def control(self, name: str) -> Control:
        for c in self.controls:
            if c.name == name:
                return c
        raise HarnessError(f"claim {self.id} has no control {name!r}")

    def premise_for(self, case: dict, tier: Tier, variant: str = "claim") -> dict:
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


_REGISTRY: dict[str, Claim] | None = None


def registry(package: str = "claims") -> dict[str, Claim]:
    """Every :class:`Claim` defined at module level in the ``claims`` package, by id (imported once)."""
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
            mod = importlib.import_module(f"{package}.{info.name}")
            for obj in vars(mod).values():
                if isinstance(obj, Claim):
                    if obj.id in found and found[obj.id] is not obj:
                        raise HarnessError(f"two claims share the id {obj.id!r}")
                    found[obj.id] = obj
        _REGISTRY = found
    return _REGISTRY


def get_claim(claim_id: str) -> Claim:
    reg = registry()
    try:
        return reg[claim_id]
    except KeyError:
        raise HarnessError(f"unknown claim {claim_id!r}; known: {', '.join(sorted(reg))}") from None
