"""CUDA: each backend on the GPU gives the CPU's numbers (float64), torch's GPU gives JAX's, and a claim's point
measured on cuda is the point measured on cpu. Every test here skips, with the reason, where a framework cannot
reach a GPU (CI, the 2-core machines), so they run only where one is lent: ``pytest tests/test_cuda.py``.

Tolerances are the parity tests' (conftest.close: 1e-9 of each array's scale, ~1e6 ulps in float64):
the GPU changes only the order of float64 operations (cuBLAS blocking, atomics in reductions), never the
arithmetic's precision. Trained quantities get 1e-7: a few hundred steps amplify roundoff, still far below the
O(1e-3) any real discrepancy (a wrong multiplier, a dropped term, another minibatch) makes.
"""
import numpy as np
import pytest

import harness
from harness import MLP, adam, sgd
from harness.ensembles import train_ensemble

from conftest import close, selected_backends




def cuda_backend(name, dtype="float64"):
    if name not in selected_backends():
        pytest.skip(f"backend {name!r} not selected by HARNESS_BACKENDS")
    if not harness.backends.is_installed(name):
        pytest.skip(f"{name} is not installed")
    try:
        return harness.get_backend(name, "cuda", dtype)
    except harness.HarnessError as e:
        pytest.skip(str(e))


@pytest.fixture(params=["torch", "jax"])
def pair(request):
    """(the backend on cuda, the same backend on cpu), float64."""
    return cuda_backend(request.param), harness.get_backend(request.param, "cpu", "float64")


def data(seed, n=16, d=5, k=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, np.sin(x[:, :k]) + 0.1 * rng.standard_normal((n, k))


def routines(be, model, params, x, y):
    """Every public routine the claims use, as NumPy, on one backend."""
    out = {"apply": be.apply(model, params, x)}
    for method in ("structured", "jacobian", "ntvp"):
        out[f"ntk {method}"] = be.ntk(model, params, x, method=method)
    out["ntk cross"] = be.ntk(model, params, x, x[:5])
    g = be.grad(model, params, x, y)
    out.update({f"grad {k}": v for k, v in g.items()})
    out["per-example grads"] = be.per_example_grads(model, params, x, y, flat=True)
    dim = sum(np.asarray(v).size for v in g.values())
    out["hvp"] = be.hvp(model, params, x, y, np.random.default_rng(3).standard_normal(dim))
    out["top eigenvalue"] = be.hessian_top_eigenvalue(model, params, x, y, method="lanczos", tol=1e-12,
                                                      seed=3).value
    out["trace"] = be.hessian_trace(model, params, x, y, n_samples=4, seed=5).value
    return {k: np.asarray(be.to_numpy(v) if not isinstance(v, (float, np.ndarray)) else v) for k, v in out.items()}


@pytest.mark.parametrize("parametrisation", ["standard", "mup"])
def test_cuda_equals_cpu_kernels_grads_hessians(pair, parametrisation):
    gpu, cpu = pair
    model = MLP(5, 32, 2, parametrisation, "tanh", bias=True, base_width=8)
    x, y = data(1)
    a = routines(gpu, model, gpu.init(model, 7), x, y)
    b = routines(cpu, model, cpu.init(model, 7), x, y)
    for k in b:
        close(a[k], b[k], k)


@pytest.mark.parametrize("opt,batch_size", [("sgd", None), ("sgd", 4), ("adam", None)],
                         ids=["gd", "minibatch", "adam"])
def test_cuda_equals_cpu_training(pair, opt, batch_size):
    gpu, cpu = pair
    model = MLP(5, 32, 2, "mup", "tanh", output_dim=2, bias=True, base_width=8)
    x, y = data(2, k=2)
    optimizer = sgd(0.1) if opt == "sgd" else adam(0.01)
    res = [be.train(model, be.init(model, 3), x, y, optimizer, 200, batch_size=batch_size, seed=4,
                    record_every=50) for be in (gpu, cpu)]
    close(res[0].history["loss"], res[1].history["loss"], "loss history", rtol=1e-7)
    assert res[1].history["loss"][-1] < res[1].history["loss"][0]
    pa, pb = gpu.export_params(res[0].params), cpu.export_params(res[1].params)
    for k in pb:
        close(pa[k], pb[k], f"trained {k}", rtol=1e-7)
    ens = [train_ensemble(be, model, be.init_ensemble(model, range(3)), x, y, optimizer, 50) for be in (gpu, cpu)]
    close(np.asarray(ens[0].history["loss"]), np.asarray(ens[1].history["loss"]), "ensemble loss", rtol=1e-7)


def test_cuda_equals_cpu_cnn_and_transformer(pair):
    from harness.cnn import CNN
    from harness.cnn_kernels import Activation, Conv, Dense, GlobalAvgPool
    from harness.transformer import Transformer
    gpu, cpu = pair
    rng = np.random.default_rng(5)
    cnn = CNN((6, 6, 2), (Conv(3, W_std=1.4, b_std=0.2), Activation("relu"), Conv(3, W_std=1.3), Activation("erf"),
                          GlobalAvgPool(), Dense(1.2, 0.1)), 8, "ntk")
    tr = Transformer(input_dim=5, seq_len=6, width=16, heads=4, depth=2, parametrisation="mup", base_width=8,
                     causal=True)
    for model, x in ((cnn, rng.standard_normal((4, 6, 6, 2))), (tr, rng.standard_normal((4, 6, 5)))):
        name = type(model).__name__
        pg, pc = gpu.init(model, 1), cpu.init(model, 1)
        close(gpu.apply(model, pg, x), cpu.apply(model, pc, x), f"{name} apply")
        close(gpu.ntk(model, pg, x, method="jacobian"), cpu.ntk(model, pc, x, method="jacobian"), f"{name} ntk")
        y = rng.standard_normal((4, 1))
        rg, rc = (be.train(model, p, x, y, adam(0.01), 5) for be, p in ((gpu, pg), (cpu, pc)))
        close(rg.history["loss"], rc.history["loss"], f"{name} adam", rtol=1e-7)


def test_cuda_torch_equals_cuda_jax():
    t, j = cuda_backend("torch"), cuda_backend("jax")
    model = MLP(5, 32, 2, "ntk", "relu", bias=True)
    x, y = data(3)
    a, b = routines(t, model, t.init(model, 9), x, y), routines(j, model, j.init(model, 9), x, y)
    for k in b:
        close(a[k], b[k], k)


# sharpness's Lanczos runs stop at tol 1e-3: the device's roundoff moves the step at which they stop, and with it
# the estimate, within that tolerance (the H200 gave S_init 0.317055 against the CPU's 0.317045, 3e-5 apart).
CLAIM_RTOL = {"ntk-drift": 1e-7, "sharpness": 1e-3, "gradient-confusion": 1e-7}


@pytest.mark.parametrize("claim_id,scale", [("ntk-drift", 64), ("sharpness", 64), ("gradient-confusion", 64)])
def test_claim_point_on_cuda_is_the_point_on_cpu(backend_name, claim_id, scale):
    """A claim's measure at the ci premise gives the same outputs on cuda as on cpu (the seed decides the weights
    and data, the device only where they are computed), to the measure's own tolerance."""
    from harness.engine.pilot import pilot
    cuda_backend(backend_name)
    pts = [pilot(claim_id, [scale], seed=11, backend=backend_name, device=dev)[0] for dev in ("cuda", "cpu")]
    assert sorted(pts[0].outputs) == sorted(pts[1].outputs)
    for k in pts[1].outputs:
        close(pts[0].outputs[k], pts[1].outputs[k], f"{claim_id} {k}", rtol=CLAIM_RTOL[claim_id])
