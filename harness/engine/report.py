"""Reports: per claim a plot (statistic vs scale, seed spread, the fitted law with its CI band, the control
beside) and a markdown summary of what was tested and what was found (``README.md``), the same as one
self-contained HTML page (``report.html``: figures inline, the summary table at the top linking to each claim's
section, for CI to publish), and ``results.json`` for machines."""
from __future__ import annotations

import datetime
import json
import math
import warnings
from pathlib import Path

import numpy as np

from .claim import get_claim
from .laws import PowerLaw, fmt_band

MARKERS = {"jax": "o", "torch": "s"}


def _fmt(x):
    return "nan" if x is None or not np.isfinite(x) else f"{x:.4g}"


def _esc(text) -> str:
    """Text for a markdown table cell (a ``|`` in it would end the cell)."""
    return str(text).replace("|", "\\|")


def _law_rows(variant):
    return [f"| {variant.variant} | {r.law} | {_esc(r.description)} | {_fmt(r.estimate.value)} | "
            f"[{_fmt(r.estimate.low)}, {_fmt(r.estimate.high)}] ({r.estimate.method}) | {fmt_band(r.band)} | "
            f"{r.seeds} | {r.look} of {r.looks} | {r.alpha:.2g} | "
            f"**{r.verdict}**{' — ' + _esc(r.note) if r.note else ''} |"
            for r in variant.laws]


def _seeds_cell(r) -> str:
    """Seeds per scale each variant measured, and its design's looks."""
    def one(v):
        return f"{v.seeds}" + (f" of {'/'.join(map(str, v.looks))}" if len(v.looks) > 1 else "")
    return "; ".join(f"{v.variant} {one(v)}" for v in [r.claim_result] + list(r.controls))


def label_scales(ax, scales, log: bool) -> None:
    """Tick the scale axis at the tier's own scales (no minor tick labels to overlap on a log axis)."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    scales = sorted({float(s) for s in scales})
    if log:
        ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(scales))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(scales, [f"{s:g}" for s in scales], fontsize=7, rotation=45 if len(scales) > 5 else 0)


def plot_claim(results: list, path: Path) -> Path | None:
    """One figure per (claim, case): a panel per law; every backend and variant on the same axes."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claim = get_claim(results[0].claim)
    laws = list(claim.laws)
    fig, axes = plt.subplots(1, len(laws), figsize=(4.6 * len(laws), 3.8), squeeze=False)
    colours = {}
    for ax, law in zip(axes[0], laws):
        for res in results:
            for v in [res.claim_result] + list(res.controls):
                if law.statistic not in v.samples:
                    continue
                col = colours.setdefault(v.variant, f"C{len(colours)}")
                scales = np.asarray(v.scales, float)
                summ = np.array([law.summary(s) for s in v.samples[law.statistic]])
                label = f"{v.variant} ({res.backend})"
                ax.plot(scales, summ, marker=MARKERS.get(res.backend, "^"), color=col, lw=1, label=label,
                        mfc="none" if res.backend == "torch" else col)
                sample0 = v.samples[law.statistic][0]
                if sample0.ndim == 1 and law.summary.__name__ == "mean_over_seeds":
                    for s, vals in zip(scales, v.samples[law.statistic]):
                        ax.scatter(np.full(len(vals), s), vals, s=6, color=col, alpha=0.3)
                fit = next((r for r in v.laws if r.law == law.name), None)
                if isinstance(law, PowerLaw) and fit is not None and np.all(summ > 0) and fit.estimate.defined:
                    x0, y0 = np.exp(np.mean(np.log(scales))), np.exp(np.mean(np.log(summ)))
                    xs = np.geomspace(scales.min(), scales.max(), 50)
                    lo = y0 * (xs / x0) ** fit.estimate.low
                    hi = y0 * (xs / x0) ** fit.estimate.high
                    ax.fill_between(xs, np.minimum(lo, hi), np.maximum(lo, hi), color=col, alpha=0.12)
        positive = all(np.all(np.array([law.summary(s) for s in v.samples.get(law.statistic, [])]) > 0)
                       for res in results for v in [res.claim_result] + list(res.controls))
        label_scales(ax, [s for res in results for v in [res.claim_result] + list(res.controls) for s in v.scales],
                     claim.log_scale)
        if isinstance(law, PowerLaw) and positive:
            ax.set_yscale("log")
        ax.set_xlabel(claim.scale_name)
        ax.set_ylabel(f"{law.statistic} ({law.summary.__name__.replace('_', ' ')})")
        ax.set_title(f"{law.name}: {fmt_band(law.band_for(results[0].premise))}", fontsize=9)
        ax.legend(fontsize=6)
    fig.suptitle(f"{claim.id} [{results[0].case}] — {claim.title}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(results: list, out_dir: str | Path, title: str = "Claims report") -> Path:
    """Markdown summary + plots + results.json for a list of RunResults; returns the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups: dict = {}
    for r in results:
        groups.setdefault((r.claim, r.case), []).append(r)
    ok = all(r.ok for r in results)
    lines = [f"# {title}", "",
             f"Generated {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}. "
             f"{len(results)} runs over {len({r.claim for r in results})} claims; overall: "
             f"**{'every claim holds and every control is rejected' if ok else 'NOT all claims hold / controls rejected'}**.",
             "",
             "Verdicts: a law *holds* when its confidence interval lies inside the band, is *refuted* when the "
             "interval lies outside it, and is *inconclusive* otherwise (or when there is no interval: the reason "
             "is printed beside the verdict). A control is *rejected* when at least one of its laws is refuted. "
             "Intervals are Student t intervals on jackknife standard errors (Welch-Satterthwaite degrees of "
             "freedom), BCa bootstrap, exact binomial, or exact for deterministic quantities, as each row says; "
             "their coverage at these levels is measured in tests/test_coverage.py.", "",
             _family(results), "",
             "Seeds: every claim, case, control, scale and replicate has its own derived seed (recorded with each "
             "point), so a control is an independent sample. The backends draw the *same* seeds: torch and JAX "
             "measure the same networks, so their agreement is a parity check, not a replication, and the "
             "verdicts of one claim case on two backends count once in the family.", "",
             "Looks: each claim case is measured in looks (a first batch of seeds per scale, doubling up to the "
             "tier's cap, the sequential design of `claims design`); a law is decided by its first conclusive look, "
             "each look evaluated at the law's alpha divided by the number of looks, and a variant stops when it is "
             "decided. The seeds column gives the seeds per scale each variant measured, out of its design's looks.",
             "",
             "| claim | case | backend | tier | verdict | controls | seeds per scale (of the looks) | alpha | time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        ctl = ", ".join(f"{c.variant}: {c.verdict}" for c in r.controls) or "-"
        lines.append(f"| [{r.claim}](#{anchor(r.claim, r.case)}) | {r.case} | {r.backend}/{r.device} | {r.tier} | "
                     f"**{r.verdict}** | {ctl} | {_seeds_cell(r)} | {r.alpha:g} | {r.seconds:.1f} |")
    for (cid, case), rs in groups.items():
        claim = get_claim(cid)
        lines += ["", f'<a id="{anchor(cid, case)}"></a>', "", f"## {claim.id} [{case}]: {claim.title}", "",
                  f"*{claim.paper}*", "",
                  f"> {claim.statement}", "",
                  "Premise: " + ", ".join(f"`{k}={v}`" for k, v in rs[0].premise.items()), ""]
        for c in claim.controls:
            lines.append(f"- Control **{c.name}** (`{c.flip}`): {c.why}"
                         + (f" Why several settings: {c.why_several}" if c.why_several else ""))
        if claim.changes:
            lines += ["", "Changed after a pilot run (the paper's version, the change, the reason; confirmed by "
                      "`claims calibrate` on fresh random seeds):", ""]
            lines += [f"- {ch}" for ch in claim.changes]
        try:
            png = plot_claim(rs, out / f"{cid}-{case}.png")
            lines += ["", f"![{cid} {case}]({png.name})", ""]
        except Exception as e:          # a plot must never lose the report
            lines += ["", f"(plot failed: {e})", ""]
        if claim.figure is not None:
            lines += claim_figures(claim, rs, out)
        for r in rs:
            lines += [f"**{r.backend}/{r.device} {r.dtype}**, tier `{r.tier}`, seeds per scale: {_seeds_cell(r)}, "
                      f"base seed {r.base_seed}, scales {r.claim_result.scales}, family-wise alpha {r.alpha:g} over "
                      f"{r.verdicts} verdicts (each law at {r.law_alpha:.3g}, spent over its variant's looks), code "
                      f"{r.code}, measured in {r.seconds:.1f} s: claim **{r.verdict}**", "",
                      "| variant | law | statistic | estimate | CI | band | seeds | look | level | verdict |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            lines += _law_rows(r.claim_result)
            for c in r.controls:
                lines += _law_rows(c)
            lines.append("")
    md = out / "README.md"
    md.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps([summary_dict(r) for r in results], indent=1, default=str))
    write_html(md, out / "report.html", title, ok)
    return md


def anchor(claim_id: str, case: str) -> str:
    """The id of a claim case's section (the summary table links to it)."""
    return f"{claim_id}--{case}".replace(" ", "-")


CSS = """body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:2em auto;
padding:0 1.2em;color:#1d232a}h1{font-size:1.7em}h2{font-size:1.25em;margin-top:2.2em;border-top:1px solid #d8dee4;
padding-top:1em}table{border-collapse:collapse;margin:.8em 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:3px 7px;vertical-align:top}th{background:#f3f5f7}tr:nth-child(even) td
{background:#fafbfc}img{max-width:100%;height:auto;margin:.4em 0}blockquote{margin:.6em 0;padding:.2em 1em;
border-left:4px solid #d0d7de;color:#444}code{background:#f3f5f7;padding:0 3px;border-radius:3px;font-size:90%}
.banner{padding:.7em 1em;border-radius:6px;font-weight:600;margin:1em 0}.ok{background:#dafbe1;color:#116329}
.bad{background:#ffebe9;color:#a40e26}strong{font-weight:650}"""


def write_html(md: Path, path: Path, title: str, ok: bool) -> Path:
    """One self-contained HTML page of the report (what CI can publish as an artifact): the markdown rendered by
    Python-Markdown (tables), every figure inlined as a data URI, a banner with the overall verdict, and the
    summary table's claims linked to their sections. Verdict words are coloured."""
    import base64
    import html
    import re
    import markdown
    body = markdown.markdown(md.read_text(), extensions=["tables"], output_format="html")

    def inline(m):
        src = m.group(2)
        png = md.parent / src
        if not png.exists():
            return m.group(0)
        data = base64.b64encode(png.read_bytes()).decode()
        return f'{m.group(1)}data:image/png;base64,{data}"'
    body = re.sub(r'(<img[^>]*?src=")([^"]+)"', inline, body)
    colours = {"holds": "#116329", "rejected": "#116329", "refuted": "#a40e26", "not rejected": "#a40e26",
               "inconclusive": "#9a6700"}
    body = re.sub(r"<strong>(holds|refuted|inconclusive|rejected|not rejected)</strong>",
                  lambda m: f'<strong style="color:{colours[m.group(1)]}">{m.group(1)}</strong>', body)
    banner = (f'<div class="banner {"ok" if ok else "bad"}">'
              + ("Every claim holds and every control is rejected." if ok else
                 "Not every claim holds or not every control is rejected: see the table.") + "</div>")
    body = body.replace("</h1>", "</h1>" + banner, 1)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>'
            f"<body>{body}</body></html>")
    path.write_text(page)
    return path


def claim_figures(claim, results: list, out: Path) -> list[str]:
    """The claim's own figure (``Claim.figure``) for each backend's claim and control: markdown lines."""
    lines = []
    for r in results:
        row, failed = [], []
        for v in [r.claim_result] + list(r.controls):
            name = f"{claim.id}-{r.case}-{r.backend}-{v.variant}-figure.png"
            try:
                with warnings.catch_warnings():     # NaN (diverged) points are drawn as gaps: numpy's warnings
                    warnings.simplefilter("ignore", RuntimeWarning)     # about them are no news to the reader
                    png = claim.figure(v, out / name, f"{claim.id} [{r.case}] {v.variant} ({r.backend})")
                row.append(f"![{claim.id} {r.case} {v.variant} {r.backend}]({Path(png).name})")
            except Exception as e:      # a figure must never lose the report
                failed.append(f"({v.variant} figure failed: {e})")
        # one line per backend: the claim's figure beside its controls'
        lines += ([" ".join(row), ""] if row else []) + [x for f in failed for x in (f, "")]
    return lines


def _family(results) -> str:
    r = results[0]
    return (f"Family-wise alpha: **{r.alpha:g}** over **{r.verdicts}** verdicts (Bonferroni; every law of every "
            f"claim case and every law a control is asked to refute), so each law is evaluated at "
            f"{r.law_alpha:.3g}: the chance that this report refutes anything true is at most {r.alpha:g}.")


def summary_dict(r) -> dict:
    def laws(v):
        return [{"law": x.law, "statistic": x.statistic, "estimate": x.estimate.value, "ci": [x.estimate.low,
                 x.estimate.high], "confidence": x.estimate.confidence, "method": x.estimate.method,
                 "note": x.note, "band": list(x.band), "verdict": x.verdict, "seeds": x.seeds, "look": x.look,
                 "looks": x.looks, "level_alpha": x.alpha}
                for x in v.laws]
    return {"claim": r.claim, "case": r.case, "backend": r.backend, "device": r.device, "dtype": r.dtype,
            "tier": r.tier, "seeds": r.seeds, "looks": list(r.claim_result.looks),
            "control_seeds": {c.variant: c.seeds for c in r.controls}, "base_seed": r.base_seed, "alpha": r.alpha,
            "law_alpha": r.law_alpha,
            "verdicts": r.verdicts, "code": r.code, "seconds": r.seconds,
            "premise": r.premise, "verdict": r.verdict, "scales": r.claim_result.scales,
            "laws": laws(r.claim_result),
            "controls": [{"control": c.variant, "verdict": c.verdict, "laws": laws(c)} for c in r.controls]}
