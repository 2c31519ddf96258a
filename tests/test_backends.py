"""Backend registry and input validation: every failure is a one-line HarnessError; importing harness loads no
framework; float64 in JAX stays inside the backend."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import harness
import harness.backends as hb
from harness import MLP, HarnessError, get_backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _one_line(excinfo):
    msg = str(excinfo.value)
    assert msg and "\n" not in msg, f"HarnessError message must be one non-empty line, got {msg!r}"
    return msg


@pytest.fixture
def fresh_cache():
    hb.get_backend.cache_clear()
    yield
    hb.get_backend.cache_clear()


# -- get_backend errors ------------------------------------------------------------------------------------------
def test_unknown_backend_name():
    with pytest.raises(HarnessError) as e:
        get_backend("tensorflow")
    msg = _one_line(e)
    assert "tensorflow" in msg and "torch" in msg and "jax" in msg


def test_unknown_dtype(backend_name):
    with pytest.raises(HarnessError) as e:
        get_backend(backend_name, "cpu", "float16")
    assert "float16" in _one_line(e)


def test_unknown_device(backend_name):
    with pytest.raises(HarnessError) as e:
        get_backend(backend_name, "tpu9", "float32")
    assert "tpu9" in _one_line(e)


def _has_cuda(name):
    if name == "torch":
        import torch
        return torch.cuda.is_available()
    import jax
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def test_cuda_without_cuda(backend_name):
    get_backend(backend_name)                       # the framework is there (fixture checked)
    if _has_cuda(backend_name):
        pytest.skip(f"CUDA is available to {backend_name}; the no-CUDA error path cannot be exercised")
    with pytest.raises(HarnessError) as e:
        get_backend(backend_name, "cuda", "float32")
    assert "cuda" in _one_line(e)


@pytest.mark.parametrize("how", ["is_installed", "find_spec"])
def test_backend_not_installed(monkeypatch, fresh_cache, how):
    if how == "is_installed":
        monkeypatch.setattr(hb, "is_installed", lambda name: False)
    else:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a, **k: None if name in ("torch", "jax") else real(name, *a, **k))
    for name in ("torch", "jax"):
        with pytest.raises(HarnessError) as e:
            get_backend(name, "cpu", "float64")
        msg = _one_line(e)
        assert "not installed" in msg and name in msg
    if how == "find_spec":
        assert hb.available_backends() == []


def test_available_backends_matches_find_spec():
    expect = [n for n, (_, _, pkg) in hb.BACKENDS.items() if importlib.util.find_spec(pkg) is not None]
    assert hb.available_backends() == expect


def test_get_backend_is_cached_and_typed(backend_name):
    b = get_backend(backend_name, "cpu", "float64")
    assert b is get_backend(backend_name, "cpu", "float64")
    assert b.framework_name == backend_name and b.dtype == "float64" and b.np_dtype == np.float64
    assert isinstance(b, harness.Backend)


# -- input validation ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_rejected(backend64, bad):
    m = MLP(3, 4, 1, "ntk", "tanh")
    p = backend64.init(m, 0)
    x = np.ones((2, 3))
    x[1, 2] = bad
    with pytest.raises(HarnessError) as e:
        backend64.apply(m, p, x)
    assert "NaN or inf" in _one_line(e)
    with pytest.raises(HarnessError):
        backend64.ntk(m, p, x)
    with pytest.raises(HarnessError):
        backend64.loss(m, p, np.ones((2, 3)), np.array([[1.0], [bad]]))
    with pytest.raises(HarnessError):
        backend64.load_params({"W0": np.full((3, 4), bad)})


@pytest.mark.parametrize("field,value", [("width", 0), ("width", -3), ("depth", -1),   # depth 0: a linear model
                                         ("input_dim", 0), ("output_dim", 0), ("width", 2.5), ("depth", True),
                                         ("base_width", 0)])
def test_bad_mlp_shape(field, value):
    kw = dict(input_dim=3, width=4, depth=1, parametrisation="ntk")
    kw[field] = value
    with pytest.raises(HarnessError) as e:
        MLP(**kw)
    assert field in _one_line(e)


@pytest.mark.parametrize("kw", [dict(parametrisation="nope"), dict(activation="swishy"),
                                dict(weight_std=0.0), dict(bias_std=-1.0)])
def test_bad_mlp_settings(kw):
    base = dict(input_dim=3, width=4, depth=1, parametrisation="ntk")
    base.update(kw)
    with pytest.raises(HarnessError) as e:
        MLP(**base)
    _one_line(e)


def test_bad_ntk_method_and_structured_on_function_model(backend64):
    m = MLP(2, 4, 1, "ntk")
    p = backend64.init(m, 0)
    with pytest.raises(HarnessError) as e:
        backend64.ntk(m, p, np.ones((2, 2)), method="magic")
    _one_line(e)
    fm = harness.FunctionModel("lin", lambda s: {"w": np.ones(2)}, lambda p, x, ops: ops.matmul(x, p["w"]))
    with pytest.raises(HarnessError) as e:
        backend64.ntk(fm, backend64.init(fm, 0), np.ones((2, 2)), method="structured")
    _one_line(e)


def test_misc_errors_are_one_line():
    for make in (lambda: harness.output_scaled(MLP(2, 3, 1, "ntk"), 0.0),
                 lambda: harness.sgd(0.0), lambda: harness.adam(-1.0),
                 lambda: harness.Optimizer("rmsprop", 0.1),
                 lambda: harness.get_parametrisation("sp"),
                 lambda: harness.mlp_kernels(np.ones(3), depth=1, activation="relu", weight_std=1.0),
                 lambda: harness.mlp_kernels(np.ones((2, 3)), depth=-1, activation="relu", weight_std=1.0),
                 lambda: harness.mlp_kernels(np.full((2, 3), np.nan), depth=1, activation="relu", weight_std=1.0)):
        with pytest.raises(HarnessError) as e:
            make()
        _one_line(e)


# -- process-level properties (subprocesses: no ordering effects inside this process) ------------------------------
def _run(code, **env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=_env(**env),
                          capture_output=True, text=True, timeout=300)


def test_import_loads_no_framework():
    r = _run("""
        import harness, sys
        import harness.backends, harness.analytic, harness.hessian, harness.models, harness.optim
        assert 'torch' not in sys.modules and 'jax' not in sys.modules, sorted(
            m for m in sys.modules if m.split('.')[0] in ('torch', 'jax'))
        harness.available_backends()
        assert 'torch' not in sys.modules and 'jax' not in sys.modules
    """)
    assert r.returncode == 0, r.stderr


def test_jax_float64_does_not_leak():
    get_selected_backend_or_skip("jax")
    r = _run("""
        import numpy as np, harness
        b = harness.get_backend('jax', 'cpu', 'float64')
        m = harness.MLP(3, 5, 1, 'ntk', 'tanh')
        p = b.init(m, 0)
        out = b.apply(m, p, np.ones((2, 3)))
        k = b.ntk(m, p, np.ones((2, 3)))
        assert out.dtype == np.float64 and k.dtype == np.float64, (out.dtype, k.dtype)
        b.train(m, p, np.ones((2, 3)), np.zeros((2, 1)), harness.sgd(0.1), 2)
        import jax, jax.numpy as jnp
        assert jnp.ones(2).dtype == jnp.float32, jnp.ones(2).dtype
        assert not jax.config.jax_enable_x64
        b32 = harness.get_backend('jax', 'cpu', 'float32')
        assert b32.apply(m, b32.init(m, 0), np.ones((2, 3))).dtype == np.float32
    """)
    assert r.returncode == 0, r.stderr


def get_selected_backend_or_skip(name):
    from conftest import get_selected_backend
    return get_selected_backend(name, "float64")


# -- the conftest's own selection logic ---------------------------------------------------------------------------
def _pytest(extra_env, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
                           "-rs", *args], cwd=ROOT, env=_env(**extra_env), capture_output=True, text=True,
                          timeout=300)


def test_conftest_rejects_unknown_backend_name():
    r = _pytest({"HARNESS_BACKENDS": "torch,tensorflow"}, "tests/test_backends.py::test_unknown_backend_name")
    assert r.returncode == 4, r.stdout + r.stderr          # pytest's usage-error exit status
    assert "tensorflow" in r.stdout + r.stderr


def test_conftest_missing_framework_skips_by_default_and_fails_when_named(tmp_path):
    # A 'jax' package that cannot be imported: find_spec sees it, the import fails, get_backend raises.
    fake = tmp_path / "jax"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('simulated missing jax')\n")
    pp = str(tmp_path) + os.pathsep + ROOT
    target = "tests/test_backends.py::test_get_backend_is_cached_and_typed"
    default = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
                              "-rs", target], cwd=ROOT,
                             env={k: v for k, v in _env(PYTHONPATH=pp).items() if k != "HARNESS_BACKENDS"},
                             capture_output=True, text=True, timeout=300)
    out = default.stdout + default.stderr
    assert default.returncode == 0, out
    assert "1 skipped" in default.stdout and "simulated missing jax" in default.stdout, out
    if "torch" in hb.available_backends():
        assert "1 passed" in default.stdout, out
    named = _pytest({"PYTHONPATH": pp, "HARNESS_BACKENDS": "jax"}, target)
    # the fixture fails in setup, so pytest reports an error (exit status 1), never a skip or a pass
    assert named.returncode == 1 and ("1 failed" in named.stdout or "1 error" in named.stdout), named.stdout
    assert "skipped" not in named.stdout and "passed" not in named.stdout
    assert "simulated missing jax" in named.stdout
