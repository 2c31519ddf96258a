"""Cross-check of the coordinate check against the ``mup`` package (1.0.0; Yang et al. 2021, Tensor Programs V),
the implementation muP users already trust: both run the coordinate check on the same problem, and each layer's
exponent in the width must lead to the same verdict (flat under muP, growing under the standard parametrisation).

Not an asv benchmark (nothing is timed) and not a test (``mup`` cannot be a declared dependency: it requires
``torchvision``, which would make pip choose a torch build of its own). Install it beside the project's
``bench`` extra, then run the module::

    pip install --no-deps mup==1.0.0 && pip install pandas
    python -m asv_benchmarks.mup_coordcheck [--widths 128,256,512,1024,2048] [--seeds 4] [--out coord_mup.png]
    python -m asv_benchmarks.mup_coordcheck --transformer [--seeds 6]     # the transformer's, 128..1024

(``--transformer``: a 2-block pre-LN transformer, the harness's muP beside mup's recipe on the same architecture
and the standard parametrisation; the pilot in claims/_coord_check_transformer_pilot.py.)

The problem is coord-check's (claims/coord_check.py): a tanh MLP with 2 hidden layers of width n (no bias), 64
points on the sphere in R^16 with the sin/cos target, 5 full-batch steps, SGD at 0.5 or Adam at 2^-6, muP relative
to the base width 64 with a zero readout; the standard parametrisation (the control) at the same rates.

- **mup's side**: an ``nn.Sequential`` of ``nn.Linear`` layers and mup's ``MuReadout`` (zero-initialised), base
  shapes from widths 64 and 128 (``set_base_shapes``; ``None`` for the standard parametrisation), ``MuSGD`` /
  ``MuAdam`` (``torch.optim`` for the standard one), ``get_coord_data`` on a module that returns the harness's
  loss (0.5 * MSE; mup's own ``lossfn='mse'`` one-hot encodes class labels). Its statistic is its default: the
  mean |coordinate| ("l1") of every ``nn.Linear`` output (each layer's pre-activation) when step t starts.
- **The harness's side**: the same statistic, the mean |pre-activation| of each layer after each step, from
  ``Backend.train`` on the harness's torch MLP in its ``mup`` / ``standard`` parametrisation, and the claim's own
  statistic, the change from initialisation (``harness.coordcheck.coord_changes``).

Both initialise alike: mup's layers are re-drawn from the harness's N(0, 1 / fan_in) after ``set_base_shapes``
(torch's default uniform init has a third of that variance, which at these widths keeps the standard
parametrisation stable under SGD a few doublings longer). The table gives each layer's least-squares exponent of
the seed-mean statistic in the width at the last step, the verdict against coord-check's band (|exponent| <=
0.15), and the ratio of the two implementations' l1 at each width (about 1: the same distribution of networks,
different random draws).
"""
from __future__ import annotations

import argparse

import numpy as np

BAND = 0.15
LAYERS = ("hidden 1", "hidden 2", "output")
MODULES = ("net.0", "net.2", "net.4")            # their nn.Linear / MuReadout modules on mup's side


def problem(batch=64, input_dim=16, data_seed=0):
    from harness.data import sin_cos_target, sphere
    x = sphere(batch, input_dim, data_seed)
    return x, sin_cos_target(x)


def mup_side(widths, seeds, optimizer, lr, parametrisation, steps=5, base=64, input_dim=16):
    """mup's coordinate check: {layer: (widths,) seed-mean l1 of the Linear outputs at step ``steps``}."""
    import torch
    from torch import nn
    from mup import MuReadout, set_base_shapes
    from mup.coord_check import get_coord_data

    torch.set_default_dtype(torch.float64)
    x, y = problem(input_dim=input_dim)
    loader = [{"x": torch.as_tensor(x), "y": torch.as_tensor(y)}]

    class WithLoss(nn.Module):
        """The network and the harness's loss, 0.5 * mean over samples of the summed squared error (mup's own
        'mse' one-hot encodes class labels; a dict in, a dict out is its interface for any other loss)."""
        def __init__(self, n):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(input_dim, n, bias=False), nn.Tanh(), nn.Linear(n, n, bias=False),
                                     nn.Tanh(), MuReadout(n, y.shape[1], bias=False,
                                                          readout_zero_init=parametrisation == "mup"))

        def forward(self, x, y):
            return {"loss": 0.5 * ((self.net(x) - y) ** 2).sum() / x.shape[0]}

    def lazy(n):
        def make():
            model = WithLoss(n)
            set_base_shapes(model, WithLoss(base) if parametrisation == "mup" else None,
                            delta=WithLoss(2 * base) if parametrisation == "mup" else None)
            with torch.no_grad():                  # the harness's initialisation: N(0, 1 / fan_in) (tanh's gain 1)
                for layer in model.net:
                    if isinstance(layer, nn.Linear):
                        layer.weight.normal_(0.0, layer.in_features ** -0.5)
                if parametrisation == "mup":
                    model.net[4].weight.zero_()    # the zero readout
            return model
        return make
    df = get_coord_data({n: lazy(n) for n in widths}, loader, optimizer=optimizer, lr=lr,
                        mup=parametrisation == "mup", nsteps=steps + 1, dict_in_out=True, cuda=False, nseeds=seeds,
                        show_progress=False, filter_module_by_name=lambda name: name in MODULES)
    last = df[df.t == steps + 1]                         # the forward that starts step steps + 1: after `steps`
    return {layer: np.array([last[(last.module == mod) & (last.width == n)].l1.mean() for n in widths])
            for layer, mod in zip(LAYERS, MODULES)}


def harness_side(widths, seeds, optimizer, lr, parametrisation, steps=5, base=64, input_dim=16):
    """The harness's torch MLP: ({layer: seed-mean l1 of h_l}, {layer: seed-mean |h_l - h_l(0)|}) after ``steps``."""
    from harness import MLP, adam, get_backend, sgd
    from harness.coordcheck import coord_changes
    be = get_backend("torch", "cpu", "float64")
    x, y = problem(input_dim=input_dim)
    opt = sgd(lr) if optimizer == "sgd" else adam(lr)
    size, change = {l: [] for l in LAYERS}, {l: [] for l in LAYERS}
    for n in widths:
        model = MLP(input_dim=input_dim, width=n, depth=2, parametrisation=parametrisation, activation="tanh",
                    bias=False, base_width=base, zero_readout=parametrisation == "mup")
        s_l1, s_ch = [], []
        for seed in range(seeds):
            params = be.init(model, seed)
            run = be.train(model, params, x, y, opt, steps, record={
                "l1": lambda p, t: np.array([np.mean(np.abs(h)) for h in be.preactivations(model, p, x)])})
            s_l1.append(run.history["l1"][-1])
            s_ch.append(coord_changes(be, model, be.init(model, seed), x, y, opt, steps)[-1])
        for i, layer in enumerate(LAYERS):
            size[layer].append(np.mean([v[i] for v in s_l1]))
            change[layer].append(np.mean([v[i] for v in s_ch]))
    return {k: np.array(v) for k, v in size.items()}, {k: np.array(v) for k, v in change.items()}


def exponent(widths, values):
    v = np.asarray(values, float)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        return float("nan")
    return float(np.polyfit(np.log(widths), np.log(v), 1)[0])


def verdict(e):
    return "diverged/none" if not np.isfinite(e) else "flat" if abs(e) <= BAND else "grows" if e > 0 else "shrinks"


def compare(widths=(128, 256, 512, 1024, 2048), seeds=4, steps=5):
    """Rows (optimizer, parametrisation, layer, mup exponent, harness exponent (same l1), harness change exponent,
    mup / harness l1 at each width, verdicts agree)."""
    rows = []
    for optimizer, lr in (("sgd", 0.5), ("adam", 2.0 ** -6)):
        for par in ("mup", "standard"):
            ours_l1, ours_change = harness_side(widths, seeds, optimizer, lr, par, steps)
            theirs = mup_side(widths, seeds, optimizer, lr, par, steps)
            for layer in LAYERS:
                e_m, e_h, e_c = (exponent(widths, d[layer]) for d in (theirs, ours_l1, ours_change))
                with np.errstate(all="ignore"):
                    ratio = theirs[layer] / ours_l1[layer]
                rows.append((optimizer, par, layer, e_m, e_h, e_c, ratio, verdict(e_m) == verdict(e_h)))
    return rows


def trajectories(widths=(32, 128, 512, 2048), steps=5, lr=0.5, base=32, input_dim=16, classes=4, seed=0,
                 table=None, optimizer="sgd", eps=1e-8):
    """The same network trained by both implementations, biases included: D2-SGD's model (ReLU MLP, 2 hidden layers
    with biases, muP with a zero readout, base width ``base``), full-batch SGD (or Adam) at ``lr`` on 0.5 * MSE to
    one-hot teacher labels, float64. mup's ``nn.Linear`` layers and ``MuReadout`` (bias on) are loaded with the
    harness's initial weights, ``MuSGD`` (``MuAdam``) trains them. muP is one function-space dynamics in any of its
    equivalent abc forms (the harness puts the readout's 1/m in its rate, mup in its forward pass and x m in its
    rate), so the outputs must agree to rounding at every step. Rows: (width, largest |f_mup - f_harness| over the
    steps, largest |f_harness - f_harness(0)|). ``table``: a muP abc-table to plant instead of the harness's. Adam
    (``eps`` on both sides): the two forms differ through eps alone, the readout's denominator |g| + eps against
    |g| + m eps."""
    import torch
    from torch import nn
    from mup import MuAdam, MuReadout, MuSGD, set_base_shapes
    from harness import MLP, adam, get_backend, sgd
    from harness import parametrisation as P
    from harness.transfer import teacher_classes

    torch.set_default_dtype(torch.float64)
    x, y = teacher_classes(64, input_dim, classes, seed)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)

    def net(n):
        return nn.Sequential(nn.Linear(input_dim, n), nn.ReLU(), nn.Linear(n, n), nn.ReLU(),
                             MuReadout(n, classes, readout_zero_init=True))
    real = P.PARAMETRISATIONS["mup"]
    if table is not None:
        P.PARAMETRISATIONS["mup"] = P.Parametrisation("mup", real.style, {**real.table, **table})
    try:
        be = type(get_backend("torch"))(device="cpu", dtype="float64")     # compiled steps hold their table
        rows = []
        for n in widths:
            model = MLP(input_dim=input_dim, width=n, depth=2, parametrisation="mup", activation="relu",
                        output_dim=classes, bias=True, base_width=base, zero_readout=True)
            params = be.init(model, seed)
            run = be.train(model, params, x, y, sgd(lr) if optimizer == "sgd" else adam(lr, eps=eps), steps, record={
                "f": lambda p, t: be.to_numpy(be.apply(model, p, x))})
            ours = [np.asarray(f) for f in run.history["f"]]
            theirs_net = net(n)
            set_base_shapes(theirs_net, net(base), delta=net(2 * base))
            w = be.export_params(params)
            with torch.no_grad():
                for i, layer in enumerate((theirs_net[0], theirs_net[2], theirs_net[4])):
                    layer.weight.copy_(torch.as_tensor(w[f"W{i}"].T))
                    layer.bias.copy_(torch.as_tensor(w[f"b{i}"]))
            opt = (MuSGD(theirs_net.parameters(), lr=lr) if optimizer == "sgd"
                   else MuAdam(theirs_net.parameters(), lr=lr, eps=eps))
            theirs = []
            for _ in range(steps + 1):
                out = theirs_net(xt)
                theirs.append(out.detach().numpy().copy())
                opt.zero_grad()
                (0.5 * ((out - yt) ** 2).sum() / xt.shape[0]).backward()
                opt.step()
            rows.append((n, max(float(np.max(np.abs(a - b))) for a, b in zip(theirs, ours)),
                         max(float(np.max(np.abs(b - ours[0]))) for b in ours)))
        return rows
    finally:
        P.PARAMETRISATIONS["mup"] = real



TRANSFORMER_COORDS = ("embedding", "logits 1", "block 1", "logits 2", "block 2", "output")


def transformer_problem(batch=8, seq_len=4, input_dim=8, data_seed=0):
    """The transformer coordinate check's data (claims/_coord_check_transformer_pilot.py): ``batch`` sequences of
    ``seq_len`` standard normal vectors in R^input_dim and the target sin(first position's first feature)."""
    x = np.random.default_rng(data_seed).standard_normal((batch, seq_len, input_dim))
    return x, np.sin(x[:, 0, :1])


def transformer_changes(widths, seeds=6, steps=4, lr=1e-2, base=64, heads=4, side="harness"):
    """(widths, coordinates): the seed-mean |change from initialisation| of each of TRANSFORMER_COORDS after
    ``steps`` full-batch Adam steps (0.5 * MSE) of a 2-block pre-LN transformer (ReLU MLP of 4 x width, mean
    readout after a final layer norm), muP relative to ``base``.

    ``side="harness"``: :class:`harness.transformer.Transformer` and the harness's Adam (torch backend).
    ``side="mup"``: the same architecture in plain torch, made muP by mup's own recipe (``MuReadout``,
    ``set_base_shapes`` from widths ``base`` and ``2 base``, ``MuAdam``; logits sqrt(base d_head) / d_head with a
    zero-initialised query, TP-V appendix D.2), weights redrawn as the harness draws them (N(0, std^2 / fan_in),
    std sqrt(2) for the MLP's first matrix, positions N(0, 0.1^2)). ``side="sp"``: that torch network, standard
    parametrisation, ``torch.optim.Adam``."""
    import torch
    from torch import nn
    x, y = transformer_problem()
    seq_len, d_in = x.shape[1], x.shape[2]
    if side == "harness":
        from harness import adam, get_backend
        from harness.coordcheck import coord_changes
        from harness.transformer import Transformer
        be = get_backend("torch", "cpu", "float64")
        out = []
        for n in widths:
            m = Transformer(input_dim=d_in, seq_len=seq_len, width=n, heads=heads, depth=2, parametrisation="mup",
                            base_width=base)
            out.append(np.mean([coord_changes(be, m, be.init(m, s), x, y, adam(lr), steps)[-1]
                                for s in range(seeds)], axis=0))
        return np.array(out)
    import mup

    class Block(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.dh = w // heads
            self.scale = np.sqrt(base // heads) / self.dh if side == "mup" else 1 / np.sqrt(self.dh)
            self.ln1, self.ln2 = nn.LayerNorm(w), nn.LayerNorm(w)
            self.q, self.k, self.v, self.o = (nn.Linear(w, w, bias=False) for _ in range(4))
            self.fc1, self.fc2 = nn.Linear(w, 4 * w, bias=False), nn.Linear(4 * w, w, bias=False)

        def forward(self, h, seen):
            a = self.ln1(h)
            split = lambda z: z.view(*z.shape[:-1], heads, self.dh).transpose(1, 2)     # noqa: E731
            logits = split(self.q(a)) @ split(self.k(a)).transpose(-1, -2) * self.scale
            seen.append(logits)
            h = h + self.o((torch.softmax(logits, -1) @ split(self.v(a))).transpose(1, 2).reshape(h.shape))
            h = h + self.fc2(torch.relu(self.fc1(self.ln2(h))))
            seen.append(h)
            return h

    class Net(nn.Module):
        def __init__(self, w):
            super().__init__()
            self.embed, self.pos = nn.Linear(d_in, w, bias=False), nn.Parameter(torch.zeros(seq_len, w))
            self.blocks = nn.ModuleList([Block(w), Block(w)])
            self.lnf = nn.LayerNorm(w)
            self.readout = mup.MuReadout(w, 1, bias=False) if side == "mup" else nn.Linear(w, 1, bias=False)

        def forward(self, inp, seen):
            h = self.embed(inp) + self.pos
            seen.append(h)
            for b in self.blocks:
                h = b(h, seen)
            out = self.readout(self.lnf(h).mean(1))
            seen.append(out)
            return out

    def make(w, seed):
        torch.manual_seed(seed)
        return Net(w).double()

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    out = []
    for n in widths:
        per_seed = []
        for seed in range(seeds):
            net = make(n, seed)
            if side == "mup":
                mup.set_base_shapes(net, make(base, 0), delta=make(2 * base, 0))
            g = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for name, p in net.named_parameters():
                    if name == "pos":
                        p.copy_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
                    elif p.ndim == 2 and not name.startswith("readout"):
                        std = np.sqrt(2.0) if ".fc1." in name else 1.0           # as the harness draws w1
                        p.copy_(std / np.sqrt(p.shape[1]) * torch.randn(p.shape, generator=g, dtype=p.dtype))
                    if side == "mup" and name.endswith(".q.weight"):
                        p.zero_()                                               # muP's zero query
            opt = mup.MuAdam(net.parameters(), lr=lr) if side == "mup" else torch.optim.Adam(net.parameters(), lr=lr)
            with torch.no_grad():
                before = []
                net(xt, before)
            for _ in range(steps):
                opt.zero_grad()
                (0.5 * ((net(xt, []) - yt) ** 2).sum() / xt.shape[0]).backward()
                opt.step()
            with torch.no_grad():
                after = []
                net(xt, after)
            per_seed.append([float((a - b).abs().mean()) for a, b in zip(after, before)])
        out.append(np.mean(per_seed, axis=0))
    return np.array(out)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", default="128,256,512,1024,2048")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--trajectory", action="store_true",
                    help="instead: train D2-SGD's network (biases on) in both implementations from the same weights "
                         "and compare the outputs step by step, with the harness's table and with the readout "
                         "bias's SGD rate x m planted (its table before 2026-11-30)")
    ap.add_argument("--transformer", action="store_true",
                    help="instead: the transformer coordinate check (claims/_coord_check_transformer_pilot.py), "
                         "the harness's muP transformer against mup's recipe on the same architecture and the "
                         "standard parametrisation, Adam 0.01, 4 steps, widths --widths (default 128..1024)")
    args = ap.parse_args(argv)
    if args.transformer:
        widths = tuple(int(w) for w in (args.widths if "--widths" in (argv or __import__("sys").argv)
                                        else "128,256,512,1024").split(","))
        print(f"transformer coordinate check, widths {widths}, {args.seeds} seeds, 4 Adam steps; exponent of the "
              "seed-mean change from initialisation in the width")
        print("| side | " + " | ".join(TRANSFORMER_COORDS) + " |")
        print("|---|" + "---|" * len(TRANSFORMER_COORDS))
        for side in ("harness", "mup", "sp"):
            ch = transformer_changes(widths, args.seeds, side=side)
            print(f"| {side} | " + " | ".join(f"{exponent(widths, ch[:, j]):+.3f}" for j in range(ch.shape[1]))
                  + " |", flush=True)
        return 0
    widths = tuple(int(w) for w in args.widths.split(","))
    if args.trajectory:
        from harness import parametrisation as P
        ok = True
        print(f"muP trajectories, mup 1.0.0 against the harness, {args.steps} full-batch steps, float64: largest "
              "|f_mup - f_harness| over the steps (and the largest change of f, for scale)")
        print("| width | SGD 0.5, harness table | SGD 0.5, readout bias rate x m (planted) | Adam 2^-6, eps 1e-14 | "
              "Adam 2^-6, eps 1e-8 |")
        print("|---|---|---|---|---|")
        right = trajectories(widths, args.steps)
        planted = trajectories(widths, args.steps, table={"output_bias": P.PARAMETRISATIONS["mup"].table["bias"]})
        # Adam: the two forms differ through eps only (mup's readout gradient is 1/m of the harness's), so the
        # equivalence is checked with a negligible eps; the default's difference is shown beside it
        adam_exact = trajectories(widths, args.steps, lr=2.0 ** -6, optimizer="adam", eps=1e-14)
        adam_default = trajectories(widths, args.steps, lr=2.0 ** -6, optimizer="adam")
        for (n, d, c), (_, dp, cp), (_, da, ca), (_, dd, _) in zip(right, planted, adam_exact, adam_default):
            print(f"| {n} | {d:.1e} (change {c:.3g}) | {dp:.1e} (change {cp:.3g}) | {da:.1e} (change {ca:.3g}) "
                  f"| {dd:.1e} |")
            ok &= d <= 1e-9 * max(c, 1.0) and da <= 1e-9 * max(ca, 1.0)
        return 0 if ok else 1
    rows = compare(widths, args.seeds, args.steps)
    print(f"coordinate check, widths {widths}, {args.seeds} seeds, after {args.steps} steps; exponent of the "
          f"seed-mean statistic in the width (band |e| <= {BAND})")
    print("| optimizer | parametrisation | layer | mup: l1 of h | harness: l1 of h | harness: change of h (claim) "
          "| l1 ratio mup / harness by width | same verdict |")
    print("|---|---|---|---|---|---|---|---|")
    for o, p, l, em, eh, ec, ratio, agree in rows:
        print(f"| {o} | {p} | {l} | {em:+.3f} ({verdict(em)}) | {eh:+.3f} ({verdict(eh)}) | {ec:+.3f} ({verdict(ec)}) "
              f"| {' '.join(f'{r:.2f}' for r in ratio)} | {'yes' if agree else 'NO'} |")
    return 0 if all(r[-1] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
