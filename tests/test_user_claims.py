"""A new paper's claim in one file of the user's own (``--path``, ``CLAIMS_PATH``), and the authoring API's checks:
each mistake a user makes is a one-line error naming the file, the claim and the field, before any point is
measured. The README's "write your own claim" example is run here, from a file outside the package, on both
backends."""
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import selected_backends
from harness import AtScale, Claim, Control, EveryScale, HarnessError, PowerLaw, Tier, run_claim
from harness.engine.store import Store

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "harness.engine.cli"]


def cli(*argv, env=None, **kw):
    return subprocess.run([*CLI, *map(str, argv)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1", **(env or {})}, **kw)


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- example-claim: start.*?-->\s*```python\n(.*?)```\s*<!-- example-claim: end -->", text,
                      re.S)
    assert block, "README lost its example claim block"
    return block.group(1)


# A small claim file; each mistake test edits one field of it.
TEMPLATE = '''
import numpy as np
from harness import AtScale, Claim, Control, PowerLaw, Tier


def measure(setting, backend):
    rng = np.random.default_rng(setting.seed)
    return {{"value": float(setting.scale ** -0.5 * np.exp(0.1 * rng.standard_normal()))}}


TOY = Claim(
    id="{id}", title="toy", paper="none", statement="value ~ scale^-1/2",
    premise=dict(slope=-0.5, noise=0.1),
    scale_name="n", measure={measure},
    laws=(PowerLaw("rate", "{statistic}", (-0.6, -0.4)),{extra_law}),
    controls=(Control("flat", {flip}, "no decay"),),
    tiers={{"ci": Tier(scales=(4, 16, 64), seeds=3{overrides})}},
    {outputs}
)
'''


def toy_file(tmp_path, name="toy.py", **edits):
    fields = dict(id="toy-claim", measure="measure", statistic="value", extra_law="", flip='{"slope": 0.0}',
                  overrides="", outputs="")
    fields.update(edits)
    path = tmp_path / name
    path.write_text(TEMPLATE.format(**fields))
    return path


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# -- the README walk-through --------------------------------------------------------------------------------------
@pytest.mark.claim
def test_readme_example_claim_runs_from_a_user_file_on_both_backends(tmp_path):
    """The README's example, saved outside the package, holds on every selected backend and its control is
    rejected; `claims list --path` shows it, and CLAIMS_PATH finds it too."""
    folder = tmp_path / "my_claims"
    folder.mkdir()
    (folder / "nngp.py").write_text(readme_example())
    backends = ",".join(selected_backends())
    r = cli("run", "nngp-output-variance", "--path", folder, "--backend", backends, "--store",
            tmp_path / "s.sqlite", "--no-progress", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert len(re.findall(r"seeds=8: holds", r.stdout)) == len(selected_backends()) and "control mean-field: rejected" in r.stdout
    listed = cli("list", env={"CLAIMS_PATH": str(folder)}, cwd=tmp_path)
    assert listed.returncode == 0 and "nngp-output-variance" in listed.stdout and str(folder.resolve()) in listed.stdout


def test_readme_harness_block_runs_on_each_backend():
    """The README's harness example runs as written (on each selected backend in turn), so it cannot drift from
    the API."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- harness-example.*?-->\s*```python\n(.*?)```", text, re.S)
    assert block, "README lost its harness example"
    for name in selected_backends():
        code = block.group(1).replace('get_backend("jax"', f'get_backend("{name}"')
        scope: dict = {}
        exec(compile(code, "README.md", "exec"), scope)
        assert scope["run"].history["ntk"][-1].shape == (16, 16)


def test_readme_architectures_block_runs():
    """The README's lines about the CNN, the transformer and the residual MLP run as written."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- architectures-example.*?-->\s*```python\n(.*?)```", text, re.S)
    assert block, "README lost its architectures example"
    scope: dict = {}
    exec(compile(block.group(1), "README.md", "exec"), scope)
    import numpy as np
    k = scope["cnn"].analytic_kernels(np.random.default_rng(0).standard_normal((3, 8, 8, 3)))
    assert k.ntk.shape == (3, 3) and scope["Transformer"] and scope["ResMLP"]


# -- user files -------------------------------------------------------------------------------------------------
def test_list_output_is_not_cut_when_piped():
    r = cli("list")
    assert r.returncode == 0
    ids = [line.split("\t")[0] for line in r.stdout.splitlines()]
    assert "ntk-linearization" in ids and "diag-l1-l2-limits" in ids


def test_broken_user_file_is_one_line_and_skipped_where_not_needed(tmp_path):
    good = toy_file(tmp_path, "good.py")
    (tmp_path / "broken.py").write_text("import numpy as np\nraise RuntimeError('half-written claim')\n")
    r = cli("list", "--path", tmp_path)
    assert r.returncode == 0 and "toy-claim" in r.stdout
    assert r.stderr.count("\n") == 1 and "broken.py:2" in r.stderr and "half-written claim" in r.stderr
    r = cli("run", "--path", tmp_path / "broken.py", "--backend", "jax")
    one_line_error(r, "broken.py:2", "RuntimeError")
    r = cli("run", "--all", "--path", tmp_path, "--backend", "jax")
    assert r.returncode == 2 and "broken.py" in r.stderr
    assert good.exists()


def test_duplicate_id_and_file_without_claims_are_errors(tmp_path):
    toy_file(tmp_path, "a.py")
    toy_file(tmp_path, "b.py")
    one_line_error(cli("run", "toy-claim", "--path", tmp_path, "--backend", "jax"), "b.py", "toy-claim",
                   "already defined", "a.py")
    one_line_error(cli("run", "ntk-drift", "--path", toy_file(tmp_path, "c.py", id="ntk-drift"), "--backend", "jax"),
                   "c.py", "ntk-drift", "already defined")
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    one_line_error(cli("run", "--path", empty, "--all", "--backend", "jax"), "empty.py", "defines no Claim")
    one_line_error(cli("list", "--path", tmp_path / "nowhere"), "nowhere", "no such")


@pytest.mark.parametrize("edit, needles, at", [
    (dict(flip='{"slop": 0.0}'), ["control flat: flip", "'slop'", "not a premise setting"], "Control("),
    (dict(overrides=', overrides={"nois": 0.2}'), ["tier ci: overrides", "'nois'"], "Tier("),
    (dict(extra_law=' AtScale("at-32", "value", (0, 1), scale=32)'), ["law at-32", "scale 32", "tier ci"],
     "laws=("),
    (dict(outputs='outputs=("value",),', statistic="valeu"), ["law rate", "'valeu'", "declared outputs"], "laws=("),
    (dict(overrides=", max_seeds=2"), ["tier ci has max_seeds=2", "below its first batch"], "Tier("),
])
def test_declaration_mistakes_are_one_line_naming_file_claim_and_field(tmp_path, edit, needles, at):
    """Each mistake is one line naming the file and the line of the offending Control, Tier or law (not the
    ``Claim(`` call around it), the claim and the field, before any point is measured."""
    path = toy_file(tmp_path, **edit)
    store = tmp_path / "s.sqlite"
    line = one_line_error(cli("run", "toy-claim", "--path", path, "--backend", "jax", "--store", store), *needles)
    lineno = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if at in text)
    assert f"toy.py:{lineno}:" in line and "toy-claim" in line
    assert not store.exists() or Store(store).count() == 0, "a point was measured before the error"


def test_law_on_a_statistic_the_measure_does_not_return_fails_on_the_first_point(tmp_path):
    """Undeclared outputs: one point is measured alone (the dry run) and the error comes before the sweep."""
    path = toy_file(tmp_path, statistic="valeu")
    store = tmp_path / "s.sqlite"
    one_line_error(cli("run", "toy-claim", "--path", path, "--backend", "jax", "--store", store, "--workers", "1"),
                   "toy-claim", "'valeu'")
    with Store(store) as s:
        assert s.count() == 0


def test_measure_omitting_a_declared_output_at_one_scale_names_the_point(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(TEMPLATE.format(id="toy-claim", statistic="value", extra_law="", flip='{"slope": 0.0}',
                                    overrides="", outputs='outputs=("value",),', measure="measure") +
                    "\n\ndef partial(setting, backend):\n    return {} if setting.scale == 64 else "
                    "measure(setting, backend)\n\nTOY = TOY.variant(measure=partial)\n")
    line = one_line_error(cli("run", "toy-claim", "--path", path, "--backend", "jax", "--store", tmp_path / "s.db",
                              "--workers", "1"), "toy-claim", "'value'", "at 64")
    assert "Traceback" not in line


def test_nan_measurement_is_named_in_the_note(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(TEMPLATE.format(id="toy-claim", statistic="value", extra_law="", flip='{"slope": 0.0}',
                                    overrides="", outputs="", measure="measure") +
                    "\n\ndef nan_at_16(setting, backend):\n    out = measure(setting, backend)\n"
                    "    return {'value': float('nan')} if setting.scale == 16 else out\n\n"
                    "TOY = TOY.variant(measure=nan_at_16)\n")
    r = cli("run", "toy-claim", "--path", path, "--backend", "jax", "--store", tmp_path / "s.db", "--workers", "1")
    assert r.returncode == 1, r.stderr
    assert "inconclusive" in r.stdout and "value is NaN or infinite at 3 point(s): scale 16 seed" in r.stdout
    # reported as the first NaN point arrives, with its setting, before the verdicts
    warning = re.search(r"toy-claim \[default\] jax claim: 'value' is NaN or infinite at n 16, seed \d+ "
                        r"\(replicate \d\): the first such point of this variant; the laws rate read it", r.stdout)
    assert warning and r.stdout.count("jax claim: 'value' is NaN") == 1       # once per variant
    assert r.stdout.count("jax flat: 'value' is NaN") == 1
    assert warning.start() < r.stdout.index("toy-claim [default] jax/cpu")


def test_a_measurement_no_law_reads_at_a_scale_is_not_measured_there(tmp_path):
    """A measurement read by a law at one scale only (``AtScale``) may be None (or NaN) elsewhere: not measured
    there by declaration, it is neither warned about nor named as non-finite, and the claim holds."""
    path = tmp_path / "toy.py"
    path.write_text(TEMPLATE.format(id="toy-claim", statistic="value", flip='{"slope": 0.0}', overrides="",
                                    extra_law=' AtScale("at-64", "extra", (0.5, 1.5), scale=64)', outputs="",
                                    measure="measure") +
                    "\n\ndef extra_at_64(setting, backend):\n    out = measure(setting, backend)\n"
                    "    extra = 1.0 + 0.01 * np.random.default_rng(setting.seed).standard_normal()\n"
                    "    return {**out, 'extra': extra if setting.scale == 64 else None}\n\n"
                    "TOY = TOY.variant(measure=extra_at_64)\n")
    r = cli("run", "toy-claim", "--path", path, "--backend", "jax", "--store", tmp_path / "s.db", "--workers", "1",
            "--seeds", 8)
    assert r.returncode in (0, 1), (r.stdout, r.stderr)
    assert re.search(r"claim at-64 +[0-9.]+ \[.*\] in \[0\.5, 1\.5\]: holds", r.stdout), r.stdout
    assert "NaN" not in r.stdout and "non-finite" not in r.stdout


def test_pilot_prints_a_runs_points_and_stores_nothing(tmp_path):
    """`claims pilot` measures the points `claims run` would (the same derived seeds, the same values), prints
    their outputs and time, and writes no store; :func:`pilot` in Python gives the same; bad input is one line."""
    from harness.engine.pilot import pilot
    path = toy_file(tmp_path)
    r = cli("pilot", "toy-claim", "--path", path, "--scale", 16, "--seeds", 2, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["16", "16"] and not (tmp_path / "results").exists()
    store = tmp_path / "s.sqlite"
    assert cli("run", "toy-claim", "--path", path, "--backend", "jax", "--store", store, "--workers", "1",
               "--seeds", 3).returncode in (0, 1)
    import sqlite3
    with sqlite3.connect(store) as db:
        stored = dict(db.execute("SELECT seed, result FROM points WHERE scale = 16 AND variant = 'claim' "
                                 "AND replicate < 2").fetchall())
    import json
    for row in rows:
        assert int(row[1]) in stored
        assert float(row[3]) == pytest.approx(json.loads(stored[int(row[1])])["value"]["data"][0], rel=1e-3)
    (point,) = pilot(_toy(id="py-toy-pilot"), [16], backend="jax", seed=5)
    assert point.setting.seed == 5 and point.setting.scale == 16 and set(point.outputs) == {"value"}
    one_line_error(cli("pilot", "toy-claim", "--path", path, "--set", "slop=1"), "no premise setting 'slop'")
    one_line_error(cli("pilot", "toy-claim", "--path", path, "--variant", "nope"), "no control 'nope'")
    one_line_error(cli("pilot", "toy-claim", "--path", path, "--backend", "all"), "one backend")
    one_line_error(cli("pilot", "toy-claim", "--path", path, "--backend", "torch,jax"), "one backend")


def test_list_shows_your_own_claims_first(tmp_path):
    r = cli("list", "--path", toy_file(tmp_path))
    assert r.returncode == 0 and r.stdout.splitlines()[0].startswith("toy-claim\t")


# -- the authoring API in Python ----------------------------------------------------------------------------------
def _toy(**changes):
    def measure(setting, backend):
        rng = np.random.default_rng(setting.seed)
        slope = setting.premise["slope"]
        return {"value": float(setting.scale ** slope * np.exp(0.05 * rng.standard_normal()))}
    base = dict(id="py-toy", title="toy", paper="none", statement="s", premise=dict(slope=-0.5),
                scale_name="n", measure=measure, laws=(PowerLaw("rate", "value", (-0.6, -0.4)),),
                controls=(Control("flat", {"slope": 0.0}, "no decay"),),
                tiers={"ci": Tier(scales=(4, 16, 64), seeds=4)})
    base.update(changes)
    return Claim(**base)


def test_a_claim_built_in_python_runs_directly(tmp_path):
    (r,) = run_claim(_toy(), "ci", "jax", store=Store(tmp_path / "s.sqlite"))
    assert r.verdict == "holds" and r.controls_rejected


def test_typo_in_a_control_flip_is_refused_at_construction():
    with pytest.raises(HarnessError, match=r"claim py-toy: control flat: flip names 'slop'"):
        _toy(controls=(Control("flat", {"slop": 0.0}, "typo"),))


def test_law_with_prediction_range_and_cases(tmp_path):
    """predicted(scale, premise) divides each point; scale_range restricts the scales; cases restricts a law;
    under a control the prediction is the claim's unless the control says otherwise."""
    def measure(setting, backend):
        rng = np.random.default_rng(setting.seed)
        amp = setting.premise["amp"]
        bend = setting.scale if setting.scale <= 64 else 64.0       # the power law holds only up to 64
        return {"value": float(amp * bend ** -0.5 * np.exp(0.01 * rng.standard_normal()))}

    def predicted(scale, premise):
        return premise["amp"] * min(scale, 64.0) ** -0.5

    claim = Claim(
        id="py-expressive", title="t", paper="p", statement="s", premise=dict(amp=2.0), scale_name="n",
        measure=measure,
        laws=(PowerLaw("rate", "value", (-0.55, -0.45), scale_range=(None, 64)),
              EveryScale("matches", "value", (0.95, 1.05), predicted=predicted),
              AtScale("big-amp", "value", (0.75, None), scale=4, cases=("big",))),
        controls=(Control("half", {"amp": 1.0}, "the amplitude is the prediction's"),
                  Control("half-own", {"amp": 1.0}, "its own prediction: still matches", refutes=("matches",),
                          prediction="control")),
        tiers={"ci": Tier(scales=(4, 16, 64, 256), seeds=8)},
        cases={"big": {"amp": 2.0}, "small": {"amp": 0.5}})
    big, small = run_claim(claim, "ci", "jax", store=Store(tmp_path / "s.sqlite"))
    assert [x.law for x in big.claim_result.laws] == ["rate", "matches", "big-amp"]
    assert [x.law for x in small.claim_result.laws] == ["rate", "matches"]
    assert big.verdict == "holds" and small.verdict == "holds", [(x.law, x.verdict, x.estimate.low, x.estimate.high, x.note) for x in big.claim_result.laws + small.claim_result.laws]
    ctrl = {c.variant: c for c in big.controls}
    assert ctrl["half"].verdict == "rejected"                   # amp 1 against the claim's prediction (amp 2)
    assert ctrl["half-own"].verdict == "not rejected"           # against its own prediction it matches
    with pytest.raises(HarnessError, match="cases names 'huge'"):
        claim.variant(laws=(PowerLaw("r", "value", (-1, 0), cases=("huge",)),))


SCOPED = '''
import numpy as np
from harness import Claim, Control, PowerLaw, Tier


def measure(setting, backend):
    rng = np.random.default_rng(setting.seed)
    p = setting.premise
    return {"value": float(setting.scale ** p["slope"] * np.exp(p["noise"] * rng.standard_normal()))}


SCOPED = Claim(
    id="toy-scoped", title="toy", paper="none", statement="value ~ scale^-1/2",
    premise=dict(slope=-0.5, noise=0.01), scale_name="n", measure=measure,
    laws=(PowerLaw("rate", "value", (-0.6, -0.4)),),
    controls=(Control("flat", {"slope": 0.0}, "no decay"),),
    tiers={"ci": Tier(scales=(4, 16, 64), seeds=3)},
    scope={"noise": (0.01, 3.0)},
)
'''


def test_calibrate_over_the_scope_draws_premises_and_names_each_run_that_missed(tmp_path):
    """`claims calibrate --scope` draws every run's premise from the scope (here a quiet and a hopelessly noisy
    setting): the quiet draws hold, the noisy ones cannot, and each of those is listed with its drawn premise."""
    f = tmp_path / "scoped.py"
    f.write_text(SCOPED)
    r = cli("calibrate", "toy-scoped", "--path", f, "--scope", "--runs", "8", "--base-seed", "100", "--backend",
            "jax", "--workers", "1", "--no-progress", "--store", tmp_path / "c.sqlite", "--out", tmp_path / "cal")
    assert r.returncode in (0, 1), r.stderr
    import json
    (row,) = json.loads((tmp_path / "cal" / "calibration.json").read_text())["rows"]
    # at the claim's own run alpha (at the --all level, 3 seeds cannot confirm even the quiet draws)
    noises = [m["premise"]["noise"] for m in row["not_ok"] if m["level"] == "own"]
    assert row["case"] == "scope" and row["runs"] == 8 and row["levels"]["own"]["holds"] == 8 - len(noises)
    assert 0 < len(noises) < 8 and set(noises) == {3.0}, row        # exactly the noisy draws miss
    assert "premise {'noise': 3.0}" in r.stdout and "premise `{'noise': 3.0}`" in (tmp_path / "cal" / "calibration.md").read_text()
    one_line_error(cli("calibrate", "toy-scoped", "--path", f, "--scope", "--case", "default", "--backend", "jax"),
                   "--scope")


def test_a_claim_declaring_one_backend_runs_there_and_is_skipped_elsewhere(tmp_path):
    """A claim about a model that exists in one framework declares it: `--backend all` runs it there and says
    which backend it skipped and why; asked for the other backend alone, it is a one-line error; `claims list`
    shows its backends; an unknown backend name is refused at construction."""
    path = tmp_path / "toy.py"
    path.write_text(TEMPLATE.format(id="toy-claim", statistic="value", extra_law="", flip='{"slope": 0.0}',
                                    overrides="", measure="measure", outputs='backends=("torch",),'))
    store = tmp_path / "s.db"
    r = cli("run", "toy-claim", "--path", path, "--backend", "all", "--store", store, "--workers", "1")
    assert r.returncode in (0, 1), r.stderr
    assert "skipped toy-claim on jax: the claim declares backends torch" in r.stdout
    assert "toy-claim [default] torch/cpu" in r.stdout and "jax/cpu" not in r.stdout
    one_line_error(cli("run", "toy-claim", "--path", path, "--backend", "jax", "--store", store),
                   "toy-claim runs on torch only")
    one_line_error(cli("pilot", "toy-claim", "--path", path, "--backend", "jax"), "toy-claim runs on torch only")
    listed = cli("list", "--path", path).stdout.splitlines()[0].split("\t")
    assert listed[0] == "toy-claim" and listed[5] == "torch"
    with pytest.raises(HarnessError, match="backends must be a tuple of backend names"):
        _toy(backends=("tensorflow",))


def test_readme_own_model_claim_runs_from_a_user_file_on_torch(tmp_path):
    """The README's claim about a torch network of the user's own (through harness.adapters and
    harness.widths), saved outside the package: on --backend all it holds on torch, its control is rejected, and
    jax is skipped with the reason."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- own-model-example: start.*?-->\s*```python\n(.*?)```\s*<!-- own-model-example: end -->",
                      text, re.S)
    assert block, "README lost its own-model example"
    from conftest import get_selected_backend
    get_selected_backend("torch")                    # skips (or fails) as HARNESS_BACKENDS says
    (tmp_path / "my_net.py").write_text(block.group(1))
    r = cli("run", "my-net-mup-coord-check", "--path", tmp_path / "my_net.py", "--backend", "all", "--store",
            tmp_path / "s.sqlite", "--no-progress", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "skipped my-net-mup-coord-check on jax: the claim declares backends torch" in r.stdout
    assert "torch/cpu tier=ci" in r.stdout and "control standard: rejected" in r.stdout


@pytest.mark.claim
def test_a_flax_model_claim_runs_from_a_user_file_on_jax(tmp_path):
    """A flax network of the user's own through a claim in the user's own file (tests/user_models, copied outside
    the package): on --backend all it holds on jax, its control is rejected, and torch is skipped with the
    reason."""
    from conftest import get_selected_backend
    get_selected_backend("jax")                      # skips (or fails) as HARNESS_BACKENDS says
    src = ROOT / "tests" / "user_models" / "my_flax_claim.py"
    (tmp_path / "my_flax.py").write_text(src.read_text())
    r = cli("run", "my-flax-net-mup-coord-check", "--path", tmp_path / "my_flax.py", "--backend", "all", "--store",
            tmp_path / "s.sqlite", "--no-progress", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "skipped my-flax-net-mup-coord-check on torch: the claim declares backends jax" in r.stdout
    assert "jax/cpu tier=ci" in r.stdout and "control standard: rejected" in r.stdout
