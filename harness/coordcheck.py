"""The coordinate check of Tensor Programs V (Yang et al. 2021, Section 6 / Fig. 5; the ``mup`` package's
``get_coord_data`` / ``plot_coord_data``), for any model with ``preactivations`` (e.g. :class:`harness.MLP`) in any
parametrisation, on any backend.

For each width and seed a fresh network is trained for a few steps; after every step ``t`` the size of each
layer's change from initialisation, ``mean |h_l(x; w_t) - h_l(x; w_0)|`` over the batch and units, is recorded.
Under a correct muP it does not grow or shrink with the width (flat lines against width, at every step and layer);
under the standard parametrisation it blows up with the width. The change from initialisation is used rather than
the raw ``mean |h_l|``, which is dominated by the initial value and hides a wrong learning-rate scaling under SGD
(CLAIMS.md, coord-check).

- :func:`coord_changes`: one network: an array (steps + 1, layers) of those sizes (row 0 is zero).
- :func:`coord_data`: a sweep over widths and seeds: {width: array (seeds, steps + 1, layers)}.
- :func:`coord_slopes`: the least-squares slope of log(seed-mean change) against log(width), per step and layer.
- :func:`plot_coord_check`: the familiar figure (one panel per step, width on a log axis, one line per layer),
  written to a file with matplotlib (imported only here).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import HarnessError
from .engine.stats import power_law_slope


def coord_changes(backend, model, params, x, y, optimizer, steps: int, loss="mse") -> np.ndarray:
    """(steps + 1, layers): mean |h_l(w_t) - h_l(w_0)| after each step t (row 0: zeros), full-batch training.
    A diverged run gives NaN (never a number)."""
    if not hasattr(model, "preactivations"):
        raise HarnessError(f"{type(model).__name__} has no preactivations: the coordinate check needs them")
    h0 = backend.preactivations(model, params, x)

    def change(p, t):
        h = backend.preactivations(model, p, x)
        return np.array([np.mean(np.abs(a - b)) for a, b in zip(h, h0)])

    run = backend.train(model, params, x, y, optimizer, steps, loss=loss, record={"change": change},
                        record_every=1)
    out = np.asarray(run.history["change"], dtype=float)
    out[~np.isfinite(out)] = np.nan
    out[~np.isfinite(np.asarray(run.history["loss"], dtype=float))] = np.nan   # the loss overflowed: diverged
    return out


def coord_data(backend, make_model: Callable[[int], object], widths, seeds, x, y, optimizer, steps: int = 3,
               loss="mse") -> dict:
    """{width: (len(seeds), steps + 1, layers)} for ``make_model(width)`` initialised from each seed."""
    widths = [int(w) for w in widths]
    if len(widths) < 2:
        raise HarnessError("a coordinate check needs at least 2 widths")
    out = {}
    for w in widths:
        model = make_model(w)
        out[w] = np.stack([coord_changes(backend, model, backend.init(model, int(s)), x, y, optimizer, steps, loss)
                           for s in seeds])
    return out


def coord_slopes(data: dict) -> np.ndarray:
    """(steps, layers): slope of log(seed-mean change) against log(width) after each step 1..steps."""
    widths = sorted(data)
    means = np.stack([np.nanmean(data[w], axis=0) for w in widths])          # (widths, steps + 1, layers)
    steps, layers = means.shape[1] - 1, means.shape[2]
    return np.array([[power_law_slope(widths, means[:, t, l]) for l in range(layers)]
                     for t in range(1, steps + 1)])


def plot_coord_check(data: dict, path, title: str = "", layer_names=None):
    """Draw the coordinate check (one panel per step; mean |change of h_l| against width, log-log, one line per
    layer, seed mean with min-max band over seeds) to ``path`` (any matplotlib format). Returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = np.array(sorted(data), dtype=float)
    arr = np.stack([data[int(w)] for w in widths])                           # (widths, seeds, steps+1, layers)
    steps, layers = arr.shape[2] - 1, arr.shape[3]
    names = layer_names or [f"layer {l}" if l < layers - 1 else "output" for l in range(layers)]
    slopes = coord_slopes(data)
    fig, axes = plt.subplots(1, steps, figsize=(3.2 * steps, 3.0), sharey=True, squeeze=False)
    for t in range(1, steps + 1):
        ax = axes[0, t - 1]
        for l in range(layers):
            v = arr[:, :, t, l]
            with np.errstate(all="ignore"):
                m = np.nanmean(v, axis=1)
            slope = f"{slopes[t - 1, l]:+.2f}" if np.isfinite(slopes[t - 1, l]) else "no change"
            line, = ax.plot(widths, m, marker="o", label=f"{names[l]} ({slope})")
            ax.fill_between(widths, np.nanmin(v, axis=1), np.nanmax(v, axis=1), color=line.get_color(), alpha=0.15)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"t = {t}")
        ax.set_xlabel("width")
        ax.legend(fontsize=6, title="layer (slope)", title_fontsize=6)
    axes[0, 0].set_ylabel("mean |h_t - h_0|")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run_coord_check(backend: str = "jax", parametrisation: str = "mup", optimizer: str = "adam", lr: float = 2 ** -6,
                    widths=(64, 128, 256, 512, 1024), seeds: int = 4, steps: int = 5, depth: int = 2,
                    activation: str = "tanh", input_dim: int = 16, batch: int = 64, base_width: int = 64,
                    zero_readout: bool | None = None, data_seed: int = 0, device: str = "cpu", dtype: str = "float64",
                    out="coord_check.png") -> dict:
    """The coordinate check of an :class:`harness.MLP` in a registered parametrisation, as a command would run it
    (the function ``claims coordcheck`` should call): draws the figure to ``out`` and returns
    ``{"path", "slopes" (steps, layers), "data"}``. Data: ``batch`` points on the sphere in R^input_dim with the
    sin/cos target, 0.5 * MSE, full-batch; ``zero_readout`` defaults to True under muP."""
    from . import MLP, adam, get_backend, sgd
    from .data import sin_cos_target, sphere
    from .parametrisation import get_parametrisation
    get_parametrisation(parametrisation)
    if optimizer not in ("sgd", "adam"):
        raise HarnessError(f"unknown optimizer {optimizer!r}; choose sgd or adam")
    if seeds < 1 or steps < 1:
        raise HarnessError("seeds and steps must be >= 1")
    zr = parametrisation == "mup" if zero_readout is None else bool(zero_readout)
    be = get_backend(backend, device, dtype)
    x = sphere(batch, input_dim, data_seed)
    y = sin_cos_target(x)
    opt = sgd(lr) if optimizer == "sgd" else adam(lr)

    def make(w):
        return MLP(input_dim=input_dim, width=int(w), depth=depth, parametrisation=parametrisation,
                   activation=activation, base_width=base_width, zero_readout=zr)
    data = coord_data(be, make, widths, list(range(seeds)), x, y, opt, steps)
    names = [f"hidden {l + 1}" for l in range(depth)] + ["output"]
    path = plot_coord_check(data, out, title=f"{parametrisation}, {optimizer} lr {lr:g}, {backend}",
                            layer_names=names)
    return {"path": path, "slopes": coord_slopes(data), "data": data}
