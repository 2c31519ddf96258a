"""Shared helpers for the asv suite, after scipy's ``benchmarks/benchmarks/common.py``.

- :func:`safe_import`: one broken import must not stop asv from discovering the other benchmarks.
- :class:`BackendBenchmark`: a benchmark class parametrised over ``backend`` (torch, jax) and ``device`` (cpu,
  cuda). :meth:`~BackendBenchmark.make_backend` raises :class:`SkipNotImplemented` (a ``NotImplementedError``) from
  ``setup`` when the framework is not installed or cannot reach the device, so asv reports the combination as
  skipped (``n/a``) instead of failing: on a machine without a GPU every ``cuda`` row is skipped.
- :meth:`~BackendBenchmark.sync` waits for queued device work (``torch.cuda.synchronize`` /
  ``jax.block_until_ready``) so a timed function measures the computation, not its dispatch.
- :meth:`~BackendBenchmark.warm` calls a function once in ``setup``: jit compilation (JAX) and first-call
  allocations happen there, outside the timing. Compilation is timed separately (``ntk.NTKCompile``).

Inputs come from fixed seeds, so every commit benchmarks the same problem.
"""
from __future__ import annotations

import contextlib

import numpy as np

try:
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:                                        # asv < 0.6: a plain NotImplementedError also skips
    SkipNotImplemented = NotImplementedError


@contextlib.contextmanager
def safe_import():
    """``with safe_import(): import x``: an import error is swallowed (the benchmarks needing it skip)."""
    try:
        yield
    except ImportError:
        pass


with safe_import():
    import harness
    from harness import HarnessError, MLP
# Imported here (neither starts threads or a device) so that asv's forkserver loads them once, not per benchmark.
with safe_import():
    import torch  # noqa: F401
with safe_import():
    import jax  # noqa: F401

BACKENDS = ["torch", "jax"]
DEVICES = ["cpu", "cuda"]

# The reference problem: ReLU MLP, 2 hidden layers of width 512, input dim 32, scalar output, with bias,
# NTK between two batches of 64 inputs, float32.
REF_INPUT_DIM, REF_WIDTH, REF_DEPTH, REF_N = 32, 512, 2, 64


def mlp(width=REF_WIDTH, depth=REF_DEPTH, input_dim=REF_INPUT_DIM, output_dim=1, bias=True):
    return MLP(input_dim=input_dim, width=width, depth=depth, parametrisation="ntk", activation="relu",
               output_dim=output_dim, bias=bias)


def data(n, d, seed=0, k=None):
    """(x, y) from ``seed``: standard normal inputs and targets (y is None when k is None)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, (None if k is None else rng.standard_normal((n, k)))


def get_backend_or_skip(backend, device, dtype="float32", fresh=False, **options):
    """The harness backend, or :class:`SkipNotImplemented` if it cannot run here.

    ``fresh`` bypasses :func:`harness.get_backend`'s instance cache, so nothing compiled earlier is reused;
    ``options`` go to it (``train_chunk``).
    """
    try:
        from harness.backends import get_backend
        make = get_backend.__wrapped__ if fresh else get_backend
        return make(backend, device, dtype, **options)
    except (NameError, ImportError, HarnessError) as e:     # NameError: harness itself failed to import
        raise SkipNotImplemented(f"{backend}:{device} unavailable: {e}") from None


class BackendBenchmark:
    """Base class: ``params`` start with backend and device; subclasses append their own."""
    params = [BACKENDS, DEVICES]
    param_names = ["backend", "device"]
    timeout = 300

    def make_backend(self, backend, device, dtype="float32", fresh=False):
        self.be = get_backend_or_skip(backend, device, dtype, fresh=fresh)
        return self.be

    def sync(self, out=None):
        """Block until ``out`` (any pytree of backend arrays) and all queued device work is done."""
        be = self.be
        if be.framework_name == "jax":
            if out is not None:
                be.jax.block_until_ready(out)
        else:
            be.synchronize()
        return out

    def warm(self, fn, *args, times=2):
        """Call ``fn`` ``times`` times (compile, allocate), synchronising; returns the last result."""
        out = None
        for _ in range(times):
            out = self.sync(fn(*args))
        return out
