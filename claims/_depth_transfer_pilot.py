"""Depth-wise learning-rate transfer under depth-muP: PILOT ONLY, not registered (the registry skips modules starting
with ``_``). Issue 22: "pilot and state at the full tier".

Claim (Yang, Yu, Zhu & Hayou 2023, "Tensor Programs VI: Feature Learning in Infinite-Depth Neural Networks",
Depth-muP, Fig. 1; Bordelon, Noci, Li, Hanin & Pehlevan 2023, "Depthwise Hyperparameter Transfer in Residual
Networks", Fig. 1): in a residual network whose branches are scaled by 1/sqrt(depth) (muP in the width), the
learning rate that minimises the training loss after a fixed budget does not move as the depth grows; in a plain
residual network (branch multiplier 1) it moves to smaller rates, and the largest stable rate with it.

Premise of the pilot: :class:`harness.resnet.ResMLP` (input layer, ``depth`` blocks ``h + branch * W2 relu(W1
relu(h))``, readout), width 64, the table's muP at its base width (so the width multipliers are 1 and only the
branch multiplier differs between the claim and its control), 4-class cross-entropy on the labels of a random ReLU
teacher (1024 points on the sphere in R^16, ``harness.transfer.teacher_classes``: D2's data), 120 steps of SGD on
minibatches of 32, one rate per octave from 2^-10 to 2^0, every rate trained from the same initialisation
(``harness.transfer.train_lr_grid``) and the optimum located as D2 locates it
(``harness.transfer.optimum_location``). Scale: the depth.

Pilot figures (torch float64, 2026-12-04, on a machine shared with a calibration; per-seed optima in log2 lr):

- depth-muP (``branch="depth-mup"``), depths 2, 4, 8, 16, 32, 3 seeds: optima [-1.47 -1.83 -2.08],
  [-2.11 -1.00 -1.62], [-1.00 -1.92 -1.00], [-1.00 -2.05 -1.97], [-1.00 -2.44 -1.88]; best seed-mean loss 0.336,
  0.349, 0.335, 0.319, 0.337. The largest stable rate is 2^-1 at every depth (2^0 diverges from depth 4 on).
- plain residual (``branch="1"``), the same seeds: optima [-1.92 -2.40 -2.00], [-3 -2 -3], [-4 -4 -5],
  [-7.00 -6.00 -8.05], and at depth 32 every rate of the grid down to 2^-10 diverged. The largest stable rate
  falls 2^-1, 2^-2, 2^-4, 2^-8 (depths 2..16): about 1.5 octaves per doubling of the depth.

- The draft through the engine (``claims run depth-lr-transfer --path claims/_depth_transfer_pilot.py --tier ci
  --backend torch --workers 1``, its ci tier: depths 2..16, first batch 8 doubling to 32; at this command's own
  level, 0.025 over its 2 verdicts): the claim holds at the cap, slope 0.047 [-0.080, 0.173] (32 seeds, look 3 of
  3); the control is refuted, -1.64 [-1.82, -1.45] (12 seeds); 212 s of one core.

So at CPU scale the contrast is large: the control's optimum moves about -1.6 grid steps per doubling, against a
slope near 0 under depth-muP (seed scatter about 0.5 octave, from the ragged edge of stability where SGD's
optimum sits). The draft claim below states D2's law for the depth: ``optimum-slope`` in [-0.25, 0.25] per
doubling (one grid step over 16x), the control refuting it.

Why it is not registered yet. A registered claim runs its ci tier in ``claims run --all`` and in the claim tests,
and joins the registry only calibrated on its sequential design (issue 21). At the pilot's scale one seed of the
claim costs about 4.4 s of one core over depths 2..16 (9 s to depth 32), and the engine run above needed its cap
of 32 seeds per depth at its own level (0.025); at the ``--all`` level (0.000476) the t interval is about 1.6x
wider, so about 2.6x the seeds (some 80 per depth): about 6 minutes of one core per backend for the claim alone,
more than the whole headline run's budget per claim. The draft therefore states the full tier (GPU) as the paper's
scale, and a ci tier of depths 2..16 (the control's grid does not reach depth 32's optimum) to be designed and
calibrated before it is registered: ``claims run depth-lr-transfer --path claims/_depth_transfer_pilot.py --tier
ci`` runs the draft through the engine (sequential looks, laws, control) without registering it. Adam needs
depth-muP's own rate rule (block rates scaled 1/sqrt(depth), TP-VI), which :class:`ResMLP` does not have: SGD
only.

``python -m claims._depth_transfer_pilot`` reruns the pilot's grid (about a minute of one core).
"""
import numpy as np

from harness.engine.claim import Claim, Control, Tier
from harness.engine.laws import LogSlope
from harness.resnet import ResMLP
from harness.transfer import optimum_location, teacher_classes, train_lr_grid


def lr_grid(premise):
    lo, hi = premise["log2_lr"]
    return 2.0 ** np.arange(lo, hi + 1, dtype=float)


def depth_optimum(setting, backend):
    """One (depth, seed): the whole rate grid trained from one initialisation; the optimum's location in log2 lr
    (NaN when not bracketed: the grid's edge, or every rate diverged), its loss and the diverged rates."""
    p = setting.premise
    model = ResMLP(input_dim=p["input_dim"], width=p["width"], depth=int(setting.scale),
                   parametrisation=p["parametrisation"], branch=p["branch"], output_dim=p["classes"],
                   base_width=p["base_width"])
    x, y = teacher_classes(p["n_train"], p["input_dim"], p["classes"], p["data_seed"])
    lrs = lr_grid(p)
    run = train_lr_grid(backend, model, backend.init(model, setting.seed), x, y, "sgd", lrs, p["steps"],
                        loss="cross_entropy", batch_size=p["batch"], seed=setting.seed + 1)
    opt = optimum_location(lrs, run.final_loss)
    return {"log2_lr_opt": opt.location, "best_loss": opt.value,
            "diverged_rates": float(np.sum(run.diverged)), "losses": run.final_loss}


DEPTH_LR_TRANSFER = Claim(
    id="depth-lr-transfer",
    title="depth-lr-transfer: under depth-muP the best learning rate does not move with the depth (draft)",
    paper="Yang, Yu, Zhu & Hayou 2023 (TP-VI, Fig. 1); Bordelon et al. 2023 (Fig. 1)",
    statement="In a residual network with branches scaled 1/sqrt(depth), the learning rate that minimises the "
              "training loss after a fixed budget does not move as the depth grows; with unscaled branches it "
              "moves to smaller rates.",
    premise=dict(width=64, base_width=64, parametrisation="mup", branch="depth-mup", input_dim=16, classes=4,
                 n_train=1024, data_seed=0, steps=120, batch=32, log2_lr=(-10, 0)),
    scale_name="depth",
    measure=depth_optimum,
    outputs=("log2_lr_opt", "best_loss", "diverged_rates", "losses"),
    laws=(LogSlope("optimum-slope", "log2_lr_opt", (-0.25, 0.25), nonfinite="inconclusive",
                   what="grid steps the optimal log2 rate moves per doubling of the depth"),),
    controls=(Control("plain-residual", {"branch": "1"},
                      "branch multiplier 1: the optimum moves to smaller rates with the depth"),),
    tiers={"ci": Tier(scales=(2, 4, 8, 16), seeds=8, max_seeds=32, control_seeds=3,
                      design="draft: not designed or calibrated (pilot only; see the module's description)"),
           "full": Tier(scales=(2, 4, 8, 16, 32, 64), seeds=16, control_scales=(2, 4, 8, 16))},
)


def main():
    from harness import get_backend
    from harness.engine.claim import Setting
    be = get_backend("torch", "cpu", "float64")
    c = DEPTH_LR_TRANSFER
    for branch in ("depth-mup", "1"):
        for depth in (2, 4, 8, 16, 32):
            out = [depth_optimum(Setting(c.id, "pilot", branch, {**c.premise, "branch": branch}, float(depth), s), be)
                   for s in range(3)]
            print(f"branch {branch:9s} depth {depth:2d}: optima {np.round([o['log2_lr_opt'] for o in out], 2)}, "
                  f"diverged rates {[int(o['diverged_rates']) for o in out]}", flush=True)


if __name__ == "__main__":
    main()
