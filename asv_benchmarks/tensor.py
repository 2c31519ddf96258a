"""One gradient-descent step of the over-parametrised tensor model (harness/tensor.py), dense and Gram form.

- ``dense``: the loss 0.5 ||T(U) - T*||^2 through the d^l tensors, differentiated by the backend's autodiff, then
  the update; the reference form, O(m d^l) time and memory.
- ``gram``: the hand-written Gram gradient (inner products u_j.u_k, q_i.u_j raised to the power l), then the
  update; O(m (m + r) d), no d^l array. This is the step C2's training runs (``Backend.iterate``).

Both are compiled (JAX) and warmed up in setup; the step is applied to the same parameters each call, float64
(the claims' dtype), one model (B = 1), rank-2 orthonormal target. ``TensorStepPeakmem`` records the process's
peak memory for one step; ``python -m asv_benchmarks.tensor`` prints the Gram/dense ratio at d = 40, l = 3 and the
peak-memory growth from which the largest d per form in 24 GB is estimated.
"""
import numpy as np

from .common import BackendBenchmark

try:
    from harness.tensor import dense_loss, gram_loss_and_grad, orthonormal_target, small_init
except ImportError:
    pass

FORMS = ["dense", "gram"]
DS = [10, 20, 40]
MS = [8, 32]
LS = [3, 4]
LR = 0.1


def _dense_value(U, w, a, Q, l, ops):
    return ops.sum(dense_loss(U, w, a, Q, l, ops))


def make_step(be, form, d, m, l):
    """(compiled step, its arguments): step(U, w, a, Q) -> (new U, gradient)."""
    rng = np.random.default_rng(0)
    Q = orthonormal_target(d, 2, rng)
    U = small_init(1, m, d, 0.5, rng)
    with be._context():
        args = tuple(be.asarray(v) for v in (U, np.ones((1, m)), np.array([1.0, 0.7]), Q))
    ops = be.ops
    if form == "gram":
        def step(U, w, a, Q):
            g = gram_loss_and_grad(U, w, a, Q, l, ops, with_fit=False, with_loss=False)[1]
            return U - LR * g, g
        return be._compile(("bench-tensor-gram", l), step), args
    vg = be._value_and_grad(lambda p, w, a, Q: _dense_value(p["U"], w, a, Q, l, ops))

    def dstep(U, w, a, Q):
        _, g = vg({"U": U}, w, a, Q)
        return U - LR * g["U"], g["U"]
    return be._compile(("bench-tensor-dense", l), dstep), args


class TensorStep(BackendBenchmark):
    """One GD step (gradient + update) of the tensor model, dense or Gram form, float64."""
    params = BackendBenchmark.params + [FORMS, DS, MS, LS]
    param_names = BackendBenchmark.param_names + ["form", "d", "m", "l"]
    version = "tensor-step-1"

    def setup(self, backend, device, form, d, m, l):
        be = self.make_backend(backend, device, "float64")
        self.fn, self.args = make_step(be, form, d, m, l)
        self.warm(self.run)

    def run(self):
        with self.be._context():
            return self.fn(*self.args)

    def time_step(self, backend, device, form, d, m, l):
        self.sync(self.run())

    time_step.version = "tensor-step-1"


class TensorStepPeakmem(TensorStep):
    """Peak RSS of the process around one step (host memory; includes the framework's own footprint)."""
    params = BackendBenchmark.params + [FORMS, [20, 40], [32], LS]
    version = "tensor-step-peakmem-1"

    def time_step(self, *a):                     # not timed here
        pass

    def peakmem_step(self, backend, device, form, d, m, l):
        self.sync(self.run())

    peakmem_step.version = "tensor-step-peakmem-1"


SEED_GRID = (2, 3, 4, 6, 8, 12, 16)          # C2's grid of m, trained as one masked batch per seed


def seed_problems(n_seeds, d, l=3):
    """C2's problems for ``n_seeds`` seeds (a target and a nested small init per seed, every m of the grid):
    (U0, w, Q) batched over (seed, m), and the number of rows per seed."""
    G, M = len(SEED_GRID), max(SEED_GRID)
    mask = np.array([[1.0] * m + [0.0] * (M - m) for m in SEED_GRID])
    U0, Q = [], []
    for s in range(n_seeds):
        rng = np.random.default_rng(s)
        Q.append(np.repeat(orthonormal_target(d, 2, rng)[None], G, axis=0))
        U0.append(np.repeat(small_init(1, M, d, 0.05, rng), G, axis=0))
    return np.concatenate(U0), np.tile(mask, (n_seeds, 1)), np.concatenate(Q), G


class TensorTrainSeeds(BackendBenchmark):
    """C2's training of 16 seeds x the grid of m (7 models each), 300 GD steps (no early stop), float64: in one
    batch (``batched``: the claim's ``seed_batch``, one ``train`` call) or one seed per call (``per-seed``: the
    one-seed-per-task loop the engine ran before). The ratio is the gain of batching seeds."""
    params = BackendBenchmark.params + [["batched", "per-seed"], [10, 40]]
    param_names = BackendBenchmark.param_names + ["mode", "d"]
    version = "tensor-train-seeds-1"
    timeout = 300

    def setup(self, backend, device, mode, d):
        from harness.tensor import train
        be = self.make_backend(backend, device, "float64")
        U0, w, Q, G = seed_problems(16, d)
        a = np.array([1.0, 0.7])
        kw = dict(lr=0.1, max_steps=300, chunk=300, track_fit=False)
        if mode == "batched":
            self.fn = lambda: train(be, U0, w, a, Q, 3, **kw)
        else:
            self.fn = lambda: [train(be, U0[k:k + G], w[k:k + G], a, Q[k:k + G], 3, **kw)
                               for k in range(0, len(U0), G)]
        self.fn()                                    # compile (JAX) and warm up

    def time_train(self, backend, device, mode, d):
        self.fn()

    time_train.version = "tensor-train-seeds-1"


def _main():
    """Gram/dense ratio at d = 40, l = 3 (both backends, median of repeats) and the dense step's memory law."""
    import time

    from harness import get_backend
    for name in ("jax", "torch"):
        be = get_backend(name, "cpu", "float64")
        for m in MS:
            times = {}
            for form in FORMS:
                fn, args = make_step(be, form, 40, m, 3)
                with be._context():
                    for _ in range(3):
                        out = fn(*args)
                    if name == "jax":
                        be.jax.block_until_ready(out)
                    reps = []
                    for _ in range(30 if form == "dense" else 300):
                        t0 = time.perf_counter()
                        out = fn(*args)
                        if name == "jax":
                            be.jax.block_until_ready(out)
                        reps.append(time.perf_counter() - t0)
                times[form] = float(np.median(reps))
            print(f"{name} d=40 l=3 m={m}: dense {times['dense'] * 1e6:.0f} us, gram {times['gram'] * 1e6:.1f} us, "
                  f"dense/gram {times['dense'] / times['gram']:.0f}x")


def _peak_growth(name, form, d, m, l):
    """Peak-RSS growth (bytes) of one step in a fresh process (so the peak is this step's own)."""
    import subprocess
    import sys
    code = (f"import resource; from asv_benchmarks.tensor import make_step; from harness import get_backend; "
            f"be = get_backend({name!r}, 'cpu', 'float64'); r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
            f"fn, args = make_step(be, {form!r}, {d}, {m}, {l}); ctx = be._context(); ctx.__enter__(); out = fn(*args); "
            f"be.synchronize(out) if {name!r} == 'jax' else None; "
            f"print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) * 1024)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def _memory():
    """The dense step's memory per d^l entry, from the peak-RSS growth between d = 100 and 200 (l = 3, m = 32), and
    the largest d whose dense step fits in 24 GB at that rate; the Gram step at d = 20000 for comparison."""
    for name in ("jax", "torch"):
        g1, g2 = (_peak_growth(name, "dense", d, 32, 3) for d in (100, 200))
        per = (g2 - g1) / (200 ** 3 - 100 ** 3)
        print(f"{name} dense: {per:.1f} bytes per d^l entry; in 24 GB: l=3 d <= {(24e9 / per) ** (1 / 3):.0f}, "
              f"l=4 d <= {(24e9 / per) ** (1 / 4):.0f}; gram at d=20000, m=32: "
              f"{_peak_growth(name, 'gram', 20000, 32, 3) / 1e6:.0f} MB")


if __name__ == "__main__":
    import sys
    _memory() if sys.argv[1:] == ["memory"] else _main()
