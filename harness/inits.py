"""Initialisations beside a model's own: the anti-symmetric (doubled, zero-output) initialisation.

:func:`antisymmetric` doubles any model: two copies of its parameters, ``plus/<name>`` and ``minus/<name>``, drawn
as one draw of the model's own init and trained independently, and the output ``(f(plus) - f(minus)) / sqrt(2)``.
At initialisation the two copies are equal, so the output is zero (to rounding: a compiler may sum the two
copies in different orders), while the NTK is the model's own
(``(J J^T + J J^T) / 2``): the network starts at the zero function without giving up its kernel (Chizat, Oyallon &
Bach 2019; the "anti-symmetric initialisation" of Zhang et al. 2020, used where a random initial function would
bias what is measured). Unlike :func:`harness.models.output_scaled` (``f(w) - f(w0)`` with ``w0`` frozen) both copies
move. It works for every model (the MLP, the CNN, the transformer, a user's adapted module) and every backend
method; each copy keeps the model's per-layer learning rates.

Per-layer weight distributions (uniform, Rademacher, a sampler of one's own) are the parametrisation table's last
column, a built-in model's ``init_dist`` (:mod:`harness.parametrisation`), and compose with this: a paper's
"uniform biases, +-1 input weights, anti-symmetric copy" is
``antisymmetric(MLP(..., init_dist={"input": "rademacher", "bias": "uniform"}))``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .models import Model

PLUS, MINUS = "plus/", "minus/"


@dataclass(frozen=True)
class AntiSymmetric(Model):
    """``(f(plus) - f(minus)) / sqrt(2)`` with ``plus`` and ``minus`` initialised to the same draw of ``inner``'s
    init: zero output, the inner model's NTK, at initialisation. Build one with :func:`antisymmetric`."""
    inner: Model

    @property
    def output_dim(self):
        """The inner model's ``output_dim``."""
        return self.inner.output_dim

    def init(self, seed: int) -> dict:
        p = self.inner.init(seed)
        out = {}
        for k, v in p.items():
            frozen = k.startswith("frozen/")
            out[("frozen/" if frozen else "") + PLUS + k.removeprefix("frozen/")] = np.array(v, copy=True)
            out[("frozen/" if frozen else "") + MINUS + k.removeprefix("frozen/")] = np.array(v, copy=True)
        return out

    @staticmethod
    def _half(params, sign):
        out = {}
        for k, v in params.items():
            frozen = k.startswith("frozen/")
            name = k.removeprefix("frozen/")
            if name.startswith(sign):
                out[("frozen/" if frozen else "") + name[len(sign):]] = v
        return out

    def apply(self, params, x, ops):
        plus = self.inner.apply(self._half(params, PLUS), x, ops)
        minus = self.inner.apply(self._half(params, MINUS), x, ops)
        return (plus - minus) * float(1 / np.sqrt(2))

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        inner = self.inner.lr_multipliers(optimizer_kind)
        return {prefix + k: v for k, v in inner.items() for prefix in (PLUS, MINUS)}


def antisymmetric(model: Model) -> AntiSymmetric:
    """``model`` doubled into ``(f(plus) - f(minus)) / sqrt(2)``, both copies from one draw of its init: the output
    is zero at initialisation and the NTK is ``model``'s. See :class:`AntiSymmetric`."""
    return AntiSymmetric(model)
