"""Backend registry: each framework lives in its own module, imported only when asked for.

As in einops, an explicit table maps names to module paths, and a framework is imported lazily, so importing
:mod:`harness` loads neither torch nor jax (a framework may be missing, heavy, or broken).
"""
from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache

from ..errors import HarnessError
from ._base import Backend, TrainResult

BACKENDS = {
    "torch": ("harness.backends.torch", "TorchBackend", "torch"),
    "jax": ("harness.backends.jax", "JaxBackend", "jax"),
}


def is_installed(name: str) -> bool:
    """Whether the framework behind backend ``name`` can be imported (without importing it)."""
    return importlib.util.find_spec(BACKENDS[name][2]) is not None


def available_backends() -> list[str]:
    """The backends whose framework is installed, in the order of ``BACKENDS`` (torch, jax)."""
    return [n for n in BACKENDS if is_installed(n)]


@lru_cache(maxsize=None)
def get_backend(name: str, device: str = "cpu", dtype: str = "float32", train_chunk: int = 0) -> Backend:
    """The backend ``name`` ("torch" or "jax") on ``device`` ("cpu"/"cuda") computing in ``dtype``;
    ``train_chunk`` > 0 runs :meth:`Backend.train`'s full-batch steps that many per compiled call (see
    :class:`Backend`).

    Raises :class:`HarnessError` (one line) for an unknown name, a framework that is not installed, or a device
    the framework cannot reach.
    """
    if name not in BACKENDS:
        raise HarnessError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module, cls, package = BACKENDS[name]
    if not is_installed(name):
        raise HarnessError(f"backend {name!r} is not installed: the {package!r} package cannot be imported")
    return getattr(importlib.import_module(module), cls)(device=device, dtype=dtype, train_chunk=train_chunk)


__all__ = ["Backend", "TrainResult", "BACKENDS", "get_backend", "available_backends", "is_installed"]
