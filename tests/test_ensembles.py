"""Batched ensembles (one task, many networks) and depth 0 are documented features of the model API: checked here
on every selected backend against the one-network path."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from harness import MLP, HarnessError
from harness.data import sphere


@given(depth=st.integers(0, 3), bias=st.booleans(), members=st.integers(1, 5),
       parametrisation=st.sampled_from(["ntk", "standard", "mup"]))
def test_ensemble_apply_equals_each_network(backend64, depth, bias, members, parametrisation):
    model = MLP(input_dim=3, width=16, depth=depth, parametrisation=parametrisation, bias=bias, output_dim=2)
    x = sphere(5, 3, 1)
    seeds = list(range(10, 10 + members))
    ens = backend64.init_ensemble(model, seeds)
    out = backend64.apply(model, ens, x)
    assert out.shape == (members, 5, 2)
    for e, s in enumerate(seeds):
        np.testing.assert_allclose(out[e], backend64.apply(model, backend64.init(model, s), x), rtol=1e-12,
                                   atol=1e-14)
    pre = backend64.preactivations(model, ens, x)
    assert len(pre) == depth + 1 and pre[-1].shape == (members, 5, 2)


def test_ensemble_output_variance_is_the_nngp_kernel(mc_backend):
    """Neal's limit at a finite width, exact for one hidden layer: E f(x)^2 = K(x, x). 4000 networks in one
    batched call; the ratio's standard error is about 0.02, the band is 4 standard errors wide each side."""
    model = MLP(input_dim=4, width=64, depth=1, parametrisation="ntk")
    x = sphere(6, 4, 0)
    f = mc_backend.apply(model, mc_backend.init_ensemble(model, range(4000)), x)[..., 0]
    ratio = np.mean(f ** 2, axis=0) / np.diag(model.analytic_kernels(x).nngp)
    assert np.all(np.abs(ratio - 1) < 0.09), ratio


def test_depth_zero_is_the_linear_model(backend64):
    model = MLP(input_dim=3, width=1, depth=0, parametrisation="ntk", bias=True)
    params = backend64.init(model, 0)
    x = sphere(4, 3, 2)
    p = backend64.export_params(params)
    (ws, bs), = model.scales()
    np.testing.assert_allclose(backend64.apply(model, params, x), ws.multiplier * x @ p["W0"] + bs.multiplier * p["b0"],
                               rtol=1e-12)
    ntk = backend64.ntk(model, params, x, method="structured")
    np.testing.assert_allclose(ntk, backend64.ntk(model, params, x, method="jacobian"), rtol=1e-10)
    np.testing.assert_allclose(ntk, model.analytic_kernels(x).ntk, rtol=1e-10)   # a linear model's NTK is exact


@pytest.mark.parametrize("depth", [-1, 1.5, True])
def test_bad_depth_is_one_line(depth):
    with pytest.raises(HarnessError, match="depth must be a non-negative integer"):
        MLP(input_dim=3, width=4, depth=depth, parametrisation="ntk")


def test_empty_ensemble_is_refused(backend64):
    with pytest.raises(HarnessError, match="at least one seed"):
        backend64.init_ensemble(MLP(input_dim=3, width=4, depth=1, parametrisation="ntk"), [])


@pytest.mark.parametrize("opt,batch_size,shared", [("sgd", None, True), ("momentum", 4, True),
                                                     ("adam", None, False), ("sgd", 3, False)])
def test_train_ensemble_is_each_member_trained_alone(backend64, opt, batch_size, shared):
    """harness.ensembles.train_ensemble: member e of the trained ensemble, and its loss history, are what
    Backend.train gives network e alone (full batch in compiled chunks, and minibatches in the same order), with the
    data shared by the members or given per member."""
    from harness import adam, sgd
    from harness.ensembles import train_ensemble
    optimizer = {"sgd": sgd(0.1), "momentum": sgd(0.05, momentum=0.9), "adam": adam(0.01)}[opt]
    model = MLP(input_dim=3, width=12, depth=2, parametrisation="mup", bias=True, output_dim=2, base_width=4)
    seeds = [3, 5, 8]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 10, 3)) if not shared else rng.standard_normal((10, 3))
    y = np.sin(x[..., :2])
    run = train_ensemble(backend64, model, backend64.init_ensemble(model, seeds), x, y, optimizer, 12,
                         batch_size=batch_size, seed=7, record_every=5)
    assert list(run.steps) == [0, 5, 10, 12] and run.history["loss"].shape == (4, 3)
    trained = {k: backend64.to_numpy(v) for k, v in run.params.items()}
    for e, s in enumerate(seeds):
        xe, ye = (x, y) if shared else (x[e], y[e])
        alone = backend64.train(model, backend64.init(model, s), xe, ye, optimizer, 12, batch_size=batch_size,
                                seed=7, record_every=5)
        np.testing.assert_allclose(run.history["loss"][:, e], alone.history["loss"], rtol=1e-10)
        for k, v in alone.params.items():
            np.testing.assert_allclose(trained[k][e], backend64.to_numpy(v), rtol=1e-9, atol=1e-12, err_msg=k)


def test_train_ensemble_records_a_diverged_member_as_diverged(backend64):
    """A member whose loss stops being finite is NaN in the history from then on; the others train as alone."""
    from harness import sgd
    from harness.ensembles import train_ensemble
    model = MLP(input_dim=2, width=8, depth=1, parametrisation="standard", bias=False)
    x = sphere(6, 2, 0)
    y = np.ones((6, 1))
    params = backend64.export_params(backend64.init_ensemble(model, [1, 2]))
    params["W0"][1] *= 1e3                                                  # member 1 diverges at this rate
    run = train_ensemble(backend64, model, backend64.load_params(params), x, y, sgd(0.2), 40, record_every=10)
    loss = run.history["loss"]
    assert np.all(np.isfinite(loss[:, 0])) and np.isnan(loss[-1, 1])
    first = int(np.argmax(np.isnan(loss[:, 1])))
    assert np.all(np.isnan(loss[first:, 1]))
    alone = backend64.train(model, backend64.init(model, 1), x, y, sgd(0.2), 40, record_every=10)
    np.testing.assert_allclose(loss[:, 0], alone.history["loss"], rtol=1e-10)


def test_train_ensemble_bad_input_is_one_line(backend64):
    from harness import FunctionModel, sgd
    from harness.ensembles import train_ensemble
    model = MLP(input_dim=2, width=4, depth=1, parametrisation="standard")
    ens = backend64.init_ensemble(model, [1, 2])
    x, y = sphere(4, 2, 0), np.zeros((4, 1))
    for kw, match in [({"steps": -1}, "steps"), ({"record_every": 0}, "record_every"),
                      ({"batch_size": 9}, "batch_size"), ({"y": np.zeros((3, 4, 1))}, "one per member")]:
        args = {"x": x, "y": y, "steps": 3, **kw}
        with pytest.raises(HarnessError, match=match):
            train_ensemble(backend64, model, ens, args.pop("x"), args.pop("y"), sgd(0.1), **args)
    with pytest.raises(HarnessError, match="stacked"):
        train_ensemble(backend64, model, backend64.init(model, 1), x, y, sgd(0.1), 3)
    flat = FunctionModel("flat", lambda s: {"w": np.ones(2)}, lambda p, xx, ops: ops.sum(p["w"]) * xx[..., :1])
    with pytest.raises(HarnessError, match="broadcasts over the leading member axis"):
        train_ensemble(backend64, flat, backend64.init_ensemble(flat, [1, 2]), x, y, sgd(0.1), 3)


def test_train_ensemble_of_another_size_after_one_compiled(backend64):
    """The compiled step and loss are cached per ensemble size: a 2-member run after a 3-member one (same model,
    optimiser and loss, a loss function of the user's) records its own members."""
    from harness import sgd
    from harness.ensembles import train_ensemble
    model = MLP(input_dim=2, width=4, depth=1, parametrisation="standard")
    x, y = sphere(5, 2, 0), np.ones((5, 1))
    loss = lambda out, yy, ops: ops.sum((out - yy) ** 2) / out.shape[0]      # noqa: E731
    for members in ([1, 2, 3], [4, 5]):
        run = train_ensemble(backend64, model, backend64.init_ensemble(model, members), x, y, sgd(0.1), 3, loss=loss)
        assert run.history["loss"].shape == (2, len(members))
        alone = backend64.train(model, backend64.init(model, members[-1]), x, y, sgd(0.1), 3, loss=loss)
        np.testing.assert_allclose(run.history["loss"][-1, -1], alone.history["loss"][-1], rtol=1e-10)
