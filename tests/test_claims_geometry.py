"""G1 (Sankararaman et al. 2020) at the ci tier, on each backend, as a property over the claim's scope (input
dimension N = d), drawn by ``claimcheck`` (seeded by the commit); G2 (Sagun et al. 2017; Papyan 2020) likewise.
Each test runs the claim's sequential design at the level of ``claims run --all`` and asks the claim to hold and
every control to be rejected (tests/claimcheck.py: the chance the claim tests fail a correct commit)."""
import numpy as np
import pytest
from hypothesis import given

from claimcheck import CLAIM_SETTINGS, check_claim, drawn_premise
from harness import HarnessError
from harness.engine.claim import get_claim
from harness.geometry import gradient_confusion, largest_gap_index
from harness.engine.store import Store
from harness.engine.sweep import run_claim


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("gradient-confusion"))
def test_gradient_confusion_falls_with_width_rises_with_depth(backend_name, store, premise):
    """G1: c ~ n^-1/2 over n >= 512 and c(depth 2) > c(depth 1) at n = 128 (paired); Gaussian inputs, ReLU, and
    both (controls) plateau, refuting the exponent band."""
    check_claim("gradient-confusion", premise, backend_name, store)


@pytest.mark.claim
def test_relu_gaussian_control_really_plateaus(mc_backend, tmp_path):
    """The G1 test can fail: the catalogue's control (ReLU, Gaussian inputs) run as if it were the claim refutes
    the exponent band, with c above 0.3 at every width (the claim's c at n = 4096 is about 0.05)."""
    claim = get_claim("gradient-confusion")
    with Store(tmp_path / "control.sqlite") as store:
        (result,) = run_claim(claim.id, "ci", mc_backend.framework_name, store=store, include_controls=False,
                              overrides={**claim.premise, "activation": "relu", "inputs": "gaussian"})
    rate = {r.law: r for r in result.claim_result.laws}["rate"]
    assert rate.verdict == "refuted", rate
    assert min(np.mean(s) for s in result.claim_result.samples["confusion"]) > 0.3


def test_gradient_confusion_statistic():
    """c = -min cos over distinct pairs: known values, scale invariance, NaN (never a number) for a zero
    gradient, one-line error for bad shapes."""
    g = np.array([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    assert gradient_confusion(g) == pytest.approx(1.0)
    assert gradient_confusion(g[:2]) == pytest.approx(0.0)
    assert gradient_confusion(5 * g) == pytest.approx(1.0)
    assert np.isnan(gradient_confusion(np.array([[1.0, 0.0], [0.0, 0.0]])))
    with pytest.raises(HarnessError):
        gradient_confusion(np.ones(3))
    assert largest_gap_index(np.array([10.0, 9.0, 1.0, 0.5])) == 1


def test_power_law_scale_range_fits_only_its_range():
    """A law with ``scale_range`` ignores the scales outside it: c = n^-1/2 above 512 and flat below fits -1/2
    exactly (a deterministic check of the point estimate), where a power law over every scale would not."""
    from harness.engine.laws import PowerLaw
    scales = np.array([128.0, 512, 1024, 2048, 4096])
    rng = np.random.default_rng(0)
    noise = 1 + 0.01 * rng.standard_normal((5, 6))
    truth = np.where(scales < 512, 512.0 ** -0.5, scales ** -0.5)
    samples = [t * z for t, z in zip(truth, noise)]
    exact = [np.full(6, t) for t in truth]
    over = PowerLaw("rate", "c", (-0.65, -0.35), scale_range=(512, None))
    assert over.point(*over.select(scales, exact, {})) == pytest.approx(-0.5, abs=1e-12)
    est = over.estimate(*over.select(scales, samples, {}), 0.99)
    assert abs(est.value + 0.5) < 0.02 and est.low < -0.5 < est.high
    assert over.evaluate(scales, samples, {}, 0.01).estimate.value == est.value
    assert PowerLaw("rate", "c", (-0.65, -0.35)).estimate(scales, samples, 0.99).value > -0.46