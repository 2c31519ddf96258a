"""Learning-rate sweeps for learning-rate transfer (Yang et al. 2021, TP-V; CLAIMS.md D2), written once against
the backend's primitives.

- :func:`teacher_classes`: inputs on the sphere and labels from a random ReLU teacher (one-hot), in NumPy.
- :func:`train_lr_grid`: train the same initial network once per learning rate of a grid and return each final
  training loss. The learning rate is an *argument* of one compiled step (the optimiser runs at lr 1 with every
  per-layer multiplier scaled by it), so a grid of rates costs one compilation, not one per rate. A run whose loss
  is not finite is recorded as diverged (NaN), never as a number.
  ``batched=True`` (the default) trains the whole grid as one ensemble: every parameter gets a leading axis of
  one member per rate (biases ``(L, 1, fan_out)``), the model's own ``apply`` broadcasts over it (an MLP's
  matmuls become batched matmuls), the loss is the sum of the members' losses (so each member's gradient is its
  own) and each member's update uses its own rate. One compiled step then serves the whole grid: L times fewer
  dispatches, larger matmuls. ``batched=False`` is the one-rate-at-a-time loop it is tested and benchmarked
  against (the same numbers up to rounding).
- :func:`optimum_location`: where a loss curve over a log-spaced grid is lowest, as the vertex of the parabola
  fitted to the grid minimum and its two neighbours on each side (in log2 lr); NaN, with the reason, when the minimum sits on
  the edge of the grid (not bracketed: the grid must be widened) or the rate below it diverged; when the rate
  above it diverged (the optimum at the edge of stability, common under SGD) the grid minimum itself.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import HarnessError
from .losses import get_loss
from .optim import Optimizer


def teacher_classes(n: int, d: int, classes: int, seed: int, teacher_width: int = 64):
    """(x, y): ``n`` points on the sphere of radius sqrt(d) and one-hot labels argmax of a random one-hidden-layer
    ReLU teacher (weights N(0, 1/fan_in)) with ``classes`` outputs, all from ``seed``."""
    if n < 1 or d < 1 or classes < 2 or teacher_width < 1:
        raise HarnessError(f"teacher_classes needs n, d, teacher_width >= 1 and classes >= 2, got "
                           f"n={n}, d={d}, classes={classes}, teacher_width={teacher_width}")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    x = x * np.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True)
    w1 = rng.standard_normal((d, teacher_width)) / np.sqrt(d)
    w2 = rng.standard_normal((teacher_width, classes)) / np.sqrt(teacher_width)
    logits = np.maximum(x @ w1, 0.0) @ w2
    y = np.eye(classes)[np.argmax(logits, axis=1)]
    return x, y


def lr_step_fn(backend, model, kind: str, loss="mse", b1=0.9, b2=0.999, eps=1e-8):
    """Compiled step (trainable, frozen, state, x, y, lr) -> (trainable, state, loss value), with the learning
    rate a runtime argument (a 0-d backend array): one compilation serves a whole grid of rates."""
    opt = Optimizer(kind, 1.0, b1=b1, b2=b2, eps=eps)
    mults = model.lr_multipliers(kind)
    vg = backend._value_and_grad(backend._loss_fn(model, loss))

    def step(trainable, frozen, state, x, y, lr):
        value, grads = vg(trainable, frozen, x, y)
        scaled = {k: lr * mults.get(k, 1.0) for k in trainable}
        trainable, state = opt.update(grads, state, trainable, scaled, backend.ops)
        return trainable, state, value
    return backend._compile(("lr-step", model, kind, loss, b1, b2, eps), step), opt


class GridRun(NamedTuple):
    lrs: np.ndarray          # the learning rates
    final_loss: np.ndarray   # training loss after the budget, NaN where the run diverged
    diverged: np.ndarray     # 1.0 where the loss (at any recorded step) was not finite


def ensemble_step_fn(backend, model, kind: str, loss="mse", b1=0.9, b2=0.999, eps=1e-8):
    """Compiled step over an ensemble (every parameter with a leading member axis L):
    (trainable, frozen, state, x, y, lr of shape (L,)) -> (trainable, state, summed loss). The loss summed over
    members has each member's own loss gradient; each member is updated at its own rate."""
    opt = Optimizer(kind, 1.0, b1=b1, b2=b2, eps=eps)
    mults = model.lr_multipliers(kind)
    lf = get_loss(loss)
    ops = backend.ops

    def total(trainable, frozen, x, y):
        out = model.apply({**trainable, **frozen}, x, ops)             # (L, N, k)
        # lf averages over its first axis, here the L members: L / N times it is the sum of the members' means
        return lf(out, y, ops) * (out.shape[0] / out.shape[1])

    vg = backend._value_and_grad(total)

    def step(trainable, frozen, state, x, y, lr):
        value, grads = vg(trainable, frozen, x, y)
        scaled = {k: ops.reshape(lr, (-1,) + (1,) * (len(v.shape) - 1)) * mults.get(k, 1.0)
                  for k, v in trainable.items()}
        trainable, state = opt.update(grads, state, trainable, scaled, ops)
        return trainable, state, value
    return backend._compile(("ensemble-step", model, kind, loss, b1, b2, eps), step), opt


def stack_params(params: dict, members: int) -> dict:
    """NumPy parameters -> an ensemble of ``members`` copies (leading axis; 1-D biases become (L, 1, n))."""
    out = {}
    for k, v in params.items():
        v = np.asarray(v, dtype=float)
        v = v[None] if v.ndim > 1 else v[None, None]
        out[k] = np.repeat(v, members, axis=0)
    return out


def train_lr_grid(backend, model, params, x, y, kind: str, lrs, steps: int, loss="mse",
                  batch_size: int | None = None, seed: int = 0, batched: bool = True) -> GridRun:
    """Training from ``params`` for ``steps`` steps at each learning rate in ``lrs`` (optimiser ``kind``: "sgd"
    or "adam", the model's per-layer multipliers applied); returns the final losses on the whole training set.

    Full batch unless ``batch_size`` is given; then minibatches are drawn without replacement (reshuffled each
    epoch) from ``seed``, in the same order for every learning rate, so the rates are compared on equal terms."""
    lrs = np.asarray(lrs, dtype=float)
    if lrs.ndim != 1 or not np.all(lrs > 0):
        raise HarnessError("lrs must be a 1-D array of positive learning rates")
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise HarnessError(f"steps must be a positive integer, got {steps!r}")
    n = np.asarray(x).shape[0]
    if batch_size is not None and not 1 <= batch_size <= n:
        raise HarnessError(f"batch_size must be in 1..{n}, got {batch_size}")
    batches = _batches(n, batch_size, int(steps), seed)
    final, div = np.full(len(lrs), np.nan), np.zeros(len(lrs))
    if batched:
        return _train_ensemble(backend, model, params, x, y, kind, lrs, int(steps), loss, batches)
    with backend._context():
        xa, ya = backend._x(x), backend._x(y, "y")
        data = [(xa, ya)] if batches is None else [(xa[i], ya[i]) for i in (backend._index(b) for b in batches)]
        trainable0, frozen = backend._split(params)
        step, opt = lr_step_fn(backend, model, kind, loss)
        lossfn = backend._compile(("loss", model, loss), backend._loss_fn(model, loss))
        for i, lr in enumerate(lrs):
            trainable = dict(trainable0)
            state = opt.init(trainable, backend.ops)
            lr_a = backend._asarray(np.asarray(lr, dtype=backend.np_dtype))
            for t in range(int(steps)):
                xb, yb = data[0] if batches is None else data[t]
                trainable, state, value = step(trainable, frozen, state, xb, yb, lr_a)
            last = float(backend.to_numpy(lossfn(trainable, frozen, xa, ya)))
            if np.isfinite(last):
                final[i] = last
            else:
                div[i] = 1.0
    return GridRun(lrs, final, div)


def _train_ensemble(backend, model, params, x, y, kind, lrs, steps, loss, batches) -> GridRun:
    L = len(lrs)
    with backend._context():
        xa, ya = backend._x(x), backend._x(y, "y")
        data = [(xa, ya)] if batches is None else [(xa[i], ya[i]) for i in (backend._index(b) for b in batches)]
        trainable, frozen = backend._split(backend.load_params(stack_params(backend.export_params(params), L)))
        step, opt = ensemble_step_fn(backend, model, kind, loss)
        state = opt.init(trainable, backend.ops)
        lr_a = backend._asarray(np.asarray(lrs, dtype=backend.np_dtype))
        for t in range(steps):
            xb, yb = data[0] if batches is None else data[t]
            trainable, state, _ = step(trainable, frozen, state, xb, yb, lr_a)
        lossfn = backend._compile(("loss", model, loss), backend._loss_fn(model, loss))
        members = {k: backend.to_numpy(v) for k, v in {**trainable, **frozen}.items()}
        final, div = np.full(L, np.nan), np.zeros(L)
        for i in range(L):
            p = {k: v[i] if params[k].ndim > 1 else v[i, 0] for k, v in members.items()}
            if all(np.all(np.isfinite(v)) for v in p.values()):
                tr, fr = backend._split({k: backend._asarray(v) for k, v in p.items()})
                last = float(backend.to_numpy(lossfn(tr, fr, xa, ya)))
            else:
                last = float("nan")
            if np.isfinite(last):
                final[i] = last
            else:
                div[i] = 1.0
    return GridRun(np.asarray(lrs, dtype=float), final, div)


def _batches(n, batch_size, steps, seed):
    """The minibatch index arrays of ``steps`` steps (None for full batch)."""
    if batch_size is None or batch_size == n:
        return None
    rng = np.random.default_rng(seed)
    out, order, pos = [], None, 0
    for _ in range(steps):
        if order is None or pos + batch_size > n:
            order, pos = rng.permutation(n), 0
        out.append(order[pos:pos + batch_size])
        pos += batch_size
    return out


class Optimum(NamedTuple):
    location: float          # log2 of the best learning rate (NaN when not bracketed)
    value: float             # the lowest loss on the grid (NaN when every rate diverged)
    index: int               # the grid index of the lowest loss (-1 when every rate diverged)
    note: str                # why there is no location ('' when there is one)


def optimum_location(lrs, losses) -> Optimum:
    """Vertex of the least-squares parabola in log2(lr) through the lowest finite loss and its two neighbours on
    each side (one on each side near the grid's edge or a diverged rate), kept inside the points it was fitted to.

    The grid must be evenly spaced in log2(lr). No location (NaN and a note) when the lowest loss is at either end of the grid or a neighbour
    diverged: the optimum is then not bracketed by the grid, and a number would be a guess."""
    u = np.log2(np.asarray(lrs, dtype=float))
    f = np.asarray(losses, dtype=float)
    if u.ndim != 1 or u.shape != f.shape or len(u) < 3:
        raise HarnessError("optimum_location needs matching 1-D grids of at least 3 learning rates and losses")
    h = np.diff(u)
    if not np.allclose(h, h[0], rtol=1e-9, atol=1e-12) or h[0] <= 0:
        raise HarnessError("the learning-rate grid must be increasing and evenly spaced in log2")
    if not np.any(np.isfinite(f)):
        return Optimum(np.nan, np.nan, -1, "every learning rate diverged")
    i = int(np.nanargmin(np.where(np.isfinite(f), f, np.nan)))
    best = float(f[i])
    if i == 0 or i == len(f) - 1:
        return Optimum(np.nan, best, i, f"the lowest loss is at the edge of the grid (lr = 2^{u[i]:g})")
    lo, mid, hi = f[i - 1], f[i], f[i + 1]
    if not np.isfinite(lo):
        return Optimum(np.nan, best, i, f"the rate below the lowest loss (lr = 2^{u[i]:g}) diverged")
    if not np.isfinite(hi):
        # the loss rises into divergence above the minimum: the optimum is the stable rate next to the edge of
        # stability, the grid minimum itself (a parabola cannot use a diverged point, which has no loss)
        return Optimum(float(u[i]), best, i, f"the rate above the lowest loss (lr = 2^{u[i]:g}) diverged: the "
                                             f"grid minimum is the optimum")
    # the least-squares parabola through the minimum and two neighbours each side when they are all on the grid
    # and finite (less sensitive to one noisy loss), else through the minimum and its two neighbours
    j = np.arange(i - 2, i + 3)
    if j[0] < 0 or j[-1] >= len(f) or not np.all(np.isfinite(f[j])):
        j = np.arange(i - 1, i + 2)
    a, b, _ = np.polyfit(u[j] - u[i], f[j], 2)
    if not a > 0:                                   # no upward curvature: the grid minimum is the best estimate
        return Optimum(float(u[i]), best, i, "")
    shift = float(np.clip(-b / (2 * a), u[j[0]] - u[i], u[j[-1]] - u[i]))
    return Optimum(float(u[i] + shift), best, i, "")


def plot_lr_curves(widths, lrs, losses, path, title: str = "", optima=None):
    """TP-V's learning-rate panel (Fig. 1): the training loss after the budget against log2 learning rate, one curve
    per width (the seed mean, a diverged rate left out of the mean and marked at the top), and each width's
    optimum if given. ``losses[i]`` is width i's (seeds, rates) array. Returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = np.log2(np.asarray(lrs, dtype=float))
    fig, ax = plt.subplots(figsize=(4.6, 3.6))
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(widths)))
    top = []
    for i, (w, loss) in enumerate(zip(widths, losses)):
        loss = np.asarray(loss, dtype=float).reshape(-1, len(lrs))
        with np.errstate(all="ignore"):
            mean = np.where(np.all(np.isfinite(loss), axis=0), np.nanmean(loss, axis=0), np.nan)
        ax.plot(lrs, mean, marker="o", ms=3, color=colours[i], label=f"width {int(w)}")
        top.append(np.nanmax(mean) if np.any(np.isfinite(mean)) else np.nan)
        if optima is not None and np.isfinite(optima[i]):
            ax.axvline(optima[i], color=colours[i], lw=0.8, ls=":")
    ceiling = np.nanmax(top) if np.any(np.isfinite(top)) else 1.0
    for i, loss in enumerate(losses):
        loss = np.asarray(loss, dtype=float).reshape(-1, len(lrs))
        bad = ~np.all(np.isfinite(loss), axis=0)
        if bad.any():
            ax.scatter(lrs[bad], np.full(bad.sum(), ceiling), marker="x", color=colours[i], s=18)
    ax.set_yscale("log")
    ax.set_xlabel("log2 learning rate")
    ax.set_ylabel("training loss after the budget")
    ax.legend(fontsize=7, title="x: diverged in some seed", title_fontsize=6)
    if title:
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
