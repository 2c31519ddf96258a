"""What a user reads, generated from data: ``docs/claims.md`` from the registry (every claim's paper, statement,
premise, laws and bands, controls, tiers with their sequential designs, the changes made after pilots, and its
calibration with its freshness), ``docs/calibration.md`` from the committed calibration records
(``calibration/ci/``: what ``claims calibrate --out`` writes) and ``docs/api.md``, the API reference, from the
code's signatures and docstrings (:mod:`harness.engine.apidoc`), through ``claims docs``. ``tests/test_engine.py``
checks that the committed files are what the command writes, so they cannot drift from the code.

A calibration record is *current* when the code hash it was measured with (``code``: the claim's measure module
and the harness's numerics, :func:`harness.engine.sweep.code_version`) is the claim's hash now, and *stale*
otherwise: shown as such, never silently as current.
"""
from __future__ import annotations

from pathlib import Path

from .laws import fmt_band

TIER = "ci"


def _band(law) -> str:
    return "per premise" if callable(law.band) else fmt_band(law.band)


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def claim_page(claim, rows: list) -> list[str]:
    """The markdown section of one claim: ``rows`` are its calibration rows (:func:`~harness.engine.cli.design_table`)."""
    lines = [f"## `{claim.id}`: {claim.title}", "", f"*{claim.paper}*", "", f"> {claim.statement}", "",
             "**Premise.** " + ", ".join(f"`{k}={v!r}`" for k, v in claim.premise.items()) + f"; scale: "
             f"{claim.scale_name}" + (" (log axis)" if claim.log_scale else "") + f"; dtype {claim.dtype}.", ""]
    if list(claim.cases) != ["default"] or claim.cases.get("default"):
        lines += ["**Cases** (each a run of its own): " + "; ".join(
            f"`{name}` " + (", ".join(f"`{k}={v!r}`" for k, v in over.items()) or "(the premise)")
            for name, over in claim.cases.items()) + ".", ""]
    if claim.scope:
        lines += ["**Scope** (what a claim test draws from, uniformly): " + "; ".join(
            f"`{k}` in {len(v)} values" + (f" ({', '.join(map(repr, v))})" if len(v) <= 6 else
                                           f" ({v[0]!r}..{v[-1]!r})") for k, v in claim.scope.items()) + ".", ""]
    lines += ["**Laws**", "", "| law | statistic | what | band | interval | cases |", "|---|---|---|---|---|---|"]
    for law in claim.laws:
        lines.append(f"| `{law.name}` | `{law.statistic}` | {_cell(law.describe())} | {_cell(_band(law))} | "
                     f"{type(law).__name__}, {law.method} | {', '.join(law.cases) or 'all'} |")
    lines += ["", "**Negative controls** (each must refute one of the laws it is asked about)", "",
              "| control | flip | why | asked to refute |", "|---|---|---|---|"]
    for c in claim.controls:
        why = c.why + (f" Why several settings: {c.why_several}" if c.why_several else "")
        lines.append(f"| `{c.name}` | `{c.flip}` | {_cell(why)} | {', '.join(c.refutes) or 'every law'} |")
    lines += ["", "**Tiers**", "", "| tier | scales | seeds per scale at each look: claim; controls | overrides |",
              "|---|---|---|---|"]
    for name, t in claim.tiers.items():
        ctl = "/".join(map(str, t.looks(claim.controls[0].name)))
        lines.append(f"| {name} | {', '.join(f'{s:g}' for s in t.scales)}"
                     + (f" (controls: {', '.join(f'{s:g}' for s in t.control_scales)})" if t.control_scales else "")
                     + f" | {'/'.join(map(str, t.looks()))}; {ctl} | {_cell(t.overrides) if t.overrides else '-'} |")
    for name, t in claim.tiers.items():
        if t.design:
            lines += ["", f"Design of the {name} tier: {t.design_text}"]
    if claim.changes:
        lines += ["", "**Changed after a pilot** (the paper's or catalogue's version, the change, the reason):", ""]
        lines += [f"- {ch}" for ch in claim.changes]
    lines += ["", "**Calibration** (tier ci, at the level of `claims run --all`; see calibration.md)", ""]
    if not rows:
        lines.append("No calibration records.")
    for r in rows:
        power = "; ".join(f"{v} {p['power']:.4f}" for v, p in r["predicted"].items())
        level, now = r["observed_alpha"], r["law_alpha"]
        at = "" if abs(level - now) <= 1e-9 * now else f" at {level:.3g}, the level when they were measured"
        obs = (f"passed {r['observed_pass']} of {r['observed_runs']} runs{at} (95% lower bound "
               f"{r['observed_pass_lower95']:.3f})" if r["observed_runs"] else "no runs") + "".join(
            f", and {g['pass']} of {g['runs']} at {g['alpha']:.3g} (95% lower bound {g['pass_lower95']:.3f})"
            for g in r.get("observed_other", ()))
        lines.append(f"- [{r['case']}] {r['runs']} runs, base seeds {r['base_seeds'][0]}..{r['base_seeds'][1]}: "
                     f"predicted power {power}; {obs}; refuted at its own run alpha {r['refuted_own']} times "
                     f"(95% upper bound {r['refuted_own_upper95']:.3f}); records "
                     + ("current" if r["fresh"] else f"**stale** (measured by code {', '.join(r['codes'])})") + ".")
    return lines + [""]


def claims_markdown(registry: dict, rows: list) -> str:
    by_claim: dict = {}
    for r in rows:
        by_claim.setdefault(r["claim"], []).append(r)
    lines = ["# The claims", "", "Generated by `claims docs` from the registry and the calibration records in "
             "`calibration/ci/`; do not edit by hand. `claims list -v` prints the same declarations.", "",
             "| claim | title | paper | controls |", "|---|---|---|---|"]
    for cid, c in registry.items():
        lines.append(f"| [`{cid}`](#{_anchor(c)}) | {_cell(c.title)} | {_cell(c.paper)} | "
                     f"{', '.join(x.name for x in c.controls)} |")
    lines.append("")
    for cid, c in registry.items():
        lines += claim_page(c, by_claim.get(cid, []))
    return "\n".join(lines)


def _anchor(claim) -> str:
    """GitHub's anchor of the claim's heading."""
    import re
    text = f"{claim.id}: {claim.title}".lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def design_rows(records_dir: Path, alpha: float = 0.05, draws: int = 2000) -> tuple:
    """What ``calibration.md`` is written from: ``(rows, law_alpha, n_all)``, the tiers' designs applied to the
    records under ``records_dir`` (tier ci) for every package claim (:func:`harness.engine.cli.design_table`) at
    the level of `claims run --all` (``law_alpha``, over its ``n_all`` verdicts)."""
    from .claim import package_claims
    from .cli import all_level, design_table, load_records
    reg = package_claims()
    records = load_records([records_dir]) if Path(records_dir).exists() else {}
    law_alpha, n_all = all_level(alpha, reg)
    return design_table(records, list(reg), TIER, law_alpha, draws), law_alpha, n_all


def write_docs(out: Path, records_dir: Path, alpha: float = 0.05, draws: int = 2000,
               design: tuple | None = None) -> list[Path]:
    """Write ``claims.md`` and ``calibration.md`` into ``out`` from the package's claims and the records under
    ``records_dir`` (tier ci), and ``api.md`` from the code (:func:`harness.engine.apidoc.api_markdown`); returns
    the paths. ``design``: :func:`design_rows` of the same arguments where the caller has it already (the tests
    compute it once for several checks)."""
    from .claim import package_claims
    from .cli import design_markdown
    reg = package_claims()
    rows, law_alpha, n_all = design if design is not None else design_rows(records_dir, alpha, draws)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cal = out / "calibration.md"
    cal.write_text("# Calibration\n\nGenerated by `claims docs` from the calibration records in `calibration/ci/` "
                   "(written by `claims calibrate --out`); do not edit by hand.\n\n"
                   + design_markdown(rows, law_alpha, n_all))
    page = out / "claims.md"
    page.write_text(claims_markdown(reg, rows))
    from .apidoc import api_markdown
    api = out / "api.md"
    api.write_text(api_markdown())
    return [page, cal, api]
