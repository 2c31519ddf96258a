"""Per-example gradients and the output Jacobian (``Backend.per_example_grads``, ``Backend.jacobian``), float64.

Checked against independent computations: finite differences of the outputs (Jacobian), a loop of ``Backend.grad``
on batches of one (per-example gradients; a different code path: one reverse pass per example, no vmap), the batch
gradient (their mean), the empirical NTK (J J^T), and torch == jax on identical weights.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import MLP, FunctionModel, HarnessError

U = np.finfo(np.float64).eps


@st.composite
def nets(draw):
    loss = draw(st.sampled_from(["mse", "cross_entropy"]))
    k = 3 if loss == "cross_entropy" else draw(st.sampled_from([1, 2]))
    return (draw(st.integers(1, 4)), draw(st.integers(2, 6)), draw(st.integers(1, 2)),
            draw(st.sampled_from(["tanh", "erf", "relu"])), draw(st.sampled_from(["ntk", "standard", "mup"])),
            loss, k, draw(st.integers(1, 5)), draw(st.integers(0, 2 ** 16)))


def problem(cfg):
    d, width, depth, act, par, loss, k, n, seed = cfg
    model = MLP(d, width, depth, par, act, output_dim=k, bias=True, base_width=2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, k)) if loss == "mse" else np.eye(k)[rng.integers(0, k, n)]
    return model, x, y, loss, seed


def flat(d):
    return np.concatenate([d[k].ravel() for k in sorted(d)])


@settings(max_examples=8)
@given(cfg=nets())
def test_per_example_grads_match_single_example_gradients(backend64, cfg):
    """Row i == Backend.grad on the batch x[i:i+1] (to 1e4 ulps of the gradient's scale); rows average to the
    batch gradient; the dict and flat forms agree (sorted-name order)."""
    model, x, y, loss, seed = problem(cfg)
    b = backend64
    p = b.init(model, seed)
    g = b.per_example_grads(model, p, x, y, loss=loss, flat=True)
    tree = b.per_example_grads(model, p, x, y, loss=loss)
    assert g.shape == (x.shape[0], sum(v.size for v in b.export_params(p).values()))
    np.testing.assert_array_equal(g, np.concatenate([tree[k].reshape(len(x), -1) for k in sorted(tree)], axis=1))
    loop = np.stack([flat(b.grad(model, p, x[i:i + 1], y[i:i + 1], loss=loss)) for i in range(len(x))])
    scale = max(np.abs(loop).max(), 1e-300)
    np.testing.assert_allclose(g, loop, rtol=0, atol=1e4 * U * scale)
    np.testing.assert_allclose(g.mean(axis=0), flat(b.grad(model, p, x, y, loss=loss)), rtol=0, atol=1e4 * U * scale)


@settings(max_examples=8)
@given(cfg=nets().filter(lambda c: c[3] != "relu"))      # smooth: no kink inside the difference stencil
def test_jacobian_matches_finite_differences(backend64, cfg):
    """d f / d theta_p against the central difference along each coordinate; the tolerance comes from the
    difference itself: |FD(e) - FD(e/2)| estimates the truncation error (x3), plus 1e3 ulps of |f| / (e/2)."""
    model, x, y, loss, seed = problem(cfg)
    b = backend64
    p = b.init(model, seed)
    j = b.jacobian(model, p, x, flat=True)                  # (N, k, P)
    p_np = b.export_params(p)
    names = sorted(p_np)
    sizes = [p_np[n].size for n in names]
    base = flat(p_np)

    def f_at(theta):
        parts = np.split(theta, np.cumsum(sizes)[:-1])
        q = b.load_params({n: a.reshape(p_np[n].shape) for n, a in zip(names, parts)})
        return b.apply(model, q, x)

    def fd(e):
        cols = []
        for i in range(base.size):
            t = np.zeros_like(base)
            t[i] = e
            cols.append((f_at(base + t) - f_at(base - t)) / (2 * e))
        return np.stack(cols, axis=-1)
    eps = 1e-4
    f1, f2 = fd(eps), fd(eps / 2)
    f0 = b.apply(model, p, x)
    tol = 3 * np.abs(f1 - f2).max() + 1e3 * U * max(np.abs(f0).max(), 1.0) / (eps / 2)
    assert j.shape == (x.shape[0], model.output_dim, base.size)
    assert np.abs(j).max() > 10 * tol
    np.testing.assert_allclose(j, f2, rtol=0, atol=tol)
    # J J^T is the empirical NTK
    ntk = np.einsum("iap,jbp->ijab", j, j)
    ref = b.ntk(model, p, x, method="structured")
    ntk = ntk[:, :, 0, 0] if model.output_dim == 1 else ntk
    np.testing.assert_allclose(ntk, ref, rtol=0, atol=1e4 * U * np.abs(ref).max())


def test_per_example_grads_of_a_function_model(backend64):
    """A FunctionModel: f(x) = <w, x>^2, mse: g_i = (f_i - y_i) * 2 <w, x_i> x_i (closed form)."""
    model = FunctionModel("square-linear", lambda s: {"w": np.random.default_rng(s).standard_normal(4)},
                          lambda p, x, ops: ops.reshape(ops.matmul(x, p["w"]) ** 2, (-1, 1)))
    b = backend64
    p = b.init(model, 1)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((5, 4)), rng.standard_normal((5, 1))
    w = b.export_params(p)["w"]
    s = x @ w
    expected = ((s ** 2 - y[:, 0]) * 2 * s)[:, None] * x
    np.testing.assert_allclose(b.per_example_grads(model, p, x, y, flat=True), expected, rtol=1e-12)
    np.testing.assert_allclose(b.jacobian(model, p, x, flat=True)[:, 0], 2 * s[:, None] * x, rtol=1e-12)


def test_per_example_bad_input(backend64):
    model = MLP(2, 3, 1, "ntk", "tanh")
    p = backend64.init(model, 0)
    with pytest.raises(HarnessError):
        backend64.per_example_grads(model, p, np.ones((3, 2)), np.zeros((2, 1)))
    with pytest.raises(HarnessError):
        backend64.per_example_grads(model, p, np.ones((3, 2)), None)
    with pytest.raises(HarnessError):
        backend64.jacobian(model, p, np.array([[np.nan, 1.0]]))


@pytest.mark.parity
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_per_example_parity(parity_backends, loss):
    """torch == jax on identical float64 weights, to 1e-9 relative (as tests/test_parity.py)."""
    tb, jb = parity_backends
    model = MLP(3, 6, 2, "mup", "tanh", output_dim=3, bias=True, base_width=2)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3))
    y = rng.standard_normal((5, 3)) if loss == "mse" else np.eye(3)[rng.integers(0, 3, 5)]
    gt = tb.per_example_grads(model, tb.init(model, 3), x, y, loss=loss, flat=True)
    gj = jb.per_example_grads(model, jb.init(model, 3), x, y, loss=loss, flat=True)
    np.testing.assert_allclose(gt, gj, rtol=0, atol=1e-9 * np.abs(gt).max())
    jt = tb.jacobian(model, tb.init(model, 3), x, flat=True)
    jj = jb.jacobian(model, jb.init(model, 3), x, flat=True)
    np.testing.assert_allclose(jt, jj, rtol=0, atol=1e-9 * np.abs(jt).max())
