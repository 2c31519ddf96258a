"""Shared pieces of the claim tests (tests/test_claims_*.py).

Hypothesis draws a claim's premise from its ``scope``; network seeds are derived from the drawn settings and the
draw seed (``derive_seed``), never searched. Each test runs one drawn premise (``EXAMPLES``) through the claim's
sequential design (the tier's looks, as ``claims run`` does) and asks the claim to hold and every control to be
rejected.

The chance that the suite fails a correct commit. Each law is evaluated at ``LAW_ALPHA``, the level of
``claims run --all`` (0.05 over every verdict of the registry), spent over its variant's looks. A claim test fails
when its claim is refuted or left inconclusive, or a control is not rejected. Counting every claim test once (the
two backends measure the same networks, so their verdicts are one event, compared by the parity tests), the
chance that some claim test fails a correct commit is at most

    sum over claim tests c of (1 - power_c),

where power_c is the chance that test c passes on a premise drawn from the claim's scope: the claim holds and
every control is rejected at ``LAW_ALPHA``. That sum is ``1 -`` the predicted pass rate over the scopes, which
``claims design --from calibration/`` computes from the committed calibration records of every claim's scope
(``claims calibrate ID --scope``) under the tiers' designs. The target is that the suite fails a correct
commit with probability at most ``SUITE_FALSE_FAIL`` = 1%, which
``tests/test_engine.py::test_committed_designs_bound_the_claim_tests_false_fail_rate`` asserts. The predictive
power of a scope group is computed from one run per drawn premise, so it is conservative (the truth at each premise
is as uncertain as that one run); a claim whose laws sit close to their band's edge over some premises needs a cap
high enough that its last look resolves them (A4, ntk-ensemble-gp: cap 4096, its tier's design says why).
docs/calibration.md gives the current figure.
(A true law whose truth sits exactly on its band's edge is refuted at most ``LAW_ALPHA`` of the time per law, 0.05
over the whole suite; but such a law cannot be confirmed either, and no registered law's calibration puts it
there.)

Varied draws. The draws change whenever the code changes, so the suite does not test the same premises forever:
the draw seed is ``CLAIM_DRAW_SEED`` when set, else derived from the committed trees of ``harness/``, ``claims/``
and ``tests/`` (``git rev-parse HEAD:harness ...``: a commit that touches only documentation keeps its draws), else
from the date. Each scope's values are shuffled by it (Hypothesis tries its simplest example first, which would
otherwise always be each scope's first value) and Hypothesis is seeded with it. It is printed in the pytest header
and in every failure, so ``CLAIM_DRAW_SEED=N pytest ...`` repeats a failing draw exactly.
"""
import datetime
import os
import subprocess
import zlib

import numpy as np
from hypothesis import Phase, seed, settings, strategies as st

from harness.engine.claim import derive_seed, get_claim
from harness.engine.cli import all_level
from harness.engine.sweep import run_claim

FALSE_ALARM = 0.05              # family-wise over every verdict of the registry, as `claims run --all`
LAW_ALPHA, ALL_VERDICTS = all_level(FALSE_ALARM)
SUITE_FALSE_FAIL = 0.01         # the predicted chance that the claim tests fail a correct commit, at most
# One drawn premise per claim test and commit: the draws change with every commit, so the scope is covered across
# commits, and one sweep per claim and backend keeps the suite within its CI budget.
EXAMPLES = 1


def _draw_seed() -> int:
    if os.environ.get("CLAIM_DRAW_SEED"):
        return int(os.environ["CLAIM_DRAW_SEED"])
    try:
        trees = subprocess.run(["git", "rev-parse", "HEAD:harness", "HEAD:claims", "HEAD:tests"],
                               capture_output=True, text=True, timeout=10,
                               cwd=os.path.dirname(os.path.abspath(__file__)))
        if trees.returncode == 0 and trees.stdout.strip():
            return zlib.crc32(trees.stdout.encode())
    except (OSError, subprocess.SubprocessError):
        pass
    return datetime.date.today().toordinal()


DRAW_SEED = _draw_seed()


def claim_draws(examples=EXAMPLES):
    """Settings of a claim property: ``examples`` draws seeded by ``DRAW_SEED``, no shrinking (a verdict is a noisy
    statistic over a whole sweep, not a structural property; a failing premise is reported as drawn)."""
    def wrap(test):
        test = settings(max_examples=examples, phases=(Phase.explicit, Phase.generate), derandomize=False,
                        database=None)(test)
        return seed(DRAW_SEED)(test)
    return wrap


CLAIM_SETTINGS = claim_draws()


def drawn_premise(claim_id):
    """A strategy over the claim's scope: one value per setting, each scope shuffled by the draw seed."""
    scope = get_claim(claim_id).scope
    out = {}
    for k, values in scope.items():
        rng = np.random.default_rng([DRAW_SEED, zlib.crc32(f"{claim_id}/{k}".encode())])
        out[k] = st.sampled_from([values[i] for i in rng.permutation(len(values))])
    return st.fixed_dictionaries(out)


def check_claim(claim_id, premise, backend_name, store, case="drawn", examples=EXAMPLES):
    """Run the claim at the ci tier on the drawn premise through its sequential design, each law at ``LAW_ALPHA``;
    assert it holds and every control is rejected. A claim declaring other backends is skipped on this one."""
    import pytest
    from harness.engine.claim import get_claim
    claim = get_claim(claim_id)
    if not claim.runs_on(backend_name):
        pytest.skip(f"{claim_id} declares backends {', '.join(claim.backends)}")
    base_seed = derive_seed(DRAW_SEED, *sorted(premise.items()))
    (result,) = run_claim(claim_id, "ci", backend_name, case=case, overrides=premise, base_seed=base_seed,
                          alpha=FALSE_ALARM, law_alpha=LAW_ALPHA, verdicts=ALL_VERDICTS, store=store)
    repeat = f"(CLAIM_DRAW_SEED={DRAW_SEED}, base seed {base_seed}, each law at {result.law_alpha:.3g} over its looks)"
    laws = {r.law: (round(r.estimate.value, 4), round(r.estimate.low, 4), round(r.estimate.high, 4), r.verdict,
                    f"{r.seeds} seeds, look {r.look} of {r.looks}", r.note) for r in result.claim_result.laws}
    assert result.verdict == "holds", f"{claim_id} {premise} {repeat}: {laws}"
    for c in result.controls:
        assert c.verdict == "rejected", f"{claim_id} control {c.variant} {premise} {repeat}: " + str(
            [(r.law, r.estimate, r.verdict, r.seeds) for r in c.laws])
    return result
