"""harness.diagonal.train_gd: B diagonal nets trained side by side (B2-B4's seed batches), each as it would train
alone, and its written-out gradient step against autodiff through ``Backend.train``."""
import numpy as np
import pytest

from harness import FunctionModel, sgd
from harness.diagonal import step_size, train_gd
from harness.errors import HarnessError


def _data(seed, n=12, d=20, k=2):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    beta = np.zeros(d)
    beta[rng.choice(d, size=k, replace=False)] = 1.0
    return x, x @ beta


def _alone_by_autodiff(backend, depth, x, y, alpha, eta0, tol, max_steps, chunk):
    """The reference: the diagonal net as a FunctionModel, trained by Backend.train (autodiff) chunk by chunk at
    the step rule's rate, until the loss is below tol."""
    def apply(params, xx, ops):
        return ops.reshape(ops.matmul(xx, params["w_plus"] ** depth - params["w_minus"] ** depth), (-1, 1))
    model = FunctionModel(f"diag-test-{depth}", lambda seed: {}, apply)
    d = x.shape[1]
    params = backend.load_params({"w_plus": np.full(d, alpha), "w_minus": np.full(d, alpha)})
    w = backend.export_params(params)
    loss, steps = backend.loss(model, params, x, y[:, None]), 0
    while loss >= tol and steps < max_steps:
        run = backend.train(model, params, x, y[:, None], sgd(step_size(w["w_plus"], w["w_minus"], depth, eta0)),
                            chunk, record_every=chunk)
        params, steps, loss = run.params, steps + chunk, float(run.history["loss"][-1])
        w = backend.export_params(params)
    return w["w_plus"] ** depth - w["w_minus"] ** depth, steps, loss


@pytest.mark.parametrize("depth,alpha", [(1, 0.5), (2, 0.1), (3, 0.6)])
def test_a_batch_trains_each_net_as_autodiff_trains_it_alone(backend64, depth, alpha):
    """Three data draws in one batch: each ends where Backend.train (autodiff, one net) ends, after the same number
    of steps; they stop at different chunks (a net below tol stays put while the others train on)."""
    data = [_data(s) for s in range(3)]
    kw = dict(alpha=alpha, eta0=0.05, tol=1e-6, max_steps=20_000, chunk=100)
    run = train_gd(backend64, depth, np.stack([d[0] for d in data]), np.stack([d[1] for d in data]), **kw)
    assert len(set(run["steps"])) > 1, run["steps"]              # the nets stopped at different chunks
    for b, (x, y) in enumerate(data):
        beta, steps, loss = _alone_by_autodiff(backend64, depth, x, y, **kw)
        assert run["steps"][b] == steps
        assert run["final_loss"][b] < 1e-6
        np.testing.assert_allclose(run["beta"][b], beta, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(run["final_loss"][b], loss, rtol=1e-6)


def test_a_diverging_net_stops_and_the_others_train_as_alone(backend64):
    """A step far too large for one draw (its data scaled up) makes that net's loss non-finite: it stops there,
    its beta is not finite (diverged), and the net beside it ends as it does alone."""
    (x0, y0), (x1, y1) = _data(0), _data(1)
    kw = dict(alpha=0.1, eta0=0.05, tol=1e-6, max_steps=20_000, chunk=100)
    both = train_gd(backend64, 2, np.stack([x0 * 30, x1]), np.stack([y0 * 30, y1]), **kw)
    alone = train_gd(backend64, 2, x1[None], y1[None], **kw)
    assert not np.all(np.isfinite(both["beta"][0])) and not np.isfinite(both["final_loss"][0])
    assert both["steps"][0] < both["steps"][1] == alone["steps"][0]
    np.testing.assert_allclose(both["beta"][1], alone["beta"][0], rtol=1e-9, atol=1e-12)


def test_bad_shapes_are_refused(backend64):
    x, y = _data(0)
    with pytest.raises(HarnessError, match="shape"):
        train_gd(backend64, 2, x, y, 0.1, 0.05, 1e-6, 100, 10)
    with pytest.raises(HarnessError, match="depth"):
        train_gd(backend64, 0, x[None], y[None], 0.1, 0.05, 1e-6, 100, 10)
