"""muP for a model of your own (harness/widths.py, issue 23): the width dimensions inferred from a base and a delta
model as mup's ``set_base_shapes`` infers them, and the harness's parametrisation table applied to the model: on
the harness's own MLP (given as plain weights, its parametrisation forgotten) it rebuilds exactly the built-in
MLP of that parametrisation, weights, outputs and training trajectory."""
import numpy as np
import pytest

from harness import MLP, HarnessError, sgd, adam
from harness.models import FunctionModel
from harness.widths import infer_shapes, parametrise


def _as_user_model(mlp: MLP) -> FunctionModel:
    """The MLP as a user would hand it over: its standard-parametrisation weights and forward, nothing else."""
    sp = MLP(**{**mlp.__dict__, "parametrisation": "standard", "base_width": 1, "zero_readout": False})
    return FunctionModel("user-mlp", sp.init, sp.apply, output_dim=sp.output_dim)


def _mlp(width, parametrisation="standard", base_width=1, activation="relu"):
    # tanh nets with unit weight and bias stds: the gains s = 1 the ntk-style tables are applied with
    return MLP(input_dim=5, width=width, depth=2, parametrisation=parametrisation, activation=activation, bias=True,
               base_width=base_width, bias_std=1.0 if activation == "tanh" else 0.1)


def test_kinds_and_width_multipliers_are_the_mlps_own():
    """Fan-out-only input weights, fan-in-and-out hidden ones, fan-in-only readout, biases growing with the
    width, the readout's bias not: the kinds MLP.layers() states, each with the width ratio to the base."""
    shapes = infer_shapes(_mlp(64), _mlp(8), _mlp(16), layout="in_out")       # the MLP computes x @ W
    kinds = {n: s.kind for n, s in shapes.items()}
    assert kinds == {"W0": "input", "W1": "hidden", "W2": "output", "b0": "bias", "b1": "bias", "b2": "output_bias"}
    assert {n: s.width_mult for n, s in shapes.items()} == {"W0": 8, "W1": 8, "W2": 8, "b0": 8, "b1": 8, "b2": 1}
    assert shapes["W1"].fan_in == 64 and shapes["W0"].fan_in == 5 and shapes["b0"].fan_in == 1


@pytest.mark.parametrize("parametrisation, activation", [("mup", "relu"), ("standard", "relu"), ("ntk", "tanh"),
                                                         ("mean-field", "tanh")])
def test_parametrising_plain_weights_rebuilds_the_built_in_mlp(backend64, parametrisation, activation):
    """From the standard weights and forward alone, plus a base (width 8) and a delta (16), the table gives the
    built-in MLP of that parametrisation at base_width 8: the same stored weights, outputs and SGD / Adam
    trajectories (float64). The ntk-style tables take the user's gain as 1, so their check uses tanh nets with unit
    weight and bias stds (s = 1)."""
    target = _mlp(64, parametrisation, base_width=8, activation=activation)
    user = _as_user_model(target)
    model = parametrise(user, parametrisation, _mlp(8, activation=activation), _mlp(16, activation=activation),
                        layout="in_out")
    mine, theirs = model.init(3), target.init(3)
    for k in theirs:
        np.testing.assert_allclose(mine[k], theirs[k], rtol=1e-12, atol=0, err_msg=k)
    x = np.random.default_rng(0).standard_normal((6, 5))
    y = np.random.default_rng(1).standard_normal((6, 1))
    b = backend64
    np.testing.assert_allclose(b.apply(model, b.init(model, 3), x), b.apply(target, b.init(target, 3), x), rtol=1e-10)
    assert model.lr_multipliers("adam") == pytest.approx(target.lr_multipliers("adam"))
    assert model.lr_multipliers("sgd") == pytest.approx(target.lr_multipliers("sgd"))
    for opt in (sgd(0.05), adam(1e-3)):
        a = b.train(model, b.init(model, 3), x, y, opt, 5)
        c = b.train(target, b.init(target, 3), x, y, opt, 5)
        np.testing.assert_allclose(a.history["loss"], c.history["loss"], rtol=1e-9)


def test_width_dimensions_match_mups_set_base_shapes():
    """The same inference as mup's on the same torch model (nn.Linear weights are (out, in)): per parameter, the
    infinite axes and the width multiplier (mup's InfShape.width_mult) agree. (mup is installed with --no-deps:
    its requirements pull torchvision.)"""
    import mup                    # the test session installs it (noxfile); a missing peer fails here, never skips
    import torch
    nn = torch.nn

    def net(width):
        return nn.Sequential(nn.Linear(5, width), nn.ReLU(), nn.Linear(width, width), nn.LayerNorm(width),
                             mup.MuReadout(width, 3))          # mup asks for its readout class there
    model, base, delta = net(64), net(8), net(16)
    mup.set_base_shapes(model, base, delta=delta)

    def params(m):
        return {k: v.detach().numpy() for k, v in m.named_parameters()}
    ours = infer_shapes(params(model), params(base), params(delta), layout="out_in")
    for name, p in model.named_parameters():
        assert ours[name].infinite == tuple(d.isinf() for d in p.infshape), name
        assert ours[name].width_mult == pytest.approx(p.infshape.width_mult()), name
    assert ours["4.weight"].kind == "output" and ours["0.weight"].kind == "input" and ours["3.weight"].kind == "bias"


def test_bad_input_is_one_line():
    with pytest.raises(HarnessError, match="no width to scale"):
        infer_shapes(_mlp(8), _mlp(8), _mlp(8), layout="in_out")
    with pytest.raises(HarnessError, match="same parameters"):
        infer_shapes(_mlp(8), MLP(input_dim=5, width=8, depth=1, parametrisation="standard"), _mlp(16),
                     layout="in_out")
    with pytest.raises(HarnessError, match="layout must be one of"):
        infer_shapes(_mlp(8), _mlp(8), _mlp(16), layout="io")
    conv = {"k": np.zeros((4, 3, 3, 3))}
    with pytest.raises(HarnessError, match="neither fan-in nor fan-out"):
        infer_shapes(conv, conv, {"k": np.zeros((4, 3, 5, 5))})
    with pytest.raises(HarnessError, match="unknown parametrisation"):
        parametrise(_as_user_model(_mlp(16)), "mu-p", _mlp(8), _mlp(16), layout="in_out")
    with pytest.raises(HarnessError, match="layout="):
        parametrise(_as_user_model(_mlp(16)), "mup", _mlp(8), _mlp(16))
