"""The analytic CNN kernels (harness.cnn_kernels) against neural-tangents' stax, value and speed, float64.

neural-tangents cannot share the project's jax (../shared/PEERS.md: its own venv, jax 0.4.30), so the comparison
runs in two halves on the same seeded inputs and architectures:

    <nt-venv>/bin/python asv_benchmarks/nt_cnn.py peer  /tmp/nt_cnn.npz    # stax kernel_fn: kernels and times
    python asv_benchmarks/nt_cnn.py compare /tmp/nt_cnn.npz                  # ours: max relative error, times

and for the empirical NTK of a finite CNN (the weights drawn by ``harness.cnn.CNN`` and read by stax, float32):

    python asv_benchmarks/nt_cnn.py weights /tmp/nt_ntk.npz                  # our weights and inputs
    <nt-venv>/bin/python asv_benchmarks/nt_cnn.py peer-ntk /tmp/nt_ntk.npz # empirical_ntk_fn, three methods
    python asv_benchmarks/nt_cnn.py compare-ntk /tmp/nt_ntk.npz              # ours, jax and torch

The peer half imports only numpy, jax and neural_tangents (no harness), the other half only the harness. Each
architecture is timed as the best of at least ``REPEATS`` calls (:func:`_best`) after one warm-up call (stax's
``kernel_fn`` jitted, so its compilation is not counted), one CPU thread each (run them one after the other, not
side by side).
"""
from __future__ import annotations

import sys
import time

import numpy as np

REPEATS = 3
BUDGET = 1.0
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
    """The best of at least ``REPEATS`` calls after a warm-up, and of as many more as fit in ``BUDGET`` seconds (a
    few-millisecond kernel is then the best of ~100 calls, not of 3)."""
    fn()
    times = []
    while len(times) < REPEATS or sum(times) < BUDGET:
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
        print(f"{name}: stax {out[f'{name}/seconds'] * 1e3:.1f} ms")
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
        print(f"{name}: max relative error nngp {errs[0]:.1e}, ntk {errs[1]:.1e}; ours {seconds * 1e3:.1f} ms, "
              f"stax {stax_s * 1e3:.1f} ms (ours/stax {seconds / stax_s:.2f})")
    print(f"largest relative error {worst:.1e}")
    return worst




# -- the empirical NTK of a finite CNN: harness.cnn.CNN against neural-tangents' empirical_ntk_fn --------------
# `<nt-venv>/bin/python asv_benchmarks/nt_cnn.py peer-ntk F` then `python asv_benchmarks/nt_cnn.py compare-ntk F`:
# the ours half writes the weights (NumPy, from the model's init) and the inputs first if F does not exist.
NTK_N, NTK_CHANNELS = 16, 32


def _ntk_problem():
    x = np.random.default_rng(0).standard_normal((NTK_N, 8, 8, 3)).astype(np.float32)
    return x


def ours_weights(path):
    from harness.cnn import CNN
    from harness.cnn_kernels import Activation, Conv, Dense, GlobalAvgPool
    layers = (Conv(3, W_std=W_STD, b_std=B_STD), Activation("relu"), Conv(3, W_std=W_STD, b_std=B_STD),
              Activation("relu"), GlobalAvgPool(), Dense(W_STD, B_STD))
    model = CNN((8, 8, 3), layers, NTK_CHANNELS, "ntk")
    np.savez(path, x=_ntk_problem(), **model.init(0))
    return model


def peer_ntk(path):
    import jax
    import neural_tangents as nt
    from neural_tangents import stax
    data = np.load(path)
    init_fn, apply_fn, _ = stax.serial(
        stax.Conv(NTK_CHANNELS, (3, 3), (1, 1), "SAME", W_std=W_STD, b_std=B_STD), stax.Relu(),
        stax.Conv(NTK_CHANNELS, (3, 3), (1, 1), "SAME", W_std=W_STD, b_std=B_STD), stax.Relu(),
        stax.GlobalAvgPool(), stax.Dense(1, W_std=W_STD, b_std=B_STD))
    _, shapes = init_fn(jax.random.PRNGKey(0), data["x"].shape)
    params = [(jax.numpy.asarray(data["W0"], np.float32), jax.numpy.asarray(data["b0"].reshape(shapes[0][1].shape),
                                                                             np.float32)), (),
              (jax.numpy.asarray(data["W2"], np.float32), jax.numpy.asarray(data["b2"].reshape(shapes[2][1].shape),
                                                                             np.float32)), (), (),
              (jax.numpy.asarray(data["W5"], np.float32), jax.numpy.asarray(data["b5"], np.float32))]
    x = jax.numpy.asarray(data["x"])
    out = {}
    for impl, name in ((1, "jacobian-contraction"), (2, "ntk-vector-products"), (3, "structured-derivatives")):
        fn = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(-1,), vmap_axes=0, implementation=impl))
        run = lambda: jax.block_until_ready(fn(x, None, params))    # noqa: E731
        out[f"{name}/ntk"] = np.asarray(run())
        out[f"{name}/seconds"] = _best(run)
        print(f"neural-tangents {name}: {out[f'{name}/seconds'] * 1e3:.1f} ms")
    np.savez(path.replace(".npz", "-peer.npz"), **out)


def compare_ntk(path):
    from harness import get_backend
    from harness.cnn import CNN
    from harness.cnn_kernels import Activation, Conv, Dense, GlobalAvgPool
    model = CNN((8, 8, 3), (Conv(3, W_std=W_STD, b_std=B_STD), Activation("relu"), Conv(3, W_std=W_STD, b_std=B_STD),
                            Activation("relu"), GlobalAvgPool(), Dense(W_STD, B_STD)), NTK_CHANNELS, "ntk")
    data, ref = np.load(path), np.load(path.replace(".npz", "-peer.npz"))
    x = data["x"]
    nt_best = min(float(ref[f"{n}/seconds"]) for n in ("jacobian-contraction", "ntk-vector-products",
                                                        "structured-derivatives"))
    want = ref["structured-derivatives/ntk"]
    for backend in ("jax", "torch"):
        be = get_backend(backend)
        params = be.load_params({k: data[k] for k in data.files if k != "x"})
        for method in ("jacobian", "ntvp"):
            k = be.ntk(model, params, x, method=method)
            seconds = _best(lambda: be.ntk(model, params, x, method=method))
            err = float(np.max(np.abs(k - want)) / np.max(np.abs(want)))
            print(f"ours {backend} {method}: {seconds * 1e3:.1f} ms (neural-tangents' fastest {nt_best * 1e3:.1f} ms, "
                  f"ratio {seconds / nt_best:.2f}); max relative difference {err:.1e} (float32)")


if __name__ == "__main__":
    mode, file = sys.argv[1], sys.argv[2]
    if mode == "peer":
        peer(file)
    elif mode == "weights":
        ours_weights(file)
    elif mode == "peer-ntk":
        peer_ntk(file)
    elif mode == "compare-ntk":
        compare_ntk(file)
    else:
        sys.exit(0 if compare(file) <= 1e-6 else 1)
