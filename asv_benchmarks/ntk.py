"""Empirical NTK: each method (structured, jacobian, ntvp) on torch and JAX, its peak memory, and compilation.

Default sizes are the issue's reference problem (width 512, 2 hidden layers, input dim 32, scalar output, bias,
two batches of 64 inputs, float32) and a narrower net (width 128). The jacobian and ntvp routes take ~0.1-0.5 s
per call there on a 2-core CPU, the structured route ~2 ms. The N = 4096, width-4096 scale case is not in this
suite (it takes seconds per call and GBs): run ``python -m asv_benchmarks.scale``.
"""
from .common import BackendBenchmark, REF_INPUT_DIM, REF_N, data, mlp

METHODS = ["structured", "jacobian", "ntvp"]
WIDTHS = [128, 512]


class NTK(BackendBenchmark):
    """Theta(x1, x2) for two batches of 64 inputs; compiled and warmed up in setup."""
    params = BackendBenchmark.params + [METHODS, WIDTHS]
    param_names = BackendBenchmark.param_names + ["method", "width"]
    version = "ntk-1"

    def setup(self, backend, device, method, width):
        be = self.make_backend(backend, device)
        self.model = mlp(width=width)
        self.params_ = be.init(self.model, 0)
        x1, _ = data(REF_N, REF_INPUT_DIM, seed=1)
        x2, _ = data(REF_N, REF_INPUT_DIM, seed=2)
        self.x1, self.x2 = be.asarray(x1), be.asarray(x2)
        self.method = method
        self.warm(self.run)

    def run(self):
        return self.be.ntk_raw(self.model, self.params_, self.x1, self.x2, self.method)

    def time_ntk(self, backend, device, method, width):
        self.sync(self.run())

    def peakmem_ntk(self, backend, device, method, width):
        # peak RSS of the process (host memory); includes the framework's own footprint
        self.sync(self.run())

    time_ntk.version = peakmem_ntk.version = "ntk-1"


class NTKCompile(BackendBenchmark):
    """First call of the structured NTK on a fresh backend: tracing and jit compilation (JAX), or torch's
    first-call overhead. One call per sample: setup builds a new backend instance each time."""
    params = BackendBenchmark.params + [["structured", "ntvp"]]
    param_names = BackendBenchmark.param_names + ["method"]
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0.0
    version = "ntk-compile-1"

    def setup(self, backend, device, method):
        be = self.make_backend(backend, device, fresh=True)
        self.model = mlp()
        self.params_ = be.init(self.model, 0)
        self.x1 = be.asarray(data(REF_N, REF_INPUT_DIM, seed=1)[0])
        self.x2 = be.asarray(data(REF_N, REF_INPUT_DIM, seed=2)[0])
        self.method = method

    def time_first_call(self, backend, device, method):
        self.sync(self.be.ntk_raw(self.model, self.params_, self.x1, self.x2, self.method))
