"""harness.inits.antisymmetric: zero output and the inner model's NTK at initialisation, both copies trained (the
output moves, the copies part), per-layer rates kept, on every backend and for the MLP, the CNN and a FunctionModel."""
import numpy as np
import pytest

from harness import MLP, FunctionModel, sgd
from harness.cnn import CNN
from harness.cnn_kernels import Activation, Conv, Dense, GlobalAvgPool
from harness.inits import antisymmetric


def models():
    quad = FunctionModel("quadratic", lambda s: {"w": np.random.default_rng(s).standard_normal(3)},
                         lambda p, x, ops: ops.reshape(ops.matmul(x, p["w"]) ** 2, (-1, 1)))
    return {"mlp": (MLP(3, 16, 2, "mup", bias=True, base_width=4), (5, 3)),
            "cnn": (CNN((5, 5, 2), (Conv(3, W_std=1.4, b_std=0.1), Activation("relu"), GlobalAvgPool(), Dense(1.4)),
                        6, "ntk"), (5, 5, 5, 2)),
            "function": (quad, (5, 3))}


@pytest.mark.parametrize("name", ["mlp", "cnn", "function"])
def test_zero_output_and_the_models_ntk_at_init(backend64, name):
    model, shape = models()[name]
    doubled = antisymmetric(model)
    x = np.random.default_rng(1).standard_normal(shape)
    p = backend64.init(doubled, 7)
    scale = np.abs(backend64.apply(model, backend64.init(model, 7), x)).max()
    assert np.abs(backend64.apply(doubled, p, x)).max() <= 1e-13 * scale      # zero, to XLA's summation order
    np.testing.assert_allclose(backend64.ntk(doubled, p, x, method="jacobian"),
                               backend64.ntk(model, backend64.init(model, 7), x, method="jacobian"), rtol=1e-10,
                               atol=1e-12)
    y = np.sin(x.reshape(len(x), -1)[:, :1])
    run = backend64.train(doubled, p, x, y, sgd(0.05), 20)
    trained = {k: backend64.to_numpy(v) for k, v in run.params.items()}
    assert run.history["loss"][-1] < run.history["loss"][0]
    assert any(not np.allclose(trained["plus/" + k], trained["minus/" + k]) for k in model.init(0))


def test_rates_are_the_models_for_each_copy():
    model = MLP(3, 16, 2, "mup", base_width=4)
    doubled = antisymmetric(model)
    inner = model.lr_multipliers("adam")
    outer = doubled.lr_multipliers("adam")
    assert outer == {**{"plus/" + k: v for k, v in inner.items()}, **{"minus/" + k: v for k, v in inner.items()}}
    assert set(doubled.init(0)) == set(outer) | {"plus/" + k for k in model.init(0)} | \
        {"minus/" + k for k in model.init(0)}
