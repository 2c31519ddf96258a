# Shared pytest configuration for the harness test suite.
#
# Environment variables
#   HARNESS_BACKENDS            comma list of backends to test (default "torch,jax"). An unknown name is a usage
#                               error. A backend named here explicitly whose framework is missing FAILS its tests;
#                               with the default list a missing framework is SKIPPED with the reason
#                               harness.get_backend gives (never silently passed).
#   HARNESS_HYPOTHESIS_PROFILE  "ci" (default: derandomized, no database, no deadline, few examples) or "dev"
#                               (more examples, random, no deadline). Both suppress the function_scoped_fixture
#                               health check: backend fixtures are stateless handles shared by every example.
#
# Fixtures (names are stable: tests/test_claims_*.py use them too)
#   backend_name     parametrised over the selected backends (ids "torch", "jax"); the framework is importable
#                    when the test body runs (else skip / fail as above).
#   backend64        get_backend(backend_name, "cpu", "float64").
#   backend32        get_backend(backend_name, "cpu", "float32").
#   parity_backends  (torch float64, jax float64) for tests that compare the two in one process; skipped with a
#                    reason unless both are selected (and fails if an explicitly selected one is missing).
#   mc_backend       one float64 backend for expensive Monte-Carlo checks: jax when selected and installed (it
#                    is the faster one), else torch.
# Caches
#   JAX's compiled programs are cached in .pytest_cache/jax-compilation-cache, shared by the xdist workers and kept
#   for the next run (CLAIMS_JAX_CACHE=off: no cache; harness.engine.executors.use_jax_compilation_cache).
# Memory
#   Each worker keeps freed memory for reuse instead of re-faulting fresh pages for every large array
#   (harness.engine.executors.reuse_freed_memory; CLAIMS_MALLOC=default: glibc's defaults).
# Helpers
#   get_selected_backend(name, dtype)  the skip-or-fail logic above, usable from any test or fixture.
#   selected_backends()                the parsed HARNESS_BACKENDS list.
#   close(a, b, what, rtol)            the parity tests' comparison: |a - b| <= rtol x the larger array's scale.
#   torch_output_change(model, opt, x, y)  a torch module's mean |output change| after 3 MSE steps of ``opt``
#                                          (the coordinate checks against the `mup` package).
import importlib.util
import os
import sys

import pytest
from hypothesis import HealthCheck, settings

if importlib.util.find_spec("harness") is None:          # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import harness  # noqa: E402
from harness.backends import BACKENDS  # noqa: E402
from harness.engine.executors import reuse_freed_memory, use_jax_compilation_cache  # noqa: E402

reuse_freed_memory()        # each xdist worker measures many points: freed memory reused, not re-faulted

use_jax_compilation_cache(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".pytest_cache",
                                       "jax-compilation-cache"))

# -- hypothesis profiles ---------------------------------------------------------------------------------------
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, max_examples=10, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
settings.register_profile(
    "dev", deadline=None, max_examples=60,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
HYPOTHESIS_PROFILES = ("ci", "dev")
_profile = os.environ.get("HARNESS_HYPOTHESIS_PROFILE", "ci")
settings.load_profile(_profile if _profile in HYPOTHESIS_PROFILES else "ci")   # bad value: UsageError below


# -- backend selection -------------------------------------------------------------------------------------------
def _parse_backends(raw):
    """(names, explicit) from the HARNESS_BACKENDS value; UsageError for unknown or no names."""
    if raw is None:
        return list(BACKENDS), False
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise pytest.UsageError(
            f"HARNESS_BACKENDS={raw!r} names unknown backend(s) {unknown}; known: {', '.join(BACKENDS)}")
    return list(dict.fromkeys(names)), True


def selected_backends():
    return _parse_backends(os.environ.get("HARNESS_BACKENDS"))[0]


def pytest_configure(config):
    if _profile not in HYPOTHESIS_PROFILES:
        raise pytest.UsageError(
            f"HARNESS_HYPOTHESIS_PROFILE={_profile!r} is unknown; choose one of {', '.join(HYPOTHESIS_PROFILES)}")
    _parse_backends(os.environ.get("HARNESS_BACKENDS"))       # fail fast on a bad value


def pytest_report_header(config):
    names, explicit = _parse_backends(os.environ.get("HARNESS_BACKENDS"))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from claimcheck import DRAW_SEED
    return (f"harness backends: {', '.join(names)} ({'HARNESS_BACKENDS' if explicit else 'default'}); "
            f"hypothesis profile: {_profile}; claim draws: CLAIM_DRAW_SEED={DRAW_SEED}")


def get_selected_backend(name, dtype="float64"):
    """get_backend(name, "cpu", dtype), or skip (framework missing, default selection) / fail (named explicitly)."""
    names, explicit = _parse_backends(os.environ.get("HARNESS_BACKENDS"))
    if name not in names:
        pytest.skip(f"backend {name!r} not selected by HARNESS_BACKENDS")
    try:
        return harness.get_backend(name, "cpu", dtype)
    except harness.HarnessError as e:
        if explicit:
            pytest.fail(f"HARNESS_BACKENDS names {name!r} but it is unusable: {e}", pytrace=False)
        pytest.skip(str(e))


def close(a, b, what, rtol=1e-9):
    """``a == b`` to ``rtol`` times the larger array's largest magnitude (the parity tests' RTOL 1e-9 in float64 is
    ~1e6 ulps: far above reordering roundoff, far below any real discrepancy)."""
    import numpy as np
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-300)
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * scale, err_msg=what)


def torch_output_change(model, opt, x, y, steps=3):
    """Mean absolute change of a torch module's outputs on ``x`` after ``steps`` steps of ``opt`` on the loss
    ``0.5 |f(x) - y|^2`` averaged over examples."""
    f0 = model(x).detach()
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * ((model(x) - y) ** 2).sum(1).mean()).backward()
        opt.step()
    return float((model(x).detach() - f0).abs().mean())


def pytest_generate_tests(metafunc):
    if "backend_name" in metafunc.fixturenames:
        names = selected_backends()
        metafunc.parametrize("backend_name", names, ids=names, indirect=True)


@pytest.fixture
def backend_name(request):
    name = request.param
    get_selected_backend(name, "float64")
    return name


@pytest.fixture
def backend64(backend_name):
    return get_selected_backend(backend_name, "float64")


@pytest.fixture
def backend32(backend_name):
    return get_selected_backend(backend_name, "float32")


@pytest.fixture
def parity_backends():
    names = selected_backends()
    missing = [n for n in ("torch", "jax") if n not in names]
    if missing:
        pytest.skip(f"parity tests need torch and jax selected; HARNESS_BACKENDS leaves out {missing}")
    return get_selected_backend("torch", "float64"), get_selected_backend("jax", "float64")


@pytest.fixture
def mc_backend():
    names = selected_backends()
    for name in ("jax", "torch"):
        if name in names and harness.backends.is_installed(name):
            return get_selected_backend(name, "float64")
    return get_selected_backend(names[0], "float64")        # skips or fails with the reason


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fresh results store per claim-test module (points are shared by that module's tests only)."""
    from harness.engine.store import Store
    s = Store(tmp_path_factory.mktemp("claims") / "store.sqlite")
    yield s
    s.close()
