"""The built-in :class:`~harness.models.MLP`'s loss and gradient written out for eager torch (the training steps of
:meth:`TorchBackend.train_step_fn` and of :func:`harness.ensembles.train_ensemble`).

Eager torch pays a dispatch for every operation and autograd a graph node (and often a rescaling kernel) for
every one of them; on the small networks of the claims that overhead, not arithmetic, is the training step. The
MLP's backward pass is short enough to write down: with ``delta`` the loss gradient at the readout,

    dL/dW_l = mult_l * x_{l-1}^T delta_l,   dL/db_l = bias_mult_l * sum_i delta_l,
    delta_{l-1} = mult_l * (delta_l W_l^T) * phi'(h_{l-1}),

the recursion of :meth:`MLP.structured_ntk`, with the scalars (the multipliers, the loss's 1/N) carried as one
running factor into the GEMMs' ``alpha`` rather than each paid as a kernel. On a width-256 one-hidden-layer ReLU
net with 32 inputs (float64, one CPU thread) loss and gradient took 267 us through autograd and ~90 us in this
form. JAX needs none of this: XLA fuses the autograd graph itself.

Two forms: one network (2-D weights and inputs, the loss of :meth:`Backend.train`), and an ensemble (weights
stacked on a leading member axis, inputs shared or per member, the loss the sum of the members' own losses, as
:func:`harness.ensembles.train_ensemble` trains them); in both, the MLP or its anti-symmetric copy
(:func:`harness.inits.antisymmetric`: two forward passes, the loss's gradient at the output once, two backward
passes). Anything else (another model, a loss function of the user's, other shapes) goes through autograd.
``tests/test_training.py`` checks both forms against autograd over parametrisations, activations, depths, biases,
output dimensions, both losses and the anti-symmetric copy; the parity tests check whole trainings against JAX.
"""
from __future__ import annotations

import numpy as np

from ..activations import get_activation
from ..losses import get_loss
from ..models import MLP


def mlp_value_and_grad(backend, model, loss, members: bool = False):
    """``vg(trainable, frozen, x, y) -> (loss value, {name: gradient})`` for ``model`` (an :class:`MLP`, or the
    anti-symmetric copy of one, :func:`harness.inits.antisymmetric`) and ``loss`` (``"mse"`` or
    ``"cross_entropy"``), written out; ``None`` for any other model or loss (use autograd).

    ``members=False``: one network, the loss of ``backend._loss_fn``; ``members=True``: an ensemble (every weight
    ``(E, fan_in, fan_out)``, biases ``(E, fan_out)``; ``x`` ``(N, d)`` or ``(E, N, d)``), the loss the sum over
    members of each one's mean loss. Arguments of other shapes go to autograd's gradient of the same loss.

    The anti-symmetric copy ``(f(plus) - f(minus)) / sqrt(2)``: each copy's forward pass, the loss's gradient at the
    output once, and each copy's backward pass from it (scaled by +-1/sqrt(2))."""
    from ..inits import MINUS, PLUS, AntiSymmetric
    whole, halves = model, None
    if type(model) is AntiSymmetric:
        model, halves = model.inner, (PLUS, MINUS)
    if type(model) is not MLP or loss not in ("mse", "cross_entropy"):
        return None
    torch, ops = backend.torch, backend.ops
    act = get_activation(model.activation)
    scales, depth, bias = model.scales(), model.depth, model.bias
    names = sorted([f"W{l}" for l in range(depth + 1)] + ([f"b{l}" for l in range(depth + 1)] if bias else []))
    lf = get_loss(loss)
    rank = 3 if members else 2
    if members:
        def member_sum(trainable, frozen, x, y):
            out = whole.apply({**trainable, **frozen}, x, ops)
            return lf(out, y, ops) * (out.shape[0] / out.shape[1])      # lf averages over E: E / N of it sums
        fallback = backend._autograd_value_and_grad(member_sum)
        mm, addmm = torch.bmm, torch.baddbmm
        t = lambda a: a.transpose(1, 2)                                   # noqa: E731
    else:
        fallback = backend._autograd_value_and_grad(backend._loss_fn(whole, loss))
        mm, addmm = torch.mm, torch.addmm
        t = lambda a: a.t()                                               # noqa: E731
    threshold_backward = torch.ops.aten.threshold_backward
    cache = {}

    def ones(n, like):                          # a vector of n ones, kept per (n, dtype, device)
        key = (n, like.dtype, like.device)
        if key not in cache:
            cache[key] = torch.ones(n, dtype=like.dtype, device=like.device)
        return cache[key]

    def forward(p, x):
        """The layers' inputs ``xs`` (x, then each activation) and pre-activations ``hs`` (the last: the output)."""
        xs, hs = [x], []
        for l in range(depth + 1):
            ws, bs = scales[l]
            w = p[f"W{l}"]
            if bias:
                b = p[f"b{l}"]
                h = addmm(b[:, None, :] if members else b, xs[-1], w, beta=bs.multiplier, alpha=ws.multiplier)
            else:
                h = mm(xs[-1], w)
                if ws.multiplier != 1.0:
                    h = h.mul_(ws.multiplier)
            hs.append(h)
            if l < depth:
                xs.append(act.fn(ops, h))
        return xs, hs

    def backward(p, xs, hs, delta, c, prefix=""):
        """The gradients, from ``delta``, dL/d(output) divided by the running scalar ``c`` (the loss's 1/N times
        the multipliers passed); ``delta`` itself is left as it is."""
        grads, n = {}, delta.shape[-2]
        for l in range(depth, -1, -1):
            ws, bs = scales[l]
            w = p[f"W{l}"]
            # alpha * (a @ b) as one GEMM (beta = 0: the first argument, a tensor of the output's shape, is ignored)
            grads[f"{prefix}W{l}"] = addmm(w, t(xs[l]), delta, beta=0, alpha=ws.multiplier * c)
            if bias:                            # one network: the sum over inputs as a GEMV with alpha
                grads[f"{prefix}b{l}"] = delta.sum(dim=-2).mul_(bs.multiplier * c) if members else \
                    torch.addmv(p[f"b{l}"], delta.t(), ones(n, delta), beta=0, alpha=bs.multiplier * c)
            if l:
                back = mm(delta, t(w))
                c *= ws.multiplier
                if act.name == "relu":
                    delta = threshold_backward(back, hs[l - 1], 0)
                elif act.name == "tanh":
                    delta = back.mul_(1 - xs[l] * xs[l])
                else:
                    delta = back.mul_(act.deriv(ops, hs[l - 1]))
        return grads

    def loss_delta(out, y):
        """The loss (mean over the N inputs, summed over members) and N dL/d(out)."""
        n = out.shape[-2]
        if loss == "mse":                       # 0.5 sum(diff^2) / N; dL/dout = diff / N
            delta = out - y
            flat = delta.reshape(-1)
            return torch.dot(flat, flat).mul_(0.5 / n), delta
        # -sum(y log_softmax(out)) / N; dL/dout = (softmax sum(y) - y) / N
        value = (y * torch.log_softmax(out, dim=-1)).sum().mul_(-1.0 / n)
        return value, torch.softmax(out, dim=-1).mul_(y.sum(dim=-1, keepdim=True)).sub_(y)

    def vg(trainable, frozen, x, y):
        if halves is None:
            parts = [("", trainable)]
        else:
            parts = [(h, {k[len(h):]: v for k, v in trainable.items() if k.startswith(h)}) for h in halves]
            if any(sorted(p) != names for _, p in parts) or len(trainable) != 2 * len(names):
                return fallback(trainable, frozen, x, y)
        if frozen or x is None or any(p[f"W{l}"].ndim != rank for _, p in parts for l in range(depth + 1)) \
                or x.ndim not in (2, rank) or (members and x.ndim == 3 and x.shape[0] != parts[0][1]["W0"].shape[0]):
            return fallback(trainable, frozen, x, y)
        if members and x.ndim == 2:
            x = x.expand(parts[0][1]["W0"].shape[0], *x.shape)            # shared inputs: a view per member
        passes = [forward(p, x) for _, p in parts]
        out = passes[0][1][-1] if halves is None else \
            (passes[0][1][-1] - passes[1][1][-1]) * float(1 / np.sqrt(2))
        if y.shape != out.shape[-y.ndim:] or y.ndim > out.ndim:
            return fallback(trainable, frozen, x, y)
        value, delta = loss_delta(out, y)
        c = 1.0 / out.shape[-2]
        if halves is None:
            grads = backward(trainable, *passes[0], delta, c)
        else:                                   # d out / d f(plus) = 1/sqrt(2), d out / d f(minus) = -1/sqrt(2)
            s = float(1 / np.sqrt(2))
            grads = {**backward(parts[0][1], *passes[0], delta, c * s, halves[0]),
                     **backward(parts[1][1], *passes[1], delta, -c * s, halves[1])}
        return value, {k: grads[k] for k in trainable}
    return vg
