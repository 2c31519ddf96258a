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
