"""Carry calibration records across a change that keeps every number: ``claims reverify``.

A calibration record is current while its code hash is the claim's (:func:`harness.engine.sweep.code_version`):
every harness module a claim can run is hashed whole, so a change that only makes a backend faster (another
compiled form of the same step, a contraction reordered) stales every record measured on that backend, and
recalibrating takes many hours of CPU. ``claims reverify`` asks the measurements instead of the source: for each
calibration group whose records were measured by another code, it takes up to ``runs`` of the group's base seeds,
builds the first look's points of those runs (every variant, scale and first-batch replicate, the drawn premise of a
scope run included), finds each point as the records' code measured it in the stores given (the calibrations'
``--store``; ``--by-identity``: by its setting when its key is in none and exactly one stored result has it),
measures it again with the current code and compares every output within ``rtol`` (NaN equal to NaN: a diverged
run must still diverge). Only when every compared point of every sampled run of a group agrees, and at least one
point was compared, are the group's records carried: with ``write`` their ``code`` is set to the current one, the
old kept as ``measured_by``, and the file's ``meta["carried"]`` lists the evidence (groups, base seeds, points, the
largest relative difference, ``rtol``). A group with no old points in the store, or with any point that differs,
stays stale and is reported; the command exits 1 unless every stale group was carried.

The check is a sample, not a proof: it says the new code gives the records' numbers on the points it compared, to
``rtol``. A change that alters numbers only on inputs the sample missed would pass; keep such changes to what
would be true of every point (a refactor, a faster route to the same arithmetic), and recalibrate otherwise.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np


def _max_rel_diff(a, b) -> float:
    """The largest |a - b| / max(|a|, |b|) over two results' outputs (0 for equal values, NaN equal to NaN; inf
    when their keys, shapes or NaN patterns differ)."""
    if set(a) != set(b):
        return float("inf")
    worst = 0.0
    for k in a:
        x, y = np.asarray(a[k], dtype=float), np.asarray(b[k], dtype=float)
        if x.shape != y.shape or not np.array_equal(np.isnan(x), np.isnan(y)):
            return float("inf")
        ok = ~np.isnan(x)
        if not ok.any():
            continue
        x, y = x[ok], y[ok]
        if not np.array_equal(np.isinf(x), np.isinf(y)) or np.any(x[np.isinf(x)] != y[np.isinf(y)]):
            return float("inf")
        fin = np.isfinite(x)
        d = np.abs(x[fin] - y[fin])
        scale = np.maximum(np.abs(x[fin]), np.abs(y[fin]))
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.where(d == 0, 0.0, d / np.where(scale == 0, 1.0, scale))
        if rel.size:
            worst = max(worst, float(rel.max()))
    return worst


def _old_point(stores, task, old: str, by_identity: bool):
    """The old code's result of ``task``'s point from the first store that has it (by its key), or with
    ``by_identity`` the only result any store holds for its setting when none has the key; else None."""
    key_task = replace(task, code=old)
    for store in stores:
        got = store.get(key_task)
        if got is not None:
            return got[0]
    if by_identity:
        found = [r for store in stores for r in store.find_by_identity(task)]
        if len(found) == 1:
            return found[0]
    return None


def reverify(records: dict, ids: list, stores, executor, runs: int = 2, rtol: float = 1e-9, tier: str = "ci",
             device: str = "cpu", by_identity: bool = False, report=None) -> list:
    """One row per stale calibration group of ``ids``: ``{"claim", "case", "backend", "old", "new", "base_seeds",
    "points", "missing", "max_rel_diff", "status"}``, status ``"carried"`` (every compared point agrees),
    ``"differs"`` or ``"no points"`` (none of the sampled runs' first-look points is in ``stores``). The old
    points are looked up by their key (the old code's); with ``by_identity`` a point whose key no store holds is
    taken by its setting when exactly one stored result has it (records whose hash was recomputed by a later
    hashing of the same source, as when docstrings stopped counting). The new points go to the first store;
    ``report(row)`` is called as each group is decided."""
    stores = list(stores)
    from .claim import get_claim
    from .cli import run_case
    from .sweep import code_version, tasks_for
    rows = []
    for (cid, case, t), by_seed in sorted(records.items()):
        if cid not in ids or t != tier:
            continue
        claim = get_claim(cid)
        for backend in sorted({r["backend"] for r in by_seed.values()}):
            new = code_version(claim, backend)
            stale = {b: r for b, r in by_seed.items() if r["backend"] == backend and r["code"] != new}
            for old in sorted({r["code"] for r in stale.values()}):
                seeds = sorted(b for b, r in stale.items() if r["code"] == old)
                row = {"claim": cid, "case": case, "backend": backend, "old": old, "new": new, "base_seeds": [],
                       "points": 0, "missing": 0, "max_rel_diff": 0.0, "runs_of_code": len(seeds)}
                for b in seeds:
                    if len(row["base_seeds"]) >= runs:
                        break
                    tasks = tasks_for(claim, tier, backend, device, base_seed=b, **run_case(claim, case, b))
                    found = [(task, _old_point(stores, task, old, by_identity)) for task in tasks]
                    pairs = [(task, got) for task, got in found if got is not None]
                    row["missing"] += len(tasks) - len(pairs)
                    if not pairs:
                        continue
                    executor.run([task for task, _ in pairs], stores[0], f"reverify {cid} [{case}] {b}")
                    for task, before in pairs:
                        after = stores[0].get(task)[0]
                        row["max_rel_diff"] = max(row["max_rel_diff"], _max_rel_diff(before, after))
                    row["points"] += len(pairs)
                    row["base_seeds"].append(b)
                row["status"] = ("no points" if not row["points"] else
                                 "carried" if row["max_rel_diff"] <= rtol else "differs")
                rows.append(row)
                if report is not None:
                    report(row)
    return rows


def write_carried(rows: list, records: dict, rtol: float, when: str, by_identity: bool = False) -> list:
    """Restamp the carried groups' runs in their calibration.json files (``code`` -> the current, ``measured_by``
    the old) and note the evidence in each file's ``meta["carried"]``. Returns the files written."""
    carried = {(r["claim"], r["case"], r["backend"], r["old"]): r for r in rows if r["status"] == "carried"}
    files = sorted({run["file"] for (cid, case, _), by_seed in records.items() for run in by_seed.values()
                    if (cid, case, run["backend"], run["code"]) in carried})
    for f in files:
        data = json.loads(Path(f).read_text())
        notes = {}
        for run in data["runs"]:
            r = carried.get((run["claim"], run["case"], run["backend"], run["code"]))
            if r is None:
                continue
            run["measured_by"] = run.get("measured_by", run["code"])
            run["code"] = r["new"]
            notes[(r["claim"], r["case"], r["backend"], r["old"])] = r
        data["meta"].setdefault("carried", []).extend(
            {"claim": r["claim"], "case": r["case"], "backend": r["backend"], "from": r["old"], "to": r["new"],
             "reproduced_base_seeds": r["base_seeds"], "points": r["points"], "max_rel_diff": r["max_rel_diff"],
             "rtol": rtol, "old_points": "by setting where the key was absent" if by_identity else "by key",
             "date": when} for r in notes.values())
        Path(f).write_text(json.dumps(data, indent=1))
    return files
