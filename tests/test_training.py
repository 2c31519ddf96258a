"""Backend.train: descent, determinism of minibatch order, recording, argument checks, cross-entropy."""
import numpy as np
import pytest

from harness import MLP, HarnessError, adam, sgd


def setup(backend, k=1, n=12, seed=0):
    model = MLP(3, 16, 1, "ntk", "tanh", output_dim=k, bias=True)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    y = np.sin(x[:, :k]) + 0.5 * np.cos(x[:, 1:2])
    return model, backend.init(model, seed), x, y


@pytest.mark.parametrize("opt", [sgd(0.5), sgd(0.2, momentum=0.9), adam(0.02)], ids=["gd", "momentum", "adam"])
def test_training_decreases_loss(backend64, opt):
    model, p, x, y = setup(backend64)
    res = backend64.train(model, p, x, y, opt, steps=60, record_every=10)
    loss = res.history["loss"]
    assert loss[0] == pytest.approx(backend64.loss(model, p, x, y), rel=1e-12)
    assert loss[-1] == pytest.approx(backend64.loss(model, res.params, x, y), rel=1e-12)
    assert loss[-1] < 0.5 * loss[0], loss
    if opt.kind == "sgd" and not opt.momentum:
        # small-step full-batch GD on a smooth loss is monotone (lr 0.5 < 2 / top Hessian eigenvalue here)
        top = backend64.hessian_top_eigenvalue(model, p, x, y, tol=1e-6).value
        assert 0.5 < 2 / top
        assert np.all(np.diff(loss) < 0), loss


def test_minibatch_sgd_deterministic_given_seed(backend64):
    model, p, x, y = setup(backend64)
    run = lambda seed: backend64.train(model, p, x, y, sgd(0.1), steps=9, batch_size=4, seed=seed)
    a, b, c = run(1), run(1), run(2)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    for k in a.params:
        np.testing.assert_array_equal(backend64.to_numpy(a.params[k]), backend64.to_numpy(b.params[k]))
    assert not np.array_equal(a.history["loss"], c.history["loss"])
    full = backend64.train(model, p, x, y, sgd(0.1), steps=9)
    assert not np.array_equal(a.history["loss"], full.history["loss"])
    # batch_size == n is full-batch GD
    same = backend64.train(model, p, x, y, sgd(0.1), steps=9, batch_size=len(x), seed=5)
    np.testing.assert_array_equal(same.history["loss"], full.history["loss"])


def test_minibatch_epoch_visits_every_sample(backend64):
    """One epoch of batch-size-1 SGD is a permutation of the n samples: with a tiny lr its total update equals
    one full-batch GD step with lr * n to first order (a repeated or skipped sample changes it at O(1))."""
    model, p, x, y = setup(backend64, n=6)
    lr = 1e-6
    ep = backend64.train(model, p, x, y, sgd(lr), steps=6, batch_size=1, seed=3)
    gd = backend64.train(model, p, x, y, sgd(lr * 6), steps=1)
    p0 = backend64.export_params(p)
    for k in p0:
        d_ep = backend64.export_params(ep.params)[k] - p0[k]
        d_gd = backend64.export_params(gd.params)[k] - p0[k]
        # second-order terms are O(lr^2 * |H| |g|) ~ 1e-12 relative to the O(lr) step; 1e-4 relative is ample
        np.testing.assert_allclose(d_ep, d_gd, rtol=0, atol=1e-4 * np.abs(d_gd).max() + 1e-18)


@pytest.mark.parametrize("steps,every,expect", [(10, 1, list(range(11))), (10, 3, [0, 3, 6, 9, 10]),
                                               (10, 5, [0, 5, 10]), (4, 10, [0, 4]), (0, 1, [0])])
def test_record_steps_and_shapes(backend64, steps, every, expect):
    model, p, x, y = setup(backend64, k=2)
    calls = []

    def out(params, t):
        calls.append(t)
        return backend64.apply(model, params, x[:3])
    res = backend64.train(model, p, x, y, sgd(0.1), steps=steps, record={"out": out, "t": lambda q, t: t},
                          record_every=every)
    np.testing.assert_array_equal(res.steps, expect)
    assert calls == expect
    assert res.history["out"].shape == (len(expect), 3, 2)
    np.testing.assert_array_equal(res.history["t"], expect)
    assert res.history["loss"].shape == (len(expect),)
    np.testing.assert_allclose(res.history["out"][-1], backend64.apply(model, res.params, x[:3]), rtol=0, atol=0)


def test_train_zero_steps_returns_initial_params(backend64):
    model, p, x, y = setup(backend64)
    res = backend64.train(model, p, x, y, adam(0.1), steps=0)
    for k in p:
        np.testing.assert_array_equal(backend64.to_numpy(res.params[k]), backend64.to_numpy(p[k]))
    assert res.history["loss"].tolist() == [pytest.approx(backend64.loss(model, p, x, y), rel=1e-14)]


@pytest.mark.parametrize("kw", [dict(steps=-1), dict(steps=2.5), dict(steps=True), dict(steps=3, batch_size=0),
                                dict(steps=3, batch_size=13), dict(steps=3, record_every=0)])
def test_bad_training_arguments(backend64, kw):
    model, p, x, y = setup(backend64)
    with pytest.raises(HarnessError) as e:
        backend64.train(model, p, x, y, sgd(0.1), **kw)
    assert "\n" not in str(e.value)


def test_cross_entropy_one_hot(backend64):
    k, n = 3, 12
    model = MLP(3, 16, 1, "ntk", "tanh", output_dim=k, bias=True)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((n, 3))
    labels = np.argmax(x, axis=1)
    y = np.eye(k)[labels]
    p = backend64.init(model, 4)
    out = backend64.apply(model, p, x)
    z = out - out.max(1, keepdims=True)
    expect = -np.mean(np.sum(y * (z - np.log(np.exp(z).sum(1, keepdims=True))), 1))
    assert backend64.loss(model, p, x, y, loss="cross_entropy") == pytest.approx(expect, rel=1e-12)
    res = backend64.train(model, p, x, y, sgd(1.0), steps=80, loss="cross_entropy", record_every=80)
    assert res.history["loss"][-1] < 0.5 * res.history["loss"][0]
    acc = np.mean(np.argmax(backend64.apply(model, res.params, x), 1) == labels)
    assert acc >= 0.75
    with pytest.raises(HarnessError):
        backend64.loss(model, p, x, y, loss="hinge")


@pytest.mark.parametrize("rates", ["scalar", "tensor"])
def test_a_backends_multi_tensor_adam_is_the_per_parameter_formula(backend64, rates):
    """A backend may give its ops an ``adam_update`` (torch: ``_foreach`` kernels, for speed); it must equal
    :class:`harness.optim.Optimizer`'s per-parameter Adam, with scalar and with per-member tensor multipliers (a
    learning-rate grid's), and leave its inputs unchanged."""
    import types
    ops = backend64.ops
    fused = getattr(ops, "adam_update", None)
    if fused is None:
        pytest.skip(f"{backend64.framework_name} has no multi-tensor Adam (its compiler fuses the update)")
    rng = np.random.default_rng(0)
    shapes = {"W0": (3, 4, 5), "b0": (3, 5), "W1": (3, 5, 1)}
    arr = lambda s, pos=False: backend64.asarray(np.abs(rng.standard_normal(s)) if pos else rng.standard_normal(s))
    params, grads = {k: arr(s) for k, s in shapes.items()}, {k: arr(s) for k, s in shapes.items()}
    state = {"t": 3, "m": {k: arr(s) for k, s in shapes.items()}, "v": {k: arr(s, True) for k, s in shapes.items()}}
    if rates == "scalar":
        mults = {"W0": 0.5, "b0": np.float64(2.0)}                       # W1 absent: multiplier 1
    else:
        mults = {k: backend64.asarray(np.array([0.1, 1.0, 3.0]).reshape((3,) + (1,) * (len(s) - 1)))
                 for k, s in shapes.items()}
    before = {k: backend64.to_numpy(v).copy() for k, v in params.items()}
    opt = adam(0.01)
    new, st = opt.update(grads, state, params, mults, ops)
    plain = types.SimpleNamespace(sqrt=ops.sqrt, zeros_like=ops.zeros_like)   # no adam_update: the formula
    ref, rst = opt.update(grads, state, params, mults, plain)
    assert st["t"] == rst["t"] == 4
    for k in shapes:
        np.testing.assert_allclose(backend64.to_numpy(new[k]), backend64.to_numpy(ref[k]), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(backend64.to_numpy(st["m"][k]), backend64.to_numpy(rst["m"][k]), rtol=1e-13,
                                   atol=1e-15)
        np.testing.assert_allclose(backend64.to_numpy(st["v"][k]), backend64.to_numpy(rst["v"][k]), rtol=1e-13,
                                   atol=1e-15)
        np.testing.assert_array_equal(backend64.to_numpy(params[k]), before[k])
