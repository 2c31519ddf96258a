"""Adapters of the user's own models (harness/adapters.py, issue 23): real modules, not stand-ins.

- A torch module built from nn.Conv2d, nn.BatchNorm2d (eval mode: its running statistics are buffers),
  nn.LayerNorm, nn.MultiheadAttention and nn.Linear (8x8 images with 4 channels -> a sequence of length 5,
  embedding 8, 2 heads); a flax linen module (Conv, BatchNorm with its batch_stats collection, LayerNorm, Dense);
  a flax nnx module (Linear, BatchNorm, Dropout with its RNG state); an equinox module (Conv2d, LayerNorm, Linear,
  a static activation function). On each, every backend method runs on the model's own backend in float64: the
  NTK by every method agrees with J J^T; per-example gradients match the gradient on each example alone (torch:
  autograd on the module itself); HVPs match finite differences of the gradient; the Hessian's top eigenvalue,
  top-k, trace and density agree with the dense Hessian; SGD and Adam training lower the loss; an ensemble from
  ``reinit`` runs as one batched call, member by member equal to the single networks.
- The built-in MLP (standard parametrisation, bias or not) and an equivalent nn.Sequential / flax / equinox MLP
  holding the same weights give the same outputs, NTK, per-example gradients, HVP and SGD and Adam trajectories to
  1e-10.
- Bad input is a one-line HarnessError naming the model: the other framework's backend, an output that is not one
  array or has the wrong shape, a pytree leaf that is not a float array, unknown names.

flax and equinox are required where jax is selected (as curvlinops is for the torch tests: missing, these fail)."""
import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness import MLP, HarnessError, adam, from_equinox, from_flax, from_jax, from_nnx, from_torch, sgd
from harness.models import FROZEN

from conftest import get_selected_backend

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("torch", "flax", "nnx", "equinox")
BACKEND_OF = {"torch": "torch", "flax": "jax", "nnx": "jax", "equinox": "jax"}
N = 5


# -- the four user models --------------------------------------------------------------------------------------------
def torch_case(reinit=False):
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        """BatchNorm, patchify (conv, stride 4: 8x8 -> 2x2 = 4 tokens), a class token (5 tokens), LayerNorm,
        self-attention (embed 8, 2 heads), a tanh readout of the class token."""

        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(4)
            self.conv = nn.Conv2d(4, 8, kernel_size=2, stride=4)
            self.cls = nn.Parameter(0.5 * torch.randn(1, 1, 8))
            self.norm = nn.LayerNorm(8)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 2)
            with torch.no_grad():          # running statistics that matter, and a non-trivial LayerNorm
                self.bn.running_mean.normal_(0, 0.3)
                self.bn.running_var.uniform_(0.5, 2.0)
                self.norm.weight.uniform_(0.5, 1.5)

        def forward(self, x):
            # BatchNorm before the conv: torch 2.13's CPU backward of an eval-mode batch_norm is wrong when its
            # output's gradient comes back strided (after .flatten(2).transpose(1, 2)), found by these tests
            h = self.conv(self.bn(x)).flatten(2).transpose(1, 2)              # (N, 4, 8)
            h = torch.cat([self.cls.expand(h.shape[0], 1, 8), h], dim=1)      # (N, 5, 8)
            h = self.norm(h)
            a, _ = self.attn(h, h, h)
            return self.head(torch.tanh(a[:, 0]))

    def make(seed):
        torch.manual_seed(seed)
        return Net().eval()                 # float32, as users build them; the backend runs it in float64

    net = make(0)
    model = from_torch(net, reinit=make if reinit else None)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, 4, 8, 8))

    def native(x):
        net64 = copy.deepcopy(net).double()
        with torch.no_grad():
            return net64(torch.as_tensor(x)).numpy()
    expected = {"cls", "conv.weight", "conv.bias", "bn.weight", "bn.bias", "norm.weight", "norm.bias",
                "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias",
                "head.weight", "head.bias", "frozen/bn.running_mean", "frozen/bn.running_var",
                "frozen/bn.num_batches_tracked"}
    return model, x, native, expected


def _to64(tree):
    import jax
    return jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=np.float64)
                                  if np.issubdtype(np.asarray(a).dtype, np.floating) else a, tree)


def flax_case(reinit=False):
    import jax
    import jax.numpy as jnp
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):                                   # x: (N, 8, 8, 4), channels last
            h = nn.Conv(8, (2, 2), strides=(4, 4))(x)            # (N, 2, 2, 8)
            h = nn.BatchNorm(use_running_average=True)(h)
            h = nn.LayerNorm()(h.reshape(h.shape[0], -1))        # (N, 32)
            return nn.Dense(2)(jnp.tanh(h))

    module = Net()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, 8, 8, 4))

    def make(seed):
        v = module.init(jax.random.key(seed), x[:1])
        v = jax.tree_util.tree_map(np.asarray, v)
        stats = np.random.default_rng(seed)
        v["batch_stats"]["BatchNorm_0"]["mean"] = stats.normal(0, 0.3, 8)
        v["batch_stats"]["BatchNorm_0"]["var"] = stats.uniform(0.5, 2.0, 8)
        return _to64(v)

    variables = make(0)
    model = from_flax(module, variables, output_dim=2, reinit=make if reinit else None)

    def native(x):
        with jax.enable_x64(True):
            return np.asarray(module.apply(variables, jnp.asarray(x)))
    expected = {f"params/{layer}/{p}" for layer, ps in (("Conv_0", ("kernel", "bias")), ("Dense_0", ("kernel", "bias")),
                                                        ("BatchNorm_0", ("scale", "bias")),
                                                        ("LayerNorm_0", ("scale", "bias"))) for p in ps}
    expected |= {"frozen/batch_stats/BatchNorm_0/mean", "frozen/batch_stats/BatchNorm_0/var"}
    return model, x, native, expected


def nnx_case(reinit=False):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(6, 8, rngs=rngs, param_dtype=jnp.float64)
            self.bn = nnx.BatchNorm(8, use_running_average=True, rngs=rngs, param_dtype=jnp.float64)
            self.drop = nnx.Dropout(0.5, deterministic=True, rngs=rngs)     # RNG state: kept, not a parameter
            self.l2 = nnx.Linear(8, 2, rngs=rngs, param_dtype=jnp.float64)

        def __call__(self, x):
            return self.l2(self.drop(jnp.tanh(self.bn(self.l1(x)))))

    def make(seed):
        with jax.enable_x64(True):
            net = Net(nnx.Rngs(seed))
            stats = np.random.default_rng(seed)
            net.bn.mean.set_value(jnp.asarray(stats.normal(0, 0.3, 8)))
            net.bn.var.set_value(jnp.asarray(stats.uniform(0.5, 2.0, 8)))
        return net

    net = make(0)
    model = from_nnx(net, output_dim=2, reinit=make if reinit else None)
    x = np.random.default_rng(3).standard_normal((N, 6))

    def native(x):
        with jax.enable_x64(True):
            return np.asarray(net(jnp.asarray(x)))
    expected = {"l1/kernel", "l1/bias", "bn/scale", "bn/bias", "l2/kernel", "l2/bias", "frozen/bn/mean",
                "frozen/bn/var"}
    return model, x, native, expected


def equinox_case(reinit=False):
    import jax
    import jax.numpy as jnp
    import equinox as eqx

    class Net(eqx.Module):
        conv: eqx.nn.Conv2d
        norm: eqx.nn.LayerNorm
        head: eqx.nn.Linear
        act: callable = eqx.field(static=True)

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.conv = eqx.nn.Conv2d(4, 8, 2, stride=4, key=k1)
            self.norm = eqx.nn.LayerNorm(32)
            self.head = eqx.nn.Linear(32, 2, key=k2)
            self.act = jnp.tanh

        def __call__(self, x):                                   # one example (4, 8, 8), as equinox modules do
            return self.head(self.act(self.norm(self.conv(x).reshape(-1))))

    def make(seed):
        return _to64(Net(jax.random.key(seed)))

    net = make(0)
    model = from_equinox(net, output_dim=2, reinit=make if reinit else None)
    x = np.random.default_rng(4).standard_normal((N, 4, 8, 8))

    def native(x):
        with jax.enable_x64(True):
            return np.asarray(jax.vmap(net)(jnp.asarray(x)))
    expected = {"conv/weight", "conv/bias", "norm/weight", "norm/bias", "head/weight", "head/bias"}
    return model, x, native, expected


BUILDERS = {"torch": torch_case, "flax": flax_case, "nnx": nnx_case, "equinox": equinox_case}
_CASES = {}


def case(kind, reinit=False):
    """(backend, model, x, y, native forward, expected names), built once per session (the backends cache compiled
    functions by model object, so the tests of one kind share them)."""
    be = get_selected_backend(BACKEND_OF[kind], "float64")
    if (kind, reinit) not in _CASES:
        model, x, native, expected = BUILDERS[kind](reinit)
        y = np.random.default_rng(9).standard_normal((N, 2))
        _CASES[kind, reinit] = (model, x, y, native, expected)
    return (be,) + _CASES[kind, reinit]


def flat_sorted(tree):
    return np.concatenate([np.asarray(tree[k]).ravel() for k in sorted(tree)])


def one_line(err):
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


# -- every backend method on every kind of model -------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_names_weights_and_forward(kind):
    """Parameter names are the module's own (buffers and non-trainable collections as frozen/), init is the
    module's weights as float64 for every seed, and apply is the module's own forward in float64."""
    be, model, x, y, native, expected = case(kind)
    assert model.backend == BACKEND_OF[kind] and model.framework == kind and model.output_dim == 2
    p0, p7 = model.init(0), model.init(7)
    assert set(p0) == expected
    assert all(v.dtype == np.float64 for v in p0.values())
    assert all(np.array_equal(p0[k], p7[k]) for k in p0)            # the weights as given, whatever the seed
    params = be.init(model, 0)
    out = be.apply(model, params, x)
    assert out.shape == (N, 2) and out.dtype == np.float64
    np.testing.assert_allclose(out, native(x), rtol=1e-10, atol=1e-12)
    assert set(be.grad(model, params, x, y)) == {k for k in expected if not k.startswith(FROZEN)}


@pytest.mark.parametrize("kind", ["torch", "equinox"])
def test_a_float32_backend_runs_the_module_in_float32(kind):
    """The same adapter on the float32 backend: parameters and outputs in float32, the float64 forward to float32
    rounding."""
    be64, model, x, y, native, expected = case(kind)
    be = get_selected_backend(BACKEND_OF[kind], "float32")
    out = be.apply(model, be.init(model, 0), x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, native(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_ntk_every_method_agrees_with_the_jacobian(kind):
    be, model, x, y, native, expected = case(kind)
    params = be.init(model, 0)
    jac = be.jacobian(model, params, x, flat=True)                      # (N, k, P)
    assert jac.shape[:2] == (N, 2)
    reference = np.einsum("iap,jbp->ijab", jac, jac)
    for method in ("auto", "jacobian", "ntvp"):
        np.testing.assert_allclose(be.ntk(model, params, x, method=method), reference, rtol=1e-9, atol=1e-10)
    k12 = be.ntk(model, params, x[:2], x[2:], method="ntvp")
    np.testing.assert_allclose(k12, reference[:2, 2:], rtol=1e-9, atol=1e-10)
    with pytest.raises(HarnessError, match="no structured NTK") as err:
        be.ntk(model, params, x, method="structured")
    one_line(err)


@pytest.mark.parametrize("kind", KINDS)
def test_per_example_grads_are_each_examples_own_gradient(kind):
    be, model, x, y, native, expected = case(kind)
    params = be.init(model, 0)
    per = be.per_example_grads(model, params, x, y, flat=True)
    assert per.shape[0] == N
    for i in range(N):
        np.testing.assert_allclose(per[i], flat_sorted(be.grad(model, params, x[i:i + 1], y[i:i + 1])),
                                   rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(per.mean(0), flat_sorted(be.grad(model, params, x, y)), rtol=1e-9, atol=1e-11)


def test_torch_gradients_match_autograd_on_the_module():
    """The torch adapter's per-example gradients are loss.backward() on the user's module itself, one example at a
    time (the module in float64, its parameters' .grad by name)."""
    be, model, x, y, native, expected = case("torch")
    import torch
    per = be.per_example_grads(model, be.init(model, 0), x, y)
    net64 = copy.deepcopy(model.module).double()
    for i in range(N):
        net64.zero_grad()
        out = net64(torch.as_tensor(x[i:i + 1]))
        (0.5 * ((out - torch.as_tensor(y[i:i + 1])) ** 2).sum()).backward()
        for name, p in net64.named_parameters():
            np.testing.assert_allclose(per[name][i], p.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)


def _dense_hessian(be, model, params, x, y):
    dim = sum(int(np.prod(v.shape)) for k, v in be.export_params(params).items() if not k.startswith(FROZEN))
    return np.stack([be.hvp(model, params, x, y, e) for e in np.eye(dim)], axis=1)


@pytest.mark.parametrize("kind", KINDS)
def test_hvp_matches_finite_differences_of_the_gradient(kind):
    be, model, x, y, native, expected = case(kind)
    params = be.init(model, 0)
    p = be.export_params(params)
    names = sorted(k for k in p if not k.startswith(FROZEN))
    sizes = [p[k].size for k in names]
    v = np.random.default_rng(5).standard_normal(sum(sizes))
    eps = 1e-5

    def grad_at(t):
        parts = np.split(v * t, np.cumsum(sizes)[:-1])
        moved = {**p, **{k: p[k] + d.reshape(p[k].shape) for k, d in zip(names, parts)}}
        return flat_sorted(be.grad(model, be.load_params(moved), x, y))
    fd = (grad_at(eps) - grad_at(-eps)) / (2 * eps)
    hv = be.hvp(model, params, x, y, v)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-6 * np.abs(fd).max())


@pytest.mark.parametrize("kind", KINDS)
def test_hessian_spectrum_agrees_with_the_dense_hessian(kind):
    """Top eigenvalue, top-k (within its certified residuals), Hutchinson and SLQ traces (within 5 standard errors:
    a false alarm about 6e-7 each) and the SLQ nodes (Ritz values: inside the spectrum) against eigvalsh of the
    Hessian built from HVPs on basis vectors (symmetric to rounding)."""
    be, model, x, y, native, expected = case(kind)
    params = be.init(model, 0)
    h = _dense_hessian(be, model, params, x, y)
    np.testing.assert_allclose(h, h.T, atol=1e-9 * np.abs(h).max())
    ev = np.linalg.eigvalsh((h + h.T) / 2)
    scale = np.abs(ev).max()
    top = be.hessian_top_eigenvalue(model, params, x, y, tol=1e-8)
    assert abs(top.value - ev[-1]) <= 1e-6 * scale, (top.value, ev[-1])
    tk = be.hessian_top_k(model, params, x, y, k=3, tol=1e-8)
    assert tk.converged
    np.testing.assert_allclose(tk.values, ev[::-1][:3], atol=max(1e-6 * scale, float(tk.residuals.max())))
    tr = be.hessian_trace(model, params, x, y, n_samples=64)
    assert abs(tr.value - ev.sum()) <= 5 * tr.stderr + 1e-9 * scale, (tr, ev.sum())
    dens = be.hessian_density(model, params, x, y, n_starts=8, n_steps=24)
    value, se = dens.trace()
    assert abs(value - ev.sum()) <= 5 * se + 1e-9 * scale, (value, se, ev.sum())
    assert dens.nodes.min() >= ev[0] - 1e-8 * scale and dens.nodes.max() <= ev[-1] + 1e-8 * scale


@pytest.mark.parametrize("kind", KINDS)
def test_training_lowers_the_loss(kind):
    """SGD on the mean squared error and Adam on the cross-entropy (one-hot targets), full batch and minibatch; the
    frozen entries (buffers, batch statistics) come back unchanged."""
    be, model, x, y, native, expected = case(kind)
    params = be.init(model, 0)
    onehot = np.eye(2)[np.argmax(y, axis=1)]
    run = be.train(model, params, x, y, sgd(0.05), steps=30)
    assert run.history["loss"][-1] < 0.7 * run.history["loss"][0], run.history["loss"]
    run = be.train(model, params, x, onehot, adam(0.01), steps=30, loss="cross_entropy", batch_size=3)
    assert run.history["loss"][-1] < 0.7 * run.history["loss"][0], run.history["loss"]
    before, after = be.export_params(params), be.export_params(run.params)
    assert all(np.array_equal(before[k], after[k]) for k in before if k.startswith(FROZEN))
    assert any(not np.allclose(before[k], after[k]) for k in before if not k.startswith(FROZEN))


@pytest.mark.parametrize("kind", KINDS)
def test_ensemble_runs_batched_and_equals_each_network(kind):
    """With ``reinit``, init_ensemble draws distinct networks; apply on the stacked parameters is one vmapped call,
    (E, N, k), network by network equal to the single ones."""
    be, model, x, y, native, expected = case(kind, reinit=True)
    seeds = [3, 4, 5]
    ens = be.init_ensemble(model, seeds)
    out = be.apply(model, ens, x)
    assert out.shape == (3, N, 2)
    singles = [be.apply(model, be.init(model, s), x) for s in seeds]
    for e in range(3):
        np.testing.assert_allclose(out[e], singles[e], rtol=1e-10, atol=1e-12)
    assert not np.allclose(singles[0], singles[1])


# -- the same network built in: the harness MLP and the user's MLP with the same weights -------------------------------
DEPTH, WIDTH, DIN, K = 2, 6, 3, 2


def _mlp_adapter(kind, mlp_params, bias):
    """(adapter model, {MLP name: (adapter name, transposed?)}) of an MLP in the user's framework with the harness
    MLP's weights (the harness computes x @ W + b; torch and equinox store W^T)."""
    layers = DEPTH + 1
    if kind == "torch":
        import torch
        import torch.nn as nn
        mods = []
        for l in range(layers):
            fan_in, fan_out = mlp_params[f"W{l}"].shape
            mods += [nn.Linear(fan_in, fan_out, bias=bias, dtype=torch.float64)] + ([nn.Tanh()] if l < DEPTH else [])
        seq = nn.Sequential(*mods)
        names = {}
        with torch.no_grad():
            for l in range(layers):
                seq[2 * l].weight.copy_(torch.as_tensor(mlp_params[f"W{l}"].T))
                names[f"W{l}"] = (f"{2 * l}.weight", True)
                if bias:
                    seq[2 * l].bias.copy_(torch.as_tensor(mlp_params[f"b{l}"]))
                    names[f"b{l}"] = (f"{2 * l}.bias", False)
        return from_torch(seq), names
    if kind == "flax":
        import jax.numpy as jnp
        import flax.linen as nn

        class Net(nn.Module):
            @nn.compact
            def __call__(self, x):
                for l in range(DEPTH):
                    x = jnp.tanh(nn.Dense(WIDTH, use_bias=bias)(x))
                return nn.Dense(K, use_bias=bias)(x)
        variables = {"params": {f"Dense_{l}": {"kernel": mlp_params[f"W{l}"],
                                               **({"bias": mlp_params[f"b{l}"]} if bias else {})}
                                for l in range(layers)}}
        names = {f"W{l}": (f"params/Dense_{l}/kernel", False) for l in range(layers)}
        names.update({f"b{l}": (f"params/Dense_{l}/bias", False) for l in range(layers) if bias})
        return from_flax(Net(), variables, output_dim=K), names
    import jax
    import jax.numpy as jnp
    import equinox as eqx
    net = eqx.nn.MLP(DIN, K, WIDTH, DEPTH, activation=jnp.tanh, use_bias=bias, use_final_bias=bias,
                     key=jax.random.key(0))
    for l in range(layers):
        net = eqx.tree_at(lambda m: m.layers[l].weight, net, mlp_params[f"W{l}"].T)
        if bias:
            net = eqx.tree_at(lambda m: m.layers[l].bias, net, mlp_params[f"b{l}"])
    names = {f"W{l}": (f"layers/{l}/weight", True) for l in range(layers)}
    names.update({f"b{l}": (f"layers/{l}/bias", False) for l in range(layers) if bias})
    return from_equinox(net), names


def _to_adapter(names, tree):
    return {names[k][0]: (v.T if names[k][1] else v) for k, v in tree.items()}


def _flat_permutation(names, shapes):
    """perm with flat_adapter = flat_mlp[perm] (both in their own sorted-name order)."""
    index, pos = {}, 0
    for k in sorted(shapes):
        size = int(np.prod(shapes[k]))
        index[k], pos = np.arange(pos, pos + size).reshape(shapes[k]), pos + size
    return flat_sorted(_to_adapter(names, index))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("kind", ["torch", "flax", "equinox"])
def test_adapter_of_the_same_mlp_is_the_builtin_mlp(kind, bias):
    """harness MLP (standard, tanh) and the user's MLP with its weights: outputs, NTK (the MLP's structured one
    against the adapter's Jacobian one), per-example gradients, HVP, and SGD and Adam trajectories agree to 1e-10."""
    be = get_selected_backend(BACKEND_OF[kind], "float64")
    mlp = MLP(DIN, WIDTH, DEPTH, "standard", "tanh", output_dim=K, bias=bias)
    w = mlp.init(11)
    model, names = _mlp_adapter(kind, w, bias)
    assert set(model.init(0)) == {names[k][0] for k in w}
    for k, v in w.items():
        np.testing.assert_array_equal(model.init(0)[names[k][0]], v.T if names[k][1] else v)
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((7, DIN)), rng.standard_normal((7, K))
    pm, pa = be.load_params(w), be.init(model, 0)
    tol = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(be.apply(model, pa, x), be.apply(mlp, pm, x), **tol)
    np.testing.assert_allclose(be.ntk(model, pa, x), be.ntk(mlp, pm, x, method="structured"), **tol)
    perm = _flat_permutation(names, {k: v.shape for k, v in w.items()})
    np.testing.assert_allclose(be.per_example_grads(model, pa, x, y, flat=True),
                               be.per_example_grads(mlp, pm, x, y, flat=True)[:, perm], **tol)
    v = rng.standard_normal(perm.size)
    np.testing.assert_allclose(be.hvp(model, pa, x, y, v[perm]), be.hvp(mlp, pm, x, y, v)[perm], **tol)
    for opt in (sgd(0.1), adam(0.01)):
        ra = be.train(model, pa, x, y, opt, steps=25, record_every=5)
        rm = be.train(mlp, pm, x, y, opt, steps=25, record_every=5)
        np.testing.assert_allclose(ra.history["loss"], rm.history["loss"], **tol)
        final = _to_adapter(names, be.export_params(rm.params))
        for k, val in be.export_params(ra.params).items():
            np.testing.assert_allclose(val, final[k], **tol, err_msg=k)


def test_a_torch_module_keeps_its_train_mode_and_its_buffers_are_not_updated_in_params():
    """A module left in train mode runs in train mode (BatchNorm normalises by the batch's statistics, the numbers
    of the module itself); the running statistics it updates in place are a copy's, not the caller's params."""
    be = get_selected_backend("torch", "float64")
    import torch
    import torch.nn as nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 1)).double().train()
    model = from_torch(net)
    params = be.init(model, 0)
    before = be.export_params(params)
    x = np.random.default_rng(0).standard_normal((6, 3))
    out = be.apply(model, params, x)
    with torch.no_grad():
        np.testing.assert_allclose(out, copy.deepcopy(net)(torch.as_tensor(x)).numpy(), rtol=1e-12)
        assert not np.allclose(out, copy.deepcopy(net).eval()(torch.as_tensor(x)).numpy())
    after = be.export_params(params)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert np.all(after["frozen/1.num_batches_tracked"] == 0)


def test_batched_grid_and_monte_carlo_kernels_run_on_an_adapter():
    """The batched consumers of ensembles: train_lr_grid's one-ensemble grid (parameters stacked as (L, 1, n) for
    vectors) equals the one-rate-at-a-time loop, and monte_carlo_kernels runs batched, on a torch MLP from reinit."""
    be = get_selected_backend("torch", "float64")
    import torch
    import torch.nn as nn
    from harness import monte_carlo_kernels
    from harness.transfer import train_lr_grid

    def make(seed):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    model = from_torch(make(0), reinit=make)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    params = be.init(model, 0)
    lrs = [0.01, 0.1, 0.5]
    batched = train_lr_grid(be, model, params, x, y, "adam", lrs, steps=10)
    loop = train_lr_grid(be, model, params, x, y, "adam", lrs, steps=10, batched=False)
    np.testing.assert_allclose(batched.final_loss, loop.final_loss, rtol=1e-9)
    mc = monte_carlo_kernels(be, model, x[:4], networks=8, batch=4, seed=1)
    assert mc.batched and mc.nngp.shape == (4, 4) and mc.ntk.shape == (4, 4) and np.all(np.isfinite(mc.ntk))


def test_parametrise_reads_the_layout_from_the_framework():
    """harness.widths.parametrise takes an adapter without being told where fan-in and fan-out sit: from the
    framework ("torch": out_in). At the base width muP computes the user's network."""
    be = get_selected_backend("torch", "float64")
    import torch
    import torch.nn as nn
    from harness.widths import parametrise

    def net(width):
        torch.manual_seed(0)
        return from_torch(nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, 1)).double())
    model = net(8)
    mup = parametrise(model, "mup", base=net(8), delta=net(16))
    assert mup.framework == "torch"
    assert {k: s.kind for k, s in mup.shapes.items()} == {"0.weight": "input", "0.bias": "bias",
                                                            "2.weight": "output", "2.bias": "output_bias"}
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_allclose(be.apply(mup, be.init(mup, 0), x), be.apply(model, be.init(model, 0), x),
                               rtol=1e-12)


# -- bad input: one line, naming the model ---------------------------------------------------------------------------
def test_the_other_frameworks_backend_is_refused():
    """A torch module on the jax backend and a JAX module on the torch backend: refused before anything is
    measured, naming the model and the backend it needs."""
    tb, jb = get_selected_backend("torch", "float64"), get_selected_backend("jax", "float64")
    for kind, wrong in (("torch", jb), ("flax", tb), ("equinox", tb)):
        _, model, x, y, _, _ = case(kind)
        params = wrong.init(model, 0)                  # NumPy weights load anywhere; running them is refused
        for call in (lambda: wrong.apply(model, params, x), lambda: wrong.ntk(model, params, x),
                     lambda: wrong.train(model, params, x, y, sgd(0.1), 2)):
            with pytest.raises(HarnessError, match=f"runs on the {model.backend} backend") as err:
                call()
            assert repr(model.name) in one_line(err)


def test_a_torch_module_whose_output_is_not_one_array():
    be = get_selected_backend("torch", "float64")
    import torch.nn as nn

    class Pair(nn.Module):
        def __init__(self, wrap):
            super().__init__()
            self.lin, self.wrap = nn.Linear(3, 2).double(), wrap

        def forward(self, x):
            return self.wrap(self.lin(x))
    x = np.ones((4, 3))
    for wrap, what in ((lambda o: (o, o), "tuple"), (lambda o: {"out": o}, "dict")):
        model = from_torch(Pair(wrap), name="pair")
        with pytest.raises(HarnessError, match=f"'pair': the module returned a {what}") as err:
            be.ntk(model, be.init(model, 0), x)
        one_line(err)
    wide = from_torch(nn.Sequential(nn.Linear(3, 6), nn.Unflatten(1, (2, 3))).double(), name="wide", output_dim=2)
    with pytest.raises(HarnessError, match=r"'wide': the module's outputs have shape \(4, 2, 3\)") as err:
        be.apply(wide, be.init(wide, 0), x)
    one_line(err)
    with pytest.raises(HarnessError, match="'odd': cannot tell its number of outputs") as err:
        from_torch(nn.LayerNorm(3), name="odd")
    with pytest.raises(HarnessError, match="has no trainable parameters"):
        from_torch(nn.Tanh(), name="odd", output_dim=1)
    with pytest.raises(HarnessError, match="from_torch needs a torch.nn.Module, got function"):
        from_torch(lambda x: x)
    assert from_torch(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 5))).output_dim == 5
    assert from_torch(nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), example_input=np.ones((2, 3))).output_dim == 1


def test_a_jax_model_whose_output_or_leaves_are_wrong():
    be = get_selected_backend("jax", "float64")
    import jax
    import jax.numpy as jnp
    import equinox as eqx
    import flax.linen as nn
    x = np.ones((4, 3))
    w = {"w": np.ones((3, 2))}
    pair = from_jax(lambda p, x: (x @ p["w"], x), w, name="pair", output_dim=2)
    with pytest.raises(HarnessError, match="'pair': the module returned a tuple") as err:
        be.apply(pair, be.init(pair, 0), x)
    one_line(err)
    for leaf, what in (("relu", "of type str"), (3, "of type int"), (np.arange(3), "an array of int64"),
                       (None, "of type NoneType")):
        with pytest.raises(HarnessError, match=f"'bad': leaf 'b' is {what}") as err:
            from_jax(lambda p, x: x @ p["w"], {**w, "b": leaf}, name="bad", output_dim=2)
        one_line(err)

    class Two(nn.Module):
        @nn.compact
        def __call__(self, x):
            return {"a": nn.Dense(2)(x)}
    two = Two()
    variables = two.init(jax.random.key(0), x)
    model = from_flax(two, variables, output_dim=2, name="two")
    with pytest.raises(HarnessError, match="'two': the module returned a dict") as err:
        be.ntk(model, be.init(model, 0), x)
    one_line(err)
    with pytest.raises(HarnessError, match="'two': the module returned a dict") as err:
        from_flax(two, variables, name="two", example_input=x)
    with pytest.raises(HarnessError, match="'lin': cannot tell its number of outputs") as err:
        from_flax(two, variables, name="lin")
    lin = eqx.nn.Linear(3, 4, key=jax.random.key(0))
    assert from_equinox(lin).output_dim == 4
    assert from_equinox(lin, example_input=x).output_dim == 4
    assert from_jax(lambda p, x: jnp.sum(x @ p["w"], axis=1), w, example_input=x).output_dim == 1


def test_unknown_names_are_refused():
    get_selected_backend("torch", "float64")
    import torch.nn as nn
    seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with pytest.raises(HarnessError, match=r"'seq': lr names \['2.wieght'\]") as err:
        from_torch(seq, name="seq", lr={"2.wieght": 0.5})
    one_line(err)
    with pytest.raises(HarnessError, match=r"'seq': frozen names \['3.'\]"):
        from_torch(seq, name="seq", frozen=("3.",))
    model = from_torch(seq, lr={"2.weight": 0.5}, frozen=("0.",))
    assert model.lr_multipliers("sgd") == {"2.weight": 0.5}
    assert set(model.init(0)) == {"frozen/0.weight", "frozen/0.bias", "2.weight", "2.bias"}
    bad = from_torch(seq, reinit=lambda s: nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 1)))
    with pytest.raises(HarnessError, match=r"reinit\(1\) gave 0.weight of shape \(5, 3\)"):
        bad.init(1)


def test_importing_the_adapters_loads_no_framework():
    code = textwrap.dedent("""
        import sys
        import harness, harness.adapters
        from harness import from_torch, from_flax, from_nnx, from_equinox, from_jax
        loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'jax', 'flax', 'equinox'))
        assert not loaded, loaded
        try:
            from_torch(object())
        except harness.HarnessError as e:
            assert 'torch is not imported' in str(e), e
        assert 'torch' not in sys.modules
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
