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
        sp.add_argument("--store", default=None, help="SQLite results file (default results/claims.sqlite)")
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
                     help="evaluate every law at this level instead of alpha divided over the run's verdicts, e.g. "
                          "the level `claims run --all` prints; the refutation bound is then compared with "
                          "law-alpha x the run's verdicts")
    cal.add_argument("--scope", action="store_true",
                     help="draw each run's premise from the claim's scope (uniform over each setting's values, "
                          "seeded by the run's base seed), as the claim tests do, instead of running its cases: "
                          "the power a claim test has; every run that did not hold is listed with its premise")
    cal.add_argument("--out", default=None, metavar="DIR", help="write calibration.md and calibration.json here")

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
    claims = list(registry().values())
    rows = [(c.id, c.title, ", ".join(c.cases), ", ".join(c.tiers), ", ".join(x.name for x in c.controls),
             "cpu" if "cpu-only" in c.needs else "cpu, cuda", source_of(c.id) or "claims package") for c in claims]
    if not console.is_terminal:
        # piped: one tab-separated line per claim, nothing cut, so `claims list | grep ID` finds the id
        for row in rows:
            print("\t".join(row))
    else:
        from rich.table import Table
        t = Table(title="claims")
        t.add_column("id", no_wrap=True, min_width=max((len(r[0]) for r in rows), default=2))
        for col in ("title", "cases", "tiers", "controls", "devices", "from"):
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
                                 + (f" ({x.note})" if x.note else "")), soft_wrap=True)
        if v.variant != "claim":
            console.print(f"  {'':>12} control {v.variant}: {v.verdict}")


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
    from .sweep import run_claims, verdict_count
    claims = _claims(args)
    backends = _backends(args.backend)
    _check_seeds(args)
    for c in claims:
        c.tier(args.tier)
    _check_env(backends, args.device, "float64")
    verdicts = sum(verdict_count(c, _cases(c, args)) for c in claims)
    law_alpha = args.alpha / verdicts
    console.print(family_line(args.alpha, verdicts, law_alpha, backends))
    from .executors import make_executor
    t0 = time.perf_counter()
    with Store(args.store) as store, make_executor(args.executor, args.workers, args.address,
                                                   progress=not args.no_progress) as executor:
        console.print(f"measuring on {executor.describe()}; store {store.path}")
        results = run_claims(claims, args.tier, backends, args.device, case=args.case, seeds=args.seeds,
                             base_seed=args.base_seed, alpha=args.alpha, store=store, executor=executor,
                             law_alpha=law_alpha, verdicts=verdicts, label="claims")
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
    from .claim import get_claim
    from ..errors import HarnessError
    from .report import write_report
    from .store import Store
    from .sweep import evaluate, tasks_for, verdict_count
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
            except HarnessError:
                continue
            n = store._conn.execute("SELECT MAX(replicate) + 1 FROM points WHERE claim=? AND case_name=? AND "
                                    "tier=? AND backend=? AND device=? AND base_seed=?",
                                    (claim_id, case, tier, backend, device, base_seed)).fetchone()[0]
            try:
                tasks = tasks_for(claim, tier, backend, device, case, n, base_seed)
            except HarnessError:
                continue
            if all(store.has(t) for t in tasks):
                complete.append((claim, case, base_seed, tasks))
        if not complete:
            raise HarnessError("no complete run in the store matches the current claims (and their code)")
        distinct = {(c.id, case, bs): verdict_count(c, [case]) for c, case, bs, _ in complete}
        verdicts = sum(distinct.values())
        law_alpha = args.alpha / verdicts
        backends = sorted({t[0].backend for *_, t in complete})
        console.print(family_line(args.alpha, verdicts, law_alpha, backends))
        results = [evaluate(claim, tasks, store, args.alpha, law_alpha, verdicts) for claim, _, _, tasks in complete]
    md = write_report(results, args.out)
    console.print(f"report of {len(results)} runs: {md}")
    return 0 if all(r.ok for r in results) else 1


def _calibration_run(job):
    """One calibration rerun (in a worker process): the verdicts of one claim case on one backend."""
    claim_id, case, backend, tier, device, seeds, base_seed, alpha, law_alpha, store_path, source = job
    from .claim import draw_premise, get_claim, load_path, registry
    from .store import Store
    from .sweep import run_claim
    if source and claim_id not in registry():
        load_path(source)                      # a user claim file, in a fresh worker process
    drawn = draw_premise(get_claim(claim_id), base_seed) if case == SCOPE else None
    with Store(store_path) as store:
        if drawn is None:
            (r,) = run_claim(claim_id, tier, backend, device, case=case, seeds=seeds, base_seed=base_seed,
                             alpha=alpha, store=store, law_alpha=law_alpha)
        else:                                  # as the claim tests run a draw (tests/claimcheck.py)
            (r,) = run_claim(claim_id, tier, backend, device, case="drawn", overrides=drawn, seeds=seeds,
                             base_seed=base_seed, alpha=alpha, store=store, law_alpha=law_alpha)
    return (claim_id, case, backend, base_seed, r.verdict, {c.variant: c.verdict for c in r.controls},
            {x.law: x.verdict for x in r.claim_result.laws}, drawn)


SCOPE = "scope"         # the calibration "case" whose every run draws its premise from the claim's scope


def cmd_calibrate(args, console):
    """Rerun each claim case ``--runs`` times on fresh random base seeds and count the verdicts."""
    import json
    import os
    from concurrent.futures import ProcessPoolExecutor
    from pathlib import Path
    from rich.markup import escape
    from ..errors import HarnessError
    from .executors import one_thread_per_worker
    from .stats import proportion, upper_bound
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
    base = args.base_seed
    if base is None:
        base = int(np.random.SeedSequence().generate_state(1)[0] & 0x3FFFFFFF)
    store_path = str(args.store or default_store_path())
    Store(store_path).close()
    if args.law_alpha is not None and not 0 < args.law_alpha < 1:
        raise HarnessError(f"--law-alpha must be in (0, 1), got {args.law_alpha}")
    from .claim import source_of
    jobs = [(c.id, case, b, args.tier, args.device, args.seeds, base + k, args.alpha, args.law_alpha, store_path,
             source_of(c.id))
            for c in claims for case in ([SCOPE] if args.scope else [args.case] if args.case else list(c.cases))
            for b in backends for k in range(1, args.runs + 1)]
    if args.scope and args.case:
        raise HarnessError("--scope draws each run's premise from the scope; it takes no --case")
    if args.scope and not all(c.scope for c in claims):
        raise HarnessError("--scope: claim(s) without a scope: "
                           + ", ".join(c.id for c in claims if not c.scope))
    workers = args.workers or os.cpu_count() or 1
    console.print(f"calibration: {len(jobs)} runs ({args.runs} per claim, case and backend), tier {args.tier}, "
                  f"fresh base seeds {base + 1}..{base + args.runs} (repeat with --base-seed {base}), "
                  + (f"every law at {args.law_alpha:g}" if args.law_alpha else f"run alpha {args.alpha:g} per claim case")
                  + f", {workers} workers")
    counts: dict = {}

    def tally(res):
        claim_id, case, backend, bs, verdict, controls, laws, drawn = res
        c = counts.setdefault((claim_id, case, backend), {"runs": 0, "holds": 0, "refuted": 0, "inconclusive": 0,
                                                           "controls": {}, "laws": {}, "missed": []})
        c["runs"] += 1
        c[verdict] += 1
        if verdict != "holds" or not all(v == "rejected" for v in controls.values()):
            c["missed"].append({"base_seed": bs, "verdict": verdict, "controls": controls, "laws": laws,
                                **({"premise": drawn} if drawn is not None else {})})
        for name, v in controls.items():
            c["controls"][name] = c["controls"].get(name, 0) + (v == "rejected")
        for name, v in laws.items():
            c["laws"].setdefault(name, {"holds": 0, "refuted": 0, "inconclusive": 0})[v] += 1

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    with Progress(TextColumn("calibrate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, disable=args.no_progress) as bar:
        job = bar.add_task("calibrate", total=len(jobs))
        if workers == 1:
            for j in jobs:
                tally(_calibration_run(j))
                bar.advance(job)
        else:
            import multiprocessing
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=one_thread_per_worker, initargs=(os.getpid(),)) as pool:
                for res in pool.map(_calibration_run, jobs):
                    tally(res)
                    bar.advance(job)
    rows, failed = [], False
    for (claim_id, case, backend), c in counts.items():
        n = c["runs"]
        ub_ref = upper_bound(c["refuted"], n)
        claim = next(x for x in claims if x.id == claim_id)
        n_verdicts = verdict_count(claim, 1 if case == SCOPE else [case])
        law_alpha = args.law_alpha or args.alpha / n_verdicts
        run_alpha = law_alpha * n_verdicts
        failed |= ub_ref > run_alpha
        row = {"claim": claim_id, "case": case, "backend": backend, "runs": n, "holds": c["holds"],
               "refuted": c["refuted"], "inconclusive": c["inconclusive"], "refuted_upper95": ub_ref,
               "not_holding_upper95": upper_bound(n - c["holds"], n), "run_alpha": run_alpha,
               "law_alpha": law_alpha,
               "power": {k: {"rejected": v, "lower95": 1 - upper_bound(n - v, n)} for k, v in c["controls"].items()},
               "laws": c["laws"], "base_seeds": [base + 1, base + args.runs], "tier": args.tier,
               "not_ok": sorted(c["missed"], key=lambda m: m["base_seed"])}
        rows.append(row)
        tag = escape(f"[{case}]")
        power = "; ".join(f"{k} rejected {v['rejected']}/{n} (>= {v['lower95']:.2f})" for k, v in row["power"].items())
        colour = "red" if ub_ref > run_alpha else "green"
        console.print(f"{claim_id} {tag} {backend}: {n} runs, laws at {law_alpha:.3g}, refuted {c['refuted']} "
                      f"([{colour}]upper 95% bound {ub_ref:.3f}[/{colour}] vs alpha {run_alpha:.3g}), inconclusive "
                      f"{c['inconclusive']}, holds {c['holds']}; power: {power}")
        for m in row["not_ok"]:
            console.print(f"  base seed {m['base_seed']}: claim {m['verdict']}"
                          + "".join(f", {k} {v}" for k, v in m["laws"].items())
                          + "".join(f"; control {k} {v}" for k, v in m["controls"].items())
                          + (f"; premise {escape(str(m['premise']))}" if "premise" in m else ""))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "calibration.json").write_text(json.dumps(rows, indent=1))
        lines = ["| claim | case | backend | runs | law alpha | refuted | inconclusive | refuted: 95% upper bound | "
                 "not holding: 95% upper bound | power against each control (rejected, 95% lower bound) |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            power = "; ".join(f"{k}: {v['rejected']}/{r['runs']} (>= {v['lower95']:.2f})" for k, v in r["power"].items())
            lines.append(f"| {r['claim']} | {r['case']} | {r['backend']} | {r['runs']} | {r['law_alpha']:.2g} | "
                         f"{r['refuted']} | "
                         f"{r['inconclusive']} | {r['refuted_upper95']:.3f} | {r['not_holding_upper95']:.3f} | {power} |")
        missed = [(r, m) for r in rows for m in r["not_ok"]]
        if missed:
            lines += ["", "Runs in which the claim did not hold or a control was not rejected (repeat one with "
                      "`--base-seed SEED-1 --runs 1`" + (" --scope: the same base seed draws the same premise" if
                                                          args.scope else "") + "):", ""]
            lines += [f"- {r['claim']} [{r['case']}] {r['backend']}, base seed {m['base_seed']}: claim {m['verdict']} ("
                      + ", ".join(f"{k} {v}" for k, v in m["laws"].items()) + ")"
                      + "".join(f"; control {k} {v}" for k, v in m["controls"].items())
                      + (f"; premise `{m['premise']}`" if "premise" in m else "") for r, m in missed]
        (out / "calibration.md").write_text("\n".join(lines) + "\n")
        console.print(f"table: {out / 'calibration.md'}")
    if failed:
        console.print("[red]a refutation rate's 95% upper bound exceeds the run's alpha[/red]: the claim is "
                      "refuted more often than its alpha allows, or too few runs bound the rate (0 of n bounds it by "
                      "about 3/n)")
    return 1 if failed else 0


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
        return {"list": cmd_list, "run": cmd_run, "report": cmd_report, "calibrate": cmd_calibrate,
                "coordcheck": cmd_coordcheck}[args.command](
            args, console)
    except HarnessError as e:
        print(f"claims: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("claims: interrupted; finished points are kept in the store", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
