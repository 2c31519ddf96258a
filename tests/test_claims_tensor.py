"""C1-C3 (Wang et al. 2020; Ge et al. 2021) at the ci tier, on each backend, as properties over each claim's scope
(see tests/claimcheck.py: the premise is drawn from the scope, seeded by the commit; each test runs the claim's
sequential design at the level of ``claims run --all`` and asks the claim to hold and every control to be rejected);
plus tests that the claims can fail: the
lazy count law against a wrong count, and a planted bug in the deflation model's normalisation.
"""
import numpy as np
import pytest
from hypothesis import given

from claimcheck import CLAIM_SETTINGS, check_claim, drawn_premise
from harness.engine.claim import get_claim
from harness.engine.store import Store
from harness.engine.sweep import run_claim


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("tensor-lazy-threshold"))
def test_lazy_threshold_is_the_dimension_count(backend_name, store, premise):
    """C1: the smallest m whose lazy tangent span fits a generic rank-r target is ceil(C(d+2, 3) / d) at every d,
    growing polynomially; gradient descent's smallest sufficient m (control) does not grow."""
    check_claim("tensor-lazy-threshold", premise, backend_name, store)


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("tensor-beyond-lazy"))
def test_gradient_descent_goes_beyond_lazy(backend_name, store, premise):
    """C2 (plain GD, m = 12): recovery in >= 90% of seeds at d = 10, 20, 40, far below the lazy threshold (22, 77,
    287), smallest sufficient m (restricted at the grid's top) growing at most like log d; with m = r = 2
    (control) training mostly stalls with one component fitted."""
    check_claim("tensor-beyond-lazy", premise, backend_name, store)


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("tensor-beyond-lazy-wang"))
def test_wang_variant_goes_beyond_lazy(backend_name, store, premise):
    """C2 (the paper's variant: normalised model, weight decay, re-initialisation; m = 8): recovery in >= 90% of
    seeds at d = 10, 20, 40, far below the lazy threshold (22, 77, 287), smallest sufficient m growing at most
    like log d; with m = r = 2 (control) training stalls too often for >= 90%."""
    check_claim("tensor-beyond-lazy-wang", premise, backend_name, store)


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("tensor-deflation"))
def test_deflation_fits_larger_components_first(backend_name, store, premise):
    """C3: t1 < t2 < t3 < t4 in >= 90% of seeds and a_i t_i nearly constant; the lazy centred model (control) fits
    in no particular order."""
    check_claim("tensor-deflation", premise, backend_name, store)


@pytest.mark.claim
def test_planted_normalisation_bug_refutes_deflation(mc_backend, tmp_path):
    """C3 can fail: the deflation model with its normalisation ||w||^-(l-2) dropped (norm_power 0: the plain
    4-homogeneous model, a plausible slip) no longer escapes in order within the step budget; the ordered law is
    refuted, not merely inconclusive (8 seeds suffice: 0/8 has an exact upper bound far below 0.9)."""
    claim = get_claim("tensor-deflation")
    with Store(tmp_path / "bug.sqlite") as store:
        (result,) = run_claim(claim.id, "ci", mc_backend.framework_name, overrides={**claim.premise, "norm_power": 0},
                              seeds=8, store=store, include_controls=False)
    laws = {r.law: r for r in result.claim_result.laws}
    assert result.verdict == "refuted", [(r.law, r.estimate, r.verdict) for r in laws.values()]
    assert laws["ordered"].verdict == "refuted"


@pytest.mark.claim
def test_lazy_count_law_can_fail(mc_backend, tmp_path):
    """C1 can fail: the exact count law holds on a count error of 0 and is refuted on a count error of 1 (planted
    values: it compares exactly, no interval to hide in); and a lazy fit asked for a residual below float64
    rounding (1e-20) finds no m, so the claim does not hold (it is not declared true on a failed measurement)."""
    claim = get_claim("tensor-lazy-threshold")
    law = claim.laws[0]
    scales = [6.0, 8.0]
    right = law.evaluate(scales, [np.zeros(3), np.zeros(3)], claim.premise, 0.05)
    wrong = law.evaluate(scales, [np.zeros(3), np.ones(3)], claim.premise, 0.05)
    assert right.verdict == "holds" and wrong.verdict == "refuted"
    with Store(tmp_path / "tol.sqlite") as store:
        (result,) = run_claim(claim.id, "ci", mc_backend.framework_name,
                              overrides={**claim.premise, "lazy_tol": 1e-20}, seeds=3, store=store,
                              include_controls=False)
    assert result.verdict != "holds"
