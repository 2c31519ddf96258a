"""The report: what was tested and what was found, one markdown file with the engine's per-law plots, a claim's own
figure (``Claim.figure``) where it declares one, the same as one self-contained HTML page, and results.json; a plot
that fails never loses the report."""
import json
import re
import shutil
import subprocess

import pytest

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
    assert "(claim figure failed: no data to draw)" in md and "toy-report-broken-figure](#" in md


def test_a_figure_of_diverged_points_draws_without_numpy_warnings(tmp_path):
    """A figure averaging a column whose every point diverged (NaN, as lr-transfer's loss curves do at the rates
    that blow up) draws it as a gap; numpy's "Mean of empty slice" is no news to the reader and is not printed."""
    import warnings

    def figure(variant, path, title):
        np.nanmean(np.full((3, 2), np.nan), axis=0)
        path.write_bytes(b"png")
        return path
    with Store(tmp_path / "s.sqlite") as store:
        results = run_claim(toy(figure, "toy-report-nan-figure"), "ci", "jax", store=store)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        md = write_report(results, tmp_path / "rep").read_text()
    assert "toy-report-nan-figure-default-jax-claim-figure.png" in md
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_html_report_is_self_contained_and_renders_in_a_real_browser(tmp_path):
    """report.html inlines every figure (no file beside it is needed), links each summary row to its claim's
    section, and renders in headless Chromium (Debian's package; skipped where none is installed) into a page a
    reader sees: the verdict banner in colour and the figures drawn, not a blank page."""
    with Store(tmp_path / "s.sqlite") as store:
        results = run_claim(toy(None, "toy-report-html"), "ci", "jax", store=store)
    write_report(results, tmp_path / "rep")
    page = (tmp_path / "rep" / "report.html").read_text()
    assert 'src="data:image/png;base64,' in page and 'src="toy' not in page
    links = re.findall(r'href="#([^"]+)"', page)
    assert links and all(f'id="{a}"' in page for a in links), links
    assert "Every claim holds and every control is rejected." in page
    browser = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)),
                   None)
    if browser is None:
        pytest.skip("no Chromium on this machine (Debian: apt-get install chromium)")
    shot = tmp_path / "shot.png"
    html_copy = tmp_path / "alone" / "report.html"          # alone in a folder: nothing beside it to load
    html_copy.parent.mkdir()
    shutil.copy(tmp_path / "rep" / "report.html", html_copy)
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1400",
                    f"--screenshot={shot}", html_copy.as_uri()], check=True, capture_output=True, timeout=120)
    import matplotlib.image
    img = matplotlib.image.imread(shot)[..., :3]
    drawn = np.mean(np.any(img < 0.9, axis=-1))                  # share of pixels that are not (near) white
    banner = np.mean(np.all(np.abs(img - np.array([0xda, 0xfb, 0xe1]) / 255) < 0.02, axis=-1))
    plot_blue = np.mean(np.all(np.abs(img - np.array([0x1f, 0x77, 0xb4]) / 255) < 0.08, axis=-1))
    assert drawn > 0.03 and banner > 0.003 and plot_blue > 1e-4, (drawn, banner, plot_blue)
