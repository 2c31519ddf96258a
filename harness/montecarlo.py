"""Monte Carlo NNGP and NTK of any model (as neural-tangents' ``monte_carlo_kernel_fn``), with standard errors.

The analytic kernels (:mod:`harness.analytic`) exist for fully connected nets only. For any other model (a
:class:`~harness.models.FunctionModel` of your own, an MLP variant, an output-scaled model) the kernels are
estimated by averaging over randomly initialised networks: the NNGP as the mean of ``f(x1) f(x2)^T`` and the NTK as
the mean of the empirical NTKs, each with its elementwise standard error, so a pilot knows how far to trust them.

What is estimated is the finite-width expectation, ``E[f(x) f(x')]`` and ``E[Theta(x, x')]`` over the model's own
initialisation at its own width. It equals the infinite-width kernel exactly, at every width, for a one-hidden-layer
network with independent Gaussian weights in the NTK parametrisation (the readout averages ``width`` i.i.d. terms
whose expectation is the limit); for deeper networks only as the width grows, with an O(1/width) bias. The standard
errors measure the Monte Carlo noise only, never that bias.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .backends._base import NTK_METHODS
from .errors import HarnessError
from .models import Model


class MonteCarloKernels(NamedTuple):
    """What :func:`monte_carlo_kernels` returns, every array a float64 NumPy array.

    - ``nngp``: the mean over networks of ``f(x1) f(x2)^T``, ``(N1, N2)`` averaged over the outputs (or
      ``(N1, N2, k, k)`` with ``average_outputs=False``);
    - ``ntk``: the mean of the empirical NTKs, the same shape (``None`` when ``ntk=False``);
    - ``nngp_se``, ``ntk_se``: the elementwise standard errors of those means, the sample standard deviation over
      networks (``ddof=1``) divided by ``sqrt(networks)`` (``ntk_se`` is ``None`` when ``ntk=False``). Entries
      share the same networks, so their errors are correlated: combine them as one would any correlated estimates;
    - ``networks``: how many networks were averaged;
    - ``seeds``: their seeds, ``(networks,)`` integers (network ``e`` is ``backend.init(model, seeds[e])``);
    - ``batched``: whether every forward pass ran as a batched ensemble (``Backend.init_ensemble``); ``False`` when
      some or all networks ran one at a time.
    """
    nngp: np.ndarray
    ntk: np.ndarray | None
    nngp_se: np.ndarray
    ntk_se: np.ndarray | None
    networks: int
    seeds: np.ndarray
    batched: bool


class _Moments:
    """Running mean and sum of squared deviations over networks, merged batch by batch (Chan et al.'s update), in
    float64: the memory is one kernel, whatever the number of networks."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, batch: np.ndarray):
        batch = np.asarray(batch, dtype=np.float64)
        nb = batch.shape[0]
        mean_b = batch.mean(axis=0)
        m2_b = np.sum((batch - mean_b) ** 2, axis=0)
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mean_b, m2_b
            return
        n = self.n + nb
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2_b + delta ** 2 * (self.n * nb / n)
        self.n = n

    def se(self) -> np.ndarray:
        return np.sqrt(self.m2 / (self.n - 1) / self.n)


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise HarnessError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_inputs(x, name):
    if x is None:
        raise HarnessError(f"monte_carlo_kernels needs inputs {name}: a model without inputs (x=None) has no kernel "
                           "between inputs")
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise HarnessError(f"{name} must be a numeric array (samples, features), got {type(x).__name__}") from None
    if arr.ndim < 2 or arr.shape[0] < 1:
        raise HarnessError(f"{name} must be an array of shape (samples, features) with at least one sample, got "
                           f"shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise HarnessError(f"{name} contains NaN or inf")
    return arr


def _seeds(seed: int, networks: int) -> np.ndarray:
    """The first ``networks`` distinct values of ``np.random.SeedSequence(seed).generate_state(...)`` (32-bit
    words, so ``np.random.RandomState`` accepts them too). The stream's prefixes do not depend on its length, so
    a run of ``m`` networks uses the first ``m`` seeds of any larger run; a repeated word (chance about
    ``networks**2 / 2**33``) is skipped rather than reused."""
    extra = 8
    while True:
        stream = np.random.SeedSequence(seed).generate_state(networks + extra).astype(np.int64)
        _, first = np.unique(stream, return_index=True)
        if first.size >= networks:
            return stream[np.sort(first)[:networks]]
        extra *= 2


def _member(backend, params, e):
    """Network ``e`` of an ensemble (every parameter's slice ``[e]``), as backend arrays."""
    with backend._context():
        return {k: v[e] for k, v in params.items()}


def _outputs(out, n, k, seed):
    out = np.asarray(out, dtype=np.float64)
    if out.size != n * k:
        raise HarnessError(f"the model's outputs on {n} inputs have shape {out.shape}, not ({n}, {k}) "
                           f"(output_dim={k})")
    out = out.reshape(n, k)
    if not np.all(np.isfinite(out)):
        raise HarnessError(f"the network of seed {seed} gave non-finite outputs")
    return out


def _ensemble_outputs(backend, model, params, xb, n, k):
    """``(E, n, k)`` outputs of a stacked ensemble, or ``None`` when the model's ``apply`` does not broadcast over
    the ensemble axis (it raised, or gave the wrong shape)."""
    try:
        out = np.asarray(backend.apply(model, params, xb), dtype=np.float64)
    except Exception:       # noqa: BLE001 - any framework's shape error means "no ensemble support"
        return None
    e = next(iter(params.values())).shape[0]
    if out.size != e * n * k:
        return None
    return out.reshape(e, n, k)


def _probe_ensemble(backend, model, params, xb, n, k, batched_out):
    """Whether the batched outputs agree with the one-network ones, for the first and the last member: a model
    whose ``apply`` broadcasts wrongly (e.g. an elementwise product with a parameter) gives the right shape but
    other numbers."""
    if batched_out is None:
        return False
    tol = 1e-9 if backend.dtype == "float64" else 1e-4
    for e in {0, batched_out.shape[0] - 1}:
        single = np.asarray(backend.apply(model, _member(backend, params, e), xb), dtype=np.float64)
        if single.size != n * k:
            return False
        single = single.reshape(n, k)
        if not np.allclose(batched_out[e], single, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(single))))):
            return False
    return True


def _nngp_terms(f1, f2, average_outputs):
    """Per network ``f(x1) f(x2)^T``: ``(E, N1, N2)`` averaged over the k outputs (or k = 1), else
    ``(E, N1, N2, k, k)``."""
    if average_outputs or f1.shape[-1] == 1:
        return np.einsum("ena,ema->enm", f1, f2) / f1.shape[-1]
    return np.einsum("ena,emb->enmab", f1, f2)


def _ntk_term(theta, k, average_outputs):
    """One network's empirical NTK (``Backend.ntk``: ``(N1, N2)`` for k = 1, ``(N1, N2, k, k)`` otherwise), averaged
    over the diagonal output pairs when ``average_outputs``."""
    theta = np.asarray(theta, dtype=np.float64)
    if k > 1 and average_outputs and theta.ndim == 4:
        return np.einsum("nmaa->nm", theta) / k
    return theta


def monte_carlo_kernels(backend, model: Model, x1, x2=None, *, networks: int = 64, seed: int = 0, batch: int = 16,
                        ntk: bool = True, method: str = "auto", average_outputs: bool = True,
                        ensemble: bool | None = None) -> MonteCarloKernels:
    """Monte Carlo NNGP and NTK of ``model`` between the rows of ``x1`` and ``x2`` (default ``x1``): means over
    ``networks`` randomly initialised networks, with their standard errors (:class:`MonteCarloKernels`).

    **What it estimates.** ``nngp`` estimates ``E[f(x1) f(x2)^T]`` and ``ntk`` estimates ``E[Theta(x1, x2)]``, the
    expectation over the model's initialisation *at its own width* (``Theta`` the empirical NTK of
    :meth:`Backend.ntk <harness.backends._base.Backend.ntk>`, over the trainable parameters). These are the
    infinite-width NNGP and NTK only in the limit: exactly, at any width, for a one-hidden-layer net with
    independent Gaussian weights in the NTK parametrisation; with an O(1/width) bias for deeper nets, which the
    standard errors do not measure (widen the model to shrink it). ``nngp_se`` and ``ntk_se`` are the elementwise
    standard errors of the means: the sample standard deviation over networks (``ddof=1``) over
    ``sqrt(networks)``, so they shrink as ``1 / sqrt(networks)``.

    **Outputs.** For ``k = model.output_dim`` outputs, ``average_outputs=True`` (the default, neural-tangents'
    ``trace_axes=(-1,)``) averages over them: ``nngp[i, j] = mean_a f_a(x1_i) f_a(x2_j)`` and ``ntk[i, j] = mean_a
    Theta_aa(x1_i, x2_j)``, both ``(N1, N2)``, the per-output kernel of a model whose kernel is ``K (x) I_k`` (an
    MLP's). ``average_outputs=False`` keeps every pair of outputs: ``(N1, N2, k, k)``, the NTK as
    :meth:`Backend.ntk` returns it for ``k > 1``. For ``k = 1`` both give ``(N1, N2)``.

    **Seeds.** Network ``e`` is ``backend.init(model, seeds[e])``, ``seeds`` (recorded in the result) the first
    ``networks`` distinct words of ``np.random.SeedSequence(seed).generate_state(...)``, i.e.
    ``SeedSequence(seed).generate_state(networks)`` unless two words coincide (chance about ``networks**2 / 2**33``;
    the repeat is skipped): unrelated networks for different ``seed`` values, and the first ``m`` networks of a
    larger run are those of a run of ``m``, so estimates at growing ``networks`` are nested.

    **How.** Networks are built ``batch`` at a time with :meth:`Backend.init_ensemble` and their outputs computed
    in one batched forward pass when the model broadcasts over the ensemble axis (every :class:`MLP`; a
    :class:`FunctionModel` whose ``apply`` uses ``ops.matmul`` on the last two axes). ``ensemble=None`` (the
    default) decides by a probe on the first batch (and on a last, smaller one): the batched outputs must have the
    right shape and agree with the one-network outputs of its first and last member; otherwise the networks run
    one at a time (``batched`` in the result says which). ``ensemble=True``
    requires the batched path (a one-line :class:`HarnessError` when the probe fails), ``False`` never uses it.
    The NTKs are computed one network at a time by :meth:`Backend.ntk` with ``method`` (``auto``: the structured
    path for MLPs, else the Jacobian).

    **Cost.** ``networks`` forward passes over the ``N1 + N2`` inputs (memory ``batch`` networks at a time), and,
    with ``ntk=True``, ``networks`` empirical NTKs (for an MLP the structured path, O(N n^2 L + N^2 n L) each; other
    models the Jacobian path, O(N k P) memory for P parameters), usually the larger part. The means are accumulated
    in float64 with O(N1 N2 k^2) memory. The standard error falls as ``1 / sqrt(networks)``: halving it costs four
    times the networks.

    Bad input (``networks < 2``, since a standard error needs two; ``batch < 1``; non-finite or non-2-D inputs; a
    model without inputs; an unknown ``method``) raises a one-line :class:`HarnessError`.
    """
    if not isinstance(model, Model):
        raise HarnessError(f"model must be a harness Model (MLP, FunctionModel, ...), got {type(model).__name__}")
    networks = _check_int("networks", networks, 2)
    batch = _check_int("batch", batch, 1)
    seed = _check_int("seed", seed, 0)
    if method not in NTK_METHODS:
        raise HarnessError(f"unknown NTK method {method!r}; choose one of {', '.join(NTK_METHODS)}")
    if ensemble not in (None, True, False):
        raise HarnessError(f"ensemble must be None (probe), True or False, got {ensemble!r}")
    a1 = _check_inputs(x1, "x1")
    a2 = None if x2 is None else _check_inputs(x2, "x2")
    if a2 is not None and a2.shape[1:] != a1.shape[1:]:
        raise HarnessError(f"x1 and x2 must have the same feature shape, got {a1.shape[1:]} and {a2.shape[1:]}")
    k = int(model.output_dim)
    n1 = a1.shape[0]
    n2 = n1 if a2 is None else a2.shape[0]
    n = n1 if a2 is None else n1 + n2
    xb = backend.asarray(a1 if a2 is None else np.concatenate([a1, a2]), "x1")   # one forward pass for both
    x1b = backend.asarray(a1, "x1")
    x2b = None if a2 is None else backend.asarray(a2, "x2")
    seeds = _seeds(seed, networks)

    shape = (n1, n2) if average_outputs or k == 1 else (n1, n2, k, k)
    nngp_m, ntk_m = _Moments(), _Moments()
    batched = ensemble is not False
    for start in range(0, networks, batch):
        chunk = [int(s) for s in seeds[start:start + batch]]
        params = backend.init_ensemble(model, chunk)
        f = None
        if batched:
            f = _ensemble_outputs(backend, model, params, xb, n, k)
            # probed on the first batch, and again on a last batch of another size (a model may broadcast
            # wrongly only at some ensemble sizes)
            if (start == 0 or len(chunk) != batch) and not _probe_ensemble(backend, model, params, xb, n, k, f):
                if ensemble:
                    raise HarnessError(f"{type(model).__name__} does not run as a batched ensemble (its apply does "
                                       "not broadcast over a leading ensemble axis); use ensemble=None or False")
                batched, f = False, None
        members = None
        if f is None:
            members = [_member(backend, params, e) for e in range(len(chunk))]
            f = np.stack([_outputs(backend.apply(model, p, xb), n, k, s) for p, s in zip(members, chunk)])
        elif not np.all(np.isfinite(f)):
            bad = chunk[int(np.argmax(~np.all(np.isfinite(f), axis=(1, 2))))]
            raise HarnessError(f"the network of seed {bad} gave non-finite outputs")
        f1, f2 = (f, f) if a2 is None else (f[:, :n1], f[:, n1:])
        nngp_m.add(_nngp_terms(f1, f2, average_outputs))
        if ntk:
            if members is None:
                members = [_member(backend, params, e) for e in range(len(chunk))]
            thetas = [_ntk_term(backend.ntk(model, p, x1b, x2b, method=method), k, average_outputs)
                      for p in members]
            for s, t in zip(chunk, thetas):
                if t.shape != shape:
                    raise HarnessError(f"the empirical NTK has shape {t.shape}, expected {shape}")
                if not np.all(np.isfinite(t)):
                    raise HarnessError(f"the network of seed {s} gave a non-finite NTK")
            ntk_m.add(np.stack(thetas))

    return MonteCarloKernels(
        nngp=nngp_m.mean, ntk=ntk_m.mean if ntk else None, nngp_se=nngp_m.se(), ntk_se=ntk_m.se() if ntk else None,
        networks=networks, seeds=seeds, batched=batched)
