"""Losses as pure functions of (outputs, targets, ops). Means are over samples."""
from __future__ import annotations

from .errors import HarnessError


def mse(out, y, ops):
    """0.5 * mean over samples of the squared error summed over outputs (the catalogue's '0.5*MSE')."""
    diff = out - y
    return 0.5 * ops.sum(diff * diff) / out.shape[0]


def cross_entropy(out, y, ops):
    """Softmax cross-entropy; ``y`` one-hot (or probabilities) with the same shape as ``out``."""
    return -ops.sum(y * ops.log_softmax(out, axis=-1)) / out.shape[0]


LOSSES = {"mse": mse, "cross_entropy": cross_entropy}


def get_loss(name):
    """The loss function named ``name`` (a key of ``LOSSES``: ``"mse"``, ``"cross_entropy"``); a function
    ``(outputs, y, ops) -> scalar`` is returned as it is."""
    if callable(name):
        return name
    try:
        return LOSSES[name]
    except KeyError:
        raise HarnessError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None
