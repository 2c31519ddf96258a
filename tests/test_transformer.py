"""harness.transformer: attention and layer norm against torch's own (scaled_dot_product_attention, layer_norm),
the model on both backends (float64 parity in every parametrisation, ensembles, training), muP's attention rules,
and bad input."""
import numpy as np
import pytest

from harness import HarnessError, adam, get_backend
from harness.backends import is_installed
from harness.transformer import Transformer, attention, layer_norm


@pytest.mark.parametrize("causal", [False, True])
def test_attention_and_layer_norm_are_torchs(backend64, causal):
    """Multi-head attention written against ops == torch.nn.functional.scaled_dot_product_attention (its scale
    given), and layer_norm == torch.nn.functional.layer_norm, on random inputs, on every backend."""
    if not is_installed("torch"):
        pytest.skip("the reference is torch's")
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((3, 7, 4, 5)) for _ in range(3))          # (N, T, heads, d_head)
    with backend64._context():
        got = backend64.to_numpy(attention(backend64.ops, *(backend64.asarray(a) for a in (q, k, v)), 0.37,
                                           causal))
    tq, tk, tv = (torch.tensor(a).transpose(1, 2) for a in (q, k, v))        # torch: (N, heads, T, d_head)
    want = F.scaled_dot_product_attention(tq, tk, tv, is_causal=causal, scale=0.37).transpose(1, 2).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)
    x, g, b = rng.standard_normal((4, 6, 9)), rng.standard_normal(9), rng.standard_normal(9)
    with backend64._context():
        got = backend64.to_numpy(layer_norm(backend64.ops, *(backend64.asarray(a) for a in (x, g, b))))
    want = F.layer_norm(torch.tensor(x), (9,), torch.tensor(g), torch.tensor(b), eps=1e-5).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


@pytest.fixture
def both():
    if not (is_installed("torch") and is_installed("jax")):
        pytest.skip("parity needs torch and jax")
    return get_backend("torch", dtype="float64"), get_backend("jax", dtype="float64")


@pytest.mark.parametrize("parametrisation", ["standard", "ntk", "mup", "mean-field"])
def test_transformer_torch_equals_jax(both, parametrisation):
    """The same weights give the same outputs, NTK, per-example gradients and Adam trajectory on torch and JAX."""
    t, j = both
    m = Transformer(input_dim=5, seq_len=6, width=16, heads=4, depth=2, parametrisation=parametrisation,
                    base_width=8, causal=parametrisation == "mup", output_dim=2)
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 6, 5)), rng.standard_normal((4, 2))
    pt, pj = t.init(m, 2), j.init(m, 2)
    np.testing.assert_allclose(t.apply(m, pt, x), j.apply(m, pj, x), rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(t.ntk(m, pt, x, method="jacobian"), j.ntk(m, pj, x, method="jacobian"), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(t.per_example_grads(m, pt, x, y, flat=True),
                               j.per_example_grads(m, pj, x, y, flat=True), rtol=1e-9, atol=1e-12)
    rt, rj = t.train(m, pt, x, y, adam(0.01), 5), j.train(m, pj, x, y, adam(0.01), 5)
    np.testing.assert_allclose(rt.history["loss"], rj.history["loss"], rtol=1e-9)
    assert rt.history["loss"][-1] < rt.history["loss"][0]


def test_transformer_ensemble_is_each_network(backend64):
    m = Transformer(input_dim=3, seq_len=5, width=8, heads=2, depth=1, parametrisation="standard")
    x = np.random.default_rng(2).standard_normal((4, 5, 3))
    ens = backend64.init_ensemble(m, [1, 2, 3])
    out = backend64.apply(m, ens, x)
    assert out.shape == (3, 4, 1)
    for e, s in enumerate([1, 2, 3]):
        np.testing.assert_allclose(out[e], backend64.apply(m, backend64.init(m, s), x), rtol=1e-12, atol=1e-14)


def test_mup_attention_rules():
    """muP (TP-V): logits scaled 1/d_head (sqrt(base d_head)/d_head: the standard 1/sqrt(d_head) at the base
    width), the query initialised at zero, hidden matrices' Adam rate / m, the readout's init and rates / m."""
    base = dict(input_dim=3, seq_len=4, heads=2, depth=1, base_width=8)
    at_base, wide = Transformer(width=8, parametrisation="mup", **base), Transformer(width=32, parametrisation="mup",
                                                                                    **base)
    sp = Transformer(width=32, parametrisation="standard", **base)
    assert at_base.attention_scale == pytest.approx(1 / np.sqrt(4))
    assert wide.attention_scale == pytest.approx(2 / 16) and sp.attention_scale == pytest.approx(1 / 4)
    assert np.all(wide.init(0)["wq0"] == 0) and not np.all(sp.init(0)["wq0"] == 0)
    lr = wide.lr_multipliers("adam")
    assert lr["wk0"] == pytest.approx(1 / 4) and lr["readout"] == pytest.approx(1 / 4) and lr["embed"] == 1.0
    assert sp.lr_multipliers("adam")["wk0"] == 1.0
    assert np.std(wide.init(0)["readout"]) < np.std(sp.init(0)["readout"]) / 1.5       # x m^-1/2 (m = 4)


@pytest.mark.parametrize("kw,match", [(dict(heads=3), "field heads: 3 heads do not divide the width 16"),
                                      (dict(width=0), "width must be a positive integer"),
                                      (dict(readout="first"), "field readout"),
                                      (dict(parametrisation="mup", base_width=6), "field base_width"),
                                      (dict(parametrisation="xavier"), "unknown parametrisation")])
def test_bad_transformer_is_one_line(kw, match):
    args = dict(input_dim=3, seq_len=4, width=16, heads=4, depth=1, parametrisation="standard")
    args.update(kw)
    with pytest.raises(HarnessError, match=match):
        Transformer(**args)


def test_a_sequence_longer_than_the_positional_embedding_is_one_line(backend64):
    m = Transformer(input_dim=3, seq_len=4, width=8, heads=2, depth=1, parametrisation="standard")
    with pytest.raises(HarnessError, match="field seq_len: a sequence of 6 positions is longer"):
        backend64.apply(m, backend64.init(m, 0), np.ones((2, 6, 3)))


def test_coordinate_check_is_tp5_figure_1(mc_backend):
    """TP-V's Figure 1 on our transformer: after a few Adam steps the change of the embedding, the attention logits,
    the blocks' outputs and the readout grows with the width under the standard parametrisation and stays flat
    under muP. On fixed seeds over widths 32..128 (JAX: SP's logits and blocks slope 0.79-1.41 at steps 2 and 3,
    muP's every coordinate -0.37..-0.03; over 32..256 the same picture): muP's slopes all lie in [-0.45, 0.25] and
    the standard parametrisation's logits and blocks slope above 0.5 (a muP that forgot the 1/d_head logits or the
    hidden Adam rates fails the first)."""
    from harness.coordcheck import coord_data, coord_slopes
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 8, 6))
    y = np.sin(x[:, 0, :1])
    slopes = {}
    for par in ("standard", "mup"):
        def make(w, par=par):
            return Transformer(input_dim=6, seq_len=8, width=w, heads=4, depth=2, parametrisation=par, base_width=32)
        data = coord_data(mc_backend, make, (32, 64, 128), [0, 1], x, y, adam(0.01), steps=3)
        slopes[par] = coord_slopes(data)[1:]                       # steps 2 and 3; columns as coordinate_names
    names = make(32).coordinate_names
    inner = [i for i, n in enumerate(names) if n.startswith(("logits", "block"))]
    assert np.all(slopes["mup"] >= -0.45) and np.all(slopes["mup"] <= 0.25), slopes["mup"]
    assert np.all(slopes["standard"][:, inner] > 0.5), slopes["standard"]
