"""Optimisers as optax-style pairs of pure functions over parameter dicts, written once with ``ops``.

``opt.init(params, ops) -> state`` and ``opt.update(grads, state, params, lr_mults, ops) -> (params, state)``.
``lr_mults`` maps parameter names to the per-layer learning-rate multipliers of the model's parametrisation.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import HarnessError


@dataclass(frozen=True)
class Optimizer:
    """An optimiser as data: ``kind`` (``"sgd"`` or ``"adam"``), the learning rate ``lr`` (> 0), SGD's heavy-ball
    ``momentum`` (0: none) and Adam's ``b1``, ``b2``, ``eps``. Build one with :func:`sgd` or :func:`adam`;
    :meth:`Backend.train` runs it, each parameter's rate ``lr`` times the model's multiplier for ``kind``
    (:meth:`Model.lr_multipliers`)."""
    kind: str                 # "sgd" or "adam"
    lr: float
    momentum: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self):
        if self.kind not in ("sgd", "adam"):
            raise HarnessError(f"unknown optimizer {self.kind!r}; known: sgd, adam")
        if not self.lr > 0:
            raise HarnessError(f"learning rate must be > 0, got {self.lr!r}")

    def init(self, params, ops):
        """The optimiser's state for ``params`` (the trainable backend arrays): ``{"t": 0}`` plus the moments it
        keeps (``m`` for momentum and Adam, ``v`` for Adam) as zeros shaped like the parameters."""
        if self.kind == "adam":
            return {"t": 0, "m": {k: ops.zeros_like(v) for k, v in params.items()},
                    "v": {k: ops.zeros_like(v) for k, v in params.items()}}
        if self.momentum:
            return {"t": 0, "m": {k: ops.zeros_like(v) for k, v in params.items()}}
        return {"t": 0}

    def update(self, grads, state, params, lr_mults, ops):
        """One step: ``(new params, new state)`` from the gradients ``grads``, the state and the parameters, each
        parameter's rate ``lr * lr_mults.get(name, 1)``. Pure (new arrays, inputs untouched), written with ``ops``
        (a backend's ``ops.adam_update``, where it has one, runs Adam's step as fused kernels)."""
        t = state["t"] + 1
        new, new_state = {}, {"t": t}
        if self.kind == "adam":
            fused = getattr(ops, "adam_update", None)       # a backend's multi-tensor form of the lines below
            if fused is not None:
                return fused(self, grads, state, params, lr_mults, t)
            ms, vs = {}, {}
            for k, g in grads.items():
                m = self.b1 * state["m"][k] + (1 - self.b1) * g
                v = self.b2 * state["v"][k] + (1 - self.b2) * g * g
                mhat = m / (1 - self.b1 ** t)
                vhat = v / (1 - self.b2 ** t)
                new[k] = params[k] - self.lr * lr_mults.get(k, 1.0) * mhat / (ops.sqrt(vhat) + self.eps)
                ms[k], vs[k] = m, v
            new_state.update(m=ms, v=vs)
        elif self.momentum:
            ms = {}
            for k, g in grads.items():
                ms[k] = self.momentum * state["m"][k] + g
                new[k] = params[k] - self.lr * lr_mults.get(k, 1.0) * ms[k]
            new_state["m"] = ms
        else:
            for k, g in grads.items():
                new[k] = params[k] - self.lr * lr_mults.get(k, 1.0) * g
        return new, new_state


def sgd(lr: float, momentum: float = 0.0) -> Optimizer:
    """(Minibatch or full-batch) gradient descent; full batch when training is given no batch size."""
    return Optimizer("sgd", lr, momentum=momentum)


def adam(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba 2015) with bias correction: ``p - lr * mult * mhat / (sqrt(vhat) + eps)``."""
    return Optimizer("adam", lr, b1=b1, b2=b2, eps=eps)
