"""PyTorch backend. Imports torch only when instantiated; autodiff through ``torch.func`` on parameter dicts,
so models stay pure functions exactly as in the JAX backend."""
from __future__ import annotations

import numpy as np

from ..errors import HarnessError
from ._base import Backend


class TorchOps:
    """The array namespace models and optimisers are written against (torch flavour, numpy-style names)."""

    def __init__(self, torch, device=None):
        self.torch, self.device = torch, device
        for name in ("matmul", "einsum", "tanh", "sin", "cos", "exp", "log", "sqrt", "sinh", "cosh", "abs",
                     "sign", "maximum", "minimum", "where", "zeros_like", "ones_like", "stack", "reshape",
                     "outer", "square", "prod", "clip", "log1p", "expm1"):
            setattr(self, name, getattr(torch, name))
        self.arcsinh = self.asinh = torch.asinh
        self.erf = torch.special.erf
        self.concatenate = torch.cat

    def arange(self, *args, **kwargs):
        """``torch.arange`` on the backend's device (torch's default is the CPU: a causal mask made from it could
        not meet a cuda tensor)."""
        kwargs.setdefault("device", self.device)
        return self.torch.arange(*args, **kwargs)

    def sum(self, x, axis=None, keepdims=False):
        """Sum over ``axis`` (an int or tuple; ``None``: every axis, a scalar), numpy-style."""
        return self.torch.sum(x) if axis is None else self.torch.sum(x, dim=axis, keepdim=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        """Mean over ``axis`` (an int or tuple; ``None``: every axis, a scalar), numpy-style."""
        return self.torch.mean(x) if axis is None else self.torch.mean(x, dim=axis, keepdim=keepdims)

    def relu(self, x):
        """``max(x, 0)`` elementwise."""
        return self.torch.relu(x)

    def affine(self, x, w, b, w_mult=1.0, b_mult=1.0):
        """``w_mult * (x @ w) + b_mult * b`` for 2-D ``x``, ``w`` and 1-D ``b`` as one ``addmm``: one kernel and one
        autograd node where the unfused form has up to four of each (eager torch pays per operation)."""
        return self.torch.addmm(b, x, w, beta=b_mult, alpha=w_mult)

    def heaviside(self, x):
        """1 where ``x > 0``, else 0, in ``x``'s dtype (ReLU's derivative)."""
        return (x > 0).to(x.dtype)

    def transpose(self, x):
        """Swap the last two axes (a matrix transpose, batched over leading axes)."""
        return x.transpose(-1, -2)

    def transpose4(self, x):
        """``(a, b, c, d) -> (a, c, b, d)``: the ``(N1, k, N2, k) -> (N1, N2, k, k)`` of a multi-output NTK."""
        return x.permute(0, 2, 1, 3)

    def log_softmax(self, x, axis=-1):
        """``x - logsumexp(x)`` along ``axis``."""
        return self.torch.log_softmax(x, dim=axis)

    def logsumexp(self, x, axis=None):
        """``log(sum(exp(x)))`` over ``axis`` (``None``: every axis), computed stably."""
        return self.torch.logsumexp(x, dim=axis if axis is not None else tuple(range(x.ndim)))

    def eye(self, k, like):
        """The ``k x k`` identity in the dtype (and on the device) of the array ``like``."""
        return self.torch.eye(k, dtype=like.dtype, device=like.device)

    def adam_update(self, opt, grads, state, params, lr_mults, t):
        """:meth:`harness.optim.Optimizer.update`'s Adam step in torch's multi-tensor (``_foreach``) kernels: the
        same formula, p - lr mult (m / bc1) / (sqrt(v / bc2) + eps), with bc1 folded into the rate. Eager torch
        runs each elementwise op of the per-parameter form as its own kernel and allocation; this form cut the
        update of the width-512 reference MLP from 4.7 to 0.9 ms on one CPU thread. New tensors throughout: the
        inputs are not mutated. A multiplier may be a tensor (a learning-rate grid's, one rate per member)."""
        torch = self.torch
        keys = list(grads)
        g, p = [grads[k] for k in keys], [params[k] for k in keys]
        m = torch._foreach_lerp([state["m"][k] for k in keys], g, 1 - opt.b1)
        v = torch._foreach_mul([state["v"][k] for k in keys], opt.b2)
        torch._foreach_addcmul_(v, g, g, value=1 - opt.b2)
        denom = torch._foreach_div(v, 1 - opt.b2 ** t)
        torch._foreach_sqrt_(denom)
        torch._foreach_add_(denom, opt.eps)
        scale = -opt.lr / (1 - opt.b1 ** t)
        mults = [lr_mults.get(k, 1.0) for k in keys]
        if not any(isinstance(u, torch.Tensor) for u in mults):
            new = torch._foreach_addcdiv(p, m, denom, [scale * float(u) for u in mults])
        else:
            step = torch._foreach_div(m, denom)
            torch._foreach_mul_(step, [scale * torch.as_tensor(u, dtype=x.dtype, device=x.device)
                                       for u, x in zip(mults, p)])
            new = torch._foreach_add(p, step)
        return dict(zip(keys, new)), {"t": t, "m": dict(zip(keys, m)), "v": dict(zip(keys, v))}

    def sgd_update(self, opt, grads, state, params, lr_mults):
        """:meth:`harness.optim.Optimizer.update`'s SGD step, heavy ball when ``opt.momentum`` (the moment is
        ``momentum m + g``, the step ``p - lr mult m``; ``g`` in place of ``m`` without momentum), in one kernel
        per parameter and moment (``torch.add``'s ``alpha``) instead of two or three: the same formula up to
        rounding. New tensors throughout; the multipliers are numbers."""
        add = self.torch.add
        new_state, step = {"t": state["t"] + 1}, grads
        if opt.momentum:
            step = {k: add(g, state["m"][k], alpha=opt.momentum) for k, g in grads.items()}
            new_state["m"] = step
        return {k: add(params[k], g, alpha=-(opt.lr * float(lr_mults.get(k, 1.0)))) for k, g in step.items()}, \
            new_state


class TorchBackend(Backend):
    framework_name = "torch"

    def __init__(self, device: str = "cpu", dtype: str = "float32", train_chunk: int = 0):
        super().__init__(device, dtype, train_chunk)
        try:
            import torch
            import torch.func
        except ImportError as e:
            raise HarnessError(f"backend 'torch' is not installed ({e}); pip install torch==2.13.0") from None
        if device == "cuda" and not torch.cuda.is_available():
            raise HarnessError("device 'cuda' not available to torch (torch.cuda.is_available() is False)")
        self.torch, self.func = torch, torch.func
        if device == "cpu":
            _set_cpu_threads(torch)
        self._device = torch.device(device)
        self._tdtype = getattr(torch, dtype)
        self.ops = TorchOps(torch, self._device)

    def _asarray(self, x):
        return self.torch.as_tensor(np.ascontiguousarray(x), dtype=self._tdtype, device=self._device)

    def to_numpy(self, x):
        if isinstance(x, self.torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def synchronize(self, x=None):
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def _index(self, idx):
        return self.torch.as_tensor(idx, device=self._device)

    def _compile(self, key, fn):
        key = (key, self.dtype)
        if key not in self._cache:
            no_grad = self.torch.no_grad

            def wrapped(*a, **k):
                with no_grad():
                    return fn(*a, **k)
            self._cache[key] = wrapped
        return self._cache[key]

    def _value_and_grad(self, fn):
        return self._autograd_value_and_grad(fn)

    def _loss_fn(self, model, loss):
        # "mse" as 0.5 d.d / N with d = out - y flattened: two kernels and two autograd nodes where the written-out
        # mean has five of each (a diagonal net's loss and gradient: 174 -> 146 us); the same numbers up to rounding
        if loss != "mse":
            return super()._loss_fn(model, loss)
        generic, ops, dot = super()._loss_fn(model, loss), self.ops, self.torch.dot

        def mse(trainable, frozen, x, y):
            out = model.apply({**trainable, **frozen}, x, ops)
            if out.shape != y.shape:
                return generic(trainable, frozen, x, y)
            d = (out - y).reshape(-1)
            return dot(d, d) * (0.5 / out.shape[0])
        return mse

    def _autograd_value_and_grad(self, fn):
        # Plain reverse-mode autograd on fresh leaf tensors: the same numbers as torch.func.grad_and_value with
        # less per-call overhead (loss and gradient of the width-128 reference MLP on 256 inputs: 1.1 -> 0.75 ms).
        torch = self.torch

        def vg(trainable, *args):
            with torch.enable_grad():
                leaves = {k: v.detach().requires_grad_(True) for k, v in trainable.items()}
                value = fn(leaves, *args)
                grads = torch.autograd.grad(value, list(leaves.values()))
            return value.detach(), dict(zip(leaves, grads))
        return vg

    def train_step_fn(self, model, optimizer, loss="mse"):
        """The base class's step with fewer kernels: for the built-in :class:`MLP` with a built-in loss, the loss
        and its gradient written out (:mod:`harness.backends.torch_mlp`), and SGD's update one kernel per
        parameter (:meth:`TorchOps.sgd_update`). A one-hidden-layer width-256 net on 32 points: 311 -> ~140 us per
        full-batch SGD step on one CPU thread."""
        from .torch_mlp import mlp_value_and_grad
        vg = mlp_value_and_grad(self, model, loss) or self._value_and_grad(self._loss_fn(model, loss))
        mults = model.lr_multipliers(optimizer.kind)
        update = optimizer.update
        if optimizer.kind == "sgd" and not any(isinstance(u, self.torch.Tensor) for u in mults.values()):
            update = lambda g, s, p, m, ops: ops.sgd_update(optimizer, g, s, p, m)   # noqa: E731

        def step(trainable, frozen, state, x, y):
            value, grads = vg(trainable, frozen, x, y)
            trainable, state = update(grads, state, trainable, mults, self.ops)
            return trainable, state, value
        return self._compile(("step", model, optimizer, loss), step)

    def _run_steps(self, step, key, trainable, frozen, state, x, y, n):
        """With ``train_chunk`` K: whole chunks of K steps as one ``torch.compile``d call (the K steps unrolled:
        autodiff by ``torch.func``, the optimizer's per-parameter formula, its step count a tensor so that one
        graph serves every chunk), the remainder one eager step at a time. A model or loss that torch.compile
        cannot capture whole falls back to eager steps, with one warning."""
        if not self.train_chunk or n < self.train_chunk:
            return super()._run_steps(step, key, trainable, frozen, state, x, y, n)
        chunk, first, done = self._train_chunk_fn(key), None, 0
        while chunk is not None and n - done >= self.train_chunk:
            t = state["t"]
            try:
                trainable, new, value = chunk(trainable, frozen, {**state, "t": self.torch.tensor(
                    float(t), dtype=self._tdtype, device=self._device)}, x, y)
            except Exception as e:              # noqa: BLE001 (dynamo's errors have no common base)
                self._train_chunk_failed(key, e)
                break
            state = {**new, "t": t + self.train_chunk}
            first = value if first is None else first
            done += self.train_chunk
        if done < n:
            trainable, state, value = super()._run_steps(step, key, trainable, frozen, state, x, y, n - done)
            first = value if first is None else first
        return trainable, state, first

    def _train_chunk_fn(self, key):
        k = ("train-chunk", key, self.dtype, self.train_chunk)
        if k not in self._cache:
            model, optimizer, loss = key
            torch, K = self.torch, self.train_chunk
            grad_and_value = torch.func.grad_and_value(self._loss_fn(model, loss))
            mults, ops = model.lr_multipliers(optimizer.kind), _Unfused(self.ops)

            def chunk(tr, fr, st, xx, yy):
                first = None
                for _ in range(K):
                    grads, value = grad_and_value(tr, fr, xx, yy)
                    tr, st = optimizer.update(grads, st, tr, mults, ops)
                    first = value if first is None else first
                return tr, st, first
            self._cache[k] = torch.compile(chunk, fullgraph=True, dynamic=False)
        return self._cache[k]

    def _train_chunk_failed(self, key, error):
        import warnings
        self._cache[("train-chunk", key, self.dtype, self.train_chunk)] = None
        error = getattr(error, "inner_exception", None) or error         # inductor's failure wraps the cause
        text = str(error).strip()
        first = f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
        warnings.warn(f"train_chunk: torch.compile could not compile the training step of "
                      f"{getattr(key[0], 'name', type(key[0]).__name__)} ({first[:200]}); training one eager step "
                      "at a time", RuntimeWarning, stacklevel=4)

    def _ensemble_value_and_grad(self, model, loss):
        """Loss and gradient of an ensemble's summed member losses written out, for :func:`harness.ensembles.
        train_ensemble` (the built-in MLP and losses; ``None`` otherwise: autograd)."""
        from .torch_mlp import mlp_value_and_grad
        return mlp_value_and_grad(self, model, loss, members=True)

    def _hvp_fn(self, fn):
        # reverse-over-reverse (a vjp of the gradient; H is symmetric, so it is H v): 1.5-4x faster in eager torch
        # than forward-over-reverse (jvp of grad), which JAX prefers (asv_benchmarks: hessian.HVP)
        func = self.func

        def hvp(trainable, frozen, x, y, tangent):
            _, vjp = func.vjp(lambda p: func.grad(fn)(p, frozen, x, y), trainable)
            return vjp(tangent)[0]
        return hvp

    def _jacobian_ntk(self, f1, f2, trainable, weights):
        j1 = self.func.jacrev(f1)(trainable)
        j2 = self.func.jacrev(f2)(trainable)
        out = 0.0
        for k in trainable:
            a = j1[k].reshape(j1[k].shape[0], -1)
            b = j2[k].reshape(j2[k].shape[0], -1)
            out = out + weights[k] * (a @ b.T)
        return out

    def _ntvp_ntk(self, f1, f2, trainable, weights):
        func, torch = self.func, self.torch
        out2, vjp2 = func.vjp(f2, trainable)
        basis = torch.eye(out2.shape[0], dtype=out2.dtype, device=out2.device)
        cot = func.vmap(lambda e: vjp2(e)[0])(basis)
        cot = {k: weights[k] * v for k, v in cot.items()}
        col = func.vmap(lambda t: func.jvp(f1, (trainable,), (t,))[1])(cot)
        return col.T

    # -- per-example gradients and the Jacobian (issue 12) ------------------------------------------------------
    def _per_example_grad_fn(self, fn):
        func = self.func
        return func.vmap(func.grad(fn), in_dims=(None, None, 0, 0))

    def _jacobian_fn(self, f):
        return self.func.jacrev(f)

    def _example_jacobian_fn(self, f):
        func = self.func
        return func.vmap(func.jacrev(f), in_dims=(None, None, 0))

    def _example_jacobians(self, model):
        """Every input's own Jacobian ``{name: (N, k, *shape)}`` by expanded weights where the model allows it,
        else vmapped (the base class's ``vmap(jacrev)``).

        Expanded weights: each input is made a member of an ensemble whose ``N`` members share the weights (every
        parameter ``expand``-ed to ``(N, *shape)``, no copy; inputs ``(N, 1, ...)``), and one backward pass of the
        summed outputs (``k`` with several outputs, batched) gives the gradient with respect to each member's view
        of the weights: input ``n``'s Jacobian. That is one batched forward and backward of the model, where
        functorch's vmap of ``jacrev`` pays its batching rules op by op: on the 2-core machine (float32, 16 inputs)
        the CNN of ``asv_benchmarks.architectures`` took 2.1 ms against 3.2 ms, the transformer 5.3 ms against
        7.7 ms. It needs a model that broadcasts over a leading member axis (:mod:`harness.ensembles`; the built-in
        models do), so the first call on a model computes both and keeps the expanded route only if the two agree
        (to 1e-4 of the largest entry in float32, 1e-9 in float64); a model that does not broadcast (or fails on
        the member axis) stays on the vmap. Also the vmap where the caller differentiates through the result (a
        parameter or input that requires grad, with grad enabled): expanded weights are detached leaves."""
        vmapped = super()._example_jacobians(model)
        torch = self.torch
        verdict = {}                    # "ok": None until the first call has compared the two routes

        def expanded(tr, fr, x):
            n = x.shape[0]
            with torch.enable_grad():
                leaves = {name: v.detach().requires_grad_() for name, v in tr.items()}
                members = {name: v.unsqueeze(0).expand((n,) + tuple(v.shape)) for name, v in leaves.items()}
                shared = {name: v.unsqueeze(0).expand((n,) + tuple(v.shape)) for name, v in fr.items()}
                out = model.apply({**members, **shared}, x.unsqueeze(1), self.ops)
                k = model.output_dim
                if tuple(out.shape) != (n, 1, k):
                    raise ValueError(f"outputs {tuple(out.shape)} without the member axis")
                names = list(members)
                wrt = [members[name] for name in names]
                if k == 1:
                    grads = torch.autograd.grad(out.sum(), wrt, allow_unused=True)
                    grads = [g.unsqueeze(1) if g is not None else None for g in grads]
                else:
                    eye = torch.eye(k, dtype=out.dtype, device=out.device).unsqueeze(1).unsqueeze(1)
                    eye = eye.expand(k, n, 1, k)
                    grads = torch.autograd.grad(out, wrt, grad_outputs=eye, is_grads_batched=True, allow_unused=True)
                    grads = [g.movedim(0, 1) if g is not None else None for g in grads]
            return {name: (g if g is not None else torch.zeros((n, k) + tuple(tr[name].shape), dtype=out.dtype,
                                                             device=out.device))
                    for name, g in zip(names, grads)}

        def agree(a, b):
            tol = 1e-9 if self._tdtype == torch.float64 else 1e-4
            for name in b:
                if tuple(a[name].shape) != tuple(b[name].shape):
                    return False
                if b[name].numel() and float((a[name] - b[name]).abs().max()) > tol * float(b[name].abs().max()):
                    return False
            return True

        def jac(tr, fr, x):
            wants_graph = torch.is_grad_enabled() and (x.requires_grad or any(
                v.requires_grad for v in (*tr.values(), *fr.values())))
            if verdict.get("ok") is False or wants_graph or (verdict.get("ok") is None and x.shape[0] < 2):
                return vmapped(tr, fr, x)
            try:
                got = expanded(tr, fr, x)
            except Exception:               # noqa: BLE001 - a model without the member axis: the vmap, from now on
                verdict["ok"] = False
                return vmapped(tr, fr, x)
            if verdict.get("ok") is None:
                ref = vmapped(tr, fr, x)
                verdict["ok"] = agree(got, ref)
                return ref
            return got
        return jac


class _Unfused:
    """``ops`` without :meth:`TorchOps.adam_update` (its Python-number rates would fix the step count in a compiled
    graph): the optimizer's per-parameter formula, which torch.compile fuses itself."""

    def __init__(self, ops):
        self._ops = ops

    def __getattr__(self, name):
        if name == "adam_update":
            raise AttributeError(name)
        return getattr(self._ops, name)


CPU_THREADS_ENV = "HARNESS_TORCH_THREADS"


def _set_cpu_threads(torch):
    """torch's intra-op CPU threads: ``HARNESS_TORCH_THREADS`` (default 1; 0 keeps torch's own default).

    On the small nets of the claims a second OpenMP thread buys little, and on a shared, oversubscribed machine
    its barrier waits make every op wait for a descheduled thread: on the 2-core CI machine under load the asv
    training step (``training.TrainStep``, Adam, width 128) took 684 ms with torch's default of 2 threads and
    13.6 ms with 1 (JAX: 4.6 ms, same run). The setting is process-wide in torch (there is no per-call one), so
    it is applied once, when a CPU torch backend is created."""
    import os
    raw = os.environ.get(CPU_THREADS_ENV, "1")
    try:
        n = int(raw)
    except ValueError:
        raise HarnessError(f"{CPU_THREADS_ENV}={raw!r} must be a non-negative integer") from None
    if n < 0:
        raise HarnessError(f"{CPU_THREADS_ENV}={raw!r} must be a non-negative integer")
    if n and torch.get_num_threads() != n:
        torch.set_num_threads(n)
