"""One compiled training step (loss, gradient, optimiser update) of an MLP, SGD and Adam, on torch and JAX."""
from .common import BackendBenchmark, REF_INPUT_DIM, data, get_backend_or_skip, mlp

try:
    from harness import adam, sgd
except ImportError:
    pass

N_TRAIN = 256
CHUNK = {"torch": 10, "jax": 500}        # train_chunk: torch.compile's K unrolled steps; JAX's loop takes any count


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


class SmallNetTraining(BackendBenchmark):
    """Issue 25's kind of training: ``Backend.train`` of a wide shallow ReLU net (width 256, one hidden layer,
    biases, NTK parametrisation) on 32 points in 4-d, 500 full-batch steps; the same with ``train_chunk`` (torch:
    10 steps per compiled call, JAX: all 500 in one ``fori_loop``; compiled in setup, so not timed: see
    ``python -m asv_benchmarks.training --small-net`` for the whole cost); and 36 networks (one per seed) trained
    as one ensemble by :func:`harness.ensembles.train_ensemble`. float64. Per-step dispatch, not arithmetic, is
    most of a small net's step: eager torch pays it per operation (hence the MLP's written-out gradient on
    torch), JAX once per jitted step."""
    params = BackendBenchmark.params + [["sgd", "adam"], ["one", "one-chunked", "ensemble-36"]]
    param_names = BackendBenchmark.param_names + ["optimizer", "networks"]
    version = "small-net-1"
    STEPS = 500

    def setup(self, backend, device, optimizer, networks):
        import numpy as np
        from harness import MLP
        from harness.ensembles import train_ensemble
        be = self.make_backend(backend, device, dtype="float64")
        if networks == "one-chunked":
            be = self.be = get_backend_or_skip(backend, device, "float64", train_chunk=CHUNK[backend])
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((32, 4))
        self.y = np.sin(self.x[:, :1])
        self.model = MLP(4, 256, 1, "ntk", bias=True)
        self.opt = sgd(0.05) if optimizer == "sgd" else adam(1e-3)
        if networks in ("one", "one-chunked"):
            params = be.init(self.model, 0)
            self.run = lambda: be.train(self.model, params, self.x, self.y, self.opt, self.STEPS,
                                        record_every=self.STEPS).params
        else:
            params = be.init_ensemble(self.model, range(36))
            self.run = lambda: train_ensemble(be, self.model, params, self.x, self.y, self.opt, self.STEPS).params
        self.warm(self.run, times=1)

    def time_train(self, backend, device, optimizer, networks):
        self.sync(self.run())


# -- `python -m asv_benchmarks.training [THREADS...]`: the torch / JAX ratio at matched thread counts ------------
# -- `python -m asv_benchmarks.training --small-net [NETS STEPS]`: issue 25's user's training, whole cost ----------
# asv runs each backend with its own default threads (torch: one, HARNESS_TORCH_THREADS; XLA: every core), which
# is not a like-for-like comparison. This prints TrainStep for both at the same intra-op thread count, each
# backend in its own fresh process (XLA reads its flags once, at import), best of 5 repeats of 40 steps.
def _time_one(backend):
    """TrainStep's rows for one backend, in this process (its threads were set by the caller's environment)."""
    import time
    rows = {}
    for optimizer in ("sgd", "adam"):
        for width in (128, 512):
            b = TrainStep()
            b.setup(backend, "cpu", optimizer, width)
            best = float("inf")
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(40):
                    b.time_step(backend, "cpu", optimizer, width)
                best = min(best, (time.perf_counter() - t0) / 40)
            rows[f"{optimizer}-{width}"] = best * 1e3
    return rows


SMALL_NET = {"nets": 36, "steps": 10_000}


def _small_net_one(backend, chunk, nets, steps):
    """Issue 25's user's training, in this process: ``nets`` networks (one per seed) trained one after another by
    ``Backend.train``, ``steps`` full-batch SGD steps each, of a wide shallow ReLU net with the paper's
    initialisation (+-1 input weights, uniform biases, the anti-symmetric copy: zero output at init), width 256,
    on 32 points in 4-d, float64. Seconds for all of it (compilation included), for the first network (where the
    compiling is), and microseconds per step after it. ``chunk`` -1: the seeds batched instead, all ``nets`` as one
    ensemble (:func:`harness.ensembles.train_ensemble`, the README's way to train many seeds); "first" is then
    one step of it, and the microseconds are per step of the whole ensemble."""
    import time
    import numpy as np
    from harness import MLP
    from harness.backends import get_backend
    from harness.inits import antisymmetric
    model = antisymmetric(MLP(4, 256, 1, "ntk", bias=True, init_dist={"input": "rademacher", "bias": "uniform"}))
    be = get_backend(backend, dtype="float64", train_chunk=max(chunk, 0))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4))
    y = np.sin(x[:, :1])
    t0 = time.perf_counter()
    if chunk < 0:                   # the seeds batched: all the networks as one ensemble (train_ensemble)
        from harness.ensembles import train_ensemble
        params = be.init_ensemble(model, range(nets))
        train_ensemble(be, model, params, x, y, sgd(0.05), 1)
        first = time.perf_counter() - t0                    # the first step (tracing, compiling)
        run = train_ensemble(be, model, params, x, y, sgd(0.05), steps)
        total = time.perf_counter() - t0
        return {"total": total, "first": first, "us_per_step": (total - first) / steps * 1e6,
                "final_loss_max": float(np.max(run.history["loss"][-1]))}
    losses = []
    for seed in range(nets):
        run = be.train(model, be.init(model, seed), x, y, sgd(0.05), steps, record_every=steps)
        losses.append(float(run.history["loss"][-1]))
        if seed == 0:
            first = time.perf_counter() - t0
    total = time.perf_counter() - t0
    return {"total": total, "first": first, "us_per_step": (total - first) / max((nets - 1) * steps, 1) * 1e6,
            "final_loss_max": max(losses)}


def small_net(nets=SMALL_NET["nets"], steps=SMALL_NET["steps"]):
    """Prints :func:`_small_net_one` for each backend with and without ``train_chunk`` (torch 10, JAX all the
    steps) and with the seeds batched into one ensemble, each in a fresh process at one thread, and the torch / JAX
    ratios of the whole cost. Each process keeps freed memory for reuse
    (:func:`harness.engine.executors.reuse_freed_memory`), as the processes of ``claims run`` do, where the user's
    claim trained (``CLAIMS_MALLOC=default`` leaves glibc's defaults: the 36-seed ensemble on torch then pays page
    faults for its fresh 4.7 MB activations at every step)."""
    import json
    import subprocess
    import sys
    res = {}
    print(f"{nets} trainings x {steps} full-batch SGD steps, width-256 shallow ReLU net (+-1 input weights, uniform "
          "biases, anti-symmetric), 32 points, float64, one thread; fresh process each")
    print(f"{'backend':>7} {'train_chunk':>11} {'total s':>8} {'first s':>8} {'us/step':>8} {'max final loss':>15}")
    for backend in ("torch", "jax"):
        for chunk in (0, CHUNK[backend] if backend == "torch" else steps, -1):
            out = subprocess.run([sys.executable, "-m", "asv_benchmarks.training", "--small-net-one", backend,
                                  str(chunk), str(nets), str(steps)], capture_output=True, text=True,
                                 env=_env(backend, 1), check=True)
            mode = "default" if chunk == 0 else "ensemble" if chunk < 0 else "chunked"
            r = res[backend, mode] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{backend:>7} {chunk if chunk >= 0 else 'ensemble':>11} {r['total']:8.1f} {r['first']:8.2f} "
                  f"{r['us_per_step']:8.1f} {r['final_loss_max']:15.3g}")
    for a, b in ((("default", "default"), "each default"), (("chunked", "chunked"), "each chunked"),
                 (("chunked", "default"), "torch chunked / jax default"), (("ensemble", "ensemble"), "each ensemble")):
        print(f"torch / jax, {b}: {res['torch', a[0]]['total'] / res['jax', a[1]]['total']:.2f}")
    best = {b: min((m for (bb, m) in res if bb == b), key=lambda m: res[b, m]["total"]) for b in ("torch", "jax")}
    print(f"torch / jax, each's fastest (torch {best['torch']}, jax {best['jax']}): "
          f"{res['torch', best['torch']]['total'] / res['jax', best['jax']]['total']:.2f}")


def _env(backend, threads):
    import os
    env = {**os.environ, "HARNESS_TORCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    else:
        env.pop("XLA_FLAGS", None)            # XLA's default: a thread per core
    return env


def main(argv=None):
    import json
    import os
    import subprocess
    import sys
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--one"]:
        print(json.dumps(_time_one(args[1])))
        return
    if args[:1] == ["--small-net-one"]:
        from harness.engine.executors import reuse_freed_memory
        reuse_freed_memory()            # as the CLI's measuring processes do, where the user's claim trained
        print(json.dumps(_small_net_one(args[1], *map(int, args[2:5]))))
        return
    if args[:1] == ["--small-net"]:
        small_net(*map(int, args[1:3]))
        return
    threads = [int(a) for a in args] or [1, os.cpu_count() or 1]
    print("TrainStep (256 examples, MSE, ReLU MLP depth 2, float32, cpu): ms per step, best of 5 x 40 steps")
    print(f"{'threads':>7} {'step':>10} {'torch':>8} {'jax':>8} {'torch/jax':>9}")
    for n in threads:
        res = {}
        for backend in ("torch", "jax"):
            out = subprocess.run([sys.executable, "-m", "asv_benchmarks.training", "--one", backend],
                                 capture_output=True, text=True, env=_env(backend, n), check=True)
            res[backend] = json.loads(out.stdout.strip().splitlines()[-1])
        for key in res["torch"]:
            t, j = res["torch"][key], res["jax"][key]
            print(f"{n:>7} {key:>10} {t:8.2f} {j:8.2f} {t / j:9.2f}")


if __name__ == "__main__":
    main()
