"""``claims``: run the theory claims as statistical tests, report, and calibrate them.

Exit status: 0 when every claim run holds and every control is rejected; 1 when a claim is refuted or
inconclusive, or a control is not rejected; 2 on bad input or an error (one line on stderr).
"""
from __future__ import annotations

import argparse
import sys
import time

EPILOG = """examples:
  claims list
  claims run --all --tier ci --backend all --report reports/ci
  claims run ntk-drift --backend jax --seeds 8
  claims report --out reports/ci
  claims calibrate ntk-drift --runs 20 --backend jax

results are stored in results/claims.sqlite (override with --store or CLAIMS_STORE); a point already stored is
never recomputed, so an interrupted run resumes where it stopped."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="claims", description="Deep-learning theory claims as statistical tests on "
                                "PyTorch and JAX.", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list the registered claims")
    ls.add_argument("--verbose", "-v", action="store_true", help="show statements, laws and controls")

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
        sp.add_argument("--alpha", type=float, default=0.05, help="false-alarm rate per run (default 0.05)")
        sp.add_argument("--store", default=None, help="SQLite results file (default results/claims.sqlite)")
        sp.add_argument("--no-progress", action="store_true", help="no progress bars")

    run = sub.add_parser("run", help="run claims and their controls; exit 0 only if all hold and all are rejected")
    common(run)
    run.add_argument("--base-seed", type=int, default=0, help="base of the derived seeds (default 0)")
    run.add_argument("--report", default=None, metavar="DIR", help="write the report (markdown + plots) here")

    rep = sub.add_parser("report", help="write the report for every run in the store")
    rep.add_argument("--store", default=None)
    rep.add_argument("--out", default="reports/latest", help="output folder (default reports/latest)")
    rep.add_argument("--alpha", type=float, default=0.05)

    cal = sub.add_parser("calibrate", help="rerun a claim K times with fresh seeds: observed false-alarm rate "
                                           "and power against its controls")
    common(cal, many=False)
    cal.add_argument("--runs", type=int, default=20, help="number of reruns K (default 20)")
    return p


def _backends(spec: str) -> list[str]:
    from .backends import BACKENDS
    from .errors import HarnessError
    if spec == "all":
        return list(BACKENDS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in BACKENDS:
            raise HarnessError(f"unknown backend {n!r}; choose torch, jax or all")
    return names


def _claims(args):
    from .claim import get_claim, registry
    from .errors import HarnessError
    if args.all:
        return list(registry().values())
    if not args.ids:
        raise HarnessError("name at least one claim id, or --all (see `claims list`)")
    return [get_claim(i) for i in args.ids]


def _check_env(backends, device, dtype_of):
    from .backends import get_backend
    for b in backends:
        get_backend(b, device, dtype_of)


def cmd_list(args, console):
    from .claim import registry
    from .laws import fmt_band
    from rich.table import Table
    t = Table(title="claims")
    for col in ("id", "title", "cases", "tiers", "controls"):
        t.add_column(col)
    for c in registry().values():
        t.add_row(c.id, c.title, ", ".join(c.cases), ", ".join(c.tiers), ", ".join(x.name for x in c.controls))
    console.print(t)
    if args.verbose:
        for c in registry().values():
            console.print(f"\n[bold]{c.id}[/bold] — {c.paper}\n  {c.statement}")
            for law in c.laws:
                band = "per premise" if callable(law.band) else fmt_band(law.band)
                console.print(f"  law {law.name}: {law.describe()} in {band}")
            for x in c.controls:
                console.print(f"  control {x.name} {x.flip}: {x.why}")
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
                                 f"[{x.estimate.low:.3g}, {x.estimate.high:.3g}] in {fmt_band(x.band)}: {x.verdict}"),
                          soft_wrap=True)
        if v.variant != "claim":
            console.print(f"  {'':>12} control {v.variant}: {v.verdict}")


def cmd_run(args, console):
    from .report import write_report
    from .store import Store
    from .sweep import run_claim
    claims = _claims(args)
    backends = _backends(args.backend)
    for c in claims:
        c.tier(args.tier)
    _check_env(backends, args.device, "float64")
    results = []
    t0 = time.perf_counter()
    with Store(args.store) as store:
        for c in claims:
            for b in backends:
                results += run_claim(c, args.tier, b, args.device, case=args.case, seeds=args.seeds,
                                     base_seed=args.base_seed, alpha=args.alpha, store=store,
                                     progress=not args.no_progress)
                for r in results[-len(c.cases) if args.case is None else -1:]:
                    _print_result(console, r)
    console.print(f"{len(results)} runs in {time.perf_counter() - t0:.1f} s")
    if args.report:
        md = write_report(results, args.report, title=f"Claims report: tier {args.tier}")
        console.print(f"report: {md}")
    return 0 if all(r.ok for r in results) else 1


def cmd_report(args, console):
    from .claim import get_claim
    from .errors import HarnessError
    from .report import write_report
    from .store import Store
    from .sweep import evaluate, tasks_for
    results = []
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
            tasks = tasks_for(claim, tier, backend, device, case, n, base_seed)
            if all(store.has(t) for t in tasks):
                results.append(evaluate(claim, tasks, store, args.alpha))
    if not results:
        raise HarnessError("no complete run in the store matches the current claims")
    md = write_report(results, args.out)
    console.print(f"report of {len(results)} runs: {md}")
    return 0 if all(r.ok for r in results) else 1


def cmd_calibrate(args, console):
    from rich.markup import escape
    from scipy.stats import binomtest
    from .claim import get_claim
    from .errors import HarnessError
    from .store import Store
    from .sweep import run_claim
    claim = get_claim(args.id)
    backends = _backends(args.backend)
    if len(backends) != 1:
        backends = backends[:1]
    if args.runs < 1:
        raise HarnessError("--runs must be >= 1")
    _check_env(backends, args.device, "float64")
    counts: dict = {}
    with Store(args.store) as store:
        for k in range(1, args.runs + 1):
            for r in run_claim(claim, args.tier, backends[0], args.device, case=args.case, seeds=args.seeds,
                               base_seed=10_000 + k, alpha=args.alpha, store=store, progress=not args.no_progress):
                c = counts.setdefault(r.case, {"runs": 0, "not_holding": 0, "refuted": 0, "controls": {}})
                c["runs"] += 1
                c["not_holding"] += r.verdict != "holds"
                c["refuted"] += r.verdict == "refuted"
                for v in r.controls:
                    c["controls"][v.variant] = c["controls"].get(v.variant, 0) + (v.verdict == "rejected")
    console.print(f"calibration of {claim.id}: {args.runs} reruns with fresh seeds (base seeds 10001..), "
                  f"backend {backends[0]}, tier {args.tier}, alpha {args.alpha}")
    for case, c in counts.items():
        n = c["runs"]

        def rate(k):
            ci = binomtest(k, n).proportion_ci(0.95, method="exact")
            return f"{k}/{n} = {k / n:.2f} (95% CI {ci.low:.2f}-{ci.high:.2f})"
        tag = escape(f"[{case}]")
        console.print(f"  {tag} false-alarm rate (claim not holding): {rate(c['not_holding'])}; "
                      f"of which refuted: {c['refuted']}/{n}")
        for ctl, k in c["controls"].items():
            console.print(f"  {tag} power against control {ctl} (rejected): {rate(k)}")
    return 0


def main(argv=None) -> int:
    from rich.console import Console
    from .errors import HarnessError
    console = Console()
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return {"list": cmd_list, "run": cmd_run, "report": cmd_report, "calibrate": cmd_calibrate}[args.command](
            args, console)
    except HarnessError as e:
        print(f"claims: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("claims: interrupted; finished points are kept in the store", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
