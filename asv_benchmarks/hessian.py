"""Hessian of the training loss: Hessian-vector product, top eigenvalue (Lanczos and power iteration), and the
HVP counts each method needs for the top eigenvalue to 1e-3 true relative accuracy.

Run ``python -m asv_benchmarks.hessian`` for the HVP-count table (Lanczos vs power iteration) on the tracked
problems, against a dense ``eigvalsh`` reference.
"""
from __future__ import annotations

import numpy as np

from .common import BackendBenchmark, REF_INPUT_DIM, SkipNotImplemented, data, get_backend_or_skip, mlp

try:
    from harness import MLP
    from harness.hessian import lanczos_top_eigenvalue, power_top_eigenvalue
except ImportError:
    pass

N_HESS = 256
RTOL = 1e-3


class HVP(BackendBenchmark):
    """One Hessian-vector product of the MSE loss on 256 examples, flat NumPy vector in and out (the form the
    spectrum routines use, host transfers included)."""
    params = BackendBenchmark.params + [[128, 512]]
    param_names = BackendBenchmark.param_names + ["width"]
    version = "hvp-1"

    def setup(self, backend, device, width):
        be = self.make_backend(backend, device)
        model = mlp(width=width)
        params = be.init(model, 0)
        x, y = data(N_HESS, REF_INPUT_DIM, seed=5, k=1)
        self.fn, self.dim = be._flat_hvp(model, params, x, y, "mse")
        self.v = np.random.default_rng(0).standard_normal(self.dim)
        self.warm(self.fn, self.v)

    def time_hvp(self, backend, device, width):
        self.fn(self.v)              # returns a NumPy array: already synchronised

    time_hvp.version = "hvp-1"


class TopEigenvalue(BackendBenchmark):
    """Top Hessian eigenvalue at tol 1e-3 by each method, as ``Backend.hessian_top_eigenvalue`` runs it."""
    params = BackendBenchmark.params + [["lanczos", "power"], [128]]
    param_names = BackendBenchmark.param_names + ["method", "width"]
    version = "top-eig-1"

    def setup(self, backend, device, method, width):
        be = self.make_backend(backend, device)
        self.model = mlp(width=width)
        self.params_ = be.init(self.model, 0)
        x, y = data(N_HESS, REF_INPUT_DIM, seed=5, k=1)
        self.x, self.y = be.asarray(x), be.asarray(y)
        self.method = method
        self.warm(self.run, times=1)

    def run(self):
        return self.be.hessian_top_eigenvalue(self.model, self.params_, self.x, self.y, method=self.method)

    def time_top_eigenvalue(self, backend, device, method, width):
        self.run()

    time_top_eigenvalue.version = "top-eig-1"


# -- HVP counts at a true relative accuracy ----------------------------------------------------------------------
# Small nets, so the Hessian can be assembled densely (dim HVPs) for the reference eigenvalue.
PROBLEMS = {
    # name: (model kwargs, loss); 32 standard-normal inputs, seed 0
    "mse-1out": (dict(input_dim=4, width=8, depth=2, output_dim=1), "mse"),
    "mse-4out": (dict(input_dim=4, width=8, depth=2, output_dim=4), "mse"),
    "mse-10out": (dict(input_dim=4, width=8, depth=2, output_dim=10), "mse"),
    "xent-4class": (dict(input_dim=4, width=8, depth=2, output_dim=4), "cross_entropy"),
}
SEEDS = range(5)


class _Reached(Exception):
    pass


def power_hvps_to(fn, dim, top, seed, rtol=RTOL, confirm=10, max_iter=2000):
    """HVPs power iteration needs before its Rayleigh quotient is within ``rtol`` of ``top`` and stays there (an
    oracle stop: no practical rule can stop earlier)."""
    rq = []

    def rec(v):
        w = fn(v)
        rq.append(float(v @ w / (v @ v)))
        recent = np.abs(np.asarray(rq[-confirm:]) - top) / abs(top)
        if len(rq) >= confirm and np.all(recent <= rtol):
            raise _Reached
        return w

    try:
        power_top_eigenvalue(rec, dim, tol=0.0, seed=seed, max_iter=max_iter)
    except _Reached:
        pass
    err = np.abs(np.asarray(rq) - top) / abs(top)
    bad = np.nonzero(err > rtol)[0]
    return int(bad[-1] + 2) if len(bad) else 1


def hvp_counts(backend, problem, seeds=SEEDS):
    """Per seed: (Lanczos HVPs at tol 1e-3, Lanczos true rel. error, power HVPs to true 1e-3 (oracle),
    power's own-rule HVPs at tol 1e-3, its true rel. error), plus the dense reference spectrum's top two."""
    be = get_backend_or_skip(backend, "cpu", "float64")
    kw, loss = PROBLEMS[problem]
    model = MLP(parametrisation="ntk", bias=True, **kw)
    params = be.init(model, 0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, kw["input_dim"]))
    k = kw["output_dim"]
    y = np.eye(k)[rng.integers(0, k, 32)] if loss == "cross_entropy" else rng.standard_normal((32, k))
    fn, dim = be._flat_hvp(model, params, x, y, loss)
    h = np.column_stack([fn(e) for e in np.eye(dim)])
    ev = np.linalg.eigvalsh(0.5 * (h + h.T))
    top = ev[-1]
    if abs(ev[0]) >= top:
        raise ValueError(f"{problem}: the largest-magnitude eigenvalue is negative; power iteration finds that one")
    rows = []
    for seed in seeds:
        lz = lanczos_top_eigenvalue(fn, dim, tol=RTOL, seed=seed)
        pw = power_top_eigenvalue(fn, dim, tol=RTOL, seed=seed)
        rows.append((lz.n_hvp, abs(lz.value - top) / top, power_hvps_to(fn, dim, top, seed),
                     pw.n_hvp, abs(pw.value - top) / top))
    return np.asarray(rows, dtype=float), dim, ev[-2:]


class HVPCounts:
    """HVPs to the top Hessian eigenvalue at 1e-3 true relative accuracy (dense reference), median over 5 start
    vectors. Lanczos stops on its own residual bound; power iteration is credited with the oracle stop."""
    params = [list(PROBLEMS)]
    param_names = ["problem"]
    unit = "HVPs"
    version = "hvp-counts-1"
    timeout = 600

    def setup_cache(self):
        return {p: hvp_counts("torch", p)[0].tolist() for p in PROBLEMS}

    def track_lanczos_hvps(self, cache, problem):
        return float(np.median(np.asarray(cache[problem])[:, 0]))

    def track_power_hvps(self, cache, problem):
        return float(np.median(np.asarray(cache[problem])[:, 2]))

    def track_power_over_lanczos(self, cache, problem):
        c = np.asarray(cache[problem])
        return float(np.median(c[:, 2]) / np.median(c[:, 0]))

    def track_lanczos_max_rel_error(self, cache, problem):
        return float(np.asarray(cache[problem])[:, 1].max())

    track_power_over_lanczos.unit = "ratio"
    track_lanczos_max_rel_error.unit = "relative error"


def main():
    print(f"HVPs to the top Hessian eigenvalue at {RTOL:g} true relative accuracy (torch, float64, seeds 0-4)")
    print("problem        dim  l2/l1   lanczos  (max err)   power-oracle  power-own-rule (max err)   ratio")
    for p in PROBLEMS:
        r, dim, top2 = hvp_counts("torch", p)
        print(f"{p:12s} {dim:5d}  {top2[0] / top2[1]:.3f}  {np.median(r[:, 0]):6.0f}   ({r[:, 1].max():.0e})"
              f"   {np.median(r[:, 2]):8.0f}      {np.median(r[:, 3]):8.0f}      ({r[:, 4].max():.0e})"
              f"    {np.median(r[:, 2]) / np.median(r[:, 0]):.2f}", flush=True)


if __name__ == "__main__":
    main()
