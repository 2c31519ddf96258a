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
