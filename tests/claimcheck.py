"""Shared pieces of the claim tests (tests/test_claims_*.py).

Hypothesis draws a claim's premise from its ``scope``; network seeds are derived from the drawn settings
(``derive_seed``), never searched. A test of ``EXAMPLES`` drawn premises runs each at alpha
``FALSE_ALARM / EXAMPLES`` (Bonferroni), so a true claim is *refuted* somewhere in it with probability at most
``FALSE_ALARM``; the test also asks the claim to *hold* (which needs power, measured by ``claims calibrate``) and
every control to be rejected.
"""
from hypothesis import Phase, settings, strategies as st

from harness.claim import derive_seed, get_claim
from harness.sweep import run_claim

FALSE_ALARM = 0.05
EXAMPLES = 2
# No shrinking: a verdict is a noisy statistic over a whole sweep, not a structural property; shrinking would rerun
# sweeps for minutes hunting a "simpler" premise. A failing premise is reported as drawn.
CLAIM_SETTINGS = settings(max_examples=EXAMPLES, phases=(Phase.explicit, Phase.generate))


def drawn_premise(claim_id):
    """A strategy over the claim's scope: one value per setting it quantifies over."""
    scope = get_claim(claim_id).scope
    return st.fixed_dictionaries({k: st.sampled_from(v) for k, v in scope.items()})


def check_claim(claim_id, premise, backend_name, store, case="drawn", examples=EXAMPLES):
    """Run the claim at the ci tier on the drawn premise; assert it holds and every control is rejected."""
    base_seed = derive_seed(*sorted(premise.items()))
    (result,) = run_claim(claim_id, "ci", backend_name, case=case, overrides=premise, base_seed=base_seed,
                          alpha=FALSE_ALARM / examples, store=store)
    laws = {r.law: (round(r.estimate.value, 4), round(r.estimate.low, 4), round(r.estimate.high, 4), r.verdict)
            for r in result.claim_result.laws}
    assert result.verdict == "holds", f"{claim_id} {premise}: {laws}"
    for c in result.controls:
        assert c.verdict == "rejected", f"{claim_id} control {c.variant} {premise}: " + str(
            [(r.law, r.estimate, r.verdict) for r in c.laws])
    return result
