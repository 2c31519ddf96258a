"""The analytic CNN kernels (harness.cnn_kernels) against neural-tangents' stax, value and speed, float64.

neural-tangents cannot share the project's jax (../shared/PEERS.md: its own venv, jax 0.4.30), so the comparison
runs in two halves on the same seeded inputs and architectures:

    <nt-venv>/bin/python asv_benchmarks/nt_cnn.py peer  /tmp/nt_cnn.npz    # stax kernel_fn: kernels and times
    python asv_benchmarks/nt_cnn.py compare /tmp/nt_cnn.npz                  # ours: max relative error, times

The peer half imports only numpy, jax and neural_tangents (no harness), the other half only the harness. Each
architecture is timed as the best of ``REPEATS`` calls after one warm-up call (stax's ``kernel_fn`` jitted, so its
compilation is not counted), one CPU thread each (run them one after the other, not side by side).
"""
from __future__ import annotations

import sys
import time

import numpy as np

REPEATS = 3
N, HW, C = 64, 8, 3          # the problem: 64 images of 8x8 (3 channels)
W_STD, B_STD = 1.4, 0.1


def inputs():
    rng = np.random.default_rng(2026)
    return {"x2d": rng.standard_normal((N, HW, HW, C)), "x1d": rng.standard_normal((N, 16, C))}


# (name, input, layers): each layer (kind, args); both halves build their own network from these
ARCHS = [
    ("relu-conv3x2-flatten", "x2d", [("conv", 3, 1, "SAME"), ("relu",), ("conv", 3, 1, "SAME"), ("relu",),
                                     ("flatten",), ("dense",)]),
    ("relu-conv3x3-gap", "x2d", [("conv", 3, 1, "SAME"), ("relu",), ("conv", 3, 1, "SAME"), ("relu",),
                                 ("conv", 3, 1, "SAME"), ("relu",), ("gap",), ("dense",)]),
    ("erf-conv-avgpool-valid-gap", "x2d", [("conv", 3, 1, "SAME"), ("erf",), ("avgpool", 2, 2, "VALID"),
                                           ("conv", 3, 1, "VALID"), ("relu",), ("gap",), ("dense",)]),
    ("relu-conv-stride2-flatten", "x2d", [("conv", 3, 2, "SAME"), ("relu",), ("conv", 2, 1, "VALID"), ("relu",),
                                          ("flatten",), ("dense",)]),
    ("relu-conv1d-gap", "x1d", [("conv", 5, 1, "SAME"), ("relu",), ("conv", 3, 1, "SAME"), ("relu",), ("gap",),
                                ("dense",)]),
]


def _best(fn):
    fn()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peer(path):
    import jax
    jax.config.update("jax_enable_x64", True)
    from neural_tangents import stax
    xs, out = inputs(), {}
    for name, key, spec in ARCHS:
        x = xs[key]
        spatial = x.ndim - 2
        layers = []
        for kind, *a in spec:
            if kind == "conv":
                layers.append(stax.Conv(1, (a[0],) * spatial, (a[1],) * spatial, a[2], W_std=W_STD, b_std=B_STD))
            elif kind == "avgpool":
                layers.append(stax.AvgPool((a[0],) * spatial, (a[1],) * spatial, a[2]))
            else:
                layers.append({"relu": stax.Relu, "erf": stax.Erf, "gap": stax.GlobalAvgPool, "flatten": stax.Flatten,
                               "dense": lambda: stax.Dense(1, W_std=W_STD, b_std=B_STD)}[kind]())
        kernel_fn = jax.jit(stax.serial(*layers)[2], static_argnames="get")
        xj = jax.numpy.asarray(x)

        def run():
            k = kernel_fn(xj, xj, get=("nngp", "ntk"))
            return jax.block_until_ready(k)
        k = run()
        out[f"{name}/nngp"], out[f"{name}/ntk"] = np.asarray(k[0]), np.asarray(k[1])
        out[f"{name}/seconds"] = _best(run)
        print(f"{name}: stax {out[f'{name}/seconds']:.3f} s")
    np.savez(path, **out)


def compare(path):
    from harness.cnn_kernels import Activation, AvgPool, Conv, Dense, Flatten, GlobalAvgPool, cnn_kernels
    ref, xs = np.load(path), inputs()
    worst = 0.0
    for name, key, spec in ARCHS:
        layers = []
        for kind, *a in spec:
            if kind == "conv":
                layers.append(Conv(a[0], a[1], a[2], W_std=W_STD, b_std=B_STD))
            elif kind == "avgpool":
                layers.append(AvgPool(a[0], a[1], a[2]))
            elif kind in ("relu", "erf"):
                layers.append(Activation(kind))
            else:
                layers.append({"gap": GlobalAvgPool, "flatten": Flatten,
                               "dense": lambda: Dense(W_STD, B_STD)}[kind]())
        k = cnn_kernels(layers, xs[key])
        seconds = _best(lambda: cnn_kernels(layers, xs[key]))
        errs = [float(np.max(np.abs(mine - ref[f"{name}/{what}"])) / np.max(np.abs(ref[f"{name}/{what}"])))
                for what, mine in (("nngp", k.nngp), ("ntk", k.ntk))]
        worst = max(worst, *errs)
        stax_s = float(ref[f"{name}/seconds"])
        print(f"{name}: max relative error nngp {errs[0]:.1e}, ntk {errs[1]:.1e}; ours {seconds:.3f} s, "
              f"stax {stax_s:.3f} s (ours/stax {seconds / stax_s:.2f})")
    print(f"largest relative error {worst:.1e}")
    return worst


if __name__ == "__main__":
    mode, file = sys.argv[1], sys.argv[2]
    if mode == "peer":
        peer(file)
    else:
        sys.exit(0 if compare(file) <= 1e-6 else 1)
