"""Analytic infinite-width NTK and NNGP (:func:`harness.mlp_kernels`). NumPy float64 on the host, the same for
every backend, so this module has no backend or device parameter."""
from .common import SkipNotImplemented, data, safe_import

with safe_import():
    from harness import mlp_kernels


class AnalyticNTK:
    """ReLU (closed-form arc-cosine dual) and tanh (2-D Gauss-Hermite quadrature) kernels, x1 = x2.

    The quadrature holds N^2 q^2 values (q = 96 nodes): 19 GB at N = 512, and takes ~10 s a layer at N = 64 on a
    loaded 2-core CPU, so tanh runs at N = 64, depth 2 only."""
    params = [["relu", "tanh"], [64, 512], [2, 8]]
    param_names = ["activation", "n", "depth"]
    version = "analytic-1"
    timeout = 180

    def setup(self, activation, n, depth):
        if activation == "tanh" and (n > 64 or depth > 2):
            raise SkipNotImplemented("tanh quadrature needs O(N^2 q^2) memory and time: N = 64, depth 2 only")
        self.x = data(n, 32, seed=4)[0]
        self.kw = dict(depth=depth, activation=activation, weight_std=1.4142135623730951 if activation == "relu"
                       else 1.0, bias_std=0.1)
        mlp_kernels(self.x, **self.kw)      # warm: quadrature tables

    def time_mlp_kernels(self, activation, n, depth):
        mlp_kernels(self.x, **self.kw)

    time_mlp_kernels.version = "analytic-1"


with safe_import():
    from harness.cnn_kernels import Activation, Conv, Dense, Flatten, GlobalAvgPool, cnn_kernels


class AnalyticCNTK:
    """The CNN-GP and CNTK of a ReLU CNN (three 3x3 SAME convolutions) on 64 images of 8x8x3, float64: read out by
    global average pooling (every pair of positions) or by flatten (``p = p'`` only). neural-tangents' stax on the
    same problem is timed by ``asv_benchmarks/nt_cnn.py`` in its own environment (see its docstring)."""
    params = [["gap", "flatten"]]
    param_names = ["readout"]
    timeout = 300

    def setup(self, readout):
        import numpy as np
        self.x = np.random.default_rng(2026).standard_normal((64, 8, 8, 3))
        body = []
        for _ in range(3):
            body += [Conv(3, W_std=1.4, b_std=0.1), Activation("relu")]
        self.layers = body + [GlobalAvgPool() if readout == "gap" else Flatten(), Dense(1.4, 0.1)]

    def time_cnn_kernels(self, readout):
        cnn_kernels(self.layers, self.x)

    def peakmem_cnn_kernels(self, readout):
        cnn_kernels(self.layers, self.x)
