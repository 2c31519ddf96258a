"""Top-k Hessian eigenpairs (block Lanczos) and the spectral density (stochastic Lanczos quadrature), float64, on
both backends, against dense eigendecompositions of small network Hessians (assembled column by column from HVPs,
which tests/test_hessian.py checks against finite differences)."""
import numpy as np
import pytest
from scipy import stats

from harness import MLP, HarnessError
from harness.hessian import lanczos_top_k, slq_density

U = np.finfo(np.float64).eps

CASES = [  # (input dim, width, depth, activation, loss, outputs)
    (3, 6, 1, "tanh", "mse", 1), (2, 5, 2, "erf", "mse", 2), (3, 5, 1, "tanh", "cross_entropy", 3)]


def problem(cfg, n=8, seed=11):
    d, width, depth, act, loss, k = cfg
    model = MLP(d, width, depth, "ntk", act, output_dim=k, bias=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, k)) if loss == "mse" else np.eye(k)[rng.integers(0, k, n)]
    return model, x, y, loss


def dense(b, model, p, x, y, loss):
    dim = sum(v.size for v in b.export_params(p).values())
    h = np.column_stack([b.hvp(model, p, x, y, e, loss=loss) for e in np.eye(dim)])
    return 0.5 * (h + h.T)


@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c[3]}-{c[4]}-k{c[5]}")
@pytest.mark.parametrize("block_size", [1, 3])
def test_top_k_matches_dense(backend64, cfg, block_size):
    """The k = 5 top Ritz values agree with eigvalsh within their own certified residuals (plus 1e3 ulps of
    ||H||); the Ritz vectors are orthonormal, their residuals ||H y - theta y|| are what the routine reports, and
    each lies in the eigenspace of its eigenvalue (sin of the angle <= residual / gap, Davis-Kahan)."""
    model, x, y, loss = problem(cfg)
    b = backend64
    p = b.init(model, 3)
    h = dense(b, model, p, x, y, loss)
    lam, vec = np.linalg.eigh(h)
    lam, vec = lam[::-1], vec[:, ::-1]
    k = 5
    top = b.hessian_top_k(model, p, x, y, k=k, loss=loss, tol=1e-8, seed=2, block_size=block_size)
    assert top.converged and top.values.shape == (k,) and top.vectors.shape == (h.shape[0], k)
    hnorm = np.abs(lam).max()
    slack = 1e3 * U * hnorm
    r = h @ top.vectors - top.vectors * top.values
    np.testing.assert_allclose(np.linalg.norm(r, axis=0), top.residuals, rtol=1e-3, atol=slack)
    assert np.linalg.norm(r, 2) <= top.bound * (1 + 1e-6) + slack
    assert np.all(top.residuals <= 1e-8 * np.abs(top.values) + slack)
    np.testing.assert_allclose(np.abs(top.values - lam[:k]), 0, atol=top.bound + slack)
    np.testing.assert_allclose(top.vectors.T @ top.vectors, np.eye(k), atol=1e-10)
    for i in range(k):
        gap = np.min(np.abs(np.delete(lam, i) - lam[i]))
        if gap > 1e-6 * hnorm:
            sin = np.sqrt(max(0.0, 1 - float(vec[:, i] @ top.vectors[:, i]) ** 2))
            assert sin <= top.residuals[i] / gap * 1.01 + 1e-7, (i, sin, top.residuals[i], gap)


def test_top_k_fewer_hvps_than_deflated_power(backend64):
    """The point of Lanczos: the top 5 to tol 1e-6 cost fewer HVPs than power iteration with deflation (PyHessian's
    method: each eigenvector by power iteration orthogonal to the ones found, stopped at the same relative change)."""
    model, x, y, loss = problem(CASES[0])
    b = backend64
    p = b.init(model, 3)
    fn, dim = b._flat_hvp(model, p, x, y, loss)
    top = b.hessian_top_k(model, p, x, y, k=5, loss=loss, tol=1e-6, seed=2)
    rng, found, n = np.random.default_rng(0), [], 0
    for _ in range(5):
        v = rng.standard_normal(dim)
        lam_old = None
        for _ in range(10_000):
            for u in found:
                v -= (u @ v) * u
            v /= np.linalg.norm(v)
            w = fn(v)
            n += 1
            lam = float(v @ w)
            v = w
            if lam_old is not None and abs(lam - lam_old) <= 1e-6 * abs(lam):
                break
            lam_old = lam
        found.append(v / np.linalg.norm(v))
    assert top.n_hvp < n, (top.n_hvp, n)


@pytest.mark.parametrize("cfg", CASES[:2], ids=lambda c: f"{c[3]}-{c[4]}-k{c[5]}")
def test_slq_quadrature_is_exact_to_degree_2m_minus_1(backend64, cfg):
    """For each start v (unit), the m-node Gauss quadrature sum_l w_l theta_l^p equals v^T H^p v for p < 2m (an
    identity, checked to 1e-8 relative against the dense H); weights are positive and sum to 1."""
    model, x, y, loss = problem(cfg)
    b = backend64
    p = b.init(model, 3)
    h = dense(b, model, p, x, y, loss)
    fn, dim = b._flat_hvp(model, p, x, y, loss)
    m = 5
    starts = np.random.default_rng(4).choice([-1.0, 1.0], size=(3, dim))
    dens = slq_density(fn, dim, n_steps=m, starts=starts)
    assert dens.n_hvp == 3 * m and dens.nodes.shape == (3, m)
    np.testing.assert_allclose(dens.weights.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(dens.weights >= 0)
    for v0, th, w in zip(starts, dens.nodes, dens.weights):
        v = v0 / np.linalg.norm(v0)
        hp = v.copy()
        for power in range(2 * m):
            exact = float(v @ hp)
            scale = np.abs(np.linalg.eigvalsh(h)).max() ** power
            assert abs(np.sum(w * th ** power) - exact) <= 1e-8 * scale, (power, np.sum(w * th ** power), exact)
            hp = h @ hp
    # and the Backend method draws its own starts from the seed
    d2 = b.hessian_density(model, p, x, y, loss=loss, n_starts=3, n_steps=m, seed=4)
    assert d2.nodes.shape == (3, m) and d2.n_hvp == 3 * m


def test_slq_full_steps_recovers_the_spectrum(backend64):
    """With m = dim steps the nodes of each start are H's eigenvalues (where the start has weight), and the
    broadened density's mass below any t converges to the eigenvalue counting fraction as the starts average:
    the trace estimate is within c standard errors of tr(H), c the two-sided t quantile at 6.3e-5 (as the
    Hutchinson test)."""
    model, x, y, loss = problem(CASES[0])
    b = backend64
    p = b.init(model, 3)
    h = dense(b, model, p, x, y, loss)
    lam = np.linalg.eigvalsh(h)
    dim = h.shape[0]
    dens = b.hessian_density(model, p, x, y, loss=loss, n_starts=16, n_steps=dim, seed=5)
    for th, w in zip(dens.nodes, dens.weights):
        heavy = th[w > 1e-6]
        assert np.all(np.min(np.abs(heavy[:, None] - lam[None]), axis=1) <= 1e-8 * np.abs(lam).max())
    tr, se = dens.trace()
    crit = stats.t.ppf(1 - 6.3e-5 / 2, df=15)
    assert abs(tr - np.trace(h)) <= crit * se, (tr, se, np.trace(h))
    grid = np.linspace(lam.min() - 1, lam.max() + 1, 4001)
    phi = dens.on_grid(grid, sigma=0.01 * (lam.max() - lam.min()))
    assert abs(np.trapezoid(phi, grid) - 1) < 1e-3


@pytest.mark.parity
def test_top_k_and_density_parity(parity_backends):
    """torch == jax: same weights, same starts, so the same Ritz values and quadrature nodes to 1e-9."""
    tb, jb = parity_backends
    model, x, y, loss = problem(CASES[2])
    outs = []
    for b in (tb, jb):
        p = b.init(model, 3)
        outs.append((b.hessian_top_k(model, p, x, y, k=4, loss=loss, tol=1e-8, seed=1),
                     b.hessian_density(model, p, x, y, loss=loss, n_starts=2, n_steps=6, seed=1)))
    (t1, d1), (t2, d2) = outs
    np.testing.assert_allclose(t1.values, t2.values, rtol=1e-9)
    np.testing.assert_allclose(d1.nodes, d2.nodes, rtol=0, atol=1e-9 * np.abs(d1.nodes).max())
    np.testing.assert_allclose(d1.weights, d2.weights, rtol=0, atol=1e-9)


def test_spectrum_bad_arguments(backend64):
    model, x, y, loss = problem(CASES[0])
    p = backend64.init(model, 0)
    for kw in ({"k": 0}, {"k": 10 ** 6}, {"k": 2.5}, {"block_size": 0}, {"which": "SA"}):
        with pytest.raises(HarnessError):
            backend64.hessian_top_k(model, p, x, y, **kw)
    with pytest.raises(HarnessError):
        backend64.hessian_density(model, p, x, y, n_starts=0)


def test_block_lanczos_finds_a_repeated_eigenvalue():
    """A synthetic H with a triple top eigenvalue: block size 3 returns all three copies (NumPy only)."""
    rng = np.random.default_rng(0)
    n = 60
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    ev = np.concatenate([[5.0, 5.0, 5.0, 3.0], rng.uniform(-1, 1, n - 4)])
    h = (q * ev) @ q.T
    top = lanczos_top_k(lambda v: h @ v, n, 4, tol=1e-10, seed=1, block_size=3)
    np.testing.assert_allclose(top.values, [5, 5, 5, 3], atol=1e-8)


def test_density_plot(tmp_path):
    """The plotting function writes a PNG from SLQ densities, and pooling per-point samples keeps each point's
    weights summing to one start-average."""
    from harness.spectrum_plot import density_from_samples, plot_density
    rng = np.random.default_rng(0)
    h = np.diag(np.concatenate([[5.0, 4.0], rng.uniform(0, 0.1, 40)]))
    d = slq_density(lambda v: h @ v, 42, n_starts=3, n_steps=10, seed=0)
    pooled = density_from_samples([d.nodes.ravel(), d.nodes.ravel()], [d.weights.ravel(), d.weights.ravel()])
    np.testing.assert_allclose(pooled.weights.sum(axis=1), 1.0)
    path = plot_density({"a": d, "pooled": pooled}, tmp_path / "density.png", marks={"a": [5.0, 4.0]})
    assert path.exists() and path.stat().st_size > 1000
