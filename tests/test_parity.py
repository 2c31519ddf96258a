"""torch == jax on identical weights, float64, for every public routine.

Both backends evaluate the same pure functions on the same float64 weights; they differ only in operation order
(BLAS blocking, autodiff accumulation), i.e. by a few ulps times the condition of each routine. An rtol of 1e-9 is
~1e6 ulps: far above that roundoff on these small nets, far below any real discrepancy (a wrong multiplier,
missing term or different minibatch changes results at O(1e-3) or more).
"""
import numpy as np
import pytest

from harness import MLP, adam, sgd
from conftest import close

pytestmark = pytest.mark.parity





def data(seed, n=7, d=3, k=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, np.sin(x[:, :k]) + 0.1 * rng.standard_normal((n, k))


# every parametrisation with tanh; relu (non-smooth, zero second derivative) on one sp- and one ntk-style table
CASES = [(p, "tanh") for p in ("standard", "ntk", "mup", "mean-field")] + [("mup", "relu"), ("ntk", "relu")]


@pytest.mark.parametrize("parametrisation,activation", CASES)
def test_parity_kernels_grads_hessians(parity_backends, parametrisation, activation):
    tb, jb = parity_backends
    model = MLP(3, 6, 2, parametrisation, activation, bias=True, base_width=2)
    seed = 17
    pt, pj = tb.init(model, seed), jb.init(model, seed)
    # identical weights from the seed, and identical after an export -> load round trip
    for k, v in tb.export_params(pt).items():
        np.testing.assert_array_equal(v, jb.export_params(pj)[k])
    pj_loaded = jb.load_params(tb.export_params(pt))
    x, y = data(seed)
    close(tb.apply(model, pt, x), jb.apply(model, pj, x), "apply")
    close(jb.apply(model, pj_loaded, x), jb.apply(model, pj, x), "apply after load_params", rtol=0)
    for a, b in zip(tb.preactivations(model, pt, x), jb.preactivations(model, pj, x)):
        close(a, b, "preactivations")
    for method in ("structured", "jacobian", "ntvp"):
        close(tb.ntk(model, pt, x, method=method), jb.ntk(model, pj, x, method=method), f"ntk {method}")
    close(tb.ntk(model, pt, x, x[:3]), jb.ntk(model, pj, x, x[:3]), "cross ntk")
    close(tb.loss(model, pt, x, y), jb.loss(model, pj, x, y), "loss")
    gt, gj = tb.grad(model, pt, x, y), jb.grad(model, pj, x, y)
    assert sorted(gt) == sorted(gj)
    for k in gt:
        close(gt[k], gj[k], f"grad {k}")
    dim = sum(v.size for v in gt.values())
    v = np.random.default_rng(seed).standard_normal(dim)
    close(tb.hvp(model, pt, x, y, v), jb.hvp(model, pj, x, y, v), "hvp")
    for method in ("lanczos", "power"):
        et = tb.hessian_top_eigenvalue(model, pt, x, y, method=method, tol=1e-12, seed=3)
        ej = jb.hessian_top_eigenvalue(model, pj, x, y, method=method, tol=1e-12, seed=3)
        close(et.value, ej.value, f"top eigenvalue {method}")
    tt = tb.hessian_trace(model, pt, x, y, n_samples=8, seed=5)
    tj = jb.hessian_trace(model, pj, x, y, n_samples=8, seed=5)
    close(tt.value, tj.value, "trace")
    close(tt.stderr, tj.stderr, "trace stderr")
    assert tt.n_hvp == tj.n_hvp == 8


@pytest.mark.parametrize("parametrisation", ["standard", "ntk", "mup", "mean-field"])
@pytest.mark.parametrize("opt,batch_size", [("sgd", None), ("sgd", 3), ("adam", None)],
                         ids=["gd", "minibatch", "adam"])
def test_parity_training(parity_backends, parametrisation, opt, batch_size):
    tb, jb = parity_backends
    model = MLP(3, 6, 2, parametrisation, "tanh", output_dim=2, bias=True, base_width=2)
    x, y = data(23, n=8, k=2)
    optimizer = sgd(0.05) if opt == "sgd" else adam(0.01)
    res = []
    for b in (tb, jb):
        rec = {"out": (lambda b: lambda p, t: b.apply(model, p, x[:2]))(b)}
        res.append(b.train(model, b.init(model, 4), x, y, optimizer, steps=12, batch_size=batch_size, seed=9,
                           record=rec, record_every=5))
    rt, rj = res
    np.testing.assert_array_equal(rt.steps, rj.steps)
    np.testing.assert_array_equal(rt.steps, [0, 5, 10, 12])
    close(rt.history["loss"], rj.history["loss"], "loss history")
    close(rt.history["out"], rj.history["out"], "recorded outputs")
    pt, pj = tb.export_params(rt.params), jb.export_params(rj.params)
    assert sorted(pt) == sorted(pj)
    for k in pt:
        close(pt[k], pj[k], f"trained {k}")
    assert rt.history["loss"][-1] < rt.history["loss"][0]
