"""The claim engine: statistics (a synthetic power law is recovered at the stated rate), laws' three-way verdicts,
claim declarations, the store (resume after a kill, no duplicate points) and the CLI's exit codes."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.stats import binomtest

from harness import HarnessError
from harness.claim import Claim, Control, Tier, derive_seed, get_claim, registry
from harness.laws import HOLDS, INCONCLUSIVE, REFUTED, PowerLaw, compare
from harness.stats import Estimate, bootstrap, power_law_slope
from harness.store import Store
from harness.sweep import LocalExecutor, Task, tasks_for


# -- statistics -----------------------------------------------------------------------------------------------
def test_power_law_slope_exact():
    n = np.array([64, 128, 256, 512])
    assert power_law_slope(n, 3.0 * n ** -0.75) == pytest.approx(-0.75, abs=1e-12)


def test_bootstrap_ci_covers_true_exponent_at_stated_rate():
    """A synthetic power law b = -0.5 with log-normal seed noise: the nominal 90% CI must cover b in a fraction of
    200 independent replications not significantly below 0.9 (one-sided binomial test at level 1e-3, so this test
    fails with probability <= 1e-3 if the CI is calibrated)."""
    scales = np.array([64, 128, 256, 512, 1024], float)
    rng = np.random.default_rng(1234)
    reps, covered = 200, 0
    for r in range(reps):
        samples = [2.0 * s ** -0.5 * np.exp(0.3 * rng.standard_normal(16)) for s in scales]
        est = bootstrap(samples, lambda ss: power_law_slope(scales, [np.mean(x) for x in ss]), 0.9, seed=r,
                        n_resamples=400)
        covered += est.low <= -0.5 <= est.high
    assert binomtest(covered, reps, 0.9, alternative="less").pvalue > 1e-3, covered / reps


def test_law_verdicts_are_three_way():
    assert compare(Estimate(-1.0, -1.1, -0.9, 0.95), (-1.2, -0.8)) == HOLDS
    assert compare(Estimate(0.0, -0.1, 0.1, 0.95), (-1.2, -0.8)) == REFUTED
    assert compare(Estimate(-0.8, -0.9, -0.7, 0.95), (-1.2, -0.8)) == INCONCLUSIVE
    assert compare(Estimate(-0.6, -0.7, -0.5, 0.95), (None, -0.4)) == HOLDS
    assert compare(Estimate(-0.1, -0.2, 0.0, 0.95), (None, -0.4)) == REFUTED


# -- declarations -------------------------------------------------------------------------------------------------
def _dummy_claim(**changes):
    kw = dict(id="dummy", title="t", paper="p", statement="s", premise={"a": 1}, scale_name="n",
              measure=lambda s, b: {"x": s.scale}, laws=(PowerLaw("l", "x", (0.9, 1.1)),),
              controls=(Control("c", {"a": 2}, "why"),), tiers={"ci": Tier((1, 2, 4), 2)})
    kw.update(changes)
    return Claim(**kw)


def test_claim_without_control_is_refused():
    with pytest.raises(HarnessError, match="negative control"):
        _dummy_claim(controls=())


def test_claim_without_ci_tier_is_refused():
    with pytest.raises(HarnessError, match="ci"):
        _dummy_claim(tiers={"full": Tier((1, 2), 2)})


def test_control_naming_unknown_law_is_refused():
    with pytest.raises(HarnessError, match="unknown laws"):
        _dummy_claim(controls=(Control("c", {"a": 2}, "why", refutes=("nope",)),))


def test_registry_finds_every_claim_module():
    reg = registry()
    assert {"ntk-drift", "ntk-init-limit", "ntk-linearization"} <= set(reg)
    for c in reg.values():
        assert c.controls and "ci" in c.tiers
    with pytest.raises(HarnessError, match="unknown claim"):
        get_claim("no-such-claim")


def test_claims_import_neither_torch_nor_jax():
    code = ("import sys; from harness.claim import registry; registry(); "
            "bad = [m for m in ('torch', 'jax') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_seeds_are_derived_and_backend_independent():
    claim = get_claim("ntk-init-limit")
    a = tasks_for(claim, "ci", "jax", case="tanh", seeds=3)
    b = tasks_for(claim, "ci", "torch", case="tanh", seeds=3)
    assert [t.setting.seed for t in a] == [t.setting.seed for t in b]
    assert len({t.setting.seed for t in a if t.setting.variant == "claim"}) == len(claim.tier("ci").scales) * 3
    assert derive_seed("x", 1) == derive_seed("x", 1) != derive_seed("x", 2)
    assert Task.from_json(a[0].to_json()) == a[0]


# -- store ----------------------------------------------------------------------------------------------------------
def test_store_resumes_after_kill_without_duplicates(tmp_path):
    """Kill a sweep (SIGKILL) mid-way: every point it had finished is kept, the rerun measures only the rest, and
    the store holds each point exactly once."""
    path = tmp_path / "s.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", "ntk-init-limit", "--case", "tanh",
                             "--backend", "jax", "--seeds", "3", "--store", str(path), "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    done_before = 0
    while time.time() < deadline:
        time.sleep(0.5)
        if path.exists():
            with Store(path) as s:
                done_before = s.count()
            if done_before >= 5:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    claim = get_claim("ntk-init-limit")
    tasks = tasks_for(claim, "ci", "jax", case="tanh", seeds=3)
    with Store(path) as s:
        kept = s.count()
        assert kept >= done_before >= 5
        assert kept < len(tasks), "the sweep finished before it was killed; the test proves nothing"
        stats = LocalExecutor(progress=False).run(tasks, s)
        assert stats["cached"] == kept and stats["measured"] == len(tasks) - kept
        assert s.count() == len(tasks)
        stats = LocalExecutor(progress=False).run(tasks, s)
        assert stats["measured"] == 0 and s.count() == len(tasks)


# -- CLI ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-claim"], "unknown claim"),
    (["run", "ntk-drift", "--backend", "cupy"], "unknown backend"),
    (["run", "ntk-drift", "--tier", "huge"], "no tier"),
    (["run"], "at least one claim"),
    (["calibrate", "ntk-drift", "--runs", "0", "--backend", "jax"], "--runs"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, message):
    r = subprocess.run([sys.executable, "-m", "harness.cli", *argv], capture_output=True, text=True)
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


def test_cli_cuda_without_cuda_is_exit_2():
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "ntk-drift", "--device", "cuda"],
                       capture_output=True, text=True)
    if "cuda" in r.stdout.lower() and r.returncode == 0:
        pytest.skip("CUDA is available here")
    assert r.returncode == 2 and "cuda" in r.stderr and r.stderr.strip().count("\n") == 0


def test_cli_list_and_help():
    r = subprocess.run([sys.executable, "-m", "harness.cli", "list"], capture_output=True, text=True)
    assert r.returncode == 0 and "ntk-drift" in r.stdout
    r = subprocess.run([sys.executable, "-m", "harness.cli", "run", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--backend" in r.stdout
