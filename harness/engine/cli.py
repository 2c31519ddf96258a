"""``claims``: run the theory claims as statistical tests, report, and calibrate them.

Exit status: 0 when every claim run holds and every control is rejected; 1 when a claim is refuted or
inconclusive, or a control is not rejected; 2 on bad input or an error (one line on stderr).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

EPILOG = """examples:
  claims list
  claims run --all --tier ci --backend all --report reports/ci
  claims run ntk-drift --backend jax --seeds 8
  claims run my-claim --path my_claims/            # claims from your own files (or CLAIMS_PATH=my_claims/)
  claims run --all --tier full --device cuda --executor ray --address auto
  claims report --out reports/ci
  claims calibrate ntk-drift --runs 100 --backend jax --out reports/calibration
  claims coordcheck --parametrisation mup --optimizer adam --out coord.png
  claims pilot ntk-drift --scale 256 --seeds 2        # one measure's outputs and time, nothing stored
  claims reverify --store cal.sqlite --write          # carry records across a change that keeps the numbers

results are stored in results/claims.sqlite (override with --store or CLAIMS_STORE); a point already stored is
never recomputed, so an interrupted run resumes where it stopped. Sweeps use every local core by default
(--workers N; --workers 1 measures in this process)."""


def _path_arg(sp):
    sp.add_argument("--path", action="append", default=[], metavar="FILE_OR_DIR",
                    help="load claims from your own file, or every *.py in a directory (repeatable; also the "
                         "CLAIMS_PATH environment variable, paths separated by ':')")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="claims", description="Deep-learning theory claims as statistical tests on "
                                "PyTorch and JAX.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list the registered claims")
    ls.add_argument("--verbose", "-v", action="store_true", help="show statements, laws and controls")
    _path_arg(ls)

    def common(sp, many=True):
        if many:
            sp.add_argument("ids", nargs="*", metavar="ID", help="claim ids (see `claims list`)")
            sp.add_argument("--all", action="store_true", help="every registered claim")
        else:
            sp.add_argument("id", metavar="ID", help="claim id")
        sp.add_argument("--backend", default="all", help="torch, jax or all (default: all)")
        sp.add_argument("--tier", default="ci", help="tier: ci (CPU minutes) or full (GPU scale); default ci")
        sp.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="default cpu")
        sp.add_argument("--seeds", type=int, default=None, help="seeds per scale (default: the tier's)")
        sp.add_argument("--case", default=None, help="run only this premise case (e.g. tanh)")
        sp.add_argument("--alpha", type=float, default=0.05,
                        help="family-wise false-alarm rate of the whole command, divided over every verdict in it "
                             "(default 0.05)")
        sp.add_argument("--store", default=None, help="SQLite results file (default results/claims.sqlite); JAX's "
                        "compiled programs are cached beside it in jax-cache/ (CLAIMS_JAX_CACHE=off: no cache; "
                        "=DIR: there)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")
        sp.add_argument("--workers", type=int, default=None,
                        help="parallel worker processes (default: all cores; 1 = in this process)")
        _path_arg(sp)

    run = sub.add_parser("run", help="run claims and their controls; exit 0 only if all hold and all are rejected")
    common(run)
    run.add_argument("--base-seed", type=int, default=0, help="base of the derived seeds (default 0)")
    run.add_argument("--report", default=None, metavar="DIR", help="write the report (markdown + plots) here")
    run.add_argument("--executor", default="local", choices=["local", "ray"],
                     help="local worker processes (default) or a Ray cluster (needs the [ray] extra)")
    run.add_argument("--address", default=None,
                     help="Ray cluster address (e.g. auto, or ray://HOST:10001); default: start a local cluster")

    rep = sub.add_parser("report", help="write the report for every run in the store")
    rep.add_argument("--store", default=None)
    rep.add_argument("--out", default="reports/latest", help="output folder (default reports/latest)")
    rep.add_argument("--alpha", type=float, default=0.05)
    _path_arg(rep)

    cal = sub.add_parser("calibrate", help="rerun claims K times on fresh random seeds: refutation and inconclusive "
                                           "rates with exact bounds, power against each control; exit 1 when a "
                                           "refutation rate's upper bound exceeds alpha")
    common(cal)
    cal.add_argument("--runs", type=int, default=100, help="reruns K per claim, case and backend (default 100)")
    cal.add_argument("--base-seed", type=int, default=None,
                     help="first base seed (default: drawn at random and printed; run k uses base seed + k)")
    cal.add_argument("--law-alpha", type=float, default=None,
                     help="evaluate every law at this level (default: the level of `claims run --all`, alpha over "
                          "every verdict of the registry, and replayed at the claim case's own run alpha); the "
                          "refutation bound is compared with law-alpha x the run's verdicts")
    cal.add_argument("--scope", action="store_true",
                     help="draw each run's premise from the claim's scope (uniform over each setting's values, "
                          "seeded by the run's base seed), as the claim tests do, instead of running its cases: "
                          "the power a claim test has; every run that did not hold is listed with its premise")
    cal.add_argument("--out", default=None, metavar="DIR", help="write calibration.md and calibration.json here")

    de = sub.add_parser("design", help="the sequential design each claim's seeds come from: predicted power and "
                                       "expected seeds of the tier's design, and the cheapest design reaching the "
                                       "target, from calibration records (calibration.json)")
    de.add_argument("ids", nargs="*", metavar="ID", help="claim ids (default: every claim with records)")
    de.add_argument("--from", dest="sources", action="append", default=[], metavar="FILE_OR_DIR",
                    help="calibration.json, or a directory searched for them (repeatable)")
    de.add_argument("--tier", default="ci")
    de.add_argument("--alpha", type=float, default=0.05, help="family-wise alpha of `claims run --all` (default 0.05)")
    de.add_argument("--target", type=float, default=0.9995,
                    help="with --search: the predicted power each variant (a claim case, or one of its controls) "
                         "must reach at its cap, at the level of `claims run --all` (default 0.9995)")
    de.add_argument("--max-seeds", type=int, default=1024, help="the largest cap considered (default 1024)")
    de.add_argument("--draws", type=int, default=2000, help="simulated intervals per prediction (default 2000)")
    de.add_argument("--search", action="store_true", help="also search the cheapest design reaching --target")
    de.add_argument("--markdown", default=None, metavar="FILE", help="write the table (markdown) here")
    _path_arg(de)

    rv = sub.add_parser("reverify", help="carry calibration records across a change that keeps every number: "
                                         "remeasure a sample of each stale group's points, compare them with the "
                                         "old code's points in a store, and restamp the group's records when all "
                                         "agree (exit 1 unless every stale group was carried)")
    rv.add_argument("ids", nargs="*", metavar="ID", help="claim ids (default: every claim with stale records)")
    rv.add_argument("--from", dest="sources", action="append", default=[], metavar="FILE_OR_DIR",
                    help="calibration.json, or a directory searched for them (repeatable; default calibration/ci)")
    rv.add_argument("--store", required=True, action="append",
                    help="a store holding the old code's points (the calibration's --store; repeatable: each is "
                         "searched, the new points go to the first)")
    rv.add_argument("--by-identity", action="store_true",
                    help="a point whose old key no store holds is taken by its setting when exactly one stored "
                         "result has it (records whose hash was recomputed by a later hashing of the same source)")
    rv.add_argument("--tier", default="ci")
    rv.add_argument("--runs", type=int, default=2, help="base seeds remeasured per stale group (default 2)")
    rv.add_argument("--rtol", type=float, default=1e-9,
                    help="largest relative difference of any output that counts as the same (default 1e-9)")
    rv.add_argument("--workers", type=int, default=None, help="parallel worker processes (default: all cores)")
    rv.add_argument("--no-progress", action="store_true")
    rv.add_argument("--write", action="store_true", help="restamp the carried groups' records in their files")
    _path_arg(rv)

    dc = sub.add_parser("docs", help="write docs/claims.md (every claim, from the registry), docs/calibration.md "
                                     "(from the calibration records) and docs/api.md (the API reference, from the "
                                     "docstrings)")
    dc.add_argument("--records", default="calibration/ci", metavar="DIR",
                    help="the calibration records behind the project's statements (default calibration/ci/)")
    dc.add_argument("--out", default="docs", metavar="DIR", help="output folder (default docs/)")
    _path_arg(dc)

    pi = sub.add_parser("pilot", help="run one claim's measure at chosen settings and print its outputs and time; "
                                      "stores nothing (try a premise before a sweep)",
                        epilog="examples:\n  claims pilot ntk-drift --scale 256 --seeds 2\n"
                               "  claims pilot gradient-confusion --variant relu --set input_dim=64 --backend torch\n"
                               "  claims pilot my-claim --path my_claim.py --scale 64 --seed 7",
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    pi.add_argument("id", metavar="ID", help="claim id (see `claims list`)")
    pi.add_argument("--case", default=None, help="premise case (default: the claim's first)")
    pi.add_argument("--variant", default="claim", help="claim (default) or a control's name")
    pi.add_argument("--scale", type=float, action="append", default=None,
                    help="scale to measure at (repeatable; default: the tier's scales)")
    pi.add_argument("--seeds", type=int, default=1, help="replicates per scale (default 1)")
    pi.add_argument("--seed", type=int, default=None,
                    help="explicit seed of the first replicate (then seed+1, ...); default: the seeds `claims run` "
                         "derives at --base-seed")
    pi.add_argument("--base-seed", type=int, default=0, help="base of the derived seeds (default 0)")
    pi.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a premise setting (a Python literal, else a string; repeatable)")
    pi.add_argument("--backend", default="jax", help="torch or jax (default jax)")
    pi.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    pi.add_argument("--tier", default="ci", help="the tier whose scales and overrides apply (default ci)")
    _path_arg(pi)

    cc = sub.add_parser("coordcheck", help="draw the coordinate check (TP-V): each layer's pre-activation change "
                                           "from init after a few steps, against width, for a parametrisation")
    cc.add_argument("--parametrisation", default="mup", help="standard, ntk, mup or mean-field (default mup)")
    cc.add_argument("--optimizer", default="adam", choices=["sgd", "adam"])
    cc.add_argument("--lr", type=float, default=2 ** -6, help="learning rate (default 2^-6)")
    cc.add_argument("--widths", default="64,128,256,512,1024", help="comma list (default 64..1024)")
    cc.add_argument("--seeds", type=int, default=4, help="networks per width (default 4)")
    cc.add_argument("--steps", type=int, default=5, help="training steps drawn (default 5)")
    cc.add_argument("--depth", type=int, default=2, help="hidden layers (default 2)")
    cc.add_argument("--backend", default="jax", help="torch or jax (default jax)")
    cc.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    cc.add_argument("--out", default="coord_check.png", help="the figure (default coord_check.png)")
    return p


def _backends(spec: str) -> list[str]:
    from ..backends import BACKENDS
    from ..errors import HarnessError
    if spec == "all":
        return list(BACKENDS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in BACKENDS:
            raise HarnessError(f"unknown backend {n!r}; choose torch, jax or all")
    return names


def _claims(args):
    from .claim import get_claim, registry
    from ..errors import HarnessError
    if args.all:
        from .claim import LOAD_ERRORS
        if LOAD_ERRORS:
            raise HarnessError(f"--all, but a claim file was skipped: {next(iter(LOAD_ERRORS.values()))}")
        return list(registry().values())
    if not args.ids:
        raise HarnessError("name at least one claim id, or --all (see `claims list`)")
    return [get_claim(i) for i in args.ids]


def _check_env(backends, device, dtype_of):
    from ..backends import get_backend
    for b in backends:
        get_backend(b, device, dtype_of)


def _check_seeds(args):
    from ..errors import HarnessError
    from .stats import MIN_SEEDS
    if args.seeds is not None and args.seeds < MIN_SEEDS:
        raise HarnessError(f"--seeds must be at least {MIN_SEEDS} (a confidence interval needs {MIN_SEEDS} seeds "
                           f"per scale), got {args.seeds}")
    if not 0 < args.alpha < 1:
        raise HarnessError(f"--alpha must be in (0, 1), got {args.alpha}")


def _cases(claim, args):
    if args.case is not None:
        from .sweep import _case
        _case(claim, args.case)             # one-line error when the claim has no such case
        return [args.case]
    return list(claim.cases)


def cmd_list(args, console):
    from .claim import registry, source_of
    from .laws import fmt_band
    # your own claims (--path, CLAIMS_PATH) first, then the package's, each in registration order
    claims = sorted(registry().values(), key=lambda c: not source_of(c.id))
    from ..backends import BACKENDS
    rows = [(c.id, c.title, ", ".join(c.cases), ", ".join(c.tiers), ", ".join(x.name for x in c.controls),
             ", ".join(c.backends or BACKENDS), "cpu" if "cpu-only" in c.needs else "cpu, cuda",
             source_of(c.id) or "claims package") for c in claims]
    if not console.is_terminal:
        # piped: one tab-separated line per claim, nothing cut, so `claims list | grep ID` finds the id
        for row in rows:
            print("\t".join(row))
    else:
        from rich.table import Table
        t = Table(title="claims")
        t.add_column("id", no_wrap=True, min_width=max((len(r[0]) for r in rows), default=2))
        for col in ("title", "cases", "tiers", "controls", "backends", "devices", "from"):
            t.add_column(col, overflow="fold")
        for row in rows:
            t.add_row(*row)
        console.print(t)
    if args.verbose:
        for c in claims:
            console.print(f"\n[bold]{c.id}[/bold] — {c.paper}\n  {c.statement}", soft_wrap=True)
            for law in c.laws:
                band = "per premise" if callable(law.band) else fmt_band(law.band)
                only = f" (cases {', '.join(law.cases)})" if law.cases else ""
                console.print(f"  law {law.name}: {law.describe()} in {band}{only}", soft_wrap=True, markup=False)
            for x in c.controls:
                console.print(f"  control {x.name} {x.flip}: {x.why}", soft_wrap=True, markup=False)
            for name, t in c.tiers.items():
                ctl = f", controls {'/'.join(map(str, t.looks(c.controls[0].name)))}" if t.control_seeds else ""
                console.print(f"  tier {name}: scales {', '.join(f'{s:g}' for s in t.scales)}; seeds per scale at each "
                              f"look {'/'.join(map(str, t.looks()))}{ctl}" + (f"; {t.design_text}" if t.design else ""),
                              soft_wrap=True, markup=False)
            for ch in c.changes:
                console.print(f"  changed after a pilot: {ch}", soft_wrap=True, markup=False)
    return 0


def _print_result(console, r):
    from rich.markup import escape
    from .laws import fmt_band
    colour = {"holds": "green", "refuted": "red"}.get(r.verdict, "yellow")
    console.print(f"[bold]{r.claim}[/bold] {escape('[' + r.case + ']')} {r.backend}/{r.device} tier={r.tier} "
                  f"seeds={r.seeds}: [{colour}]{r.verdict}[/{colour}] ({r.seconds:.1f} s measured)")
    for v in [r.claim_result] + list(r.controls):
        for x in v.laws:
            console.print(escape(f"  {v.variant:>12} {x.law:<14} {x.estimate.value:.3g} "
                                 f"[{x.estimate.low:.3g}, {x.estimate.high:.3g}] in {fmt_band(x.band)}: {x.verdict}"
                                 f" ({look_text(x)})" + (f" ({x.note})" if x.note else "")), soft_wrap=True)
        if v.variant != "claim":
            console.print(f"  {'':>12} control {v.variant}: {v.verdict} ({v.seeds} seeds per scale)")


def look_text(x) -> str:
    """Where the sequential design decided a law: seeds, look and level."""
    return f"{x.seeds} seeds, look {x.look} of {x.looks}, at {x.alpha:.2g}"


def family_line(alpha, verdicts, law_alpha, backends) -> str:
    both = (f"; each verdict is counted once for the {len(backends)} backends, which measure the same networks "
            f"(their agreement is a parity check, not a replication)") if len(backends) > 1 else ""
    return (f"family-wise alpha {alpha:g} over {verdicts} verdicts (Bonferroni): each law at {law_alpha:.3g}, "
            f"intervals at {1 - law_alpha:.4%}{both}")


def parity_lines(results) -> list[str]:
    """Where both backends ran a claim case: the largest difference between their law estimates."""
    from rich.markup import escape
    groups: dict = {}
    for r in results:
        groups.setdefault((r.claim, r.case), {})[r.backend] = r
    out = []
    for (claim, case), by in groups.items():
        if len(by) < 2:
            continue
        rs = list(by.values())
        diffs, agree = [], True
        for a, b in zip(rs, rs[1:]):
            for va, vb in zip([a.claim_result] + a.controls, [b.claim_result] + b.controls):
                agree &= va.verdict == vb.verdict
                for la, lb in zip(va.laws, vb.laws):
                    if np.isfinite(la.estimate.value) and np.isfinite(lb.estimate.value):
                        diffs.append(abs(la.estimate.value - lb.estimate.value))
        out.append(f"parity {claim} {escape('[' + case + ']')} {'/'.join(by)}: verdicts {'agree' if agree else 'DIFFER'}, largest "
                   f"difference between law estimates {max(diffs, default=0.0):.2g}")
    return out


def cmd_run(args, console):
    from .report import write_report
    from .store import Store
    from .sweep import run_claims, skipped_pairs, verdict_count
    claims = _claims(args)
    backends = _backends(args.backend)
    _check_seeds(args)
    for c in claims:
        c.tier(args.tier)
    _check_env(backends, args.device, "float64")
    verdicts = sum(verdict_count(c, _cases(c, args)) for c in claims)
    law_alpha = args.alpha / verdicts
    console.print(family_line(args.alpha, verdicts, law_alpha, backends))
    for line in skipped_pairs(claims, backends):
        console.print(line)
    from .executors import make_executor
    t0 = time.perf_counter()
    with Store(args.store) as store, make_executor(args.executor, args.workers, args.address,
                                                   progress=not args.no_progress) as executor:
        console.print(f"measuring {executor.describe()}; store {store.path}")
        from rich.markup import escape
        results = run_claims(claims, args.tier, backends, args.device, case=args.case, seeds=args.seeds,
                             base_seed=args.base_seed, alpha=args.alpha, store=store, executor=executor,
                             law_alpha=law_alpha, verdicts=verdicts, label="claims",
                             log=None if args.no_progress else lambda line: console.print(
                                 f"[dim]{escape(line)}[/dim]", soft_wrap=True),
                             warn=lambda line: console.print(f"[yellow]{escape(line)}[/yellow]", soft_wrap=True))
    for r in results:
        _print_result(console, r)
    for line in parity_lines(results):
        console.print(line)
    console.print(f"{len(results)} runs in {time.perf_counter() - t0:.1f} s")
    if args.report:
        md = write_report(results, args.report, title=f"Claims report: tier {args.tier}")
        console.print(f"report: {md}")
    return 0 if all(r.ok for r in results) else 1


def cmd_report(args, console):
    """The report of every complete run in the store, each replayed through its tier's sequential design (or, when
    it was measured with a fixed ``--seeds``, evaluated at that count)."""
    from .claim import get_claim
    from ..errors import HarnessError
    from .report import write_report
    from .store import Store
    from .sweep import evaluate, plan, replay, tasks_for, verdict_count
    if not 0 < args.alpha < 1:
        raise HarnessError(f"--alpha must be in (0, 1), got {args.alpha}")
    complete = []
    with Store(args.store) as store:
        runs = store.runs()
        if not runs:
            raise HarnessError(f"no results in {store.path}; run `claims run` first")
        for claim_id, case, tier, backend, device, dtype, base_seed in runs:
            try:
                claim = get_claim(claim_id)
                (planned,) = plan([claim], tier, [backend], device, case=case, base_seed=base_seed)
            except HarnessError:
                continue
            complete.append((claim, case, base_seed, planned))
        if not complete:
            raise HarnessError("no complete run in the store matches the current claims (and their code)")
        def evaluate_all(candidates):
            distinct = {(c.id, case, bs): verdict_count(c, [case]) for c, case, bs, _ in candidates}
            verdicts = sum(distinct.values())
            law_alpha = args.alpha / verdicts
            out = []
            for claim, case, base_seed, planned in candidates:
                r = replay(planned, store, args.alpha, law_alpha, verdicts)
                if r is None:           # measured at a fixed seed count: evaluated at the count stored, if complete
                    n = store._conn.execute("SELECT MAX(replicate) + 1 FROM points WHERE claim=? AND case_name=? AND "
                                            "tier=? AND backend=? AND device=? AND base_seed=?",
                                            (claim.id, case, planned.tier, planned.backend, planned.device,
                                             base_seed)).fetchone()[0]
                    tasks = tasks_for(claim, planned.tier, planned.backend, planned.device, case, max(n, 3),
                                      base_seed)
                    if not all(store.has(t) for t in tasks):
                        continue
                    r = evaluate(claim, tasks, store, args.alpha, law_alpha, verdicts)
                out.append(((claim, case, base_seed, planned), r))
            return verdicts, law_alpha, out
        # the family is the complete runs: find them at the level of every stored run, then evaluate them at
        # their own family's (less strict) level, at which they stop no later and so stay complete
        _, _, found = evaluate_all(complete)
        if not found:
            raise HarnessError("no complete run in the store matches the current claims (and their code)")
        verdicts, law_alpha, found = evaluate_all([c for c, _ in found])
        results = [r for _, r in found]
        backends = sorted({r.backend for r in results})
        console.print(family_line(args.alpha, verdicts, law_alpha, backends))
    md = write_report(results, args.out)
    console.print(f"report of {len(results)} runs: {md}")
    return 0 if all(r.ok for r in results) else 1


def law_record(x) -> dict:
    """A law's result as a calibration record: its verdict and where it was decided, and its interval's components
    (``Estimate.parts``) for the power calculation (:mod:`harness.engine.power`)."""
    est = x.estimate

    def num(v):
        return float(v) if np.isfinite(v) else None
    return {"law": x.law, "verdict": x.verdict, "value": num(est.value), "low": num(est.low), "high": num(est.high),
            "method": est.method, "combine": est.combine, "parts": [list(map(float, p)) for p in est.parts],
            "band": list(x.band), "seeds": x.seeds, "look": x.look, "looks": x.looks}


def run_summary(r) -> dict:
    """What a calibration counts of one run: the verdicts, whether it passed, the seeds each variant used."""
    return {"verdict": r.verdict, "ok": r.ok, "controls": {c.variant: c.verdict for c in r.controls},
            "laws": {x.law: x.verdict for x in r.claim_result.laws},
            "seeds": {v.variant: v.seeds for v in [r.claim_result] + list(r.controls)},
            "law_alpha": r.law_alpha}


def _calibration_run(job):
    """One calibration rerun (in a worker process): one claim case on one backend, measured through its sequential
    design at ``law_alpha`` and replayed from the same points at each level of ``replay`` (a less strict level stops
    no later, so the replay measures nothing new). Returns the verdicts at every level and the strict run's law
    records (every law at its variant's last look)."""
    claim_id, case, backend, tier, device, seeds, base_seed, alpha, law_alpha, replay, store_path, source = job
    from .claim import draw_premise, get_claim, load_path, registry
    from .store import Store
    from .sweep import run_claim
    if source and claim_id not in registry():
        load_path(source)                      # a user claim file, in a fresh worker process
    claim = get_claim(claim_id)
    drawn = draw_premise(claim, base_seed) if case.startswith(SCOPE) else None
    kw = dict(run_case(claim, case, base_seed), seeds=seeds, base_seed=base_seed, alpha=alpha)
    levels = {}
    with Store(store_path) as store:
        (r,) = run_claim(claim_id, tier, backend, device, store=store, law_alpha=law_alpha, **kw)
        levels["strict"] = run_summary(r)
        for name, level in replay.items():
            (x,) = run_claim(claim_id, tier, backend, device, store=store, law_alpha=level, **kw)
            levels[name] = run_summary(x)
    records = {v.variant: [law_record(x) for x in v.final] for v in [r.claim_result] + list(r.controls)}
    return {"claim": claim_id, "case": case, "backend": backend, "base_seed": base_seed, "premise": drawn,
            "code": r.code, "levels": levels, "records": records}


SCOPE = "scope"         # the calibration "case" whose every run draws its premise from the claim's scope


def run_case(claim, case: str, base_seed: int) -> dict:
    """The case and premise overrides of calibration run ``base_seed`` of group ``case``: a case name as it is;
    ``"scope"`` the premise drawn from the scope, as a claim test draws it (the scope covers the cases);
    ``"scope:NAME"`` case NAME with the rest drawn, as a claim test of that case runs."""
    from .claim import draw_premise
    if not case.startswith(SCOPE):
        return {"case": case}
    drawn = draw_premise(claim, base_seed)
    if case == SCOPE:
        return {"case": "drawn", "overrides": drawn}
    name = case.split(":", 1)[1]
    return {"case": name, "overrides": {**claim.cases[name], **drawn}}


def scope_groups(claim) -> list:
    """The calibration groups of ``--scope``, as the claim tests draw: "scope" when the scope covers every setting
    that tells the claim's cases apart (each draw picks a case), else "scope:CASE" for each case (its settings
    with the rest drawn, as a claim test of that case runs)."""
    if all(set(case) <= set(claim.scope) for case in claim.cases.values()):
        return [SCOPE]
    return [f"{SCOPE}:{name}" for name in claim.cases]


def all_level(alpha: float = 0.05, claims: dict | None = None) -> tuple[float, int]:
    """The level of every law in ``claims run --all`` (``alpha`` over every verdict of the registry, or of
    ``claims`` when given) and the number of verdicts."""
    from .claim import registry
    from .sweep import verdict_count
    n = sum(verdict_count(c, None) for c in (registry() if claims is None else claims).values())
    return alpha / n, n


def _tally(runs: list, level: str, run_alpha_of) -> dict:
    """Counts of one group of calibration runs (a claim case on a backend) at one level."""
    from .stats import upper_bound
    n = len(runs)
    got = [r["levels"][level] for r in runs]
    counts = {v: sum(g["verdict"] == v for g in got) for v in ("holds", "refuted", "inconclusive")}
    ok = sum(g["ok"] for g in got)
    controls = sorted({c for g in got for c in g["controls"]})
    variants = sorted({v for g in got for v in g["seeds"]}, key=lambda v: (v != "claim", v))
    laws = {}
    for g in got:
        for name, v in g["laws"].items():
            laws.setdefault(name, {"holds": 0, "refuted": 0, "inconclusive": 0})[v] += 1
    law_alpha = got[0]["law_alpha"]
    run_alpha = run_alpha_of(law_alpha)
    return {"law_alpha": law_alpha, "run_alpha": run_alpha, **counts, "ok": ok,
            "ok_lower95": 1 - upper_bound(n - ok, n), "refuted_upper95": upper_bound(counts["refuted"], n),
            "not_holding_upper95": upper_bound(n - counts["holds"], n),
            "power": {c: {"rejected": sum(g["controls"].get(c) == "rejected" for g in got),
                          "lower95": 1 - upper_bound(n - sum(g["controls"].get(c) == "rejected" for g in got), n)}
                      for c in controls},
            "laws": laws, "mean_seeds": {v: float(np.mean([g["seeds"][v] for g in got if v in g["seeds"]]))
                                         for v in variants},
            "failed": bool(upper_bound(counts["refuted"], n) > run_alpha)}


def cmd_calibrate(args, console):
    """Rerun each claim case ``--runs`` times on fresh random base seeds and count the verdicts at the level of
    ``claims run --all`` and at the claim case's own run alpha."""
    import json
    import os
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path
    from rich.markup import escape
    from ..errors import HarnessError
    from .executors import one_thread_per_worker
    from .store import Store, default_store_path
    from .sweep import verdict_count
    claims = _claims(args)
    backends = _backends(args.backend)
    _check_seeds(args)
    if args.runs < 1:
        raise HarnessError("--runs must be >= 1")
    for c in claims:
        c.tier(args.tier)
    _check_env(backends, args.device, "float64")
    if args.scope and args.case:
        raise HarnessError("--scope draws each run's premise from the scope; it takes no --case")
    if args.scope and not all(c.scope for c in claims):
        raise HarnessError("--scope: claim(s) without a scope: "
                           + ", ".join(c.id for c in claims if not c.scope))
    if args.law_alpha is not None and not 0 < args.law_alpha < 1:
        raise HarnessError(f"--law-alpha must be in (0, 1), got {args.law_alpha}")
    base = args.base_seed
    if base is None:
        base = int(np.random.SeedSequence().generate_state(1)[0] & 0x3FFFFFFF)
    store_path = str(args.store or default_store_path())
    Store(store_path).close()
    all_alpha, all_verdicts = all_level(args.alpha)
    strict = args.law_alpha if args.law_alpha is not None else all_alpha
    from .claim import source_of

    def n_verdicts(claim, case):
        return verdict_count(claim, 1 if case == SCOPE else [case.split(":", 1)[-1]])
    from .sweep import skipped_pairs
    for line in skipped_pairs(claims, backends):
        console.print(line)
    jobs = []
    for c in claims:
        for case in (scope_groups(c) if args.scope else [args.case] if args.case else list(c.cases)):
            own = args.alpha / n_verdicts(c, case)
            replay = {"own": own} if own > strict else {}
            for b in [b for b in backends if c.runs_on(b)]:
                for k in range(1, args.runs + 1):
                    jobs.append((c.id, case, b, args.tier, args.device, args.seeds, base + k, args.alpha, strict,
                                 replay, store_path, source_of(c.id)))
    workers = args.workers or os.cpu_count() or 1
    level_line = (f"every law at {strict:g} (--law-alpha)" if args.law_alpha is not None else
                  f"every law at {strict:.3g}, the level of `claims run --all` ({args.alpha:g} over {all_verdicts} "
                  f"verdicts), replayed at each claim case's own run alpha {args.alpha:g}")
    console.print(f"calibration: {len(jobs)} runs ({args.runs} per claim, case and backend), tier {args.tier}, "
                  f"fresh base seeds {base + 1}..{base + args.runs} (repeat with --base-seed {base}), {level_line}, "
                  f"{workers} workers")
    done = []
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    with Progress(TextColumn("calibrate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, disable=args.no_progress) as bar:
        job = bar.add_task("calibrate", total=len(jobs))
        if workers == 1:
            for j in jobs:
                done.append(_calibration_run(j))
                bar.advance(job)
        else:
            import multiprocessing
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=one_thread_per_worker, initargs=(os.getpid(),)) as pool:
                for res in pool.map(_calibration_run, jobs):
                    done.append(res)
                    bar.advance(job)
    groups: dict = {}
    for res in done:
        groups.setdefault((res["claim"], res["case"], res["backend"]), []).append(res)
    rows, failed = [], False
    for (claim_id, case, backend), runs in groups.items():
        claim = next(x for x in claims if x.id == claim_id)
        nv = n_verdicts(claim, case)
        levels = {"strict": _tally(runs, "strict", lambda a: a * nv)}
        if "own" in runs[0]["levels"]:
            levels["own"] = _tally(runs, "own", lambda a: a * nv)
        # false alarms are judged at the claim case's own run alpha (0 refutations in n runs bound the rate by about
        # 3 / n, which no affordable n brings under the --all level's run alpha); the --all level measures power
        failed |= levels.get("own", levels["strict"])["failed"]
        t = levels["strict"]
        row = {"claim": claim_id, "case": case, "backend": backend, "runs": len(runs), "tier": args.tier,
               "base_seeds": [base + 1, base + args.runs], "code": runs[0]["code"], "verdicts": nv,
               "all_level": args.law_alpha is None, **{k: t[k] for k in (
                   "law_alpha", "run_alpha", "holds", "refuted", "inconclusive", "ok", "ok_lower95",
                   "refuted_upper95", "not_holding_upper95", "power", "laws", "mean_seeds")},
               "levels": levels,
               "not_ok": sorted(({"base_seed": r["base_seed"], "level": lv, **r["levels"][lv],
                                  **({"premise": r["premise"]} if r["premise"] is not None else {})}
                                 for r in runs for lv in r["levels"] if not r["levels"][lv]["ok"]),
                                key=lambda m: (m["base_seed"], m["level"]))}
        rows.append(row)
        tag = escape(f"[{case}]")
        for name, t in levels.items():
            power = "; ".join(f"{k} rejected {v['rejected']}/{len(runs)} (>= {v['lower95']:.2f})"
                              for k, v in t["power"].items())
            seeds = ", ".join(f"{k} {v:.1f}" for k, v in t["mean_seeds"].items())
            colour = "red" if t["failed"] else "green"
            what = "the --all level" if name == "strict" and args.law_alpha is None else (
                "--law-alpha" if name == "strict" else "its own run alpha")
            console.print(f"{claim_id} {tag} {backend}, {what}: {len(runs)} runs, laws at {t['law_alpha']:.3g}, "
                          f"passed {t['ok']} (power >= {t['ok_lower95']:.3f}), holds {t['holds']}, refuted "
                          f"{t['refuted']} ([{colour}]upper 95% bound {t['refuted_upper95']:.3f}[/{colour}] vs alpha "
                          f"{t['run_alpha']:.3g}), inconclusive {t['inconclusive']}; controls: {power}; mean seeds "
                          f"per scale: {seeds}")
        for m in row["not_ok"]:
            console.print(f"  base seed {m['base_seed']} ({m['level']}): claim {m['verdict']}"
                          + "".join(f", {k} {v}" for k, v in m["laws"].items())
                          + "".join(f"; control {k} {v}" for k, v in m["controls"].items())
                          + (f"; premise {escape(str(m['premise']))}" if "premise" in m else ""))
    if args.law_alpha is None and rows:
        rate = float(np.prod([r["ok"] / r["runs"] for r in rows]))
        lower = float(np.prod([r["ok_lower95"] for r in rows]))
        console.print(f"pass rate of these claim cases together at the --all level (the product over them): "
                      f"{rate:.3f} (product of the 95% lower bounds: {lower:.3f})")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"tier": args.tier, "alpha": args.alpha, "law_alpha": strict, "all_level": args.law_alpha is None,
                "all_verdicts": all_verdicts, "base_seed": base, "runs_per_case": args.runs,
                "scope": bool(args.scope), "seeds": args.seeds}
        (out / "calibration.json").write_text(json.dumps({"meta": meta, "rows": rows, "runs": done}, indent=1))
        (out / "calibration.md").write_text(calibration_markdown(rows, args.scope))
        console.print(f"table: {out / 'calibration.md'}")
    if failed:
        console.print("[red]a refutation rate's 95% upper bound exceeds the run's alpha[/red]: the claim is "
                      "refuted more often than its alpha allows, or too few runs bound the rate (0 of n bounds it by "
                      "about 3/n)")
    return 1 if failed else 0


def calibration_markdown(rows: list, scope: bool = False) -> str:
    lines = ["| claim | case | backend | runs | law alpha | passed (power, 95% lower bound) | refuted (95% upper "
             "bound) | inconclusive | mean seeds per scale | control rejected (95% lower bound) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for name, t in r["levels"].items():
            power = "; ".join(f"{k}: {v['rejected']}/{r['runs']} (>= {v['lower95']:.2f})" for k, v in t["power"].items())
            seeds = ", ".join(f"{k} {v:.1f}" for k, v in t["mean_seeds"].items())
            lines.append(f"| {r['claim']} | {r['case']} | {r['backend']} | {r['runs']} | {t['law_alpha']:.3g} | "
                         f"{t['ok']} ({t['ok_lower95']:.3f}) | {t['refuted']} ({t['refuted_upper95']:.3f}) | "
                         f"{t['inconclusive']} | {seeds} | {power} |")
    missed = [(r, m) for r in rows for m in r["not_ok"]]
    if missed:
        lines += ["", "Runs in which the claim did not hold or a control was not rejected (repeat one with "
                  "`--base-seed SEED-1 --runs 1`" + (" --scope: the same base seed draws the same premise" if
                                                      scope else "") + "):", ""]
        lines += [f"- {r['claim']} [{r['case']}] {r['backend']}, base seed {m['base_seed']} ({m['level']}): claim "
                  f"{m['verdict']} (" + ", ".join(f"{k} {v}" for k, v in m["laws"].items()) + ")"
                  + "".join(f"; control {k} {v}" for k, v in m["controls"].items())
                  + (f"; premise `{m['premise']}`" if "premise" in m else "") for r, m in missed]
    return "\n".join(lines) + "\n"


def load_records(sources) -> dict:
    """Calibration runs from calibration.json files (or directories searched for them): ``{(claim, case, tier):
    {base_seed: run}}``, one backend's run per base seed (the backends measure the same networks), each with the
    level it was measured at (``law_alpha``)."""
    import json
    from pathlib import Path
    from ..errors import HarnessError
    files = []
    for src in sources:
        p = Path(src)
        if p.is_dir():
            files += sorted(p.rglob("calibration.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise HarnessError(f"{src}: no such calibration file or directory")
    out: dict = {}
    for f in files:
        try:
            data = json.loads(f.read_text())
        except ValueError as e:
            raise HarnessError(f"{f}: not a calibration file ({e})") from None
        if not isinstance(data, dict) or "runs" not in data:
            raise HarnessError(f"{f}: not a calibration file with records (written by `claims calibrate --out`)")
        for run in data["runs"]:
            key = (run["claim"], run["case"], data["meta"]["tier"])
            out.setdefault(key, {}).setdefault(run["base_seed"], {**run, "file": str(f),
                                                                   "law_alpha": data["meta"]["law_alpha"]})
    return out


def design_table(records: dict, ids: list, tier_name: str, law_alpha: float, draws: int = 2000) -> list:
    """One row per (claim, calibration group): the tier's design, its predicted power and expected seeds at the
    level of `claims run --all` from the group's records, and what the group's runs observed (at that level, when
    they were measured at it: passes with a lower bound, mean seeds; at the claim case's own run alpha:
    refutations with an upper bound), and whether the records are fresh (their code hash is the claim's now)."""
    from .claim import get_claim
    from .power import predict_case
    from .stats import upper_bound
    from .sweep import code_version
    rows = []
    for cid in ids:
        claim = get_claim(cid)
        tier = claim.tier(tier_name)
        for (c, case, t), by_seed in sorted(records.items()):
            if c != cid or t != tier_name:
                continue
            runs = list(by_seed.values())
            scope = case.startswith(SCOPE)
            pred = predict_case(claim, tier, runs, law_alpha, scope, draws)
            # runs measured when the registry had fewer verdicts (a claim joined since) observed at their own, less
            # strict level: each level's runs are reported at it, the current level's (else the largest group) first;
            # the prediction above is at the current level
            def at(a, b):
                return abs(a - b) <= 1e-9 * b
            levels = sorted({r["law_alpha"] for r in runs},
                            key=lambda a: (not at(a, law_alpha), -sum(at(r["law_alpha"], a) for r in runs), a))
            groups = [[r for r in runs if at(r["law_alpha"], a)] for a in levels]
            observed_alpha, same_level = levels[0], groups[0]
            n = len(same_level)
            passed = sum(r["levels"]["strict"]["ok"] for r in same_level)
            own = [r["levels"].get("own", r["levels"]["strict"]) for r in runs]
            refuted = sum(o["verdict"] == "refuted" for o in own)
            codes = sorted({r["code"] for r in runs})
            current = {b: code_version(claim, b) for b in {r["backend"] for r in runs}}    # once per backend
            fresh = all(r["code"] == current[r["backend"]] for r in runs)                  # as measured: its backend
            rows.append({
                "claim": cid, "case": case, "scope": scope, "runs": len(runs),
                "base_seeds": [min(by_seed), max(by_seed)], "fresh": fresh, "codes": codes,
                "looks": {v: list(tier.looks(v)) for v in pred},
                "predicted": {v: {"power": d.power, "expected_seeds": d.expected_seeds} for v, d in pred.items()},
                "predicted_pass": float(np.prod([d.power for d in pred.values()])),
                "observed_runs": n, "observed_pass": passed, "observed_alpha": observed_alpha, "law_alpha": law_alpha,
                "observed_pass_lower95": 1 - upper_bound(n - passed, n) if n else None,
                "observed_seeds": {v: float(np.mean([r["levels"]["strict"]["seeds"][v] for r in same_level
                                                     if v in r["levels"]["strict"]["seeds"]]))
                                   for v in pred} if n else {},
                "observed_other": [_level_group(g, a) for a, g in zip(levels[1:], groups[1:])],
                "refuted_own": refuted, "refuted_own_upper95": upper_bound(refuted, len(runs)),
            })
    return rows


def _level_group(runs: list, alpha: float) -> dict:
    """What one level's runs of a calibration group observed: runs, passes, their 95% lower bound, the level."""
    from .stats import upper_bound
    passed = sum(r["levels"]["strict"]["ok"] for r in runs)
    return {"runs": len(runs), "pass": passed, "alpha": alpha, "pass_lower95": 1 - upper_bound(len(runs) - passed,
                                                                                                len(runs))}


def _at_level(row: dict, law_alpha: float) -> str:
    """" at LEVEL" when a row's observed runs were measured at another level than ``law_alpha`` (before a claim
    joined the registry), else ""."""
    a = row.get("observed_alpha", law_alpha)
    return "" if abs(a - law_alpha) <= 1e-9 * law_alpha else f" at {a:.3g}"


def design_markdown(rows: list, law_alpha: float, n_all: int) -> str:
    cases = [r for r in rows if not r["scope"]]
    scopes = [r for r in rows if r["scope"]]
    pass_cases = float(np.prod([r["predicted_pass"] for r in cases])) if cases else float("nan")
    pass_scopes = float(np.prod([r["predicted_pass"] for r in scopes])) if scopes else float("nan")
    lines = [f"Every law at {law_alpha:.3g} (0.05 over the {n_all} verdicts of `claims run --all`), spent over its "
             f"variant's looks. Predicted: the power of the tier's sequential design from the group's calibration "
             f"records (`claims design`); observed: the group's calibration runs at that level, or at the level "
             f"stated beside them when they were measured before a claim joined the registry, each level's runs "
             f"apart (passed = the claim held and every control was rejected; 95% lower bound; observed seeds: the "
             f"first group's), and refutations at the claim case's own run "
             f"alpha (95% upper bound).", "",
             f"Predicted pass rate of `claims run --all` (the product over its claim cases, claim and controls): "
             f"**{pass_cases:.4f}**. Predicted pass rate of the claim tests over the scopes (the product over the "
             f"claims' scope groups; 1 minus it bounds the chance that they fail a correct commit): "
             f"**{pass_scopes:.4f}**.", "",
             "| claim | case | runs (base seeds) | looks (seeds per scale) | predicted power: claim; controls | "
             "predicted seeds | observed: passed (95% lower) | observed seeds | refuted at own alpha (95% upper) | "
             "records |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        looks = "; ".join(f"{v} {'/'.join(map(str, l))}" for v, l in r["looks"].items())
        power = "; ".join(f"{v} {p['power']:.4f}" for v, p in r["predicted"].items())
        seeds = "; ".join(f"{v} {p['expected_seeds']:.1f}" for v, p in r["predicted"].items())
        obs = (f"{r['observed_pass']}/{r['observed_runs']} ({r['observed_pass_lower95']:.3f})" if r["observed_runs"]
               else "-") + _at_level(r, law_alpha) + "".join(
            f"; {g['pass']}/{g['runs']} ({g['pass_lower95']:.3f}) at {g['alpha']:.3g}"
            for g in r.get("observed_other", ()))
        oseeds = "; ".join(f"{v} {x:.1f}" for v, x in r["observed_seeds"].items()) or "-"
        lines.append(f"| `{r['claim']}` | {r['case']} | {r['runs']} ({r['base_seeds'][0]}..{r['base_seeds'][1]}) | "
                     f"{looks} | {power} | {seeds} | {obs} | {oseeds} | {r['refuted_own']} "
                     f"({r['refuted_own_upper95']:.3f}) | {'current' if r['fresh'] else 'STALE: code ' + ', '.join(r['codes'])} |")
    return "\n".join(lines) + "\n"


def cmd_reverify(args, console):
    """Carry stale calibration records across a change that keeps every number (:mod:`.reverify`)."""
    import datetime
    from pathlib import Path
    from rich.markup import escape
    from ..errors import HarnessError
    from .claim import get_claim, registry
    from .executors import make_executor
    from .reverify import reverify, write_carried
    from .store import Store
    from .sweep import code_version
    if args.runs < 1:
        raise HarnessError("--runs must be >= 1")
    if not 0 <= args.rtol < 1:
        raise HarnessError(f"--rtol must be in [0, 1), got {args.rtol}")
    for path in args.store:
        if not Path(path).is_file():
            raise HarnessError(f"--store {path}: no such store")
    records = load_records(args.sources or ["calibration/ci"])
    for cid in args.ids:
        get_claim(cid)
    ids = args.ids or sorted({c for (c, _, t), by_seed in records.items() if t == args.tier and c in registry()
                              and any(r["code"] != code_version(get_claim(c), r["backend"]) for r in by_seed.values())})
    if not ids:
        console.print("every calibration record is current: nothing to reverify")
        return 0
    def report(r):
        console.print(escape(
            f"{r['claim']} [{r['case']}] {r['backend']}: {r['runs_of_code']} runs by code {r['old']} -> {r['new']}: "
            f"{r['status']} ({r['points']} points of base seeds {r['base_seeds']} compared, {r['missing']} not in "
            f"the stores; largest relative difference {r['max_rel_diff']:.3g}, rtol {args.rtol:g})"), soft_wrap=True)
    stores = [Store(path) for path in args.store]
    try:
        with make_executor("local", args.workers, progress=not args.no_progress) as ex:
            rows = reverify(records, ids, stores, ex, args.runs, args.rtol, args.tier, by_identity=args.by_identity,
                            report=report)
    finally:
        for s in stores:
            s.close()
    if args.write:
        when = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for f in write_carried(rows, records, args.rtol, when, args.by_identity):
            console.print(f"restamped {f}")
    return 0 if all(r["status"] == "carried" for r in rows) else 1


def cmd_design(args, console):
    """For each claim with calibration records: the predicted power and expected seeds of its tier's sequential
    design at the level of `claims run --all`, what the records' runs observed, and with ``--search`` the cheapest
    design that reaches the target."""
    from pathlib import Path
    from rich.markup import escape
    from ..errors import HarnessError
    from .claim import get_claim, registry, sequential_looks
    from .power import design, evaluate_design, group_records
    if not args.sources:
        raise HarnessError("name the calibration records with --from (calibration.json or a directory)")
    if not 0 < args.target < 1:
        raise HarnessError(f"--target must be in (0, 1), got {args.target}")
    records = load_records(args.sources)
    law_alpha, n_all = all_level(args.alpha)
    ids = args.ids or sorted({c for (c, _, t) in records if t == args.tier and c in registry()})
    if not ids:
        raise HarnessError(f"no calibration records of tier {args.tier} in {', '.join(args.sources)}")
    for cid in ids:
        get_claim(cid)
    console.print(f"every law at {law_alpha:.3g} ({args.alpha:g} over the {n_all} verdicts of `claims run --all`), "
                  f"split over each variant's looks")
    rows = design_table(records, ids, args.tier, law_alpha, args.draws)
    for r in rows:
        console.print(escape(
            f"{r['claim']} [{r['case']}] {r['runs']} runs{'' if r['fresh'] else ' (STALE records)'}: looks "
            + "; ".join(f"{v} {tuple(l)}" for v, l in r["looks"].items()) + "; predicted power "
            + "; ".join(f"{v} {p['power']:.4f} ({p['expected_seeds']:.1f} seeds)" for v, p in r["predicted"].items())
            + f"; passes {r['predicted_pass']:.4f}"
            + (f"; observed {r['observed_pass']}/{r['observed_runs']}{_at_level(r, law_alpha)}" if r["observed_runs"]
               else "")
            + "".join(f", {g['pass']}/{g['runs']} at {g['alpha']:.3g}" for g in r.get("observed_other", ()))),
            soft_wrap=True)
    cases = [r["predicted_pass"] for r in rows if not r["scope"]]
    scopes = [r["predicted_pass"] for r in rows if r["scope"]]
    console.print(f"predicted pass rate under the tiers' designs: claim cases {np.prod(cases):.4f}"
                  + (f"; scopes (the claim tests) {np.prod(scopes):.4f}" if scopes else ""))
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(design_markdown(rows, law_alpha, n_all))
        console.print(f"table: {args.markdown}")
    if not args.search:
        return 0
    console.print(f"searching designs that reach {args.target} per variant (cap <= {args.max_seeds})")
    for cid in ids:
        claim = get_claim(cid)
        groups = [list(runs.values()) for (c, case, t), runs in sorted(records.items())
                  if c == cid and t == args.tier]
        scoped = [g[0]["case"].startswith(SCOPE) for g in groups]
        claim_groups = [group_records(g, "claim", s) for g, s in zip(groups, scoped)]
        best = design(claim_groups, law_alpha, False, args.target, args.max_seeds, args.draws)
        if best is None:
            console.print(f"{cid}: no design with at most {args.max_seeds} seeds per scale reaches {args.target}: "
                          f"the claim cannot be decided at this tier (a full-tier law)")
            continue
        first, cap, ds = best
        ctrl_groups = [group_records(g, c.name, s) for g, s in zip(groups, scoped) for c in claim.controls]
        ctrl_groups = [g for g in ctrl_groups if g]
        cbest = design(ctrl_groups, law_alpha, True, args.target, max(cap, args.max_seeds), args.draws,
                       min_cap=cap) if ctrl_groups else None
        c_first, c_cap = (cbest[0], cbest[1]) if cbest else (first, cap)
        cap = max(cap, c_cap)
        claim_looks, ctrl_looks = sequential_looks(first, cap), sequential_looks(c_first, cap)
        ds = [evaluate_design(g, claim_looks, law_alpha, False, args.draws) for g in claim_groups]
        cds = [evaluate_design(g, ctrl_looks, law_alpha, True, args.draws) for g in ctrl_groups]
        text = (f"claims design on {sum(len(g) for g in groups)} calibration runs "
                f"({', '.join(sorted({g[0]['case'] for g in groups}))}; base seeds "
                + ", ".join(f"{min(r['base_seed'] for r in g)}..{max(r['base_seed'] for r in g)}" for g in groups)
                + f"): each law at {law_alpha:.3g} / looks; claim looks {'/'.join(map(str, claim_looks))} predict "
                f"power " + ", ".join(f"{d.power:.4f}" for d in ds) + " at the cap, "
                + ", ".join(f"{d.expected_seeds:.1f}" for d in ds) + " seeds expected; controls from "
                f"{c_first}: power >= {min(d.power for d in cds):.4f}, "
                + f"{max(d.expected_seeds for d in cds):.1f} seeds expected at most" if cds else "")
        console.print(escape(f"{cid}: Tier(seeds={first}, max_seeds={cap}"
                             + (f", control_seeds={c_first}" if c_first != first else "") + f", design={text!r})"),
                      soft_wrap=True)
        if cbest is None and ctrl_groups:
            console.print(f"  the controls reach {args.target} with no cap up to {max(cap, args.max_seeds)}")
    return 0


def cmd_docs(args, console):
    from .docs import write_docs
    for path in write_docs(args.out, args.records):
        console.print(f"wrote {path}")
    return 0


def _settings(pairs) -> dict:
    import ast
    from ..errors import HarnessError
    out = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise HarnessError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key.strip()] = text
    return out


def cmd_pilot(args, console):
    from rich.markup import escape
    from .claim import get_claim
    from .pilot import describe_output, pilot, read_at
    names = _backends(args.backend)
    if args.backend == "all" or len(names) != 1:
        from ..errors import HarnessError
        raise HarnessError("pilot runs on one backend: --backend torch or --backend jax")
    (backend,) = names
    claim = get_claim(args.id)
    _check_env([backend], args.device, claim.dtype)
    points = pilot(claim, args.scale, case=args.case, variant=args.variant, seeds=args.seeds, seed=args.seed,
                   base_seed=args.base_seed, backend=backend, device=args.device, tier=args.tier,
                   premise=_settings(args.set))
    p = points[0].setting
    console.print(escape(f"{claim.id} [{p.case}] {p.variant} on {backend}/{args.device}, premise {p.premise}; "
                         f"nothing stored (the first point of each scale includes compilation)"), soft_wrap=True)
    names = list(dict.fromkeys(k for pt in points for k in pt.outputs))
    t = claim.tier(args.tier)
    grid = t.scales_for(p.variant)

    def cell(pt, k):
        if k not in pt.outputs:
            return ""
        text = describe_output(pt.outputs[k])
        if not read_at(claim, p.case, p.variant, k, pt.setting.scale, grid):     # no law reads it at this scale
            return f"{text} (unread)"
        return text
    rows = [[f"{pt.setting.scale:g}", str(pt.setting.seed), f"{pt.seconds:.3f}"] + [cell(pt, k) for k in names]
            for pt in points]
    header = [claim.scale_name, "seed", "seconds"] + names
    if not console.is_terminal:
        print("\t".join(header))
        for row in rows:
            print("\t".join(row))
    else:
        from rich.table import Table
        t = Table()
        for col in header:
            t.add_column(col, overflow="fold")
        for row in rows:
            t.add_row(*[escape(c) for c in row])
        console.print(t)
    bad = sum(not np.all(np.isfinite(np.asarray(v, dtype=float))) for pt in points for k, v in pt.outputs.items()
              if read_at(claim, p.case, p.variant, k, pt.setting.scale, grid))
    if bad:
        console.print(f"[yellow]{bad} measurement(s) NaN or infinite where a law reads them (that law would be "
                      f"inconclusive)[/yellow]")
    return 0


def cmd_coordcheck(args, console):
    from ..coordcheck import run_coord_check
    from ..errors import HarnessError
    try:
        widths = tuple(int(w) for w in args.widths.split(",") if w.strip())
    except ValueError:
        raise HarnessError(f"--widths must be a comma list of integers, got {args.widths!r}") from None
    if len(widths) < 2 or min(widths) < 1:
        raise HarnessError(f"--widths needs at least two positive widths, got {args.widths!r}")
    _backends(args.backend)
    res = run_coord_check(args.backend, args.parametrisation, args.optimizer, args.lr, widths, args.seeds,
                          args.steps, depth=args.depth, device=args.device, out=args.out)
    slopes = np.asarray(res["slopes"])
    names = [f"hidden {l + 1}" for l in range(args.depth)] + ["output"]
    console.print(f"exponent of each layer's change in width after step {args.steps} (muP: about 0): "
                  + ", ".join(f"{n} {v:+.2f}" for n, v in zip(names, slopes[-1])))
    console.print(f"figure: {res['path']}")
    return 0


def main(argv=None) -> int:
    from rich.console import Console
    from ..errors import HarnessError
    console = Console()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        from .claim import LOAD_ERRORS, load_path, registry
        registry()
        for path in getattr(args, "path", []):
            load_path(path, strict=args.command != "list")   # list shows what loaded, warns of the rest
        for line in LOAD_ERRORS.values():
            print(f"claims: skipped {line}", file=sys.stderr)
        if args.command in ("run", "calibrate", "reverify", "pilot", "coordcheck"):
            from .executors import reuse_freed_memory
            reuse_freed_memory()            # this process measures too (--workers 1, pilot)
        if args.command in ("run", "calibrate", "reverify"):
            from .executors import use_jax_compilation_cache
            from .store import default_store_path
            store = getattr(args, "store", None) or default_store_path()
            store = store[0] if isinstance(store, list) else store          # reverify: the first of its stores
            from pathlib import Path
            use_jax_compilation_cache(Path(store).resolve().parent / "jax-cache")
        return {"list": cmd_list, "run": cmd_run, "report": cmd_report, "calibrate": cmd_calibrate,
                "design": cmd_design, "docs": cmd_docs, "reverify": cmd_reverify, "coordcheck": cmd_coordcheck,
                "pilot": cmd_pilot}[args.command](
            args, console)
    except HarnessError as e:
        print(f"claims: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("claims: interrupted; finished points are kept in the store", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
