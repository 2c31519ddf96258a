"""nox sessions. Every session that needs torch installs the CPU wheel ``torch==2.13.0`` first, so pip never
resolves torch by itself (which would download several GB of CUDA packages). virtualenv + pip, not uv: uv does
not see the local torch wheel."""

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


@nox.session
def tests(session):
    """Run the test suite on both backends (HARNESS_BACKENDS=torch or =jax narrows it)."""
    install(session, "torch,jax,test")
    args = session.posargs or ["-n", "2", "-q"]
    session.run("pytest", *args, env=SMALL_KERNEL_ENV)


@nox.session
def claims(session):
    """Run every claim at the ci tier on both backends and write the report (reports/ci/)."""
    install(session, "torch,jax")
    args = session.posargs or ["run", "--all", "--tier", "ci", "--backend", "all", "--report", "reports/ci"]
    session.run("claims", *args, env=SMALL_KERNEL_ENV)
