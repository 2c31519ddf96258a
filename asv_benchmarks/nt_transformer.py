"""The empirical NTK of the transformer (``ArchitectureNTK``'s ``transformer`` row) against neural-tangents'
``empirical_ntk_fn``, on the same model function, weights and inputs, value and speed, float32 (issue 22).

neural-tangents cannot share the project's jax (../shared/PEERS.md: its own venv, jax 0.4.30), so this runs in two
halves, one after the other (not side by side), one CPU thread each:

    <nt-venv>/bin/python asv_benchmarks/nt_transformer.py peer /tmp/nt_tf.npz     # neural-tangents, three methods
    python asv_benchmarks/nt_transformer.py compare /tmp/nt_tf.npz                 # ours, jax and torch

Unlike the CNN (``nt_cnn.py``, where stax builds the same network from our weights) stax has no pre-LN transformer
of ours, so the peer half hands neural-tangents our model's own function: ``Transformer.apply`` written against
``JaxOps`` (harness code that needs only numpy and jax; the venv needs ``pip install threadpoolctl`` besides, which
``harness.backends`` imports) with ``Transformer.init(0)``'s weights. Both halves therefore differentiate the same
function of the same weights, and what is compared is the NTK routine: neural-tangents' Jacobian contraction,
NTK-vector products and structured derivatives against ``Backend.ntk``'s ``jacobian`` and ``ntvp`` methods. Each is
timed as the best of ``REPEATS`` calls after a warm-up call (compilation not counted).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

REPEATS = 5
N, SEQ, D_IN = 16, 16, 8
METHODS = {1: "jacobian-contraction", 2: "ntk-vector-products", 3: "structured-derivatives"}


def _model():
    from harness.transformer import Transformer
    return Transformer(input_dim=D_IN, seq_len=SEQ, width=64, heads=4, depth=2, parametrisation="mup",
                       base_width=16)


def _inputs():
    return np.random.default_rng(0).standard_normal((N, SEQ, D_IN)).astype(np.float32)


def _best(fn):
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peer(path):
    """neural-tangents' three empirical NTK methods on ``Transformer.apply`` (JaxOps) at ``init(0)``'s weights."""
    import jax
    import jax.numpy as jnp
    import neural_tangents as nt
    from harness.backends.jax import JaxOps
    model, ops = _model(), JaxOps(jnp, jax)
    weights = {k: jnp.asarray(v, jnp.float32) for k, v in model.init(0).items()}
    trainable = {k: v for k, v in weights.items() if not k.startswith("frozen/")}
    frozen = {k: v for k, v in weights.items() if k.startswith("frozen/")}

    def apply_fn(params, x):
        return model.apply({**params, **frozen}, x, ops)
    x = jnp.asarray(_inputs())
    out = {}
    for impl, name in METHODS.items():
        fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl))
        run = lambda: jax.block_until_ready(fn(x, None, trainable))    # noqa: E731
        out[f"{name}/ntk"] = np.asarray(run())
        out[f"{name}/seconds"] = _best(run)
        print(f"neural-tangents {name}: {out[f'{name}/seconds'] * 1e3:.2f} ms")
    np.savez(path, **out)


def compare(path):
    """``Backend.ntk`` (jacobian and ntvp, jax and torch) on the same model, weights and inputs; returns the largest
    relative difference from neural-tangents' kernels."""
    from harness import get_backend
    model, x, ref = _model(), _inputs(), np.load(path)
    nt_best = min(float(ref[f"{n}/seconds"]) for n in METHODS.values())
    want = ref["structured-derivatives/ntk"]
    worst = max(float(np.max(np.abs(ref[f"{n}/ntk"] - want)) / np.max(np.abs(want))) for n in METHODS.values())
    print(f"neural-tangents' three methods agree to {worst:.1e}; its fastest: {nt_best * 1e3:.2f} ms")
    for backend in ("jax", "torch"):
        be = get_backend(backend)
        params = be.load_params(model.init(0))
        for method in ("jacobian", "ntvp"):
            k = be.ntk(model, params, x, method=method)
            seconds = _best(lambda: be.synchronize(be.ntk(model, params, x, method=method)))
            err = float(np.max(np.abs(np.asarray(k) - want)) / np.max(np.abs(want)))
            worst = max(worst, err)
            print(f"ours {backend} {method}: {seconds * 1e3:.2f} ms (ratio to neural-tangents' fastest "
                  f"{seconds / nt_best:.2f}); max relative difference {err:.1e} (float32)")
    return worst


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))   # the harness, in either venv
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    if len(sys.argv) != 3 or sys.argv[1] not in ("peer", "compare"):
        sys.exit("usage: python asv_benchmarks/nt_transformer.py peer|compare FILE.npz")
    mode, file = sys.argv[1], sys.argv[2]
    if mode == "peer":
        peer(file)
    else:
        sys.exit(0 if compare(file) <= 1e-4 else 1)
