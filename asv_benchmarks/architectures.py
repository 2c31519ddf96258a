"""The new architectures (issue 22) on torch and JAX: the empirical NTK (Jacobian contraction and NTVP) of a CNN and
of a transformer, and a transformer's training step. float32, compiled and warmed up in setup."""
from .common import BackendBenchmark

try:
    import numpy as np
    from harness import adam
    from harness.cnn import CNN
    from harness.cnn_kernels import Activation, Conv, Dense, GlobalAvgPool
    from harness.transformer import Transformer
except ImportError:
    pass


def _cnn():
    layers = (Conv(3, W_std=1.4, b_std=0.1), Activation("relu"), Conv(3, W_std=1.4), Activation("relu"),
              GlobalAvgPool(), Dense(1.4))
    return CNN((8, 8, 3), layers, 32, "ntk"), np.random.default_rng(0).standard_normal((16, 8, 8, 3))


def _transformer():
    model = Transformer(input_dim=8, seq_len=16, width=64, heads=4, depth=2, parametrisation="mup", base_width=16)
    return model, np.random.default_rng(0).standard_normal((16, 16, 8))


class ArchitectureNTK(BackendBenchmark):
    """Empirical NTK of 16 inputs: a two-layer 3x3 CNN of 32 channels on 8x8x3 images, a 2-block transformer of
    width 64 (4 heads) on sequences of 16."""
    params = BackendBenchmark.params + [["cnn", "transformer"], ["jacobian", "ntvp"]]
    param_names = BackendBenchmark.param_names + ["model", "method"]
    version = "arch-ntk-1"

    def setup(self, backend, device, model, method):
        be = self.make_backend(backend, device)
        self.model, self.x = _cnn() if model == "cnn" else _transformer()
        self.params = be.init(self.model, 0)
        self.method = method
        self.warm(self.run)

    def run(self):
        return self.be.ntk(self.model, self.params, self.x, method=self.method)

    def time_ntk(self, backend, device, model, method):
        self.run()


class TransformerTrainStep(BackendBenchmark):
    """One compiled Adam step (loss, gradient, update) of the transformer above on 16 sequences (MSE)."""
    version = "transformer-step-1"

    def setup(self, backend, device):
        be = self.make_backend(backend, device)
        model, x = _transformer()
        opt = adam(1e-3)
        self.trainable, self.frozen = be._split(be.init(model, 0))
        self.state = opt.init(self.trainable, be.ops)
        self.x, self.y = be.asarray(x), be.asarray(np.sin(x[:, 0, :1]))
        self.step = be.train_step_fn(model, opt, "mse")
        self.warm(self.run)

    def run(self):
        return self.step(self.trainable, self.frozen, self.state, self.x, self.y)

    def time_step(self, backend, device):
        self.sync(self.run())
