"""Hessian of the training loss: Hessian-vector product, top eigenvalue (Lanczos and power iteration), and the
HVP counts each method needs for the top eigenvalue to 1e-3 true relative accuracy.

Run ``python -m asv_benchmarks.hessian`` for the HVP-count table (Lanczos vs power iteration) on the tracked
problems, against an ARPACK reference.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from .common import BackendBenchmark, REF_INPUT_DIM, SkipNotImplemented, data, get_backend_or_skip, mlp

try:
    from harness.hessian import lanczos_top_eigenvalue, power_top_eigenvalue
except ImportError:
    pass

N_HESS = 256
RTOL = 1e-3


# The Hessian problems: the MSE / cross-entropy loss of a ReLU MLP (2 hidden layers, input dim 32, bias, NTK
# parametrisation) on 256 standard-normal inputs, at initialisation. What decides the HVP counts is the relative
# gap l2/l1 at the top of the spectrum: a scalar-output MSE Hessian has an isolated top eigenvalue (power iteration
# needs 3-4 HVPs, so no Krylov method can halve it); k outputs or classes put k eigenvalues in an outlier cluster.
PROBLEMS = {
    # name: (width, outputs, loss)
    "w128-mse-1out": (128, 1, "mse"),
    "w128-mse-10out": (128, 10, "mse"),
    "w128-xent-10class": (128, 10, "cross_entropy"),
    "w512-xent-10class": (512, 10, "cross_entropy"),     # the reference MLP's size, 285k parameters
}


def hessian_problem(name):
    """(model, x, y, loss) of one of :data:`PROBLEMS`: 256 inputs from seed 5, one-hot labels for cross-entropy."""
    width, k, loss = PROBLEMS[name]
    x, y = data(N_HESS, REF_INPUT_DIM, seed=5, k=k)
    if loss == "cross_entropy":
        y = np.eye(k)[np.argmax(y, axis=1)]
    return mlp(width=width, output_dim=k), x, y, loss


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
    """Top Hessian eigenvalue at tol 1e-3 by each method, as ``Backend.hessian_top_eigenvalue`` runs it, on a
    width-128 MLP: scalar-output MSE (isolated top eigenvalue) and 10-class cross-entropy (outlier cluster)."""
    params = BackendBenchmark.params + [["lanczos", "power"], ["w128-mse-1out", "w128-xent-10class"]]
    param_names = BackendBenchmark.param_names + ["method", "problem"]
    version = "top-eig-2"

    def setup(self, backend, device, method, problem):
        be = self.make_backend(backend, device)
        self.model, x, y, self.loss = hessian_problem(problem)
        self.params_ = be.init(self.model, 0)
        self.x, self.y = be.asarray(x), be.asarray(y)
        self.method = method
        self.warm(self.run, times=1)

    def run(self):
        return self.be.hessian_top_eigenvalue(self.model, self.params_, self.x, self.y, loss=self.loss,
                                              method=self.method)

    def time_top_eigenvalue(self, backend, device, method, problem):
        self.run()

    time_top_eigenvalue.version = "top-eig-2"


# -- HVP counts at a true relative accuracy ----------------------------------------------------------------------
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


def lanczos_hvps_to(fn, dim, top, seed, rtol=RTOL, max_iter=300):
    """HVPs Lanczos needs before its top Ritz value is within ``rtol`` of ``top`` (an oracle stop; the Ritz value
    only rises with more steps, so it stays there). Shows what the residual-bound stop costs on top of it."""
    for k in range(1, max_iter + 1):
        if abs(lanczos_top_eigenvalue(fn, dim, tol=0.0, seed=seed, ncv=k).value - top) <= rtol * abs(top):
            return k
    return max_iter


def reference_spectrum(fn, dim):
    """Top two and bottom eigenvalues by ARPACK (``scipy.sparse.linalg.eigsh``, tol 1e-12): the reference the
    counts are measured against (tests/test_hessian.py checks the routines against dense ``eigvalsh``)."""
    op = LinearOperator((dim, dim), matvec=fn, dtype=np.float64)
    top2 = np.sort(eigsh(op, k=2, which="LA", tol=1e-12, return_eigenvectors=False))
    bottom = eigsh(op, k=1, which="SA", tol=1e-8, return_eigenvectors=False)[0]
    return top2, bottom


def hvp_counts(problem, seeds=SEEDS, oracle_lanczos=False):
    """Per seed: (Lanczos HVPs at tol 1e-3, Lanczos true rel. error, power HVPs to true 1e-3 (oracle stop),
    power's own-rule HVPs at tol 1e-3, its true rel. error[, Lanczos HVPs to true 1e-3 (oracle stop)]); the
    dimension; the reference top two eigenvalues.

    float64 on the first installed backend (jax, else torch): the counts do not depend on the backend."""
    for name in ("jax", "torch"):
        try:
            be = get_backend_or_skip(name, "cpu", "float64")
            break
        except SkipNotImplemented:
            continue
    else:
        raise SkipNotImplemented("neither jax nor torch is installed")
    model, x, y, loss = hessian_problem(problem)
    params = be.init(model, 0)
    fn, dim = be._flat_hvp(model, params, x, y, loss)
    top2, bottom = reference_spectrum(fn, dim)
    top = top2[1]
    if abs(bottom) >= top:
        raise ValueError(f"{problem}: the largest-magnitude eigenvalue is negative; power iteration finds that one")
    rows = []
    for seed in seeds:
        lz = lanczos_top_eigenvalue(fn, dim, tol=RTOL, seed=seed)
        pw = power_top_eigenvalue(fn, dim, tol=RTOL, seed=seed)
        rows.append((lz.n_hvp, abs(lz.value - top) / top, power_hvps_to(fn, dim, top, seed),
                     pw.n_hvp, abs(pw.value - top) / top)
                    + ((lanczos_hvps_to(fn, dim, top, seed),) if oracle_lanczos else ()))
    return np.asarray(rows, dtype=float), dim, top2


class HVPCounts:
    """HVPs to the top Hessian eigenvalue at 1e-3 true relative accuracy (ARPACK reference), median over 5 start
    vectors. Lanczos stops on its own residual bound; power iteration is credited with the oracle stop."""
    params = [list(PROBLEMS)]
    param_names = ["problem"]
    unit = "HVPs"
    version = "hvp-counts-2"
    timeout = 900

    def setup_cache(self):
        return {p: hvp_counts(p)[0].tolist() for p in PROBLEMS}

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
    print(f"HVPs to the top Hessian eigenvalue at {RTOL:g} true relative accuracy (float64, start seeds 0-4, "
          "medians; reference: ARPACK at 1e-12)")
    print("problem                dim  l2/l1  lanczos (max err)  lanczos-oracle  power-oracle  power-own-rule "
          "(max err)  power-oracle/lanczos")
    for p in PROBLEMS:
        r, dim, top2 = hvp_counts(p, oracle_lanczos=True)
        med = np.median(r, axis=0)
        print(f"{p:18s} {dim:7d}  {top2[0] / top2[1]:.3f}  {med[0]:5.0f}   ({r[:, 1].max():.0e})  {med[5]:9.0f}"
              f"  {med[2]:12.0f}  {med[3]:10.0f}      ({r[:, 4].max():.0e})  {med[2] / med[0]:10.2f}", flush=True)


if __name__ == "__main__":
    main()
