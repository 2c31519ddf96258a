"""The torch half of :mod:`harness.adapters`: a ``torch.nn.Module`` as a harness model.

Imported by name from :func:`harness.adapters.from_torch` only (no harness module imports it, so the claims' code
hash does not include it). The forward is ``torch.func.functional_call`` on the module with the backend's tensors
in place of its parameters and buffers, as torch.func's NTK and per-sample-gradient tutorials make a module a pure
function; the torch backend's own transforms (jacrev, vjp, jvp, vmap) then run on it unchanged.
"""
from __future__ import annotations

import contextlib

import torch
from torch.func import functional_call, vmap

from ..adapters import AdaptedModel, Entry, check_frozen_names, float64_snapshot, is_frozen_name
from ..errors import HarnessError
from ..models import FROZEN


def _dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def _arrays_of(module, name: str, frozen):
    """``(entries, weights)`` of a module: parameters (trainable unless ``requires_grad=False`` or named in
    ``frozen``) then buffers (always frozen)."""
    if not isinstance(module, torch.nn.Module):
        raise HarnessError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    entries, weights = [], {}
    params = list(module.named_parameters())
    buffers = list(module.named_buffers())
    check_frozen_names(name, [n for n, _ in params], frozen)
    param_names = {n for n, _ in params}
    for n, t in params + buffers:
        is_param = n in param_names
        if t.is_complex() or (is_param and not t.is_floating_point()):
            raise HarnessError(f"model {name!r}: {n} has dtype {t.dtype}, not a real "
                               f"{'floating' if is_param else 'number'} type")
        const = not is_param or not t.requires_grad or is_frozen_name(n, frozen)
        key = FROZEN + n if const else n
        entries.append(Entry(key, n, tuple(t.shape), _dtype_name(t)))
        weights[key] = float64_snapshot(name, n, t.detach().cpu().to(torch.float64).numpy())
    if not any(not e.key.startswith(FROZEN) for e in entries):
        raise HarnessError(f"model {name!r} has no trainable parameters")
    return entries, weights


class TorchAdapted(AdaptedModel):
    """A torch module as a harness model (see :func:`harness.adapters.from_torch`)."""
    framework = "torch"
    backend = "torch"

    def __init__(self, module, name, frozen, output_dim, example_input, lr, reinit):
        entries, weights = _arrays_of(module, name, frozen)
        self.module = module
        self._frozen = frozen
        self._buffers = {n for n, _ in module.named_buffers()}
        super().__init__(name, entries, weights, _output_dim(module, name, output_dim, example_input),
                         lr=lr, reinit=reinit)

    def _snapshot(self, obj):
        return _arrays_of(obj, self.name, self._frozen)[1]

    def _cast(self, value, entry):
        if entry.dtype.startswith(("float", "bfloat")):
            return value
        return value.to(getattr(torch, entry.dtype))

    def _forward(self, arrays, x):
        # a buffer the forward updates in place (BatchNorm in train mode) updates a copy, never the caller's params
        tensors = {k: (v.clone() if k in self._buffers else v) for k, v in arrays.items()}
        with _no_fastpath():
            return functional_call(self.module, tensors, (x,))

    def _vmap(self, fn, arrays, axes, x):
        return vmap(lambda a: fn(a, x), in_dims=(axes,))(arrays)

    def _is_array(self, out):
        return isinstance(out, torch.Tensor) and out.is_floating_point()


@contextlib.contextmanager
def _no_fastpath():
    """The fused inference kernels of ``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` (taken in eval
    mode when autograd is off, as inside the backend's no_grad) have no forward-mode derivative, which the NTK's
    ntvp method needs: the adapter's forward runs the composite path, the same formula, whatever the method."""
    mha = torch.backends.mha
    before = mha.get_fastpath_enabled()
    mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        mha.set_fastpath_enabled(before)


def _output_dim(module, name, output_dim, example_input):
    if output_dim is not None:
        return output_dim
    if example_input is not None:
        p = next(iter(module.parameters()), None)
        dtype = p.dtype if p is not None and p.is_floating_point() else torch.get_default_dtype()
        with torch.no_grad():
            out = module(torch.as_tensor(example_input, dtype=dtype))
        if not isinstance(out, torch.Tensor):
            raise HarnessError(f"model {name!r}: the module returned a {type(out).__name__}, not one array of "
                               f"outputs (N, k); wrap it so that it returns the output array")
        if out.ndim not in (1, 2):
            raise HarnessError(f"model {name!r}: the module's outputs on example_input have shape "
                               f"{tuple(out.shape)}, not (N, k)")
        return 1 if out.ndim == 1 else int(out.shape[1])
    last = [m for m in module.modules() if isinstance(getattr(m, "out_features", None), int)]
    if last:
        return int(last[-1].out_features)
    raise HarnessError(f"model {name!r}: cannot tell its number of outputs; pass output_dim= or example_input=")


def adapt_torch(module, *, name=None, output_dim=None, example_input=None, lr=None, frozen=(), reinit=None):
    """:func:`harness.adapters.from_torch`'s work (see there)."""
    if not isinstance(module, torch.nn.Module):
        raise HarnessError(f"from_torch needs a torch.nn.Module, got {type(module).__name__}")
    return TorchAdapted(module, name or type(module).__name__, frozen, output_dim, example_input, lr, reinit)
