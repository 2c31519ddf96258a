"""H1 (Arora et al. 2019, the CNTK) at the ci tier, on each backend, as a property over the settings the claim
quantifies over (readout, activation, images), drawn as tests/claimcheck.py describes: one drawn premise through
the claim's sequential design, each law at the level of ``claims run --all``; the claim must hold and its control
be rejected."""
import pytest
from hypothesis import given

from claimcheck import CLAIM_SETTINGS, check_claim, drawn_premise
from harness.engine.store import Store
from harness.engine.sweep import run_claim


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("cntk-init-limit"))
def test_cnn_ntk_at_init_converges_to_the_cntk(backend_name, store, premise):
    """H1: the empirical NTK of a CNN at init converges to the CNTK (seed-mean error <= 5% at 256 channels), one
    network's error falling like n^-1/2; the CNN-GP in the CNTK's place (control) stays far off."""
    check_claim("cntk-init-limit", premise, backend_name, store)


@pytest.mark.claim
@pytest.mark.parametrize("case", ["gap", "flatten"])
def test_broken_conv_multiplier_refutes_the_cntk_claim(case, mc_backend, monkeypatch, tmp_path):
    """The test can fail: give the NTK parametrisation's hidden layers (here the second convolution) an extra
    forward factor 1/sqrt(channels), as A1-A3's planted error does to the MLP, and H1 must be refuted: the networks
    then tend to another kernel than the CNTK."""
    from harness import parametrisation as P
    broken = P.Parametrisation("ntk", "ntk", {"hidden": P.ABC(a=0.5)})
    monkeypatch.setitem(P.PARAMETRISATIONS, "ntk", broken)
    from harness import get_backend
    monkeypatch.setattr(get_backend(mc_backend.framework_name, "cpu", "float64"), "_cache", {})
    with Store(tmp_path / "broken.sqlite") as store:
        (result,) = run_claim("cntk-init-limit", "ci", mc_backend.framework_name, case=case, seeds=4, store=store,
                              include_controls=False)
    assert result.verdict == "refuted", [(r.law, r.estimate, r.verdict) for r in result.claim_result.laws]
