"""Plots of Hessian spectral densities (stochastic Lanczos quadrature, :func:`harness.hessian.slq_density`).

:func:`plot_density` draws Gaussian-broadened densities, one curve per label (variants, widths, backends), on a
log density axis (the bulk near zero and the outliers differ by orders of magnitude), with optional marks at
top-k eigenvalues. :func:`density_from_samples` rebuilds a :class:`~harness.hessian.Density` from the per-point
arrays a claim's measure stores (``slq_nodes``, ``slq_weights``: each point's (n_starts * m) nodes and weights,
flattened), so a report can plot the density of every point of one scale pooled over seeds.

Wiring into the report (``harness/engine/report.py``): in ``write_report``, after
``plot_claim``, for a claim whose measure returns ``slq_nodes`` and ``slq_weights``, call
``plot_claim_density(rs, out / f"{cid}-{case}-density.png")`` and add the image line beside the law plot.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .hessian import Density


def density_from_samples(nodes, weights, dim: int = 0) -> Density:
    """A :class:`Density` pooling points: ``nodes`` and ``weights`` are lists (or stacks) of per-point arrays of
    equal length (each point's starts, flattened), each point's weights summing to its number of starts."""
    n = np.atleast_2d(np.asarray(nodes, dtype=float))
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    if n.shape != w.shape:
        raise ValueError(f"nodes {n.shape} and weights {w.shape} differ in shape")
    w = w / w.sum(axis=1, keepdims=True)             # each point one start-average, weighted equally
    return Density(n, w, int(dim), 0)


def plot_density(densities: dict, path, title: str = "", sigma: float | None = None, n_grid: int = 600,
                 marks: dict | None = None, floor: float = 1e-6) -> Path:
    """One axis, one curve per ``{label: Density}``; ``sigma`` (default 1% of the pooled node range) is the
    broadening; ``marks`` {label: eigenvalues} draws ticks (e.g. certified top-k values). Returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allnodes = np.concatenate([d.nodes.ravel() for d in densities.values()])
    lo, hi = float(allnodes.min()), float(allnodes.max())
    span = hi - lo if hi > lo else 1.0
    sigma = 0.01 * span if sigma is None else float(sigma)
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid)
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for i, (label, d) in enumerate(densities.items()):
        phi = d.on_grid(grid, sigma)
        ax.plot(grid, np.maximum(phi, floor), color=f"C{i}", lw=1.2, label=label)
        for v in (marks or {}).get(label, ()):
            ax.axvline(v, color=f"C{i}", lw=0.6, ls=":", alpha=0.7)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel(f"density (SLQ, Gaussian sigma {sigma:.2g})")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_claim_density(results: list, path, scale: float | None = None) -> Path | None:
    """For RunResults of a claim whose measure stores ``slq_nodes`` / ``slq_weights``: the density at ``scale``
    (default the largest) pooled over seeds, one curve per (variant, backend). None if nothing to plot."""
    curves = {}
    for res in results:
        for v in [res.claim_result] + list(res.controls):
            if "slq_nodes" not in v.samples:
                continue
            scales = np.asarray(v.scales, float)
            i = int(np.argmax(scales)) if scale is None else int(np.argmin(np.abs(scales - scale)))
            curves[f"{v.variant} ({res.backend}), scale {scales[i]:g}"] = density_from_samples(
                v.samples["slq_nodes"][i], v.samples["slq_weights"][i])
    if not curves:
        return None
    return plot_density(curves, path, title=f"{results[0].claim} [{results[0].case}]: Hessian spectral density")
