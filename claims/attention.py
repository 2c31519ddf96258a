"""Attention: Tarzanagh, Li, Thrampoulidis & Oymak (2023), "Transformers as Support Vector Machines", Thms 2-3 and
Figure 3 (the model, the SVM and the local optimality it rests on: :mod:`harness.attention_svm`).

H2 ``attention-svm``: one layer of softmax attention with a fixed head, f(X) = v^T X^T softmax(X W z), trained by
gradient descent on the logistic loss from W = 0, on a separable token-selection problem (n sequences of T tokens
in R^d, one optimal token per sequence, the other tokens' scores spread below it), diverges in norm and converges
in direction to the attention SVM of the tokens it selects, and those are the optimal tokens (the paper's global
W_mm) in all but a few sequences.

Measurement. The randomness is the problem draw (tokens, queries, labels, head, the optimal token's position): the
engine's seed drives it. The scale is the number of gradient-descent steps; each point trains from its own start to
that count. The seeds of one step count train side by side (``seed_batch``; the gradient written out,
:func:`harness.attention_svm.train_gd`), each problem as it would alone. The SVMs come from SciPy (the dual, a
bound-constrained QP), with no training involved.

Laws (then why):
- ``direction``: the seed-mean correlation <W_t, W_mm(sel)> / (||W_t|| ||W_mm(sel)||) at the largest step count is
  >= 0.97, where sel are the tokens W_t attends most to and W_mm(sel) their SVM. The theorems' limit is 1 (Thm 2
  for the optimal tokens, Thm 3 for a locally optimal selection); the approach is slow (||W_t|| grows like log t):
  on the pilot (256 problems, jax) the mean correlation was 0.977 after 2000 steps and 0.986 after 20000 (sd
  0.005, smallest 0.964), and with 6 tokens a sequence the approach is slower still (0.981 after 20000 steps on
  the design pilot), so the ci tier asks for 0.97 after 20000 steps.
- ``optimal-tokens``: the seed-mean attention on the optimal tokens (the softmax weight, averaged over the
  sequences) at the largest step count is >= 0.9. The paper's global convergence (Thm 2) is to the optimal tokens'
  W_mm; on this premise gradient descent from 0 selected a non-optimal token in some sequence of 3.5% of the pilot
  problems (with the non-optimal scores all equal, 0 of 256), each such problem still aligned with its selection's
  SVM. A mean over sequences of a continuous weight (not the 0/1 selection) keeps an interval where every problem
  selects its optimal tokens.
- ``diverging``: the seed-mean ||W_t|| increases with the step count (the smallest rise between consecutive counts is
  > 0): no finite W minimises a loss whose infimum needs the softmax saturated on the selected tokens.

Control ``local-init`` (the paper's own contrast, Thm 3): gradient descent starts at ||W_0|| = 10 along the SVM of a
*locally optimal* selection other than the optimal one (:func:`harness.attention_svm.locally_optimal_selection`,
greedy over the sequences; the problem is redrawn from the seed's sub-seeds until one has such a selection). It
converges to that SVM and keeps attending the tokens it started on, so ``optimal-tokens`` must be refuted. It could
come out either way: from a start too small, or along a selection that is not locally optimal, gradient descent
escapes to the optimal tokens (on the pilot it did from ||W_0|| = 5 in 4 problems of 6).
"""
from __future__ import annotations

import numpy as np

from harness.attention_svm import (attention_svm, correlation, locally_optimal_selection, selected_tokens,
                                   token_selection_problem, train_gd)
from harness.engine.claim import Claim, Control, Tier
from harness.engine.laws import AtScale, Increasing


OUTPUTS = ("alignment", "alignment_global", "optimal_attention", "optimal_share", "norm", "final_loss")


def attention(X, z, W) -> np.ndarray:
    """softmax(X W z) per sequence, (n, T), in float64."""
    s = np.einsum("ntd,de,ne->nt", X, np.asarray(W, dtype=float), z)
    a = np.exp(s - s.max(axis=1, keepdims=True))
    return a / a.sum(axis=1, keepdims=True)


def _problem(seed, p):
    """The seed's token-selection problem, and the selection gradient descent starts along (``None``: from 0). With
    ``init="local"`` the problem is conditioned on having a locally optimal selection other than the optimal one:
    problems from the seed's sub-seeds are drawn until one has (at most 20; then ``None`` for the problem)."""
    for k in range(20 if p["init"] == "local" else 1):
        prob = token_selection_problem(seed if k == 0 else [seed, k], p["n_seq"], p["tokens"], p["dim"], p["gap"],
                                       p["spread"])
        if p["init"] != "local":
            return prob, None
        sel = locally_optimal_selection(*prob)
        if sel is not None:
            return prob, sel
    return None, None


def svm_alignment(settings, backend):
    """Per seed (one batch of seeds at one step count, ``seed_batch``): the correlation of W_t with the attention SVM
    of the tokens it selects (and with the optimal tokens' W_mm), the attention on the optimal tokens (mean over
    sequences) and the share of sequences whose most-attended token is the optimal one, ||W_t||, the final loss."""
    p, steps = settings[0].premise, int(settings[0].scale)
    drawn = [_problem(s.seed, p) for s in settings]
    live = [b for b, (prob, _) in enumerate(drawn) if prob is not None]
    nan = {k: float("nan") for k in OUTPUTS}
    results = [dict(nan) for _ in settings]
    if not live:
        return results
    starts = []
    for b in live:
        (X, z, y, v, opt), sel = drawn[b]
        W_start = np.zeros((p["dim"], p["dim"])) if sel is None else attention_svm(X, z, sel)[0]
        starts.append(W_start if sel is None else p["init_norm"] * W_start / np.linalg.norm(W_start))
    X, z, y, v = (np.stack([drawn[b][0][k] for b in live]) for k in range(4))
    run = train_gd(backend, X, z, y, v, np.stack(starts), p["lr"], [steps])
    for j, b in enumerate(live):
        (Xb, zb, _, _, opt), W = drawn[b][0], run["W"][-1, j]
        if not np.all(np.isfinite(W)):
            continue                                        # diverged: recorded as NaN, never a number
        sel = selected_tokens(Xb, zb, W)
        results[b] = {"alignment": correlation(W, attention_svm(Xb, zb, sel)[0]),
                      "alignment_global": correlation(W, attention_svm(Xb, zb, opt)[0]),
                      "optimal_attention": float(np.mean(attention(Xb, zb, W)[np.arange(len(opt)), opt])),
                      "optimal_share": float(np.mean(sel == opt)), "norm": float(np.linalg.norm(W)),
                      "final_loss": float(run["loss"][-1, j])}
    return results


ATTENTION_SVM = Claim(
    id="attention-svm",
    title="H2: gradient descent on softmax attention converges in direction to an attention SVM",
    paper="Tarzanagh, Li, Thrampoulidis & Oymak 2023 (Thms 2-3, Fig. 3)",
    statement="On a separable token-selection problem, gradient descent on the key-query matrix W of one softmax "
              "attention layer (fixed head, logistic loss, from W = 0) diverges in norm and converges in direction "
              "to the attention SVM of the tokens it selects (correlation >= 0.97 after 20000 steps), and it "
              "attends to the optimal tokens (mean softmax weight on them >= 0.9).",
    premise=dict(n_seq=8, tokens=4, dim=8, gap=1.0, spread=0.5, lr=1.0, init="zero", init_norm=10.0),
    scale_name="steps",
    measure=svm_alignment,
    outputs=OUTPUTS,
    laws=(
        AtScale("direction", "alignment", (0.97, None),
                what="seed-mean correlation of W_t with the SVM of the tokens it selects, at the largest step count"),
        AtScale("optimal-tokens", "optimal_attention", (0.9, None),
                what="seed-mean attention on the optimal tokens (softmax weight, mean over sequences), at the "
                     "largest step count"),
        Increasing("diverging", "norm", (0.0, None),
                   what="smallest rise of the seed-mean ||W_t|| between consecutive step counts"),
    ),
    controls=(
        Control("local-init", {"init": "local"},
                "started at ||W_0|| = 10 along the SVM of a locally optimal selection of other tokens, gradient "
                "descent converges to that SVM (the paper's Thm 3): it keeps attending the tokens it started on",
                refutes=("optimal-tokens",)),
    ),
    tiers={"ci": Tier(scales=(200, 2000, 20000), seeds=12, max_seeds=168, control_seeds=13,
                      control_scales=(20000,),
                      design="claims design --search on the design pilot (calibration/design/attention-svm: 20 runs "
                             "of its case from base seed 51001, and the 11 of its 20 scope runs from 52001 that lie "
                             "in the narrowed scope), the cheapest design whose predicted power at the level of "
                             "`claims run --all` is >= 0.9995 for the claim and its control: claim looks 12/24/48/96/"
                             "168 (14 seeds expected in the case, 20 over the scope), the control from 13 at the "
                             "largest step count (its law reads no other)"),
           "full": Tier(scales=(200, 2000, 20000, 200000), seeds=32)},
    scope={"dim": (8, 10), "tokens": (4, 6)},
    changes=(
        "H2 direction law against the SVM of the tokens gradient descent selects (catalogue: W_t / ||W_t|| -> the "
        "optimal tokens' W_mm, the paper's Thm 2): on the pilot (256 problems, spread 0.5) gradient descent from "
        "0 selected a non-optimal token in some sequence of 3.5% of the problems (one of 256 with equal "
        "non-optimal scores), and those aligned with their own selection's SVM (Thm 3), not with W_mm. The "
        "global statement became the optimal-tokens law (mean attention on the optimal tokens >= 0.9, a band "
        "chosen on that pilot); 0.98 after 20000 steps was chosen on it too. A first form of the optimal-tokens "
        "law, the share of sequences whose most-attended token is optimal, was constant (1) across the seeds of "
        "most draws (no interval): the softmax weight replaced it. Chosen on the pilots, so confirmed on fresh "
        "base seeds (calibration/ci/attention).",
        "H2 direction band 0.98 -> 0.97 (after 20000 steps) after the design pilot (20 runs of its case from base "
        "seed 51001 and 20 of its scope from 52001, calibration/design/attention-svm): over the scope, with 6 tokens "
        "a sequence, the seed-mean correlation sat at 0.981 (dim 8, 256 seeds) and 2 of 20 scope runs were "
        "inconclusive, the predicted power 0.89 with no design within 512 seeds reaching the target; at 0.98 the "
        "band sat a single problem's standard deviation from the truth. The theorem's limit is 1; no step count or "
        "band is the paper's. Confirmed on fresh base seeds.",
        "H2 scope dim (6, 8, 10) x tokens (3, 4, 6) -> dim (8, 10) x tokens (4, 6) after the same design pilot: at dim 6 "
        "with 6 tokens gradient descent from 0 attended the optimal tokens with mean weight 0.94 (lower bound 0.90 at "
        "64 seeds) against the 0.9 band, and with 3 tokens the control's weight sat at 0.83-0.86 (upper bounds 0.88-"
        "0.90 at 64-128 seeds): few sequences of 3 tokens admit a locally optimal alternative. On the narrowed scope "
        "the claim and its control are separated (0.97-1.0 against 0.64-0.80). Confirmed on fresh base seeds.",
    ),
    seed_batch=256,
)
