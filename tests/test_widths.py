"""muP for a model of your own (harness/widths.py, issue 23): the width dimensions inferred from a base and a delta
model as mup's ``set_base_shapes`` infers them, and the harness's parametrisation table applied to the model: on
the harness's own MLP (given as plain weights, its parametrisation forgotten) it rebuilds exactly the built-in
MLP of that parametrisation, weights, outputs and training trajectory."""
import numpy as np
import pytest

from harness import MLP, HarnessError, sgd, adam
from harness.models import FunctionModel
from harness.widths import infer_shapes, parametrise
from conftest import torch_output_change


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


def test_the_coordinate_check_agrees_with_mups_on_the_same_torch_network():
    """TP-V's coordinate check, mup's way and ours, on the same torch network: the mean change of the outputs after
    3 Adam steps (lr 1e-2, 0.5 * MSE on 32 Gaussian inputs) against the width 64..1024. mup: MuReadout,
    set_base_shapes(base 16, delta 32), MuAdam; ours: from_torch + parametrise(..., "mup") with the harness's Adam.
    Both fitted exponents lie within +-0.2 (flat), while plain torch Adam on the same network (the standard
    parametrisation) grows like the width (exponent > 0.6). Seeds fixed (0..3 per width): a deterministic check of
    these networks, not a calibrated statistical claim."""
    import mup
    import torch
    from harness import adam, get_backend
    from harness.adapters import from_torch
    nn = torch.nn
    widths, seeds = (64, 128, 256, 512, 1024), range(4)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 8)), rng.standard_normal((32, 1))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def net(width, seed, readout=nn.Linear):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             readout(width, 1)).double()

    def torch_change(model, opt):
        return torch_output_change(model, opt, xt, yt)

    def mup_change(width, seed):
        model = net(width, seed, mup.MuReadout)
        mup.set_base_shapes(model, net(16, 0, mup.MuReadout), delta=net(32, 0, mup.MuReadout))
        return torch_change(model, mup.MuAdam(model.parameters(), lr=1e-2))

    def sp_change(width, seed):
        model = net(width, seed)
        return torch_change(model, torch.optim.Adam(model.parameters(), lr=1e-2))

    be = get_backend("torch", dtype="float64")

    def our_change(width, seed):
        model = parametrise(from_torch(net(width, seed)), "mup", from_torch(net(16, 0)), from_torch(net(32, 0)))
        p = be.init(model, 0)
        run = be.train(model, p, x, y, adam(1e-2), 3)
        return float(np.mean(np.abs(be.apply(model, run.params, x) - be.apply(model, p, x))))

    def exponent(change):
        means = [np.mean([change(w, s) for s in seeds]) for w in widths]
        return np.polyfit(np.log(widths), np.log(means), 1)[0]
    ours, theirs, sp = exponent(our_change), exponent(mup_change), exponent(sp_change)
    print(f"exponents: ours {ours:.3f}, mup {theirs:.3f}, standard {sp:.3f}")
    assert abs(ours) < 0.2 and abs(theirs) < 0.2, (ours, theirs)
    assert sp > 0.6, sp
