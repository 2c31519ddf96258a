"""Executors: the local worker pool and a real Ray cluster (started inside the test, 2 CPUs) store the same points
as measuring in process, and a sweep whose worker is killed mid-way loses nothing and duplicates nothing."""
import json
import os
import sqlite3
import subprocess
import sys

import pytest

from harness import HarnessError
from harness.engine.claim import load_path
from harness.engine.executors import LocalExecutor, make_executor
from harness.engine.store import Store
from harness.engine.sweep import run_claims, tasks_for

# A cheap claim in a file of its own (a worker process loads it from Task.source). Its measure kills its own
# worker process (SIGKILL) the first time it reaches the point named by KILL_FILE, to test a worker dying.
CLAIM_FILE = '''
import json, os, signal
import numpy as np
from harness import Claim, Control, PowerLaw, Tier


def measure(setting, backend):
    marker = os.environ.get("EXEC_TEST_KILL_MARKER", "")
    if marker and setting.scale == 16 and setting.variant == "claim" and not os.path.exists(marker):
        open(marker, "w").write(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)           # the worker dies mid-sweep
    x = backend.apply(MODEL, backend.init(MODEL, setting.seed), np.ones((1, 2)))
    return {"value": float(setting.scale ** -0.5 * np.exp(0.1 * np.tanh(x.sum())))}


from harness import MLP
MODEL = MLP(input_dim=2, width=8, depth=1, parametrisation="ntk")

EXEC_TOY = Claim(
    id="exec-toy", title="toy", paper="none", statement="value ~ n^-1/2", premise=dict(slope=-0.5),
    scale_name="n", measure=measure, outputs=("value",),
    laws=(PowerLaw("rate", "value", (-0.7, -0.3)),),
    controls=(Control("same", {"slope": 0.0}, "the measure ignores the slope: not a real control, a load test"),),
    tiers={"ci": Tier(scales=(4, 16, 64, 256), seeds=3)})


def measure_many(settings, backend):
    """The same points, measured in batches (Claim.seed_batch): each call's size is logged to EXEC_TEST_BATCH_LOG."""
    log = os.environ.get("EXEC_TEST_BATCH_LOG", "")
    if log:
        with open(log, "a") as f:
            f.write(json.dumps([[s.variant, s.scale, s.seed] for s in settings]) + "\\n")
    if os.environ.get("EXEC_TEST_BATCH_SHORT"):
        return [measure(settings[0], backend)]
    return [measure(s, backend) for s in settings]


EXEC_BATCH = EXEC_TOY.variant(id="exec-batch", measure=measure_many, seed_batch=2)
'''


@pytest.fixture(scope="session")
def claim_file(tmp_path_factory):
    # once per process: xdist's work stealing can hand this module's tests to a worker in two batches with other
    # modules between them, and a module-scoped fixture would then register the same claim ids from a second file
    # (refused: "already defined"), as the .ci/run of f662fda did
    path = tmp_path_factory.mktemp("claims") / "exec_toy.py"
    path.write_text(CLAIM_FILE)
    claim, _ = load_path(path)
    return claim


def points(path):
    with sqlite3.connect(path) as c:
        rows = c.execute("SELECT key, result FROM points ORDER BY key").fetchall()
    return {k: json.loads(r) for k, r in rows}


def same_points(a, b):
    assert a.keys() == b.keys()
    for k in a:
        for stat in a[k]:
            for x, y in zip(a[k][stat]["data"], b[k][stat]["data"]):
                assert x == pytest.approx(y, rel=1e-12, abs=1e-15)


def test_local_pool_stores_the_same_points_as_in_process(tmp_path, claim_file):
    with Store(tmp_path / "one.sqlite") as s:
        r1 = run_claims([claim_file], "ci", ["jax"], store=s, executor=LocalExecutor(1, progress=False))
    with Store(tmp_path / "two.sqlite") as s, LocalExecutor(2, progress=False) as ex:
        r2 = run_claims([claim_file], "ci", ["jax"], store=s, executor=ex)
    same_points(points(tmp_path / "one.sqlite"), points(tmp_path / "two.sqlite"))
    assert [x.verdict for x in r1] == [x.verdict for x in r2]


@pytest.mark.parametrize("workers", [1, 2])
def test_seed_batched_measure_stores_the_points_measured_one_by_one(tmp_path, claim_file, monkeypatch, workers):
    """A claim with ``seed_batch`` = 2 is measured in calls of at most 2 seeds of one setting (variant, scale),
    never mixing settings, and stores for each seed the point the one-seed measure gives (in process and in a
    worker pool)."""
    from harness.engine.claim import get_claim
    from harness import get_backend
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("EXEC_TEST_BATCH_LOG", str(log))
    claim = get_claim("exec-batch")
    with Store(tmp_path / "batch.sqlite") as s, LocalExecutor(workers, progress=False) as ex:
        run_claims([claim], "ci", ["jax"], store=s, executor=ex)
        tasks = tasks_for(claim, "ci", "jax")
        backend = get_backend("jax", "cpu", claim.dtype)
        for t in tasks:                      # each stored point is the one-seed measure's value at its seed
            assert s.get(t)[0]["value"] == pytest.approx(claim_file.measure(t.setting, backend)["value"], rel=1e-12)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(len(c) for c in calls) == len(tasks)                     # every point measured once
    assert all(len(c) <= 2 and len({(v, sc) for v, sc, _ in c}) == 1 for c in calls)
    assert max(len(c) for c in calls) == 2                             # and batched


def test_a_batched_measure_returning_the_wrong_count_is_one_line(tmp_path, claim_file, monkeypatch):
    from harness.engine.claim import get_claim
    monkeypatch.setenv("EXEC_TEST_BATCH_SHORT", "1")
    with Store(tmp_path / "s.sqlite") as s, pytest.raises(HarnessError, match="one dict per setting: 2 settings, "
                                                                              "got 1 results"):
        run_claims([get_claim("exec-batch")], "ci", ["jax"], store=s, executor=LocalExecutor(1, progress=False))


def test_seed_batch_must_be_a_positive_integer(claim_file):
    from harness.engine.claim import get_claim
    with pytest.raises(HarnessError, match="seed_batch must be an integer >= 1"):
        get_claim("exec-batch").variant(id="exec-batch-0", seed_batch=0)


def test_local_pool_worker_killed_keeps_finished_points(tmp_path, claim_file, monkeypatch):
    monkeypatch.setenv("EXEC_TEST_KILL_MARKER", str(tmp_path / "killed"))
    tasks = tasks_for(claim_file, "ci", "jax")
    with Store(tmp_path / "s.sqlite") as s:
        with LocalExecutor(2, progress=False) as ex, pytest.raises(HarnessError, match="worker process died"):
            ex.run(tasks, s)
        kept = s.count()
        assert kept < len(tasks)
        stats = LocalExecutor(1, progress=False).run(tasks, s)
        assert stats["cached"] == kept and stats["measured"] == len(tasks) - kept and s.count() == len(tasks)


def test_unknown_executor_and_missing_ray_are_one_line():
    with pytest.raises(HarnessError, match="unknown executor"):
        make_executor("dask")
    with pytest.raises(HarnessError, match="--address needs --executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(HarnessError, match="at least 1"):
        make_executor("local", workers=0)


def test_cli_ray_without_ray_is_one_line_exit_2(tmp_path):
    """Without the [ray] extra, `--executor ray` is a one-line error (simulated by hiding the package)."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "ray.py").write_text("raise ImportError('ray is not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-m", "harness.engine.cli", "run", "ntk-drift", "--backend", "jax",
                        "--executor", "ray", "--store", str(tmp_path / "s.sqlite")], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 2 and "needs Ray" in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}})
    yield ray
    ray.shutdown()


def test_ray_stores_the_same_points_and_survives_a_killed_worker(tmp_path, claim_file, ray_cluster, monkeypatch):
    """On a real local Ray cluster (2 CPUs): a worker is killed (SIGKILL) mid-sweep; Ray retries its task, the
    sweep completes, and the store holds exactly the points the in-process executor stores, each once."""
    from harness.engine.executors import RayExecutor
    marker = tmp_path / "killed"
    with Store(tmp_path / "local.sqlite") as s:
        run_claims([claim_file], "ci", ["jax"], store=s, executor=LocalExecutor(1, progress=False))
    # the Ray workers see the marker through the tasks' runtime env
    with Store(tmp_path / "ray.sqlite") as s:
        ex = RayExecutor(progress=False, env={"EXEC_TEST_KILL_MARKER": str(marker)})
        stats = ex.run(tasks_for(claim_file, "ci", "jax"), s)
        assert stats["measured"] == len(tasks_for(claim_file, "ci", "jax"))
    assert marker.exists(), "no worker was killed: the test proves nothing"
    same_points(points(tmp_path / "local.sqlite"), points(tmp_path / "ray.sqlite"))


def test_ray_measures_a_seed_batch_in_one_task(tmp_path, claim_file, ray_cluster):
    """On Ray, a claim with ``seed_batch`` > 1 is one Ray task per batch and stores the in-process points."""
    from harness.engine.claim import get_claim
    from harness.engine.executors import RayExecutor
    claim = get_claim("exec-batch")
    with Store(tmp_path / "local.sqlite") as s:
        run_claims([claim], "ci", ["jax"], store=s, executor=LocalExecutor(1, progress=False))
    with Store(tmp_path / "ray.sqlite") as s:
        RayExecutor(progress=False).run(tasks_for(claim, "ci", "jax"), s)
    same_points(points(tmp_path / "local.sqlite"), points(tmp_path / "ray.sqlite"))


def test_ray_sweep_that_stops_resumes_with_nothing_lost(tmp_path, claim_file, ray_cluster):
    """With no retries, the killed worker stops the sweep with a one-line error; the finished points are stored
    and a rerun measures only the rest."""
    from harness.engine.executors import RayExecutor
    marker = tmp_path / "killed"
    tasks = tasks_for(claim_file, "ci", "jax")
    with Store(tmp_path / "s.sqlite") as s:
        ex = RayExecutor(progress=False, max_retries=0, env={"EXEC_TEST_KILL_MARKER": str(marker)})
        with pytest.raises(HarnessError, match="Ray worker died"):
            ex.run(tasks, s)
        kept = s.count()
        assert kept < len(tasks) and marker.exists()
        stats = RayExecutor(progress=False).run(tasks, s)
        assert stats["cached"] == kept and stats["measured"] == len(tasks) - kept and s.count() == len(tasks)


def test_jax_compilation_cache_is_set_once_and_can_be_turned_off(monkeypatch, tmp_path):
    """The CLI points JAX's persistent compilation cache beside the store (workers inherit it through the
    environment); CLAIMS_JAX_CACHE=off leaves it off, =DIR moves it, and a JAX_COMPILATION_CACHE_DIR the user set
    is kept. A sweep's points are the same with and without it (the cache holds compiled programs, not results)."""
    import sys
    from harness.engine.executors import use_jax_compilation_cache
    jax = sys.modules.get("jax")
    before = jax.config.jax_compilation_cache_dir if jax is not None else None
    try:
        monkeypatch.setenv("CLAIMS_JAX_CACHE", "off")
        assert use_jax_compilation_cache(tmp_path / "a") is None
        monkeypatch.delenv("CLAIMS_JAX_CACHE")
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
        assert use_jax_compilation_cache(tmp_path / "a") == str(tmp_path / "mine")
        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")
        monkeypatch.delenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", raising=False)
        monkeypatch.setenv("CLAIMS_JAX_CACHE", str(tmp_path / "chosen"))
        assert use_jax_compilation_cache(tmp_path / "a") == str(tmp_path / "chosen")
        assert os.environ["JAX_COMPILATION_CACHE_DIR"] == str(tmp_path / "chosen")
        assert os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"
        if jax is not None:
            assert jax.config.jax_compilation_cache_dir == str(tmp_path / "chosen")
    finally:
        if jax is not None:
            jax.config.update("jax_compilation_cache_dir", before)


_DRIFT_POINT = """
import sys
from harness import get_backend
from harness.engine.claim import Setting, get_claim
from harness.engine.executors import reuse_freed_memory
import claims
applied = reuse_freed_memory()
claim = get_claim("ntk-drift")
premise = {**claim.premise, "depth": 2, "steps": 5}
out = claim.measure(Setting("ntk-drift", "claim", "tanh", premise, 1024, 3), get_backend(sys.argv[1], "cpu", "float64"))
print(applied, {k: float(v).hex() for k, v in sorted(out.items())})
"""


def test_freed_memory_reuse_is_switchable_and_changes_no_number(backend_name):
    """reuse_freed_memory (the CLI, its workers and this suite call it) is applied on Linux's glibc and left off
    with CLAIMS_MALLOC=default; a point measured with it is bit-for-bit the point measured without (width 1024,
    depth 2: float64 hidden weights of 8 MiB, freed and allocated again at every step)."""
    env = {k: v for k, v in os.environ.items() if k != "CLAIMS_MALLOC"}
    runs = [subprocess.run([sys.executable, "-c", _DRIFT_POINT, backend_name], capture_output=True, text=True,
                           env={**env, **extra}) for extra in ({}, {"CLAIMS_MALLOC": "default"})]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-2000:] for r in runs]
    (on, point_on), (off, point_off) = (r.stdout.strip().split(" ", 1) for r in runs)
    assert off == "False" and on == str(sys.platform.startswith("linux"))
    assert point_on == point_off
