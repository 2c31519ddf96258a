"""The claim engine: laws' three-way verdicts, claim declarations, seeds, the store (resume after a kill, no
duplicate points, code-versioned keys), the family-wise alpha and the CLI's exit codes. Interval coverage is in
test_coverage.py."""
import functools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.stats import binomtest

from harness import HarnessError
from harness.engine.claim import Claim, Control, Tier, derive_seed, get_claim, registry
from harness.engine.laws import HOLDS, INCONCLUSIVE, REFUTED, Limit, PowerLaw, compare
from harness.engine.stats import Estimate, power_law_slope
from harness.engine.store import Store
from harness.engine.sweep import LocalExecutor, Task, tasks_for


# -- statistics -----------------------------------------------------------------------------------------------
def test_power_law_slope_exact():
    n = np.array([64, 128, 256, 512])
    assert power_law_slope(n, 3.0 * n ** -0.75) == pytest.approx(-0.75, abs=1e-12)


def test_limit_is_the_intercept_in_width_to_the_minus_rate():
    """Limit: exact on a + b n^-1/2; a quantity converging to 0.3 holds a nonzero limit, one vanishing as n^-1/2
    (the NTK parametrisation's feature changes) is inconclusive about it, one vanishing as n^-1 is refuted."""
    n = np.array([128.0, 256.0, 512.0, 1024.0])
    law = Limit("l", "x", (0.0, None))
    assert law.point(n, [np.array([0.3 + 2.5 * w ** -0.5]) for w in n]) == pytest.approx(0.3, abs=1e-12)
    assert Limit("l", "x", (0.0, None), rate=1.0).point(n, [np.array([0.3 + 7 / w]) for w in n]) \
        == pytest.approx(0.3, abs=1e-12)
    noise = np.random.default_rng(0).normal(1.0, 0.02, (4, 16))
    verdict = lambda truth: law.evaluate(n, [truth(w) * e for w, e in zip(n, noise)], {}, 1e-3).verdict
    assert verdict(lambda w: 0.3 + 2.5 * w ** -0.5) == HOLDS
    assert verdict(lambda w: 5 * w ** -0.5) == INCONCLUSIVE
    assert verdict(lambda w: 60 / w) == REFUTED


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
              controls=(Control("c", {"a": 2}, "why"),), tiers={"ci": Tier((1, 2, 4), 3)})
    kw.update(changes)
    return Claim(**kw)


def test_claim_without_control_is_refused():
    with pytest.raises(HarnessError, match="negative control"):
        _dummy_claim(controls=())


def test_claim_without_ci_tier_is_refused():
    with pytest.raises(HarnessError, match="ci"):
        _dummy_claim(tiers={"full": Tier((1, 2), 3)})


def test_control_naming_unknown_law_is_refused():
    with pytest.raises(HarnessError, match="unknown laws"):
        _dummy_claim(controls=(Control("c", {"a": 2}, "why", refutes=("nope",)),))


def test_too_few_seeds_are_refused():
    """A confidence interval needs MIN_SEEDS seeds per scale: refused at registration and on --seeds."""
    with pytest.raises(HarnessError, match="at least 3"):
        _dummy_claim(tiers={"ci": Tier((1, 2), 2)})
    r = subprocess.run([sys.executable, "-m", "harness.engine.cli", "run", "ntk-drift", "--seeds", "2"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "--seeds must be at least 3" in r.stderr


def test_control_flipping_several_settings_must_say_why():
    with pytest.raises(HarnessError, match="why_several"):
        _dummy_claim(premise={"a": 1, "b": 2}, controls=(Control("c", {"a": 2, "b": 3}, "why"),))
    _dummy_claim(premise={"a": 1, "b": 2}, controls=(Control("c", {"a": 2, "b": 3}, "why", why_several="because"),))


def test_registry_finds_every_claim_module():
    """Every module of the claims package imports and registers (a broken one would be skipped with a one-line
    warning by the CLI, and its claims would silently drop out of the tests)."""
    import pkgutil
    import claims
    from harness.engine.claim import LOAD_ERRORS
    reg = registry()
    assert not LOAD_ERRORS, LOAD_ERRORS
    import importlib
    from harness.engine.claim import Claim
    for m in pkgutil.iter_modules(claims.__path__):
        if m.name.startswith("_"):
            continue
        mod = importlib.import_module(f"claims.{m.name}")
        public = [o.id for n, o in vars(mod).items() if isinstance(o, Claim) and not n.startswith("_")]
        assert set(public) <= set(reg), (m.name, public)
    assert {"ntk-drift", "ntk-init-limit", "ntk-linearization"} <= set(reg)
    for c in reg.values():
        assert c.controls and "ci" in c.tiers
    with pytest.raises(HarnessError, match="unknown claim"):
        get_claim("no-such-claim")


def test_claims_import_neither_torch_nor_jax():
    code = ("import sys; from harness.engine.claim import registry; registry(); "
            "bad = [m for m in ('torch', 'jax') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_seeds_are_derived_and_backend_independent():
    claim = get_claim("ntk-init-limit")
    a = tasks_for(claim, "ci", "jax", case="tanh", seeds=3)
    b = tasks_for(claim, "ci", "torch", case="tanh", seeds=3)
    assert [t.setting.seed for t in a] == [t.setting.seed for t in b]
    assert len({t.setting.seed for t in a if t.setting.variant == "claim"}) == len(claim.tier("ci").scales) * 3
    # each control is measured on seeds of its own: an independent sample, not the claim's networks again
    assert len({t.setting.seed for t in a}) == len(a)
    assert derive_seed("x", 1) == derive_seed("x", 1) != derive_seed("x", 2)
    assert Task.from_json(a[0].to_json()) == a[0]


# -- store ----------------------------------------------------------------------------------------------------------
def test_store_resumes_after_kill_without_duplicates(tmp_path):
    """Kill a sweep (SIGKILL) mid-way: every point it had finished is kept, the rerun measures only the rest, the
    store holds each point exactly once, and the sweep's worker processes do not outlive it.

    The store is polled every 50 ms and the sweep killed at its fifth point: on an idle 2-core machine its points
    after the first compilations come ~100 a second (3 seeds: 54 points within ~1 s), and polling every 0.5 s let
    a run finish between two polls about one time in four when this file ran beside test_apidoc.py alone; 6 seeds
    (108 points) widen the window further."""
    path = tmp_path / "s.sqlite"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.engine.cli", "run", "ntk-init-limit", "--case", "tanh",
                             "--backend", "jax", "--seeds", "6", "--store", str(path), "--no-progress"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    done_before = 0
    while time.time() < deadline:
        time.sleep(0.05)
        if path.exists():
            with Store(path) as s:
                done_before = s.count()
            if done_before >= 5:
                break
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                               text=True).stdout.split()]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(3)
    for pid in workers:           # the default executor's worker processes exit with their driver
        try:
            os.kill(pid, 0)
            alive = open(f"/proc/{pid}/stat").read().split()[2] != "Z"
        except (ProcessLookupError, FileNotFoundError):
            alive = False
        assert not alive, f"worker {pid} outlived its killed driver"
    claim = get_claim("ntk-init-limit")
    tasks = tasks_for(claim, "ci", "jax", case="tanh", seeds=6)
    with Store(path) as s:
        kept = s.count()
        assert kept >= done_before >= 5
        assert kept < len(tasks), "the sweep finished before it was killed; the test proves nothing"
        stats = LocalExecutor(progress=False).run(tasks, s)
        assert stats["cached"] == kept and stats["measured"] == len(tasks) - kept
        assert s.count() == len(tasks)
        stats = LocalExecutor(progress=False).run(tasks, s)
        assert stats["measured"] == 0 and s.count() == len(tasks)


def test_store_key_changes_with_the_measure_code(tmp_path):
    """A point measured by other code is never reused: the code hash is part of the key."""
    claim = get_claim("ntk-init-limit")
    (task,) = tasks_for(claim, "ci", "jax", case="relu", seeds=3)[:1]
    assert task.code and len(task.code) == 16
    with Store(tmp_path / "k.sqlite") as s:
        s.put(task, {"x": np.ones(1)}, 0.1)
        assert s.has(task)
        assert not s.has(Task(**{**task.__dict__, "code": "0" * 16}))


def test_code_hash_covers_the_claim_modules_a_measure_imports_from(tmp_path, monkeypatch):
    """A claim file that takes a helper from another file of the user's is keyed on both: editing the helper
    changes the claim's code hash (stale points are not reused); numpy and the harness are not listed (the
    harness's modules are followed by ``harness_sources``). In the package, D3 takes coord-check's network."""
    from harness.engine import sweep
    import claims.sharpness
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "helper_for_hash.py").write_text("def scale(x):\n    return 2.0 * x\n")
    (tmp_path / "claim_for_hash.py").write_text(
        "import numpy as np\nfrom harness import MLP\nfrom helper_for_hash import scale\n\n"
        "def measure(setting, backend):\n    return {'v': scale(np.float64(setting.scale))}\n")
    import claim_for_hash
    sources = sweep.measure_sources(claim_for_hash.measure)
    assert [p.name for p in sources] == ["claim_for_hash.py", "helper_for_hash.py"]
    claim = get_claim("ntk-init-limit").variant(id="hash-probe", measure=claim_for_hash.measure)
    before = sweep.code_version(claim)
    (tmp_path / "helper_for_hash.py").write_text("def scale(x):\n    return 3.0 * x\n")
    monkeypatch.setattr(sweep, "_CODE", {})
    assert sweep.code_version(claim) != before
    on = {b: sweep.code_version(claim, b) for b in ("torch", "jax")}
    assert len({on["torch"], on["jax"], sweep.code_version(claim)}) == 3
    assert [p.name for p in sweep.measure_sources(claims.sharpness.SHARPNESS.measure)] == ["coord_check.py",
                                                                                           "sharpness.py"]


def test_code_hash_covers_the_harness_modules_a_claim_can_run(tmp_path):
    """The harness part of a claim's code hash is the closure under static imports (a function's local import
    too) of what its claim modules import, plus the backends: ``from pkg import MLP`` counts the module ``MLP``
    comes from, not every module ``pkg/__init__.py`` re-exports, so a new harness module no claim imports stales
    no point and no calibration record; ``import pkg`` counts the whole package; the backends are the modules the
    registry names (an adapter module beside them counts only where imported, by a statement or by its name in a
    string, as harness.adapters loads them); the engine and errors.py are not followed. A point measured on one
    backend does not read the other backends' modules (theirs and their adapters). In the package, G1 reads
    harness/geometry.py and not the tensor model's module."""
    from harness.engine import sweep
    import claims.geometry
    pkg = tmp_path / "pkg"
    files = {"__init__.py": "from .models import MLP\nfrom .extra import thing\nfrom .engine import Claim\n",
             "models.py": "from .activations import relu\nfrom .errors import E\n\ndef f():\n"
                          "    from .analytic import k\n",
             "activations.py": "relu = 1\n", "analytic.py": "k = 1\n", "extra.py": "thing = 1\n",
             "errors.py": "E = 1\n", "hessian.py": "from . import data\n", "data.py": "d = 1\n",
             "engine/__init__.py": "from .claim import Claim\n", "engine/claim.py": "from ..extra import thing\n",
             "backends/__init__.py": "from ._base import B\nBACKENDS = {'t': ('pkg.backends.t', 'T')}\n",
             "backends/_base.py": "from ..hessian import h\n", "backends/t.py": "from ._base import B\n",
             "backends/t_adapters.py": "from ..extra import thing\n"}
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    claim = tmp_path / "claim_file.py"
    claim.write_text("from pkg import MLP\nfrom pkg.engine.claim import Claim\n")

    def names(src):
        return sorted(str(p.relative_to(pkg)) for p in sweep.harness_sources([src], pkg))
    base = ["backends/__init__.py", "backends/_base.py", "backends/t.py", "data.py", "hessian.py"]
    assert names(claim) == sorted(base + ["activations.py", "analytic.py", "models.py"])
    claim.write_text("import numpy\n")
    assert names(claim) == base
    claim.write_text("import pkg\n")
    assert names(claim) == sorted(base + ["__init__.py", "activations.py", "analytic.py", "extra.py", "models.py"])
    (pkg / "lazy.py").write_text("MODULES = {'t': 'pkg.backends.t_adapters'}\n")
    claim.write_text("from pkg.lazy import MODULES\n")                 # a module imported by name counts
    assert names(claim) == sorted(base + ["lazy.py", "backends/t_adapters.py", "extra.py"])
    claim.write_text("import numpy\n")                            # one backend's point: the others' modules out
    (pkg / "backends/__init__.py").write_text("BACKENDS = {'t': ('pkg.backends.t', 'T'), "
                                              "'u': ('pkg.backends.u', 'U')}\n")
    (pkg / "backends/u.py").write_text("from ._base import B\n")
    (pkg / "backends/u_adapters.py").write_text("x = 1\n")
    claim.write_text("MODULES = {'t': 'pkg.backends.t_adapters', 'u': 'pkg.backends.u_adapters'}\n")
    every = ["backends/__init__.py", "backends/_base.py", "data.py", "extra.py", "hessian.py"]
    assert names(claim) == sorted(every + ["backends/t.py", "backends/u.py", "backends/t_adapters.py",
                                           "backends/u_adapters.py"])
    on_t = sorted(str(p.relative_to(pkg)) for p in sweep.harness_sources([claim], pkg, backend="t"))
    assert on_t == sorted(every + ["backends/t.py", "backends/t_adapters.py"])
    g1 = [p.name for p in sweep.harness_sources(sweep.measure_sources(claims.geometry.confusion))]
    assert "geometry.py" in g1 and "models.py" in g1 and "tensor.py" not in g1 and "__init__.py" in g1  # backends'


def test_code_hash_ignores_what_only_declares(tmp_path, monkeypatch):
    """Docstrings, comments, a tier's seed counts and a change note do not change a claim's code hash (no point is
    re-measured, no calibration record goes stale when a design is resized); the measure's body does."""
    from harness.engine import sweep
    monkeypatch.syspath_prepend(str(tmp_path))
    src = ('"""A claim."""\nimport numpy as np\nfrom harness import Claim, PowerLaw, Tier\n\n\n'
           'def measure(setting, backend):\n    """Doc."""\n    return {"v": np.float64(setting.scale) ** -0.5}\n\n\n'
           'C = Claim(id="hash-decl", title="t", paper="p", statement="s", premise={}, scale_name="n", '
           'measure=measure, laws=(PowerLaw("r", "v", (-0.6, -0.4), what="w"),), '
           'tiers={"ci": Tier((4, 16), 4)}, changes=("a",))\n')
    path = tmp_path / "claim_decl_hash.py"
    path.write_text(src)
    before = sweep.measured_source(path)
    for old, new in [('"""A claim."""', '"""Another docstring."""'), ('"""Doc."""', "# a comment"),
                     ('Tier((4, 16), 4)', 'Tier((4, 16, 64), 8, max_seeds=32, design="searched")'),
                     ('changes=("a",)', 'changes=("a", "b")'), ('what="w"', 'what="the exponent"')]:
        path.write_text(src.replace(old, new))
        assert sweep.measured_source(path) == before, (old, new)
    path.write_text(src.replace("** -0.5", "** -0.25"))
    assert sweep.measured_source(path) != before


def test_code_hash_of_a_claim_ignores_its_neighbours_declarations(tmp_path):
    """Two claims in one module: editing one claim's laws or premise leaves the other's code hash alone (its points
    and calibration records stay current), and changes its own; a declaration the module reads elsewhere (a claim
    made as its ``.variant``) and a shared helper count for both."""
    from harness.engine import sweep
    src = ('import numpy as np\nfrom harness import Claim, PowerLaw, Tier\n\n\n'
           'def helper(x):\n    return np.float64(x) ** -0.5\n\n\n'
           'def measure(setting, backend):\n    return {"v": helper(setting.scale)}\n\n\n'
           'A = Claim(id="hash-a", title="t", paper="p", statement="s", premise={"k": 1}, scale_name="n", '
           'measure=measure, laws=(PowerLaw("r", "v", (-0.6, -0.4)),), tiers={"ci": Tier((4, 16), 4)})\n'
           'B = Claim(id="hash-b", title="t", paper="p", statement="s", premise={"k": 2}, scale_name="n", '
           'measure=measure, laws=(PowerLaw("r", "v", (-0.7, -0.3)),), tiers={"ci": Tier((4, 16), 4)})\n')
    path = tmp_path / "two_claims_hash.py"

    def hashes(text):
        path.write_text(text)
        return {c: sweep.measured_source(path, c) for c in ("hash-a", "hash-b")}
    before = hashes(src)
    assert before["hash-a"] != before["hash-b"]
    for old, new in [('(-0.7, -0.3)', '(-0.8, -0.2)'), ('{"k": 2}', '{"k": 3}')]:    # B's law, B's premise
        after = hashes(src.replace(old, new))
        assert after["hash-a"] == before["hash-a"] and after["hash-b"] != before["hash-b"], (old, new)
    after = hashes(src.replace("** -0.5", "** -0.25"))                                  # the shared helper
    assert after["hash-a"] != before["hash-a"] and after["hash-b"] != before["hash-b"]
    with_variant = src + 'C = B.variant(id="hash-c")\n'                                # B is read: it counts for A
    base = hashes(with_variant)
    after = hashes(with_variant.replace('(-0.7, -0.3)', '(-0.8, -0.2)'))
    assert after["hash-a"] != base["hash-a"]
    path.write_text(src)
    assert sweep.measured_source(path) != before["hash-a"]                              # no id: every claim counts


def test_family_wise_alpha_is_divided_over_every_verdict():
    from harness.engine.sweep import verdict_count
    a2 = get_claim("ntk-init-limit")         # 3 laws; two controls, each asked to refute one law
    assert verdict_count(a2) == 5 and verdict_count(a2, 2) == 10 and verdict_count(a2, 1, False) == 3


# -- CLI ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["run", "no-such-claim"], "unknown claim"),
    (["run", "ntk-drift", "--backend", "cupy"], "unknown backend"),
    (["run", "ntk-drift", "--tier", "huge"], "no tier"),
    (["run"], "at least one claim"),
    (["calibrate", "ntk-drift", "--runs", "0", "--backend", "jax"], "--runs"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, message):
    r = subprocess.run([sys.executable, "-m", "harness.engine.cli", *argv], capture_output=True, text=True)
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


def test_cli_cuda_without_cuda_is_exit_2():
    r = subprocess.run([sys.executable, "-m", "harness.engine.cli", "run", "ntk-drift", "--device", "cuda"],
                       capture_output=True, text=True)
    if "cuda" in r.stdout.lower() and r.returncode == 0:
        pytest.skip("CUDA is available here")
    assert r.returncode == 2 and "cuda" in r.stderr and r.stderr.strip().count("\n") == 0


@pytest.mark.claim
def test_cli_run_prints_the_family_wise_alpha(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness.engine.cli", "run", "ntk-init-limit", "--case", "relu", "--seeds",
                        "3", "--backend", "jax", "--store", str(tmp_path / "s.sqlite"), "--no-progress"],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode in (0, 1), r.stderr
    assert "family-wise alpha 0.05 over 5 verdicts" in r.stdout and "each law at 0.01" in r.stdout, r.stdout


@pytest.mark.claim
def test_calibrate_counts_apart_and_fails_when_the_bound_exceeds_alpha(tmp_path):
    """Two reruns bound the refutation rate by 0.78 at best: more than alpha, so calibrate exits 1; refuted and
    inconclusive are counted apart, the fresh base seed is printed, and the table is written."""
    r = subprocess.run([sys.executable, "-m", "harness.engine.cli", "calibrate", "ntk-init-limit", "--case", "relu",
                        "--seeds", "3", "--runs", "2", "--backend", "jax", "--workers", "1", "--no-progress",
                        "--store", str(tmp_path / "c.sqlite"), "--out", str(tmp_path / "cal")],
                       capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "repeat with --base-seed" in r.stdout and "inconclusive" in r.stdout and "refuted" in r.stdout
    assert "upper 95% bound" in r.stdout and (tmp_path / "cal" / "calibration.md").exists()


def test_cli_list_and_help():
    r = subprocess.run([sys.executable, "-m", "harness.engine.cli", "list"], capture_output=True, text=True)
    assert r.returncode == 0 and "ntk-drift" in r.stdout
    r = subprocess.run([sys.executable, "-m", "harness.engine.cli", "run", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--backend" in r.stdout


# -- power by design: the committed calibration records and the tiers' designs --------------------------------------
@functools.lru_cache(maxsize=1)
def _committed_design():
    """``claims docs``' design of the committed records (harness.engine.docs.design_rows), computed once per
    process for the checks below and the docs test (~25 s)."""
    from pathlib import Path
    from harness.engine.docs import design_rows
    return design_rows(Path(__file__).resolve().parent.parent / "calibration" / "ci")


def _committed_design_rows():
    from pathlib import Path
    from harness.engine.claim import package_claims
    from harness.engine.cli import load_records, scope_groups
    root = Path(__file__).resolve().parent.parent
    records = load_records([root / "calibration" / "ci"])
    reg = package_claims()          # not the toy claims other tests in this process have registered
    have = {(c, case) for (c, case, t) in records if t == "ci"}
    missing = [(cid, group) for cid, claim in reg.items() for group in list(claim.cases) + scope_groups(claim)
               if (cid, group) not in have]
    return missing, _committed_design()[0]


def test_committed_designs_give_the_headline_command_its_power():
    """Every registered claim has committed calibration records (calibration/ci: its cases, and its scope as the
    claim tests draw it), all current (measured by the claims' code as it is), and the tiers' sequential designs,
    applied to them (``claims design``), predict that `claims run --all` passes with probability >= 0.99 (issue
    21). A tier whose cap is lowered below what its records need, or a claim without records, fails here."""
    missing, rows = _committed_design_rows()
    assert not missing, f"no calibration records in calibration/ci of {missing}"
    assert all(r["fresh"] for r in rows), [(r["claim"], r["case"]) for r in rows if not r["fresh"]]
    cases = np.prod([r["predicted_pass"] for r in rows if not r["scope"]])
    assert cases >= 0.99, [(r["claim"], r["case"], r["predicted_pass"]) for r in rows if r["predicted_pass"] < 0.999]


def test_records_of_an_earlier_level_report_what_they_observed_at_it():
    """A claim joining the registry makes every law's level stricter; the records measured before it keep their
    observed pass counts, stated at the level they were measured at, while the prediction is at the current one."""
    from harness.engine.cli import design_markdown, design_table
    _, rows = _committed_design_rows()
    row = next(r for r in rows if r["claim"] == "ntk-ensemble-gp" and r["scope"])
    runs = [{**run, "law_alpha": 2 * row["law_alpha"]} for run in _ensemble_runs()]
    (later,) = design_table({("ntk-ensemble-gp", "scope", "ci"): dict(enumerate(runs))}, ["ntk-ensemble-gp"], "ci",
                            row["law_alpha"], draws=200)
    assert later["observed_runs"] == len(runs) and later["observed_alpha"] == 2 * row["law_alpha"]
    assert f"{later['observed_pass']}/{len(runs)} (" in design_markdown([later], row["law_alpha"], 1)
    assert f" at {2 * row['law_alpha']:.3g} |" in design_markdown([later], row["law_alpha"], 1)
    now = design_table({("ntk-ensemble-gp", "scope", "ci"): dict(enumerate(_ensemble_runs()))}, ["ntk-ensemble-gp"],
                       "ci", next(iter(_ensemble_runs()))["law_alpha"], draws=200)[0]
    assert " at " not in design_markdown([now], now["law_alpha"], 1).splitlines()[-1].split("|")[7]


def test_records_of_several_levels_report_each_levels_runs():
    """A group whose runs were measured at two levels (runs added after a claim joined) reports each level's runs
    apart, the current level's first: none is dropped from the observed counts (docs/calibration.md showed only the
    latest level's 70 of a group's 100 runs before)."""
    from harness.engine.cli import design_markdown, design_table
    runs = _ensemble_runs()
    now = runs[0]["law_alpha"]
    mixed = [{**r, "law_alpha": 2 * now} if i < 2 else r for i, r in enumerate(runs)]
    (row,) = design_table({("ntk-ensemble-gp", "scope", "ci"): dict(enumerate(mixed))}, ["ntk-ensemble-gp"], "ci",
                          now, draws=200)
    assert (row["observed_runs"], row["observed_alpha"]) == (len(runs) - 2, now)
    assert [(g["runs"], g["alpha"]) for g in row["observed_other"]] == [(2, 2 * now)]
    cell = design_markdown([row], now, 1).splitlines()[-1].split("|")[7]
    assert f"/{len(runs) - 2} (" in cell and f"/2 (" in cell and f" at {2 * now:.3g}" in cell


def _ensemble_runs():
    from pathlib import Path
    from harness.engine.cli import load_records
    root = Path(__file__).resolve().parent.parent
    return list(load_records([root / "calibration" / "ci"])[("ntk-ensemble-gp", "scope", "ci")].values())[:5]


def test_committed_designs_bound_the_claim_tests_false_fail_rate():
    """The claim tests fail a correct commit with predicted probability at most ``claimcheck.SUITE_FALSE_FAIL``:
    one minus the product of the scopes' predicted pass rates (tests/claimcheck.py states the computation)."""
    from claimcheck import SUITE_FALSE_FAIL
    _, rows = _committed_design_rows()
    scopes = np.prod([r["predicted_pass"] for r in rows if r["scope"]])
    assert 1 - scopes <= SUITE_FALSE_FAIL, [(r["claim"], r["case"], r["predicted_pass"]) for r in rows
                                           if r["scope"] and r["predicted_pass"] < 0.999]


def test_committed_docs_are_what_claims_docs_writes(tmp_path):
    """docs/claims.md and docs/calibration.md are generated (`claims docs`) from the registry and the committed
    calibration records: a claim edited without regenerating them fails here."""
    from pathlib import Path
    from harness.engine.docs import write_docs
    root = Path(__file__).resolve().parent.parent
    for path in write_docs(tmp_path, root / "calibration" / "ci", design=_committed_design()):
        committed = root / "docs" / path.name
        assert committed.exists() and committed.read_text() == path.read_text(), \
            f"docs/{path.name} is not what `claims docs` writes: run `claims docs` and commit it"


# -- the sequential design in the engine -----------------------------------------------------------------------------
def _noisy_measure(setting, backend):
    rng = np.random.default_rng(setting.seed)
    return {"x": float(setting.scale ** setting.premise["e"] * np.exp(0.3 * rng.standard_normal()))}


def _sequential_toy():
    return Claim(id="toy-sequential", title="t", paper="p", statement="s", premise={"e": -0.5}, scale_name="n",
                 measure=_noisy_measure, laws=(PowerLaw("r", "x", (-0.6, -0.4)),),
                 controls=(Control("flat", {"e": 0.0}, "no decay"),), outputs=("x",),
                 tiers={"ci": Tier((4, 16, 64, 256), 4, max_seeds=64, control_seeds=3)})


def test_sequential_design_adds_looks_until_decided_and_replays_from_the_store(tmp_path):
    """A noisy claim needs more than its first batch: it measures look after look (4, 8, 16... seeds per scale),
    each law at alpha / looks, and stops when decided; a control stops at its first refutation. Rerun, it measures
    nothing new; replayed at a less strict level it stops no later and needs no new point; the report replays it
    from the store alone."""
    from harness.engine.sweep import plan, replay, run_claim as run
    claim = _sequential_toy()
    assert claim.tier("ci").looks() == (4, 8, 16, 32, 64) and claim.tier("ci").looks("flat") == (3, 6, 12, 24, 48, 64)
    with Store(tmp_path / "s.sqlite") as store:
        (r,) = run(claim, "ci", "jax", store=store, alpha=0.001)
        n = store.count()
        law = r.claim_result.laws[0]
        assert r.verdict == "holds" and law.seeds > 4 and law.looks == 5
        assert law.alpha == pytest.approx(r.law_alpha / 5) and law.seeds == r.claim_result.looks[law.look - 1]
        flat = r.controls[0]
        assert flat.verdict == "rejected" and flat.seeds < law.seeds
        assert n == 4 * (law.seeds + flat.seeds)                  # every point measured once, none beyond the stop
        (again,) = run(claim, "ci", "jax", store=store, alpha=0.001)
        assert store.count() == n and again.claim_result.laws[0] == law
        (loose,) = run(claim, "ci", "jax", store=store, alpha=0.2)
        assert store.count() == n and loose.claim_result.laws[0].seeds <= law.seeds
        (planned,) = plan([claim], "ci", ["jax"])
        replayed = replay(planned, store, 0.001, r.law_alpha, r.verdicts)
        assert replayed.claim_result.laws[0] == law and replayed.controls[0].seeds == flat.seeds


def test_the_power_predictions_t_quantile_is_scipys():
    """`claims design` simulates intervals with the t quantile at thousands of drawn degrees of freedom per call,
    through a spline of scipy's (harness.engine.power._t_quantile): within 2e-9 relative of ``stats.t.ppf`` over
    df 0.5..1e8 at the levels the designs use, and exactly scipy's outside that range."""
    from scipy import stats
    from harness.engine.power import _t_quantile
    rng = np.random.default_rng(3)
    for p in (0.6, 0.975, 1 - 0.000495 / 2, 1 - 0.000495 / 12, 1 - 1e-7):
        df = np.exp(rng.uniform(np.log(0.5), np.log(1e8), 20000))
        np.testing.assert_allclose(_t_quantile(p, df), stats.t.ppf(p, df), rtol=2e-9)
    outside = np.array([0.2, 0.4, 2e8])
    np.testing.assert_array_equal(_t_quantile(0.975, outside), stats.t.ppf(0.975, outside))
