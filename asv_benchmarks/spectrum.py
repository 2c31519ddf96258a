"""Hessian spectrum beyond the top eigenvalue: top-k eigenpairs (block Lanczos, ``Backend.hessian_top_k``) and the
spectral density (stochastic Lanczos quadrature, ``Backend.hessian_density``), with their HVP counts, against
PyHessian 0.1 (Yao, Gholami, Keutzer & Mahoney 2020: top-k by power iteration with deflation, Hutchinson trace,
SLQ density) on the same torch model in the same run.

The problem: the reference MLP (ReLU, 2 hidden layers, input dim 32, scalar output, bias, NTK parametrisation)
and its MSE Hessian on 256 standard-normal examples, at widths 128 and 512 (21k and 285k parameters), float64 so
the two libraries can be held to the same accuracy. PyHessian gets the *same* torch model: an ``nn.Module`` whose
parameters are the harness's torch parameters and whose forward is the harness's ``model.apply`` (so the two compute
the same Hessian), and the harness's loss as its criterion.

Run ``python -m asv_benchmarks.spectrum`` for the comparison table (seconds, HVPs, true relative error against
ARPACK at 1e-10). PyHessian's ``density`` calls ``torch.eig``, removed in torch 2.x; the comparison substitutes
``torch.linalg.eigh`` for it (the tridiagonal T is symmetric), stated in the table.
"""
from __future__ import annotations

import time

import numpy as np

from .common import BackendBenchmark, REF_INPUT_DIM, SkipNotImplemented, data, get_backend_or_skip, mlp

N_SPEC = 256
TOL = 1e-3


def spectrum_problem(width):
    x, y = data(N_SPEC, REF_INPUT_DIM, seed=5, k=1)
    return mlp(width=width), x, y


class TopK(BackendBenchmark):
    """``Backend.hessian_top_k`` (k = 1, 10) at tol 1e-3 on the reference MLP's MSE Hessian, float64."""
    params = BackendBenchmark.params + [[1, 10], [128, 512]]
    param_names = BackendBenchmark.param_names + ["k", "width"]
    version = "top-k-1"
    timeout = 600

    def setup(self, backend, device, k, width):
        be = self.make_backend(backend, device, "float64")
        self.model, x, y = spectrum_problem(width)
        self.p = be.init(self.model, 0)
        self.x, self.y = be.asarray(x), be.asarray(y)
        self.k = k
        self.out = self.run()                 # warm (compile) and record the HVP count

    def run(self):
        return self.be.hessian_top_k(self.model, self.p, self.x, self.y, k=self.k, tol=TOL, seed=0)

    def time_top_k(self, backend, device, k, width):
        self.run()

    def track_top_k_hvps(self, backend, device, k, width):
        return self.out.n_hvp

    time_top_k.version = track_top_k_hvps.version = "top-k-1"
    track_top_k_hvps.unit = "HVPs"


class Density(BackendBenchmark):
    """``Backend.hessian_density``: 4 starts x 64 Lanczos steps (256 HVPs), float64."""
    params = BackendBenchmark.params + [[128, 512]]
    param_names = BackendBenchmark.param_names + ["width"]
    version = "density-1"
    timeout = 600

    def setup(self, backend, device, width):
        be = self.make_backend(backend, device, "float64")
        self.model, x, y = spectrum_problem(width)
        self.p = be.init(self.model, 0)
        self.x, self.y = be.asarray(x), be.asarray(y)
        self.run()

    def run(self):
        return self.be.hessian_density(self.model, self.p, self.x, self.y, n_starts=4, n_steps=64, seed=0)

    def time_density(self, backend, device, width):
        self.run()

    time_density.version = "density-1"


# -- PyHessian on the same torch model ---------------------------------------------------------------------------
def pyhessian_setup(width, device="cpu"):
    """(pyhessian.hessian object, HVP counter dict, harness torch backend, model, params, x, y) for the reference
    problem; raises SkipNotImplemented when pyhessian or torch is missing."""
    try:
        import importlib
        import torch
        ph = importlib.import_module("pyhessian.hessian")   # the module (the package re-exports the class)
    except ImportError as e:
        raise SkipNotImplemented(f"pyhessian unavailable: {e}") from None
    be = get_backend_or_skip("torch", device, "float64")
    model, x, y = spectrum_problem(width)
    params = be.init(model, 0)
    names = sorted(params)

    class Same(torch.nn.Module):
        """The harness model as an nn.Module: its parameters, its apply (so both libraries see one Hessian)."""
        def __init__(self):
            super().__init__()
            self.ps = torch.nn.ParameterList([torch.nn.Parameter(params[n].clone()) for n in names])

        def forward(self, xx):
            return model.apply(dict(zip(names, self.ps)), xx, be.ops)

    from harness.losses import mse
    counter = {"hvp": 0}
    if not getattr(ph, "_counted", False):
        inner = ph.hessian_vector_product

        def counted(*a, **k):
            ph._hvp_counter["hvp"] += 1
            return inner(*a, **k)
        ph.hessian_vector_product = counted
        ph._counted = True
    ph._hvp_counter = counter
    if not getattr(torch.eig, "_harness_shim", False):   # torch >= 1.9 removed torch.eig (a stub that raises),
        def eig(t, eigenvectors=True):                     # which PyHessian's density calls; T is symmetric
            w, v = torch.linalg.eigh(t)
            return torch.stack([w, torch.zeros_like(w)], dim=1), v
        eig._harness_shim = True
        torch.eig = eig
    xt, yt = be.asarray(x), be.asarray(y)
    h = ph.hessian(Same(), lambda out, target: mse(out, target, be.ops), data=(xt, yt), cuda=device == "cuda")
    return h, counter, be, model, params, x, y


class PyHessian:
    """PyHessian 0.1 on the same model: top-k (power iteration with deflation, its default maxIter 100, tol 1e-3),
    trace (Hutchinson, its default stop: relative change of the running mean < 1e-3, maxIter 100) and density
    (SLQ, 100 Lanczos steps, 1 start), torch float64 on the cpu."""
    params = [[1, 10], [128, 512]]
    param_names = ["k", "width"]
    version = "pyhessian-1"
    timeout = 900

    def setup(self, k, width):
        self.h, self.counter, *_ = pyhessian_setup(width)
        self.counter["hvp"] = 0
        self.h.eigenvalues(top_n=k, tol=TOL)
        self.n_top = self.counter["hvp"]

    def time_top_k(self, k, width):
        self.h.eigenvalues(top_n=k, tol=TOL)

    def track_top_k_hvps(self, k, width):
        return self.n_top

    def time_trace(self, k, width):
        self.h.trace(tol=TOL)

    def time_density(self, k, width):
        self.h.density(iter=100, n_v=1)

    track_top_k_hvps.unit = "HVPs"


def reference_top(be, model, params, x, y, k):
    """The k largest eigenvalues by ARPACK (tol 1e-10) on the harness's float64 HVP."""
    from scipy.sparse.linalg import LinearOperator, eigsh
    fn, dim = be._flat_hvp(model, params, x, y, "mse")
    vals = eigsh(LinearOperator((dim, dim), matvec=fn, dtype=np.float64), k=k, which="LA", tol=1e-10,
                 return_eigenvectors=False)
    return np.sort(vals)[::-1]


def main(widths=(128, 512), ks=(1, 10)):
    """Print the comparison: seconds (best of 3), HVPs and max relative error against ARPACK, per method."""
    print("Hessian of the reference MLP (ReLU, 2 x width, input 32, MSE, 256 examples), torch float64, cpu; "
          "error = max_i |lambda_i - ref_i| / |ref_i| over the top k, ref = ARPACK tol 1e-10")
    print(f"{'width':>5} {'routine':42s} {'seconds':>8} {'HVPs':>6} {'rel. error':>10}")
    for width in widths:
        h, counter, be, model, params, x, y = pyhessian_setup(width)
        ref = reference_top(be, model, params, x, y, max(ks))
        exact_trace = None

        def timed(fn):
            best, out = np.inf, None
            for _ in range(3):
                counter["hvp"] = 0
                t0 = time.perf_counter()
                out = fn()
                best = min(best, time.perf_counter() - t0)
            return best, out
        for k in ks:
            t, res = timed(lambda: be.hessian_top_k(model, params, x, y, k=k, tol=TOL, seed=0))
            err = np.max(np.abs(res.values - ref[:k]) / np.abs(ref[:k]))
            print(f"{width:5d} {f'harness hessian_top_k k={k} (Lanczos)':42s} {t:8.3f} {res.n_hvp:6d} {err:10.1e}")
            t, (vals, _) = timed(lambda: h.eigenvalues(top_n=k, tol=TOL))
            err = np.max(np.abs(np.sort(vals)[::-1] - ref[:k]) / np.abs(ref[:k]))
            print(f"{width:5d} {f'pyhessian eigenvalues top_n={k} (power+defl.)':42s} {t:8.3f} {counter['hvp']:6d} "
                  f"{err:10.1e}")
        t, d = timed(lambda: be.hessian_density(model, params, x, y, n_starts=1, n_steps=100, seed=0))
        print(f"{width:5d} {'harness hessian_density 1 x 100 (SLQ)':42s} {t:8.3f} {d.n_hvp:6d} {'':>10}")
        t, _ = timed(lambda: h.density(iter=100, n_v=1))
        print(f"{width:5d} {'pyhessian density 1 x 100 (SLQ, eigh shim)':42s} {t:8.3f} {counter['hvp']:6d} {'':>10}")
        t, tr = timed(lambda: be.hessian_trace(model, params, x, y, n_samples=100, seed=0))
        print(f"{width:5d} {'harness hessian_trace 100 probes':42s} {t:8.3f} {tr.n_hvp:6d} "
              f"{f'se {tr.stderr / abs(tr.value):.1e}':>10}")
        t, vhv = timed(lambda: h.trace(tol=TOL))
        se = np.std(vhv, ddof=1) / np.sqrt(len(vhv)) / abs(np.mean(vhv)) if len(vhv) > 1 else float("nan")
        print(f"{width:5d} {'pyhessian trace (its stop, maxIter 100)':42s} {t:8.3f} {counter['hvp']:6d} "
              f"{f'se {se:.1e}':>10}")


if __name__ == "__main__":
    import sys
    main(widths=tuple(int(w) for w in sys.argv[1:]) or (128, 512))
