"""Training many networks as one: the seeds of a claim's batch (``seed_batch``) in one batched computation.

:func:`train_ensemble` trains the members of an ensemble (parameters stacked on a leading axis, from
:meth:`Backend.init_ensemble`) side by side: every step is one batched forward and backward pass of the whole
ensemble, each member's update its own (its own gradient, optimiser state and rate), so member ``e`` ends exactly
where :meth:`Backend.train` would take ``init(model, seeds[e])`` alone (to rounding; tested). A small network's
step costs a framework dispatch or two per operation whatever its size, so E members in one step cost little more
than one: on the 2-core machine 36 one-hidden-layer ReLU nets of width 256 on 32 points trained 1000 full-batch
SGD steps in ~1 s as one ensemble and ~4-5 s one after another on JAX (torch: ~2.5 s and ~5 s; float32).

Full-batch training runs in chunks between the recorded steps through :meth:`Backend.iterate`: on JAX a chunk is
one compiled loop (one dispatch for all its steps), elsewhere a loop over the compiled step.

The model must broadcast over the member axis: :class:`~harness.models.MLP` does (its matmuls become batched),
and so does any model whose ``apply`` uses ``ops.matmul`` on the last two axes; the users' modules from
:mod:`harness.adapters` are vmapped over it. The first call checks that the outputs have the member axis.
"""
from __future__ import annotations

import numpy as np

from .backends import TrainResult
from .errors import HarnessError
from .losses import get_loss
from .optim import Optimizer


def _members(params) -> int:
    sizes = {int(v.shape[0]) for v in params.values() if len(v.shape) >= 1}
    if len(sizes) != 1 or any(len(v.shape) == 0 for v in params.values()):
        raise HarnessError("train_ensemble needs parameters stacked on a leading member axis of one length "
                           f"(Backend.init_ensemble), got shapes {({k: tuple(v.shape) for k, v in params.items()})}")
    return sizes.pop()


def train_ensemble(backend, model, params: dict, x, y, optimizer: Optimizer, steps: int, loss="mse",
                   batch_size: int | None = None, seed: int = 0, record_every: int | None = None) -> TrainResult:
    """Train the ``E`` members of the ensemble ``params`` (backend arrays stacked on a leading axis, from
    :meth:`Backend.init_ensemble`) for ``steps`` steps, as :meth:`Backend.train` trains one network: full-batch
    unless ``batch_size`` is given (minibatches drawn from ``seed``, the same order for every member), the per-layer
    rates of ``model.lr_multipliers(optimizer.kind)``.

    ``x`` (``(N, d)``) and ``y`` (``(N, k)``) are shared by the members, or given per member (``(E, N, d)``,
    ``(E, N, k)``). ``loss`` is ``"mse"``, ``"cross_entropy"`` or a function ``(outputs, y, ops) -> scalar`` of
    one member's outputs. Returns a :class:`TrainResult` whose ``params`` are the trained ensemble (stacked) and
    whose ``history["loss"]`` is ``(recorded steps, E)``: each member's training loss every ``record_every`` steps
    (default: only at the start and the end) and at the end. A member whose loss stops being finite is recorded
    as NaN from then on (diverged, never a number); the others train on, unaffected.
    """
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise HarnessError(f"steps must be a non-negative integer, got {steps!r}")
    steps = int(steps)
    every = steps if record_every is None else record_every
    if isinstance(every, bool) or int(every) != every or every < 0 or (every == 0 and steps > 0):
        raise HarnessError(f"record_every must be a positive integer, got {record_every!r}")
    every = max(int(every), 1)
    ops = backend.ops
    lf = get_loss(loss)
    with backend._context():
        xa, ya = backend._x(x), backend._x(y, "y")
        trainable, frozen = backend._split(params)
        E = _members(params)
        n = int(xa.shape[-2]) if xa is not None else 1
        for name, a, rank in (("x", xa, 2), ("y", ya, 2)):
            if a is not None and (len(a.shape) not in (rank, rank + 1) or
                                  (len(a.shape) == rank + 1 and int(a.shape[0]) != E)):
                raise HarnessError(f"{name} must be (N, ...) shared by the {E} members or ({E}, N, ...) one per "
                                   f"member, got shape {tuple(a.shape)}")
        if batch_size is not None and xa is None:
            raise HarnessError("batch_size needs inputs x to draw minibatches from")
        if batch_size is not None and not 1 <= batch_size <= n:
            raise HarnessError(f"batch_size must be in 1..{n}, got {batch_size}")
        out = backend._compile(("ensemble-apply", model), lambda p, xx: model.apply(p, xx, ops))(params, xa)
        if len(out.shape) != 3 or int(out.shape[0]) != E:
            raise HarnessError(f"{getattr(model, 'name', type(model).__name__)}: outputs of shape "
                               f"{tuple(out.shape)} for {E} stacked members; train_ensemble needs a model that "
                               "broadcasts over the leading member axis ((E, N, k) outputs)")
        builtin = isinstance(loss, str)

        def member_losses(tr, fr, xx, yy):
            o = model.apply({**tr, **fr}, xx, ops)
            ys = [yy[e] if len(yy.shape) == 3 else yy for e in range(E)]
            return ops.stack([lf(o[e], ys[e], ops) for e in range(E)])

        def total(tr, fr, xx, yy):
            if builtin:          # a built-in loss averages over its first axis (E here): E / N of it sums them
                o = model.apply({**tr, **fr}, xx, ops)
                return lf(o, yy, ops) * (o.shape[0] / o.shape[1])
            return ops.sum(member_losses(tr, fr, xx, yy))

        mults = model.lr_multipliers(optimizer.kind)
        written = getattr(backend, "_ensemble_value_and_grad", None)      # torch: the MLP's gradient written out
        vg = (written(model, loss) if written is not None and builtin else None) or backend._value_and_grad(total)
        key = ("train-ensemble", model, optimizer, loss, E)      # E: member_losses loops over the members

        def step(state):
            _, grads = vg(state["params"], state["frozen"], state["x"], state["y"])
            new, opt = optimizer.update(grads, state["opt"], state["params"], mults, ops)
            return {**state, "params": new, "opt": opt}
        losses = backend._compile(("ensemble-losses",) + key[1:], member_losses)
        one = backend._compile(key, step)
        state = {"params": trainable, "frozen": frozen, "opt": optimizer.init(trainable, ops), "x": xa, "y": ya}
        rng = np.random.default_rng(seed)
        order, pos = None, 0
        recorded, hist, diverged = [], [], np.zeros(E, dtype=bool)

        def record(t):
            values = np.asarray(backend.to_numpy(losses(state["params"], frozen, xa, ya)), dtype=float)
            diverged[:] |= ~np.isfinite(values)
            recorded.append(t)
            hist.append(np.where(diverged, np.nan, values))

        full = batch_size is None or batch_size == n
        t = 0
        record(0)
        while t < steps:
            chunk = min(every - t % every, steps - t)
            if full:
                state = backend.iterate(key, step, state, chunk)
            else:
                for _ in range(chunk):
                    if order is None or pos + batch_size > n:
                        order, pos = rng.permutation(n), 0
                    idx = backend._index(order[pos:pos + batch_size])
                    pos += batch_size
                    sub = {**state, "x": xa[..., idx, :], "y": ya[..., idx, :]}
                    state = {**one(sub), "x": xa, "y": ya}
            t += chunk
            if t % every == 0 or t == steps:
                record(t)
        return TrainResult({**state["params"], **frozen}, np.asarray(recorded), {"loss": np.stack(hist)})
