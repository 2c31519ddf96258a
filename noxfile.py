"""nox sessions. Every session that needs torch installs the CPU wheel ``torch==2.13.0`` first, so pip never
resolves torch by itself (which would download several GB of CUDA packages). virtualenv + pip, not uv: uv does
not see the local torch wheel."""

import os

import nox

nox.options.sessions = ["tests"]
nox.options.default_venv_backend = "virtualenv"
nox.options.reuse_existing_virtualenvs = True

TORCH = "torch==2.13.0"
# Claims and tests run many small kernels: one intra-op thread per process (pytest-xdist supplies the
# parallelism). With more, torch's OpenMP threads spin against each other on a 2-core machine and small matmuls
# slow down ~50x. Benchmarks keep the default threading.
SMALL_KERNEL_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def install(session, extras):
    session.install("--upgrade", "pip")
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


# Peers the tests compare with, installed without their declared requirements (mup's pull torchvision,
# curvlinops' backpack-for-pytorch, either of which would bring a torch of pip's choosing); the `peers` extra holds
# what they import. mup: tests/test_widths.py; curvlinops: tests/test_curvature.py.
PEERS_NO_DEPS = ["mup==1.0.0", "curvlinops-for-pytorch==3.0.1", "einconv==0.1.0", "linear_operator==0.6.1"]


@nox.session
def tests(session):
    """Run the test suite on both backends, both required: a backend that fails to install or import fails the
    session instead of being skipped (HARNESS_BACKENDS=torch or =jax narrows it on purpose)."""
    # ray: the Ray executor's tests start a real local cluster; adapters: flax and equinox for tests/test_adapters.py
    install(session, "jax,torch,test,ray,peers,adapters")
    session.install("--no-deps", *PEERS_NO_DEPS)
    # worksteal: an idle worker takes queued tests from the busy one, so the long claim tests do not pile up on one
    args = session.posargs or ["-n", "2", "--dist", "worksteal", "-q", "--durations=15"]
    env = {**SMALL_KERNEL_ENV, "HARNESS_BACKENDS": os.environ.get("HARNESS_BACKENDS", "torch,jax")}
    session.run("pytest", *args, env=env)


@nox.session
def claims(session):
    """Run every claim at the ci tier on both backends and write the report (reports/ci/); the points are measured
    in worker processes on all cores (``nox -s claims -- run --all ... --workers 1`` for one process)."""
    install(session, "jax,torch")
    args = session.posargs or ["run", "--all", "--tier", "ci", "--backend", "all", "--report", "reports/ci"]
    session.run("claims", *args, env=SMALL_KERNEL_ENV)


@nox.session
def bench(session):
    """Quick asv run of every benchmark against this checkout, installed here (asv's "existing" environment).

    Each benchmark runs once (``--quick``): a smoke test plus rough figures, a few minutes on a 2-core CPU; nothing
    is saved. ``nox -s bench -- --bench NTK`` narrows it; ``nox -s bench -- --bench 'NTK.time_ntk'`` etc. For
    recorded results drop ``--quick`` (see asv_benchmarks/README.md).
    """
    install(session, "jax,torch,bench")
    session.run("asv", "machine", "--yes")
    args = session.posargs or []
    session.run("asv", "run", "--quick", "--python=same", "--show-stderr", "--launch-method", "forkserver", *args)


@nox.session
def bench_compare(session):
    """Benchmark two commits side by side and fail if any benchmark is slower by more than a factor 1.5.

    ``nox -s bench_compare -- BASE HEAD [asv continuous options, e.g. --bench NTK]``; with fewer than two
    arguments the commits are ``HEAD~1 HEAD`` and the arguments are options. asv builds each commit into its own
    virtualenv (asv.conf.json: torch==2.13.0 first); ``asv continuous`` exits non-zero when a benchmark regressed
    beyond ``--factor``.
    """
    install(session, "jax,torch,bench")
    session.run("asv", "machine", "--yes")
    posargs = list(session.posargs)
    if len(posargs) < 2:
        posargs = ["HEAD~1", "HEAD"] + posargs
    base, head, *rest = posargs
    session.run("asv", "continuous", "--factor", "1.5", "--show-stderr", "--split", *rest, base, head)
