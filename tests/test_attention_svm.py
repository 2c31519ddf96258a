"""harness.attention_svm (H2's numerics): the attention SVM against its own optimality conditions, local optimality,
the written-out gradient step against finite differences, and B problems trained side by side as each alone."""
import numpy as np
import pytest

from harness.attention_svm import (attention_svm, correlation, is_locally_optimal, locally_optimal_selection, scores,
                                   selected_tokens, token_selection_problem, train_gd)
from harness.errors import HarnessError


def _loss(W, X, z, y, v):
    s = np.einsum("ntd,de,ne->nt", X, W, z)
    a = np.exp(s - s.max(1, keepdims=True))
    a /= a.sum(1, keepdims=True)
    f = np.einsum("nt,ntd,d->n", a, X, v)
    return float(np.mean(np.log1p(np.exp(-y * f))))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_svm_is_the_least_norm_separator(seed):
    """Every constraint holds (margin >= 1), some hold with equality, and W is a non-negative combination of the
    active constraints' matrices (the KKT conditions of min ||W||^2 s.t. margins >= 1): no smaller W separates."""
    X, z, y, v, opt = token_selection_problem(seed, 6, 4, 5)
    W, margins, pairs = attention_svm(X, z, opt)
    assert margins.min() > 1 - 1e-6 and np.any(np.abs(margins - 1) < 1e-6)
    active = [k for k, m in enumerate(margins) if m < 1 + 1e-5]
    A = np.array([np.outer(X[i, opt[i]] - X[i, t], z[i]).ravel() for i, t in (pairs[k] for k in active)])
    coef, *_ = np.linalg.lstsq(A.T, W.ravel(), rcond=None)
    np.testing.assert_allclose(A.T @ coef, W.ravel(), atol=1e-6 * np.abs(W).max())
    assert coef.min() > -1e-6


def test_an_inseparable_selection_is_refused():
    """Two sequences that are copies with opposite selections cannot both be separated."""
    X, z, y, v, opt = token_selection_problem(0, 1, 3, 4)
    X2, z2 = np.concatenate([X, X]), np.concatenate([z, z])
    with pytest.raises(HarnessError, match="not separable"):
        attention_svm(X2, z2, np.array([0, 1]))


def test_the_optimal_selection_is_locally_optimal_and_the_search_finds_another():
    """The optimal tokens are always locally optimal (every token scores below them); the greedy search returns a
    different selection that passes the definition, with at least one sequence changed."""
    found = 0
    for seed in range(6):
        X, z, y, v, opt = token_selection_problem(seed, 8, 4, 8)
        assert is_locally_optimal(X, z, y, v, opt)
        sel = locally_optimal_selection(X, z, y, v, opt)
        if sel is not None:
            found += 1
            assert np.any(sel != opt) and is_locally_optimal(X, z, y, v, sel)
            g = scores(X, y, v)
            assert all(g[i, sel[i]] < g[i, opt[i]] for i in np.flatnonzero(sel != opt))
    assert found >= 3


def test_the_gradient_step_is_the_loss_gradient(backend64):
    """One step of train_gd is W - lr grad L(W), grad from central finite differences of the loss in NumPy."""
    rng = np.random.default_rng(4)
    X, z, y, v, _ = token_selection_problem(3, 5, 3, 4)
    W0 = rng.standard_normal((4, 4)) * 0.5
    run = train_gd(backend64, X[None], z[None], y[None], v[None], W0[None], 0.3, [0, 1])
    h, grad = 1e-6, np.zeros_like(W0)
    for idx in np.ndindex(*W0.shape):
        e = np.zeros_like(W0)
        e[idx] = h
        grad[idx] = (_loss(W0 + e, X, z, y, v) - _loss(W0 - e, X, z, y, v)) / (2 * h)
    np.testing.assert_allclose(run["W"][1, 0], W0 - 0.3 * grad, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(run["loss"][0, 0], _loss(W0, X, z, y, v), rtol=1e-12)


def test_problems_train_side_by_side_as_alone(backend64):
    """Three problems in one batch end where each ends alone; the norm grows and the correlation with the SVM of
    the selected tokens rises over the checkpoints."""
    probs = [token_selection_problem(s, 6, 4, 6) for s in range(3)]
    X, z, y, v = (np.stack([p[k] for p in probs]) for k in range(4))
    both = train_gd(backend64, X, z, y, v, np.zeros((3, 6, 6)), 1.0, [100, 1000, 4000])
    for b in range(3):
        alone = train_gd(backend64, X[b:b + 1], z[b:b + 1], y[b:b + 1], v[b:b + 1], np.zeros((1, 6, 6)), 1.0,
                         [100, 1000, 4000])
        np.testing.assert_allclose(both["W"][:, b], alone["W"][:, 0], rtol=1e-9, atol=1e-12)
        norms = np.linalg.norm(both["W"][:, b], axis=(1, 2))
        assert np.all(np.diff(norms) > 0)
        sel = selected_tokens(probs[b][0], probs[b][1], both["W"][-1, b])
        ref = attention_svm(probs[b][0], probs[b][1], sel)[0]
        c = [correlation(both["W"][k, b], ref) for k in range(3)]
        assert c[0] < c[1] < c[2] and c[2] > 0.95, c


def test_bad_input_is_refused(backend64):
    with pytest.raises(HarnessError, match="gap"):
        token_selection_problem(0, 4, 3, 4, gap=0.5, spread=0.5)
    X, z, y, v, _ = token_selection_problem(0, 4, 3, 4)
    with pytest.raises(HarnessError, match="train_gd needs"):
        train_gd(backend64, X, z, y, v, np.zeros((4, 4)), 1.0, [10])
    with pytest.raises(HarnessError, match="increasing"):
        train_gd(backend64, X[None], z[None], y[None], v[None], np.zeros((1, 4, 4)), 1.0, [10, 5])
