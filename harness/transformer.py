"""A pre-LN transformer (issue 22; TP-V's Figure 1 model), written against the backends' ``ops``.

Inputs are sequences of feature vectors ``(N, T, d_in)`` (one-hot tokens are a token embedding: the embedding is
a ``matmul``, so no integer gather is needed and every backend differentiates it alike). A learned positional
embedding is added; each of ``depth`` blocks is ``h + attention(LN(h))`` then ``h + MLP(LN(h))``; the readout
averages the positions (or takes the last, ``readout="last"``) after a final layer norm.

Attention is multi-head softmax self-attention (``causal``: each position sees itself and the earlier ones), with
logits ``q.k * scale``: ``1 / sqrt(d_head)`` in the standard and NTK parametrisations, and muP's ``sqrt(base
d_head) / d_head`` (TP-V: 1/d instead of 1/sqrt(d); mup writes 8/d_head for a base of 64; equal to the standard
scale at the base width), with muP's zero-initialised query (TP-V, appendix D.2).

Parametrisation (:mod:`harness.parametrisation`'s table, width multiplier ``width / base_width``): the token
embedding is the ``input`` kind, the positional embedding, layer-norm gains and biases and the biases are the
``bias`` kind (vector-like: no infinite fan-in), the attention and MLP matrices ``hidden``, the readout
``output``. All four rows of the table apply; the analytic kernels of attention are not here (the finite model
first).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .errors import HarnessError
from .models import Model, _check_positive_int
from .parametrisation import check_init_dist, draw, get_parametrisation

LN_EPS = 1e-5


def _vec(ops, v, h):
    """A per-feature vector ``v`` (``(d,)``, or an ensemble's ``(E, d)``) shaped to broadcast against ``h``
    (``(..., d)``, an ensemble's ``(E, ..., d)``)."""
    if len(v.shape) == 1:
        return v
    return ops.reshape(v, tuple(v.shape[:-1]) + (1,) * (len(h.shape) - len(v.shape)) + (v.shape[-1],))


def layer_norm(ops, x, gain=None, bias=None, eps=LN_EPS):
    """``(x - mean) / sqrt(var + eps)`` over the last axis (the biased variance, as torch's ``layer_norm``), then
    ``* gain + bias`` when given."""
    mu = ops.mean(x, axis=-1, keepdims=True)
    c = x - mu
    y = c / ops.sqrt(ops.mean(c * c, axis=-1, keepdims=True) + eps)
    if gain is not None:
        y = y * _vec(ops, gain, y)
    if bias is not None:
        y = y + _vec(ops, bias, y)
    return y


def attention(ops, q, k, v, scale, causal=False):
    """Softmax attention of ``(..., T, heads, d_head)`` queries, keys and values: ``softmax(q.k * scale) v`` over
    the key positions (``causal``: only positions up to the query's), ``(..., T, heads, d_head)``."""
    logits = ops.einsum("...thd,...shd->...hts", q, k) * scale
    if causal:
        t = logits.shape[-1]
        pos = ops.arange(t)
        keep = pos[:, None] >= pos[None, :]
        logits = ops.where(keep, logits, ops.zeros_like(logits) - 1e30)
    weights = ops.exp(ops.log_softmax(logits, axis=-1))
    return ops.einsum("...hts,...shd->...thd", weights, v)


@dataclass(frozen=True)
class Transformer(Model):
    """A pre-LN transformer on ``(N, T, input_dim)`` sequences (``T`` at most ``seq_len``): ``depth`` blocks of
    ``heads``-head self-attention and a ReLU MLP (``mlp_ratio * width`` hidden units) of ``width`` features, the
    readout ``output_dim`` outputs from the positions' mean (``readout="mean"``) or the last position
    (``"last"``). ``parametrisation`` from the table (required), relative to ``base_width``; ``causal`` masks
    later positions. ``init_dist``: the weights' distribution by layer kind (the embedding ``input``, the position
    table ``bias``, the attention and MLP matrices ``hidden``, the readout ``output``; :mod:`harness.parametrisation`;
    default normal); layer norms start at gain 1, bias 0, and muP's query at zero, whatever it says."""
    input_dim: int
    seq_len: int
    width: int
    heads: int
    depth: int
    parametrisation: str
    output_dim: int = 1
    base_width: int = 1
    causal: bool = False
    mlp_ratio: int = 4
    readout: str = "mean"
    pos_std: float = 0.1
    init_dist: object = "normal"

    def __post_init__(self):
        name = f"Transformer(width={self.width}, heads={self.heads})"
        object.__setattr__(self, "init_dist", check_init_dist(self.init_dist, name))
        for field in ("input_dim", "seq_len", "width", "heads", "output_dim", "base_width", "mlp_ratio"):
            _check_positive_int(f"{name}: {field}", getattr(self, field))
        if isinstance(self.depth, bool) or int(self.depth) != self.depth or self.depth < 0:
            raise HarnessError(f"{name}: depth must be a non-negative integer, got {self.depth!r}")
        if self.width % self.heads:
            raise HarnessError(f"{name}: field heads: {self.heads} heads do not divide the width {self.width}")
        if self.parametrisation == "mup" and self.base_width % self.heads:
            raise HarnessError(f"{name}: field base_width: {self.heads} heads do not divide the base width "
                               f"{self.base_width} (muP's attention scale needs the base d_head)")
        if self.readout not in ("mean", "last"):
            raise HarnessError(f"{name}: field readout must be 'mean' or 'last', got {self.readout!r}")
        get_parametrisation(self.parametrisation)

    @property
    def d_head(self) -> int:
        """Features per head: ``width / heads``."""
        return self.width // self.heads

    @property
    def attention_scale(self) -> float:
        """``1 / sqrt(d_head)``; under muP ``sqrt(base d_head) / d_head`` (1/d scaling, equal at the base)."""
        if self.parametrisation == "mup":
            return float(np.sqrt(self.base_width // self.heads) / self.d_head)
        return float(1 / np.sqrt(self.d_head))

    @functools.cached_property
    def _shapes(self):
        """{name: (shape, kind, fan_in, weight std)}: every parameter and its row of the table."""
        n, hidden = self.width, self.mlp_ratio * self.width
        out = {"embed": ((self.input_dim, n), "input", self.input_dim, 1.0),
               "pos": ((self.seq_len, n), "bias", 1, self.pos_std)}
        for b in range(self.depth):
            out.update({f"ln1_g{b}": ((n,), "gain", 1, 0.0), f"ln1_b{b}": ((n,), "bias", 1, 0.0),
                        f"wq{b}": ((n, n), "hidden", n, 1.0), f"wk{b}": ((n, n), "hidden", n, 1.0),
                        f"wv{b}": ((n, n), "hidden", n, 1.0), f"wo{b}": ((n, n), "hidden", n, 1.0),
                        f"ln2_g{b}": ((n,), "gain", 1, 0.0), f"ln2_b{b}": ((n,), "bias", 1, 0.0),
                        f"w1{b}": ((n, hidden), "hidden", n, float(np.sqrt(2.0))),
                        f"w2{b}": ((hidden, n), "hidden", hidden, 1.0)})
        out.update({"lnf_g": ((n,), "gain", 1, 0.0), "lnf_b": ((n,), "bias", 1, 0.0),
                    "readout": ((n, self.output_dim), "output", n, 1.0)})
        return out

    @functools.cached_property
    def _scales(self):
        p = get_parametrisation(self.parametrisation)
        return {k: p.layer("bias" if kind == "gain" else kind, fan_in, std if std > 0 else 1.0, self.width,
                           self.base_width) for k, (_, kind, fan_in, std) in self._shapes.items()}

    def init(self, seed: int) -> dict:
        rng = np.random.default_rng(seed)
        params = {}
        for k, (shape, kind, _, std) in self._shapes.items():
            if kind == "gain":
                params[k] = np.ones(shape)                      # layer norm: gain 1, bias 0
            elif std == 0.0 or (k.startswith("wq") and self.parametrisation == "mup"):
                params[k] = np.zeros(shape)                     # muP's zero-initialised query
            else:
                params[k] = draw(rng, shape, self._scales[k].init_std, self.init_dist, kind)
        return params

    def _lin(self, ops, h, params, name):
        w = params[name]
        if len(w.shape) == 3:           # an ensemble's (E, a, b): its member axis against h's first, (E, 1.., a, b)
            w = ops.reshape(w, (w.shape[0],) + (1,) * (len(h.shape) - 3) + tuple(w.shape[1:]))
        y = ops.matmul(h, w)
        m = self._scales[name].multiplier
        return y if m == 1.0 else m * y

    def _gain(self, params, name):
        m = self._scales[name].multiplier
        return params[name] if m == 1.0 else m * params[name]

    def _forward(self, params, x, ops, collect: bool):
        t = x.shape[-2]
        if t > self.seq_len:
            raise HarnessError(f"Transformer(width={self.width}, heads={self.heads}): field seq_len: a sequence of "
                               f"{t} positions is longer than the positional embedding's {self.seq_len}")
        pos = self._gain(params, "pos")
        pos = pos[..., :t, :]
        if len(params["embed"].shape) == 3 and len(x.shape) == 3:
            x = ops.reshape(x, (1,) + tuple(x.shape))          # an ensemble on shared inputs: a member axis of 1
        h = self._lin(ops, x, params, "embed")                 # (E?, N, T, width)
        if len(pos.shape) == 3:                                # an ensemble's (E, T, width)
            pos = ops.reshape(pos, (pos.shape[0],) + (1,) * (len(h.shape) - 3) + tuple(pos.shape[1:]))
        h = h + pos
        seen = [h] if collect else None
        heads, dh = self.heads, self.d_head
        for b in range(self.depth):
            a = layer_norm(ops, h, self._gain(params, f"ln1_g{b}"), self._gain(params, f"ln1_b{b}"))
            split = lambda z: ops.reshape(z, tuple(z.shape[:-1]) + (heads, dh))      # noqa: E731
            q, k, v = (split(self._lin(ops, a, params, f"w{c}{b}")) for c in "qkv")
            if collect:
                seen.append(ops.einsum("...thd,...shd->...hts", q, k) * self.attention_scale)
            o = attention(ops, q, k, v, self.attention_scale, self.causal)
            o = ops.reshape(o, tuple(o.shape[:-2]) + (self.width,))
            h = h + self._lin(ops, o, params, f"wo{b}")
            a = layer_norm(ops, h, self._gain(params, f"ln2_g{b}"), self._gain(params, f"ln2_b{b}"))
            h = h + self._lin(ops, ops.relu(self._lin(ops, a, params, f"w1{b}")), params, f"w2{b}")
            if collect:
                seen.append(h)
        h = layer_norm(ops, h, self._gain(params, "lnf_g"), self._gain(params, "lnf_b"))
        h = ops.mean(h, axis=-2) if self.readout == "mean" else h[..., -1, :]
        out = self._lin(ops, h, params, "readout")
        return seen + [out] if collect else out

    def apply(self, params, x, ops):
        return self._forward(params, x, ops, False)

    def preactivations(self, params, x, ops):
        """What TP-V's Figure 1 (the coordinate check) follows: the embedding (tokens plus positions), then per
        block its attention logits and its output (the residual stream), then the readout; for
        :func:`harness.coordcheck.coord_data`."""
        return self._forward(params, x, ops, True)

    @property
    def coordinate_names(self) -> list:
        """The names of :meth:`preactivations`' entries, in order (the coordinate check's legend)."""
        names = ["embedding"]
        for b in range(self.depth):
            names += [f"logits {b + 1}", f"block {b + 1}"]
        return names + ["output"]

    def lr_multipliers(self, optimizer_kind: str) -> dict:
        return {k: s.lr(optimizer_kind) for k, s in self._scales.items()}
