"""One compiled training step (loss, gradient, optimiser update) of an MLP, SGD and Adam, on torch and JAX."""
from .common import BackendBenchmark, REF_INPUT_DIM, data, mlp

try:
    from harness import adam, sgd
except ImportError:
    pass

N_TRAIN = 256


class TrainStep(BackendBenchmark):
    """``Backend.train_step_fn`` on a full batch of 256 MSE examples; compiled and warmed up in setup.
    The step is applied to the same parameters each call, so every sample times the same work."""
    params = BackendBenchmark.params + [["sgd", "adam"], [128, 512]]
    param_names = BackendBenchmark.param_names + ["optimizer", "width"]
    version = "train-step-1"

    def setup(self, backend, device, optimizer, width):
        be = self.make_backend(backend, device)
        model = mlp(width=width)
        opt = sgd(0.1) if optimizer == "sgd" else adam(1e-3)
        params = be.init(model, 0)
        self.trainable, self.frozen = be._split(params)
        self.state = opt.init(self.trainable, be.ops)
        x, y = data(N_TRAIN, REF_INPUT_DIM, seed=3, k=1)
        self.x, self.y = be.asarray(x), be.asarray(y)
        self.step = be.train_step_fn(model, opt, "mse")
        self.warm(self.run)

    def run(self):
        return self.step(self.trainable, self.frozen, self.state, self.x, self.y)

    def time_step(self, backend, device, optimizer, width):
        self.sync(self.run())

    time_step.version = "train-step-1"
