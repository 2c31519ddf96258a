"""Hessian-vector products, top eigenvalue (Lanczos, power) and Hutchinson trace, on both backends in float64."""
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from harness import MLP, FunctionModel, HarnessError

U = np.finfo(np.float64).eps
EXPENSIVE = settings(max_examples=max(3, settings.default.max_examples // 3))


def seed_of(*a):
    return zlib.crc32(repr(a).encode())


def problem(cfg):
    d, width, depth, act, loss, k = cfg
    model = MLP(d, width, depth, "ntk", act, output_dim=k, bias=True)
    seed = seed_of(cfg)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, d))
    if loss == "mse":
        y = rng.standard_normal((6, k))
    else:
        y = np.eye(k)[rng.integers(0, k, 6)]
    return model, seed, x, y


def flat_grad(b, model, p_np, x, y, loss):
    g = b.grad(model, b.load_params(p_np), x, y, loss=loss)
    return np.concatenate([g[k].ravel() for k in sorted(g)])


def perturb(p_np, v, eps):
    out, i = {}, 0
    for k in sorted(p_np):
        n = p_np[k].size
        out[k] = p_np[k] + eps * v[i:i + n].reshape(p_np[k].shape)
        i += n
    return out


def dense_hessian(b, model, p, x, y, loss="mse"):
    dim = sum(v.size for v in b.export_params(p).values())
    h = np.column_stack([b.hvp(model, p, x, y, e, loss=loss) for e in np.eye(dim)])
    return h


@st.composite
def hessian_cases(draw):
    loss = draw(st.sampled_from(["mse", "cross_entropy"]))
    return (draw(st.integers(1, 4)), draw(st.integers(2, 7)), draw(st.integers(1, 2)),
            draw(st.sampled_from(["tanh", "erf", "linear"])),      # smooth: no kink inside the FD stencil
            loss, 2 if loss == "cross_entropy" else draw(st.sampled_from([1, 2])))


@EXPENSIVE
@given(cfg=hessian_cases())
def test_hvp_matches_finite_differences(backend64, cfg):
    """H v against the central difference (g(p + e v) - g(p - e v)) / 2e of the gradient.

    The central difference has truncation error C e^2 (+ roundoff ~ u |g| / e). Halving e quarters the truncation,
    so |FD(e) - FD(e/2)| ~ 3/4 C e^2 estimates it and FD(e/2)'s own error is ~1/3 of that: the tolerance is three
    times the estimate (9x the expected error) plus a roundoff allowance of 1e3 ulps of |g| / (e/2).
    """
    model, seed, x, y = problem(cfg)
    loss = cfg[4]
    b = backend64
    p = b.init(model, seed)
    p_np = b.export_params(p)
    dim = sum(v.size for v in p_np.values())
    v = np.random.default_rng(seed + 1).standard_normal(dim)
    hv = b.hvp(model, p, x, y, v, loss=loss)
    g0 = flat_grad(b, model, p_np, x, y, loss)
    eps = 1e-4

    def fd(e):
        return (flat_grad(b, model, perturb(p_np, v, e), x, y, loss)
                - flat_grad(b, model, perturb(p_np, v, -e), x, y, loss)) / (2 * e)
    f1, f2 = fd(eps), fd(eps / 2)
    tol = 3 * np.abs(f1 - f2).max() + 1e3 * U * max(np.abs(g0).max(), 1.0) / (eps / 2)
    assert np.abs(hv).max() > 10 * tol, "degenerate: H v too small to test"
    np.testing.assert_allclose(hv, f2, rtol=0, atol=tol)
    # linearity in v, and the assembled Hessian is symmetric (float64 identities, ~1e4 ulps of slack)
    w = np.random.default_rng(seed + 2).standard_normal(dim)
    scale = np.abs(hv).max() + np.abs(b.hvp(model, p, x, y, w, loss=loss)).max()
    np.testing.assert_allclose(b.hvp(model, p, x, y, 2 * v - 3 * w, loss=loss),
                               2 * hv - 3 * b.hvp(model, p, x, y, w, loss=loss), rtol=0, atol=1e-11 * scale)


EIG_CASES = [(3, 5, 1, "tanh", "mse", 1), (2, 4, 2, "erf", "mse", 2), (4, 6, 1, "relu", "mse", 1),
             (2, 3, 1, "tanh", "cross_entropy", 2)]


@pytest.mark.parametrize("cfg", EIG_CASES, ids=lambda c: f"{c[3]}-{c[4]}-d{c[2]}")
def test_top_eigenvalue_matches_dense(backend64, cfg):
    model, seed, x, y = problem(cfg)
    loss = cfg[4]
    b = backend64
    p = b.init(model, seed)
    h = dense_hessian(b, model, p, x, y, loss)
    scale = np.abs(h).max()
    np.testing.assert_allclose(h, h.T, rtol=0, atol=1e-12 * scale)   # float64: symmetric to roundoff
    eig = np.linalg.eigvalsh(0.5 * (h + h.T))
    top, top_mag = eig[-1], eig[np.argmax(np.abs(eig))]
    lz = b.hessian_top_eigenvalue(model, p, x, y, loss=loss, method="lanczos", tol=1e-10, seed=1)
    assert abs(lz.value - top) <= 1e-6 * abs(top), (lz, top)
    pw = b.hessian_top_eigenvalue(model, p, x, y, loss=loss, method="power", tol=1e-12, seed=1)
    assert abs(pw.value - top_mag) <= 1e-6 * abs(top_mag), (pw, top_mag)
    # the point of Lanczos: fewer HVPs than power iteration to the same stopping tolerance
    lz8 = b.hessian_top_eigenvalue(model, p, x, y, loss=loss, method="lanczos", tol=1e-8, seed=1)
    pw8 = b.hessian_top_eigenvalue(model, p, x, y, loss=loss, method="power", tol=1e-8, seed=1)
    assert lz8.n_hvp < pw8.n_hvp, (lz8, pw8)
    assert lz.n_hvp >= 1 and pw.n_hvp >= 2


def test_hutchinson_within_standard_errors(backend64):
    """The Hutchinson mean lies within c standard errors of the exact trace, c the two-sided t_{S-1} quantile at
    6.3e-5 (the normal 4-sigma rate; ~4.1 for S = 64): the false-alarm rate per (net, seed) is 6.3e-5."""
    cfg = (3, 5, 2, "tanh", "mse", 1)
    model, seed, x, y = problem(cfg)
    b = backend64
    p = b.init(model, seed)
    h = dense_hessian(b, model, p, x, y)
    exact = np.trace(h)
    n = 64
    tr = b.hessian_trace(model, p, x, y, n_samples=n, seed=seed)
    assert tr.n_hvp == n and tr.stderr > 0
    crit = stats.t.ppf(1 - 6.3e-5 / 2, df=n - 1)
    assert abs(tr.value - exact) <= crit * tr.stderr, (tr, exact, crit)
    # the standard error is that of a mean of S probes: stderr * sqrt(S) estimates the exact probe spread
    # sd(z^T H z) = sqrt(2 sum_{i != j} H_ij^2); a sample sd from 64 draws is within ~15% (1 sd), allow 40%
    sd = np.sqrt(2 * (np.sum(h ** 2) - np.sum(np.diag(h) ** 2)))
    assert abs(tr.stderr * np.sqrt(n) / sd - 1) < 0.4, (tr.stderr * np.sqrt(n), sd)


def test_hutchinson_exact_for_diagonal_hessian(backend64):
    """With Rademacher probes z_i^2 = 1, so z^T H z = tr(H) exactly when H is diagonal: zero spread."""
    k = 5

    def init(seed):
        return {"w": np.random.default_rng(seed).standard_normal(k)}
    model = FunctionModel("separable", init, lambda p, x, ops: x * ops.tanh(p["w"]), output_dim=k)
    b = backend64
    p = b.init(model, 3)
    x = np.random.default_rng(4).standard_normal((6, k))
    y = np.random.default_rng(5).standard_normal((6, k))
    h = dense_hessian(b, model, p, x, y)
    assert np.abs(h - np.diag(np.diag(h))).max() == 0.0
    tr = b.hessian_trace(model, p, x, y, n_samples=7, seed=0)
    exact = np.trace(h)
    assert abs(tr.value - exact) <= 1e-12 * abs(exact)
    assert tr.stderr <= 1e-12 * abs(exact)


def test_hessian_bad_arguments(backend64):
    model = MLP(2, 3, 1, "ntk", "tanh")
    p = backend64.init(model, 0)
    x, y = np.ones((2, 2)), np.zeros((2, 1))
    with pytest.raises(HarnessError):
        backend64.hvp(model, p, x, y, np.ones(5))
    with pytest.raises(HarnessError):
        backend64.hessian_top_eigenvalue(model, p, x, y, method="qr")


@pytest.mark.parametrize("parametrisation", ["mup", "ntk"])
def test_preconditioned_top_eigenvalue_is_that_of_the_scaled_dense_hessian(backend64, parametrisation):
    """``precondition=D`` gives lambda_max(D^1/2 H D^1/2), D the per-parameter learning-rate multipliers: against
    the dense Hessian scaled on both sides, on a muP net (multipliers 16, 1, 1/16 by layer) and an NTK net (all 1,
    where it is lambda_max(H))."""
    b = backend64
    model = MLP(3, 8, 1, parametrisation, "tanh", output_dim=1, bias=True, base_width=2)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 1))
    p = b.init(model, 5)
    mults = model.lr_multipliers("sgd")
    names = sorted(b.export_params(p))
    d = np.concatenate([np.full(b.export_params(p)[n].size, float(mults.get(n, 1.0))) for n in names])
    h = dense_hessian(b, model, p, x, y)
    want = np.linalg.eigvalsh(np.sqrt(d)[:, None] * h * np.sqrt(d)[None, :])[-1]
    got = b.hessian_top_eigenvalue(model, p, x, y, tol=1e-10, precondition=mults).value
    assert got == pytest.approx(want, rel=1e-8)
    if parametrisation == "mup":
        assert len(set(mults.values())) > 1
        assert not np.isclose(want, np.linalg.eigvalsh(h)[-1], rtol=1e-3)   # the preconditioning matters here
    with pytest.raises(HarnessError, match="not trainable"):
        b.hessian_top_eigenvalue(model, p, x, y, precondition={"W9": 1.0})
    with pytest.raises(HarnessError, match="> 0"):
        b.hessian_top_eigenvalue(model, p, x, y, precondition={"W0": 0.0})
