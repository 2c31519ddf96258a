"""Pilot a claim's measure before trusting a sweep to it: run it at chosen settings (scale, seed, premise, backend),
get its outputs and the time each point took, and store nothing (``claims pilot``, or :func:`pilot` from Python).

The points are the ones ``claims run`` would measure: the same derived seeds (replicate ``r`` at ``base_seed``),
the same code path (:func:`harness.engine.sweep.run_batch`, batched where the claim batches seeds), the same check
of the outputs. Premise settings given in ``premise`` make an ad-hoc case named ``pilot``, whose seeds differ
from any run's. Nothing goes to the store, so a pilot never changes what a run later reuses.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from ..errors import HarnessError
from .claim import Claim, Setting, derive_seed, get_claim, register, source_of


class PilotPoint(NamedTuple):
    """One piloted point: its :class:`~harness.engine.claim.Setting` (premise, scale, seed), the measure's outputs
    (NumPy arrays, as they would be stored) and the seconds it took (a batched call's time shared equally)."""
    setting: Setting
    outputs: dict
    seconds: float


def pilot(claim: Claim | str, scales=None, *, case: str | None = None, variant: str = "claim", seeds: int = 1,
          seed: int | None = None, base_seed: int = 0, backend: str = "jax", device: str = "cpu",
          tier: str = "ci", premise: dict | None = None) -> list[PilotPoint]:
    """Measure ``claim`` (a :class:`Claim` or a registered id) at each scale of ``scales`` (default: the tier's
    scales for ``variant``) with ``seeds`` replicates per scale, in this process, storing nothing.

    ``case`` is one of the claim's cases (default: its first); ``variant`` is "claim" or a control's name (its flip
    applied to the premise); ``premise`` overrides premise settings on top (an ad-hoc case named "pilot").
    Seeds: replicate ``r`` gets the seed a run at ``base_seed`` gives it, or ``seed + r`` when ``seed`` is given.
    Returns one :class:`PilotPoint` per (scale, replicate), scale-major."""
    from .sweep import Task, code_version, run_batch
    claim = claim if isinstance(claim, Claim) else get_claim(claim)
    register(claim)
    if not claim.runs_on(backend):
        raise HarnessError(f"claim {claim.id} runs on {', '.join(claim.backends)} only (its declared backends); "
                           f"asked for {backend}")
    t = claim.tier(tier)
    case = case if case is not None else next(iter(claim.cases))
    if case not in claim.cases:
        raise HarnessError(f"claim {claim.id} has no case {case!r}; it has: {', '.join(claim.cases)}")
    if variant != "claim":
        claim.control(variant)                          # one-line error for an unknown control
    if isinstance(seeds, bool) or not isinstance(seeds, (int, np.integer)) or seeds < 1:
        raise HarnessError(f"seeds must be a positive integer, got {seeds!r}")
    settings = dict(claim.cases[case])
    if premise:
        unknown = sorted(set(premise) - set(claim.premise))
        if unknown:
            raise HarnessError(f"claim {claim.id} has no premise setting {', '.join(map(repr, unknown))} "
                               f"(premise: {', '.join(sorted(claim.premise))})")
        settings.update(premise)
        case = "pilot"
    full = claim.premise_for(settings, t, variant)
    if scales is None:
        scales = t.scales_for(variant)
    scales = [float(s) for s in np.atleast_1d(scales)]
    if not scales or not all(np.isfinite(scales)):
        raise HarnessError(f"scales must be finite numbers, got {scales}")
    code, source = code_version(claim, backend), source_of(claim.id)
    points = []
    for scale in scales:
        tasks = []
        for r in range(int(seeds)):
            sd = int(seed) + r if seed is not None else derive_seed(claim.id, case, variant, scale, r, base_seed)
            tasks.append(Task(Setting(claim.id, variant, case, full, scale, sd), tier, r, base_seed, backend,
                              device, claim.dtype, code, source))
        for i in range(0, len(tasks), claim.seed_batch):
            group = tasks[i:i + claim.seed_batch]
            t0 = time.perf_counter()
            outs = run_batch(group)
            share = (time.perf_counter() - t0) / len(group)
            points += [PilotPoint(task.setting, out, share) for task, out in zip(group, outs)]
    return points


def read_at(claim: Claim, case: str, variant: str, name: str, scale: float, scales) -> bool:
    """Whether a law of ``variant`` reads the measurement ``name`` at ``scale`` (:meth:`Law.reads`); False for an
    auxiliary measurement no law reads, or one not measured at this scale by declaration."""
    from .sweep import _laws_of
    readers = [l for l in _laws_of(claim, case, variant) if l.statistic == name]
    return any(l.reads(float(scale), sorted(float(x) for x in scales)) for l in readers)


def describe_output(value) -> str:
    """A measurement in a few characters: a scalar with 4 significant digits, an array's shape with its range."""
    a = np.asarray(value, dtype=float)
    if a.size == 1:
        return f"{float(a.ravel()[0]):.4g}"
    finite = a[np.isfinite(a)]
    rng = f" in [{finite.min():.3g}, {finite.max():.3g}]" if finite.size else ""
    bad = f", {a.size - finite.size} non-finite" if finite.size < a.size else ""
    return f"array {tuple(a.shape)}{rng}{bad}"
