"""H2 (Tarzanagh et al. 2023, attention as an SVM) at the ci tier, on each backend, as a property over the settings
the claim quantifies over (token dimension, sequence length), drawn as tests/claimcheck.py describes: one drawn
premise through the claim's sequential design, each law at the level of ``claims run --all``; the claim must hold
and its control (gradient descent started along a locally optimal SVM of other tokens) be rejected."""
import numpy as np
import pytest
from hypothesis import given

from claimcheck import CLAIM_SETTINGS, check_claim, drawn_premise
from harness.engine.store import Store
from harness.engine.sweep import run_claim


@pytest.mark.claim
@CLAIM_SETTINGS
@given(premise=drawn_premise("attention-svm"))
def test_attention_gradient_descent_converges_to_the_attention_svm(backend_name, store, premise):
    """H2: from W = 0 the key-query matrix grows without bound and aligns with the SVM of the tokens it selects
    (>= 0.98 after 20000 steps), the optimal tokens in >= 90% of sequences; started along a locally optimal SVM of
    other tokens (control) it keeps them."""
    check_claim("attention-svm", premise, backend_name, store)


@pytest.mark.claim
def test_a_wrong_svm_refutes_the_direction_law(mc_backend, monkeypatch, tmp_path):
    """The test can fail: solve each sequence's SVM constraint with the next sequence's query (a planted error in
    the reference), and the direction law must be refuted: gradient descent does not align with that matrix."""
    import claims.attention as A
    true_svm = A.attention_svm
    monkeypatch.setattr(A, "attention_svm", lambda X, z, sel: true_svm(X, np.roll(z, 1, axis=0), sel))
    with Store(tmp_path / "wrong.sqlite") as store:
        (result,) = run_claim("attention-svm", "ci", mc_backend.framework_name, store=store, include_controls=False)
    laws = {r.law: r for r in result.claim_result.laws}
    assert laws["direction"].verdict == "refuted", [(r.law, r.estimate, r.verdict) for r in laws.values()]
