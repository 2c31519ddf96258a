"""A learning-rate grid of one MLP (D2's task): the grid trained as one batched ensemble (one compiled step for
every rate, :func:`harness.transfer.train_lr_grid` with ``batched=True``) against one rate at a time (the
one-configuration-per-run loop), on torch and JAX; and the claim's statistic tracked."""
import numpy as np

from .common import BackendBenchmark, safe_import

with safe_import():
    from harness import MLP
    from harness.transfer import optimum_location, teacher_classes, train_lr_grid

LRS = 2.0 ** np.arange(-11, -2)          # D2's Adam grid: 9 rates


class LRGrid(BackendBenchmark):
    """D2's Adam task (2 hidden ReLU layers, 4-class cross-entropy, minibatches of 32, muP), ``STEPS`` steps at
    each of the 9 rates, float32; the first call (compilation) is in setup."""
    params = BackendBenchmark.params + [[128, 512], ["batched", "loop"]]
    param_names = BackendBenchmark.param_names + ["width", "grid"]
    version = "lr-grid-1"
    STEPS = 20

    def setup(self, backend, device, width, grid):
        be = self.make_backend(backend, device)
        self.model = MLP(input_dim=16, width=width, depth=2, parametrisation="mup", activation="relu",
                         output_dim=4, bias=True, base_width=32, zero_readout=True)
        self.x, self.y = teacher_classes(1024, 16, 4, seed=0)
        self.params = be.init(self.model, 0)
        self.batched = grid == "batched"
        self.run()

    def run(self):
        return train_lr_grid(self.be, self.model, self.params, self.x, self.y, "adam", LRS, self.STEPS,
                             "cross_entropy", batch_size=32, seed=1, batched=self.batched)

    def time_grid(self, backend, device, width, grid):
        self.run()

    def track_optimum(self, backend, device, width, grid):
        return optimum_location(LRS, self.run().final_loss).location

    track_optimum.unit = "log2 lr"
