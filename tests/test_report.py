"""The report: what was tested and what was found, one markdown file with the engine's per-law plots, a claim's own
figure (``Claim.figure``) where it declares one, and results.json; a plot that fails never loses the report."""
import json

import numpy as np

from harness import Claim, Control, PowerLaw, Tier, run_claim
from harness.engine.report import write_report
from harness.engine.store import Store


def measure(setting, backend):
    rng = np.random.default_rng(setting.seed)
    slope = setting.premise["slope"]
    return {"value": float(setting.scale ** slope * np.exp(0.05 * rng.standard_normal())),
            "trace": np.full(3, setting.scale)}


def toy(figure, cid):
    return Claim(id=cid, title="toy", paper="none", statement="value ~ scale^-1/2", premise={"slope": -0.5},
                 scale_name="n", measure=measure, laws=(PowerLaw("rate", "value", (-0.6, -0.4)),),
                 controls=(Control("flat", {"slope": 0.0}, "no decay"),), tiers={"ci": Tier((4, 16, 64), 3)},
                 outputs=("value", "trace"), figure=figure)


def test_report_draws_the_claims_own_figure_for_claim_and_control(tmp_path):
    seen = []

    def figure(variant, path, title):
        seen.append((variant.variant, [a.shape for a in variant.samples["trace"]], title))
        path.write_bytes(b"png")
        return path
    with Store(tmp_path / "s.sqlite") as store:
        results = run_claim(toy(figure, "toy-report-figure"), "ci", "jax", store=store)
    md = write_report(results, tmp_path / "rep").read_text()
    assert results[0].verdict == "holds" and "toy-report-figure-default-jax-claim-figure.png" in md
    assert "toy-report-figure-default-jax-flat-figure.png" in md and "toy-report-figure-default.png" in md
    assert [s[0] for s in seen] == ["claim", "flat"] and seen[0][1] == [(3, 3)] * 3   # every output's samples
    assert json.loads((tmp_path / "rep" / "results.json").read_text())[0]["verdict"] == "holds"


def test_a_failing_figure_is_named_and_the_report_is_still_written(tmp_path):
    def figure(variant, path, title):
        raise ValueError("no data to draw")
    with Store(tmp_path / "s.sqlite") as store:
        results = run_claim(toy(figure, "toy-report-broken-figure"), "ci", "jax", store=store)
    md = write_report(results, tmp_path / "rep").read_text()
    assert "(claim figure failed: no data to draw)" in md and "| toy-report-broken-figure | default |" in md
