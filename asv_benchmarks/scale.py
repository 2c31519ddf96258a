"""The scale case: structured NTK of N = 4096 inputs at width 4096 (2 hidden layers, input dim 32, scalar output,
bias, float32, CPU by default), with its time and peak memory. Too heavy for the asv quick run, so it is a script:

    python -m asv_benchmarks.scale [--backend torch,jax] [--n 4096] [--width 4096] [--device cuda]

Each backend runs in its own subprocess, so the peak resident set size (``ru_maxrss``, which counts memory the
frameworks allocate outside Python, unlike ``tracemalloc``) belongs to that run alone; on cuda the peak is the GPU
memory the framework's allocator held (``torch.cuda.max_memory_allocated``, JAX's ``peak_bytes_in_use``). The
Jacobian route would hold N x P = 4096 x 16.9M float32 entries, about 277 GB.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _gpu_peak_gb(be):
    if be.framework_name == "jax":
        stats = be._device.memory_stats() or {}
        return stats.get("peak_bytes_in_use", float("nan")) / 2 ** 30
    return be.torch.cuda.max_memory_allocated() / 2 ** 30


def _child(backend, n, width, repeats, device="cpu"):
    import numpy as np

    from .common import data, get_backend_or_skip, mlp
    be = get_backend_or_skip(backend, device, "float32")
    model = mlp(width=width)
    params = be.init(model, 0)
    x = be.asarray(data(n, 32, seed=1)[0])
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats + 1):                # the first call includes compilation
        t0 = time.perf_counter()
        out = be.ntk_raw(model, params, x, None, "structured")
        if backend == "jax":
            out.block_until_ready()
        else:
            be.synchronize()
        times.append(time.perf_counter() - t0)
    k = be.to_numpy(out)
    n_params = sum(int(np.prod(v.shape)) for v in params.values())
    print(json.dumps(dict(backend=backend, n=n, width=width, n_params=n_params, first_s=times[0],
                          median_s=float(np.median(times[1:])), times_s=times[1:],
                          peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
                          rss_before_gb=rss0 / 2 ** 20, finite=bool(np.isfinite(k).all()), shape=list(k.shape),
                          jacobian_gb=n * n_params * 4 / 1e9, device=device,
                          gpu_peak_gb=_gpu_peak_gb(be) if device == "cuda" else None)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="torch,jax")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return _child(a.backend, a.n, a.width, a.repeats, a.device)
    for backend in a.backend.split(","):
        cmd = [sys.executable, "-m", "asv_benchmarks.scale", "--child", "--backend", backend, "--n", str(a.n),
               "--width", str(a.width), "--repeats", str(a.repeats), "--device", a.device]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            print(f"{backend}: failed\n{res.stderr[-2000:]}")
            continue
        r = json.loads(res.stdout.strip().splitlines()[-1])
        print(f"{backend}: N={r['n']} width={r['width']} params={r['n_params']:,}  first call {r['first_s']:.2f} s,"
              f" median of {len(r['times_s'])} {r['median_s']:.3f} s, peak RSS {r['peak_rss_gb']:.2f} GB"
              + (f", GPU peak {r['gpu_peak_gb']:.2f} GB" if r["gpu_peak_gb"] is not None else "") +
              f" (the Jacobian would be {r['jacobian_gb']:.0f} GB); finite={r['finite']}")


if __name__ == "__main__":
    main()
