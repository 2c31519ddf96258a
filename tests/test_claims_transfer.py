"""D2 learning-rate transfer (Yang et al. 2021, TP-V), Adam (muP vs standard) and SGD (muP vs NTK), at the ci
tier on each backend, as properties over the data seed drawn from the claim's ``scope`` (seeded by the commit,
``claimcheck.DRAW_SEED``; network seeds derived, never searched). Each test runs one drawn premise at family-wise
alpha ``FALSE_ALARM`` (divided by the engine over the run's verdicts): a true claim is refuted in a test with
probability at most ``FALSE_ALARM``. Each asks the claim to hold and the control to be rejected.

The planted-error test shows the claim test can fail: muP's hidden-layer Adam rate not divided by the width
(TP-V Table 3's eta / m replaced by eta) must refute D2.
"""
import pytest
from hypothesis import given

from claimcheck import CLAIM_SETTINGS, check_claim, drawn_premise
from harness.store import Store
from harness.sweep import run_claim


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("lr-transfer"))
def test_adam_learning_rate_transfers_under_mup(backend_name, store, premise):
    """D2 (Adam): the optimal rate's slope in log2 width is within +-0.25 and wider is better under muP; under the
    standard parametrisation (control) the optimum moves to smaller rates."""
    check_claim("lr-transfer", premise, backend_name, store)


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("lr-transfer-sgd"))
def test_sgd_learning_rate_transfers_under_mup(backend_name, store, premise):
    """D2 (SGD): as D2 with SGD; under the NTK parametrisation (control) the optimum moves to larger rates."""
    check_claim("lr-transfer-sgd", premise, backend_name, store)


@pytest.mark.claim
def test_planted_error_in_the_mup_table_refutes_lr_transfer(mc_backend, monkeypatch, tmp_path):
    """The D2 test can fail: muP with the hidden layer's Adam rate not divided by the width (c_adam 1 -> 0, so
    every hidden weight moves at eta instead of eta / m) must refute the slope law."""
    from harness import get_backend
    from harness import parametrisation as P
    real = P.PARAMETRISATIONS["mup"]
    broken = P.Parametrisation("mup", real.style, {**real.table, "hidden": P.ABC(c_sgd=0.0, c_adam=0.0)})
    monkeypatch.setitem(P.PARAMETRISATIONS, "mup", broken)
    # compiled steps are cached per model, and an equal MLP compiled earlier would keep the real table
    monkeypatch.setattr(get_backend(mc_backend.framework_name, "cpu", "float32"), "_cache", {})
    with Store(tmp_path / "broken.sqlite") as store:
        (result,) = run_claim("lr-transfer", "ci", mc_backend.framework_name, store=store, include_controls=False)
    slope = next(r for r in result.claim_result.laws if r.law == "optimum-slope")
    assert slope.verdict == "refuted", (slope.estimate, slope.verdict)


@pytest.mark.claim
@pytest.mark.parametrize("case", ["sgd", "adam"])
@CLAIM_SETTINGS
@given(premise=drawn_premise("coord-check"))
def test_coordinate_check_is_flat_under_mup(backend_name, store, case, premise):
    """coord-check: every layer's change from init has exponent within +-0.15 in the width under muP (SGD and
    Adam); under the standard parametrisation (control) the hidden layers' change grows with the width."""
    from harness.claim import get_claim
    check_claim("coord-check", {**get_claim("coord-check").cases[case], **premise}, backend_name, store, case=case)


@pytest.mark.claim
def test_planted_error_in_the_mup_table_fails_the_coordinate_check(mc_backend, monkeypatch, tmp_path):
    """The coordinate check can fail: the hidden layer's Adam rate not divided by the width makes the hidden
    layers' change grow with the width, which refutes the Adam case."""
    from harness import get_backend
    from harness import parametrisation as P
    real = P.PARAMETRISATIONS["mup"]
    broken = P.Parametrisation("mup", real.style, {**real.table, "hidden": P.ABC(c_sgd=0.0, c_adam=0.0)})
    monkeypatch.setitem(P.PARAMETRISATIONS, "mup", broken)
    monkeypatch.setattr(get_backend(mc_backend.framework_name, "cpu", "float64"), "_cache", {})
    with Store(tmp_path / "broken.sqlite") as store:
        (result,) = run_claim("coord-check", "ci", mc_backend.framework_name, case="adam", store=store,
                              include_controls=False)
    assert result.verdict == "refuted", [(r.law, r.estimate, r.verdict) for r in result.claim_result.laws]
