"""G2 hessian-outliers: PILOT ONLY, not registered (the registry skips modules starting with ``_``).

Claim (Sagun, Evci, Guney, Dauphin & Bottou 2017, "Empirical Analysis of the Hessian of Over-Parametrized Neural
Networks"; Papyan 2019, 2020): for a C-class problem with class structure and an MLP trained under cross-entropy,
the Hessian spectrum is a bulk near zero plus about C outliers, so the largest gap among the top few dozen
eigenvalues sits below the (C-1)-th or the C-th; the bulk's edge shrinks relative to the outliers as the width
grows; random labels (no class structure) remove the gap.

Why it is not a registered claim yet. The issue asks to pilot first and, if the outlier structure is not robust at
the ci scale, to give the figures and move the claim to the full tier rather than loosen its laws. At every CPU
scale piloted (below) it was not robust: the largest gap sat at C - 1 or C in a minority of runs, and random
labels did no worse. A full-tier-only claim would still be run at the ci tier by ``claims run --all`` and the claim
tests (every registered claim needs a ci tier), where it would come out refuted or inconclusive; and no scale has
yet shown the structure, so a full tier could not be justified by any measurement here (no GPU in this session).
:func:`draft_claim` is the declaration to register once a pilot at GPU scale (wider nets, more data, a real
C-class data set, training stopped at moderate loss) shows the structure; its laws are the paper's, unchanged.

Pilot figures (jax float64; C classes of a Gaussian mixture ``harness.geometry.gaussian_mixture`` with class means
``sep`` apart in norm and unit noise; standard-parametrised MLP with bias, full-batch SGD on cross-entropy; top 24
eigenvalues by ``Backend.hessian_top_k`` at tol 1e-3; "gap" = 0-based index of the largest gap, so C outliers give
C - 1):

- C = 4, d = 16, 64 per class, sep 3, tanh depth 2, lr 0.5, 300 steps (loss <= 0.005), widths 32 / 128 / 512,
  3 seeds each: gap 1, 0, 1 at every width (two outliers, not C); random labels: gap 0 in 8 of 9, 3 in one.
  Bulk-edge / 3rd eigenvalue ratio 0.77-0.96 with no trend in width.
- Same data, width 128, 4 seeds: sep 3 at init [0, 0, 1, 0], after 20 steps [1, 0, 0, 1], 100 steps [1, 0, 0, 1];
  sep 1.5, 100 steps [0, 0, 1, 1]; random labels [0, 0, 1, 1], [2, 0, 2, 1], [0, 0, 8, 8]. C = 8: sep 3 at init
  [0, 0, 0, 0], 50 steps [0, 2, 0, 0]; sep 1.5, 100 steps [3, 5, 0, 2] (C - 1 = 7 never).
- sep 10, width 64, 3 seeds: C = 4 at init [3, 3, 2] (C outliers in 2 of 3) but random labels [1, 2, 2]; after 30
  steps [0, 2, 0] (random labels [5, 11, 0]); C = 8 after 30 steps [0, 0, 0].
- d = 32, 128 per class, width 128, lr 0.2, ReLU and tanh, sep 5 and 10, 10 and 60 steps, 3 seeds each: the gap
  at C - 1 = 3 in 2 of 24 runs (tanh, sep 10); random labels: gap at 0, 2 or 11.

- A real 10-class data set (2026-11-30; scikit-learn's ``load_digits``, 1000 of its 1797 8x8 images, pixels / 16,
  centred; not a dependency of the suite, the script was a pilot outside it): standard-parametrised ReLU MLP with
  2 hidden layers of width 256 and bias, full-batch SGD at lr 0.5 on cross-entropy, float32, top 24, seeds 0 and
  1. After 10 steps (loss 0.44, accuracy 0.94) the largest gap (absolute, and also of log eigenvalue) sits at
  index 8 in both seeds: C - 1 = 9 outliers, as Papyan describes. But random labels (loss 2.23) give index 8 in
  both seeds too, with the same 9-plus-bulk shape (top 1.9..1.4, then 0.34). After 40 steps (loss 0.11) the
  absolute gap moves to index 1 (log gap 7, 8); random labels still 8, 8. Width 128 trained 300 steps (loss 0.009):
  index 1; random labels (loss 1.1): 1. So at this scale the C - 1 outliers come from the softmax's rank-(C - 1)
  curvature and the mean logit gradient, which random labels keep: the issue's control does not separate here,
  and the claim would need a different control (or a later stage of training at a scale not reached on the CPU).

``python -m claims._hessian_outliers_pilot`` reruns the first line's grid.
"""
import numpy as np

from harness import MLP, sgd
from harness.geometry import gaussian_mixture, largest_gap_index


def outlier_spectrum(setting, backend):
    """One point: train on the mixture (or its labels permuted, ``labels="random"``), then the top ``k``
    Hessian eigenvalues with certified residuals. A diverged run (non-finite loss) is recorded as NaN."""
    p = setting.premise
    c = p["classes"]
    x, lab = gaussian_mixture(p["per_class"], c, p["input_dim"], p["separation"], setting.seed)
    if p["labels"] == "random":
        lab = np.random.default_rng([setting.seed, 1]).permutation(lab)
    y = np.eye(c)[lab]
    model = MLP(p["input_dim"], int(setting.scale), p["depth"], "standard", p["activation"], output_dim=c, bias=True)
    params = backend.init(model, setting.seed)
    run = backend.train(model, params, x, y, sgd(p["lr"]), p["steps"], loss="cross_entropy",
                        record_every=p["steps"])
    loss = float(run.history["loss"][-1])
    nan = float("nan")
    if not np.isfinite(loss):
        return {"outlier_gap": nan, "bulk_ratio": nan, "final_loss": nan, "diverged": 1.0}
    top = backend.hessian_top_k(model, run.params, x, y, k=p["k"], loss="cross_entropy", tol=1e-3, seed=0)
    v = top.values
    gap = largest_gap_index(v)
    return {"outlier_gap": float(gap in (c - 2, c - 1)),     # C - 1 or C outliers above the largest gap
            "bulk_ratio": float(v[c] / v[c - 1]) if v[c - 1] > 0 else nan,
            "final_loss": loss, "diverged": 0.0}


def draft_claim():
    """The declaration to register after a successful GPU-scale pilot (not called at import)."""
    from harness.engine.claim import Claim, Control, Tier
    from harness.engine.laws import PowerLaw, Proportion
    return Claim(
        id="hessian-outliers",
        title="G2: the trained Hessian is a bulk plus about C outliers",
        paper="Sagun et al. 2017; Papyan 2019, 2020",
        statement="For a C-class problem with class structure and an MLP trained under cross-entropy, the largest "
                  "gap among the top eigenvalues sits below the (C-1)-th or C-th, and the bulk's edge shrinks "
                  "relative to the outliers as the width grows.",
        premise=dict(classes=4, input_dim=16, per_class=64, separation=3.0, labels="mixture", depth=2,
                     activation="tanh", lr=0.5, steps=300, k=24),
        scale_name="width",
        measure=outlier_spectrum,
        laws=(Proportion("outlier-gap", "outlier_gap", (0.5, None),
                         what="fraction of seeds with the largest gap at C-1 or C outliers"),
              PowerLaw("bulk-edge", "bulk_ratio", (None, 0.0),
                       what="exponent of (first bulk eigenvalue / last outlier) in the width")),
        controls=(Control("random-labels", {"labels": "random"}, "labels permuted: no class structure",
                          refutes=("outlier-gap",)),),
        tiers={"ci": Tier(scales=(32, 128, 512), seeds=12), "full": Tier(scales=(256, 1024, 4096), seeds=24)},
    )


def main():
    from harness import get_backend
    from harness.engine.claim import Setting, derive_seed
    claim = draft_claim()
    be = get_backend("jax", "cpu", "float64")
    for labels in ("mixture", "random"):
        for width in (32, 128, 512):
            gaps = []
            for r in range(3):
                s = Setting(claim.id, "pilot", labels, {**claim.premise, "labels": labels}, float(width),
                            derive_seed("g2-pilot", labels, width, r))
                gaps.append(outlier_spectrum(s, be))
            print(labels, width, [round(g["outlier_gap"]) for g in gaps], [round(g["bulk_ratio"], 3) for g in gaps],
                  flush=True)


if __name__ == "__main__":
    main()
