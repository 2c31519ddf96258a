"""Backend.train: descent, determinism of minibatch order, recording, argument checks, cross-entropy."""
import warnings

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


def test_a_backends_sgd_update_is_the_per_parameter_formula(backend64):
    """A backend may give its ops an ``sgd_update`` (torch: one kernel per parameter, for speed); it must equal
    :class:`harness.optim.Optimizer`'s per-parameter SGD, with and without momentum, and leave its inputs
    unchanged."""
    ops = backend64.ops
    fused = getattr(ops, "sgd_update", None)
    if fused is None:
        pytest.skip(f"{backend64.framework_name} has no sgd_update (its compiler fuses the update)")
    rng = np.random.default_rng(1)
    shapes = {"W0": (4, 5), "b0": (5,), "W1": (5, 1)}
    arr = lambda s: backend64.asarray(rng.standard_normal(s))
    params, grads = {k: arr(s) for k, s in shapes.items()}, {k: arr(s) for k, s in shapes.items()}
    mults = {"W0": 0.5, "b0": np.float64(2.0)}                                 # W1 absent: multiplier 1
    before = {k: backend64.to_numpy(v).copy() for k, v in params.items()}
    for opt, state in ((sgd(0.1), {"t": 2}), (sgd(0.1, momentum=0.9), {"t": 2, "m": {k: arr(s) for k, s in
                                                                                   shapes.items()}})):
        new, st = fused(opt, grads, state, params, mults)
        ref, rst = opt.update(grads, state, params, mults, None)           # SGD's formula reads no ops
        assert st["t"] == rst["t"] == 3 and set(st) == set(rst)
        for k in shapes:
            np.testing.assert_allclose(backend64.to_numpy(new[k]), backend64.to_numpy(ref[k]), rtol=1e-14,
                                       atol=1e-15)
            if opt.momentum:
                np.testing.assert_allclose(backend64.to_numpy(st["m"][k]), backend64.to_numpy(rst["m"][k]),
                                           rtol=1e-14, atol=1e-15)
            np.testing.assert_array_equal(backend64.to_numpy(params[k]), before[k])


MLP_CASES = [dict(parametrisation=p, activation=a, depth=d, bias=b, output_dim=k)
             for p, a, d, b, k in [("ntk", "relu", 1, True, 1), ("standard", "relu", 2, False, 1),
                                   ("mup", "tanh", 2, True, 3), ("mean-field", "erf", 1, True, 2),
                                   ("ntk", "linear", 0, True, 1), ("standard", "relu", 0, False, 2),
                                   ("mup", "relu", 3, True, 1)]]


@pytest.mark.parametrize("anti", [False, True], ids=["mlp", "antisymmetric"])
@pytest.mark.parametrize("case", MLP_CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_torch_mlp_gradient_written_out_is_autograds(case, loss, anti, monkeypatch):
    """The torch backend trains the built-in MLP, and its anti-symmetric copy, with its loss gradient written out
    (harness/backends/torch_mlp.py, for speed): value and gradient equal autograd's on the same weights (float64),
    for every parametrisation, activation, depth 0..3, with and without biases, one or several outputs and both
    losses, for one network and for an ensemble (the sum of the members' losses, inputs shared or per member);
    stacked weights given to the one-network form, another model and a loss of the user's go to autograd. The two
    copies of the anti-symmetric model are made to differ first (at their init they are equal, and a sign error
    between them would cancel)."""
    from harness.backends import get_backend, is_installed
    if not is_installed("torch"):
        pytest.skip("torch not installed")
    from harness.backends.torch_mlp import mlp_value_and_grad
    b = get_backend("torch", dtype="float64")
    k = case["output_dim"]
    if loss == "cross_entropy" and k == 1:
        pytest.skip("cross-entropy needs two or more outputs")
    model = MLP(5, 24, case["depth"], case["parametrisation"], case["activation"], output_dim=k, bias=case["bias"],
                base_width=8, zero_readout=False)
    if anti:
        from harness.inits import antisymmetric
        model = antisymmetric(model)
    rng = np.random.default_rng(3)
    x = b.asarray(rng.standard_normal((11, 5)))
    y = b.asarray(np.eye(k)[rng.integers(0, k, 11)] if loss == "cross_entropy" else rng.standard_normal((11, k)))
    trainable, frozen = b._split(b.init(model, 4))
    if anti:                                    # the copies apart: minus's weights perturbed
        trainable = {n: v * (1 + 0.3 * b.asarray(rng.standard_normal(tuple(v.shape)))) if n.startswith("minus/")
                     else v for n, v in trainable.items()}
    fast = mlp_value_and_grad(b, model, loss)
    auto = b._autograd_value_and_grad(b._loss_fn(model, loss))
    (v1, g1), (v2, g2) = fast(trainable, frozen, x, y), auto(trainable, frozen, x, y)
    assert float(v1) == pytest.approx(float(v2), rel=1e-13)
    assert list(g1) == list(g2)
    for name in g2:
        np.testing.assert_allclose(b.to_numpy(g1[name]), b.to_numpy(g2[name]), rtol=1e-11,
                                   atol=1e-13 * float(np.abs(b.to_numpy(g2[name])).max()), err_msg=name)
    stacked, _ = b._split(b.init_ensemble(model, [1, 2, 5]))               # stacked weights: autograd's result
    if anti:
        stacked = {n: v * (1 + 0.3 * b.asarray(rng.standard_normal(tuple(v.shape)))) if n.startswith("minus/")
                   else v for n, v in stacked.items()}
    (ve, ge), (va, ga) = fast(stacked, frozen, x, y), auto(stacked, frozen, x, y)
    assert float(ve) == float(va) and all(np.array_equal(b.to_numpy(ge[n]), b.to_numpy(ga[n])) for n in ga)
    # the ensemble form: the sum of the members' own losses, inputs shared or one set per member
    members = mlp_value_and_grad(b, model, loss, members=True)
    for xe, ye in ((x, y), (b.asarray(rng.standard_normal((3, 11, 5))), b.asarray(np.stack([b.to_numpy(y)] * 3)))):
        value, grads = members(stacked, frozen, xe, ye)
        singles = [auto({k: v[e] for k, v in stacked.items()}, frozen, xe if xe.ndim == 2 else xe[e],
                        ye if ye.ndim == 2 else ye[e]) for e in range(3)]
        assert float(value) == pytest.approx(sum(float(v) for v, _ in singles), rel=1e-13)
        for name in grads:
            want = np.stack([b.to_numpy(g[name]) for _, g in singles])
            np.testing.assert_allclose(b.to_numpy(grads[name]), want, rtol=1e-11,
                                       atol=1e-13 * float(np.abs(want).max()), err_msg=name)
    assert mlp_value_and_grad(b, model, lambda out, yy, ops: ops.sum(out)) is None
    from harness import output_scaled
    assert mlp_value_and_grad(b, output_scaled(model, 2.0), loss) is None
    if anti:                                    # a copy's parameter missing: autograd's error, not a wrong gradient
        part = {n: v for n, v in trainable.items() if n != "minus/W0"}
        with pytest.raises(Exception):
            fast(part, frozen, x, y)

    def no_autograd(fn):
        def refuse(*args):
            raise AssertionError("went to autograd")
        return refuse
    monkeypatch.setattr(b, "_autograd_value_and_grad", no_autograd)     # the written-out form is what was compared
    mlp_value_and_grad(b, model, loss)(trainable, frozen, x, y)
    mlp_value_and_grad(b, model, loss, members=True)(stacked, frozen, x, y)


# -- train_chunk: full-batch steps several per compiled call (issue 25's small-model training) -----------------------
def _chunk_case():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3))
    return MLP(3, 16, 2, "mup", bias=True, base_width=4), x, np.sin(x[:, :1])


@pytest.mark.parametrize("opt", [sgd(0.05, momentum=0.9), adam(0.01)], ids=["sgd-momentum", "adam"])
def test_train_chunk_trains_as_the_one_step_default(backend_name, opt):
    """``train_chunk`` changes how many steps one compiled call runs, not what they compute: the records (steps,
    loss at each record) and the final parameters equal the default's, on a muP MLP (per-layer rates), with
    records every 4 steps so that chunks end at records and a remainder is left (K = 3: 3 + 1 per record
    interval; 10 steps). JAX's fori_loop gives the very numbers; torch's compiled graph reorders float64
    arithmetic (1e-12 of the scale)."""
    from harness.backends import get_backend
    if backend_name == "torch" and opt.kind == "sgd":
        pytest.skip("torch.compile costs ~15 s a graph: torch is checked with Adam, the state with the step count")
    model, x, y = _chunk_case()
    plain, chunked = get_backend(backend_name, dtype="float64"), get_backend(backend_name, dtype="float64",
                                                                            train_chunk=3)
    a = plain.train(model, plain.init(model, 1), x, y, opt, 10, record_every=4)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="train_chunk")   # no fallback to eager: it compiled
        b = chunked.train(model, chunked.init(model, 1), x, y, opt, 10, record_every=4)
    np.testing.assert_array_equal(a.steps, b.steps)
    rtol = 0.0 if backend_name == "jax" else 1e-12
    np.testing.assert_allclose(b.history["loss"], a.history["loss"], rtol=rtol, atol=0)
    for k in a.params:
        np.testing.assert_allclose(chunked.to_numpy(b.params[k]), plain.to_numpy(a.params[k]), rtol=0,
                                   atol=rtol * np.abs(plain.to_numpy(a.params[k])).max())


def test_train_chunk_falls_back_to_eager_steps_with_a_warning():
    """A model torch.compile cannot capture whole (a branch on a tensor's value: a graph break) trains one eager
    step at a time, as without ``train_chunk``, after one warning that says so."""
    from harness import FunctionModel
    from harness.backends import get_backend, is_installed
    if not is_installed("torch"):
        pytest.skip("torch is not installed")

    def apply(p, x, ops):
        if ops.sum(p["w"]) > 1e9:                                     # data-dependent: dynamo breaks the graph
            return ops.matmul(x, p["w"]) * 0.0
        return ops.matmul(x, p["w"])
    model = FunctionModel("item", lambda s: {"w": np.random.default_rng(s).standard_normal((3, 1))}, apply)
    _, x, y = _chunk_case()
    plain, chunked = get_backend("torch", dtype="float64"), get_backend("torch", dtype="float64", train_chunk=4)
    a = plain.train(model, plain.init(model, 0), x, y, sgd(0.1), 9, record_every=9)
    with pytest.warns(RuntimeWarning, match="train_chunk: torch.compile could not compile"):
        b = chunked.train(model, chunked.init(model, 0), x, y, sgd(0.1), 9, record_every=9)
    np.testing.assert_array_equal(plain.to_numpy(a.params["w"]), chunked.to_numpy(b.params["w"]))


@pytest.mark.parametrize("bad", [-1, 1.5, True, "4"])
def test_train_chunk_must_be_a_non_negative_integer(backend_name, bad):
    from harness.backends import get_backend
    with pytest.raises(HarnessError, match="train_chunk must be a non-negative integer"):
        get_backend(backend_name, train_chunk=bad)
