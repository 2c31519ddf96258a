"""B1-B4 and D1 (Chizat et al. 2019; Woodworth et al. 2020; Yang & Hu 2021) at the ci tier, on each backend, as
properties over the settings each claim quantifies over.

Hypothesis draws the premise (data seed, input or ambient dimension, sparsity) from the claim's ``scope``, seeded by
the commit (``claimcheck.DRAW_SEED``); the seeds (network init, or the data draw for the diagonal nets) are derived
from the drawn settings and that seed (``derive_seed``), never searched, so the shrinker cannot go hunting for an
unlucky seed. Each test runs one drawn premise through the claim's sequential design, each law at the level of
``claims run --all`` (``claimcheck.LAW_ALPHA``), and asks the claim to hold and every control to be rejected
(tests/claimcheck.py states the chance that the claim tests fail a correct commit).
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
@given(premise=drawn_premise("lazy-output-scale"))
def test_large_output_scale_is_lazy(backend_name, store, premise):
    """B1: ||w - w0|| ~ 1/alpha, distance to the linearised twin ~ 1/alpha^2, function gap ~ 1/alpha; at small
    alpha (control) the twin and the gap laws fail."""
    check_claim("lazy-output-scale", premise, backend_name, store)


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("diag-implicit-bias"))
def test_diagonal_net_minimises_q_alpha(backend_name, store, premise):
    """B2: the GD solution satisfies the rowspace condition and is Q_alpha-optimal against SciPy's minimiser; a
    depth-1 net (plain linear regression, the control) is not."""
    check_claim("diag-implicit-bias", premise, backend_name, store)


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("diag-l1-l2-limits"))
def test_diagonal_net_interpolates_l1_and_l2(backend_name, store, premise):
    """B3: min-l1 and sparse recovery at small alpha, min-l2 at large alpha, l1 norm increasing in alpha; below
    the compressed-sensing sample size (control) sparse recovery fails."""
    check_claim("diag-l1-l2-limits", premise, backend_name, store)


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("diag-depth"))
def test_depth_reaches_l1_sooner(backend_name, store, premise):
    """B4: depth 3 is at the l1 limit at alpha 0.05 where depth 2 is not; depth 2 (control) is not."""
    check_claim("diag-depth", premise, backend_name, store)


@pytest.mark.claim
@pytest.mark.parametrize("case", ["mup", "ntk"])
@CLAIM_SETTINGS
@given(premise=drawn_premise("feature-learning"))
def test_feature_learning_dichotomy(backend_name, store, case, premise):
    """D1: the last hidden pre-activation moves Theta(1) under muP, Theta(n^-1/2) under NTK; standard
    parametrisation at the same learning rate (control) grows with width."""
    check_claim("feature-learning", {**get_claim("feature-learning").cases[case], **premise}, backend_name, store,
                case=case)


@pytest.mark.claim
def test_depth1_control_really_fails_the_implicit_bias(mc_backend, tmp_path):
    """The B2 test can fail: run the control's premise (depth 1) as if it were the claim; both laws must be
    refuted, not merely inconclusive, with the GD solution at least 1e-2 off the Q_alpha minimiser."""
    claim = get_claim("diag-implicit-bias")
    with Store(tmp_path / "control.sqlite") as store:
        (result,) = run_claim(claim.id, "ci", mc_backend.framework_name, overrides={"depth": 1}, store=store,
                              include_controls=False)
    assert result.verdict == "refuted", [(r.law, r.estimate, r.verdict) for r in result.claim_result.laws]
    assert all(r.verdict == "refuted" for r in result.claim_result.laws)
    worst = max(np.max(s) for s in result.claim_result.samples["distance_to_minimiser"])
    assert worst > 1e-2
