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


# -- the distribution of a layer's weights: the parametrisation table's last column (issue 25) ------------------------
from harness.errors import HarnessError  # noqa: E402
from harness.parametrisation import DISTRIBUTIONS, draw  # noqa: E402
from harness.resnet import ResCNN, ResMLP  # noqa: E402
from harness.transformer import Transformer  # noqa: E402


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_each_distribution_has_mean_zero_and_variance_one(name):
    """Each named sampler is mean 0, variance 1, so a layer's std stays the table's. n = 200,000 draws; the
    bounds are 5 standard errors of the sample mean (1) and of the mean of x^2 ((mu4 - 1) / n: normal 2,
    uniform 0.8, rademacher 0): a correct sampler fails with probability < 1e-6 per assertion (normal tails), a
    sampler of variance 1.05 or mean 0.02 is caught (both > 6 standard errors away)."""
    n = 200_000
    x = draw(np.random.default_rng(0), (n,), 1.0, name)
    mu4 = {"normal": 3.0, "uniform": 1.8, "rademacher": 1.0}[name]
    assert abs(x.mean()) < 5 / np.sqrt(n)
    assert abs((x * x).mean() - 1) <= 5 * np.sqrt((mu4 - 1) / n)
    if name == "rademacher":
        assert set(np.unique(x)) == {-1.0, 1.0}
    if name == "uniform":
        assert np.abs(x).max() <= np.sqrt(3.0)


def test_a_layer_kinds_distribution_keeps_the_tables_std():
    """``+-1`` input weights under the NTK parametrisation (std 1, multiplier s/sqrt(fan_in)), as the paper's
    initialisation wants; under standard the same signs times s/sqrt(fan_in); the readout bias follows "bias";
    the kinds not named stay normal; the learning-rate multipliers are the table's whatever the distribution."""
    ntk = MLP(4, 32, 1, "ntk", bias=True, init_dist={"input": "rademacher", "bias": "uniform"})
    p = ntk.init(3)
    assert set(np.unique(p["W0"])) == {-1.0, 1.0}
    for l, (_, bs) in enumerate(ntk.scales()):                   # the biases' std: 1 (ntk style), bias_std its multiplier
        assert bs.init_std == 1.0 and np.abs(p[f"b{l}"]).max() <= np.sqrt(3) * bs.init_std
        assert np.abs(p[f"b{l}"]).max() > 0.5
    assert len(np.unique(np.abs(p["W1"]))) == p["W1"].size      # the readout: normal (no repeated magnitudes)
    sp = MLP(4, 32, 1, "standard", init_dist={"input": "rademacher"})
    assert np.allclose(np.abs(sp.init(3)["W0"]), np.sqrt(2) / np.sqrt(4))
    mup = MLP(4, 32, 2, "mup", base_width=8, bias=True)
    assert MLP(4, 32, 2, "mup", base_width=8, bias=True, init_dist="uniform").lr_multipliers("sgd") == \
        mup.lr_multipliers("sgd")


def test_a_sampler_of_ones_own_and_its_checks():
    def signs_times_two(rng, shape):
        return 2.0 * np.sign(rng.standard_normal(shape))
    m = MLP(3, 8, 2, "ntk", init_dist={"hidden": signs_times_two})
    assert set(np.unique(np.abs(m.init(0)["W1"]))) == {2.0}
    assert hash(m) == hash(MLP(3, 8, 2, "ntk", init_dist={"hidden": signs_times_two}))   # compile caches key on it
    with pytest.raises(HarnessError, match="shape"):
        MLP(3, 8, 1, "ntk", init_dist=lambda rng, shape: rng.standard_normal(3)).init(0)
    with pytest.raises(HarnessError, match="init_dist.*unknown distribution 'gaussian'"):
        MLP(3, 8, 1, "ntk", init_dist="gaussian")
    with pytest.raises(HarnessError, match="init_dist.*unknown layer kind 'readout'"):
        MLP(3, 8, 1, "ntk", init_dist={"readout": "uniform"})


def test_analytic_kernels_refuse_a_non_gaussian_first_layer():
    """The infinite-width kernels assume Gaussian first-layer pre-activations: refused for non-normal input
    weights or biases (a one-line pointer to the Monte Carlo kernels), kept for non-normal deeper weights."""
    x = np.random.default_rng(0).standard_normal((4, 3))
    with pytest.raises(HarnessError, match="montecarlo"):
        MLP(3, 8, 2, "ntk", init_dist={"input": "uniform"}).analytic_kernels(x)
    with pytest.raises(HarnessError, match="montecarlo"):
        MLP(3, 8, 2, "ntk", bias=True, init_dist={"bias": "rademacher"}).analytic_kernels(x)
    np.testing.assert_array_equal(MLP(3, 8, 2, "ntk", init_dist={"hidden": "uniform"}).analytic_kernels(x).ntk,
                                  MLP(3, 8, 2, "ntk").analytic_kernels(x).ntk)
    cnn = CNN((5, 5, 2), (Conv(3, W_std=1.4), Activation("relu"), GlobalAvgPool(), Dense(1.4)), 6, "ntk",
              init_dist="uniform")
    with pytest.raises(HarnessError, match="montecarlo"):
        cnn.analytic_kernels(np.zeros((2, 5, 5, 2)))


@pytest.mark.parametrize("name", ["mlp", "cnn", "resmlp", "rescnn", "transformer"])
def test_every_built_in_model_draws_from_its_init_dist(backend64, name):
    """``init_dist="rademacher"`` on every built-in model: each drawn weight is +-(its std), so ``|W|`` takes one
    value per parameter (layer norms and muP's zero query keep theirs), and the model runs and trains on the
    backend, the anti-symmetric copy on top giving zero output."""
    make = {"mlp": lambda d: MLP(3, 8, 2, "mup", bias=True, base_width=4, init_dist=d),
            "cnn": lambda d: CNN((5, 5, 2), (Conv(3, W_std=1.4, b_std=0.1), Activation("relu"), GlobalAvgPool(),
                                             Dense(1.4)), 6, "ntk", init_dist=d),
            "resmlp": lambda d: ResMLP(3, 8, 2, "mup", branch="depth-mup", init_dist=d),
            "rescnn": lambda d: ResCNN((6, 2), 4, 1, "standard", init_dist=d),
            "transformer": lambda d: Transformer(3, 4, 8, 2, 1, "mup", base_width=4, init_dist=d)}[name]
    shape = {"mlp": (5, 3), "cnn": (5, 5, 5, 2), "resmlp": (5, 3), "rescnn": (5, 6, 2),
             "transformer": (5, 4, 3)}[name]
    model = make("rademacher")
    params = model.init(1)
    for k, v in params.items():
        assert len(np.unique(np.abs(v))) == 1, k
    assert set(params) == set(make("normal").init(1))
    x = np.random.default_rng(2).standard_normal(shape)
    doubled = antisymmetric(model)
    p = backend64.init(doubled, 1)
    assert np.abs(backend64.apply(doubled, p, x)).max() <= 1e-12
    y = np.sin(x.reshape(len(x), -1)[:, :1])
    run = backend64.train(model, backend64.init(model, 1), x, y, sgd(0.01), 5)
    assert np.all(np.isfinite(run.history["loss"]))
