"""`claims reverify`: calibration records carried across a change that keeps every number, and only then."""
import json
import sqlite3

from test_user_claims import cli, one_line_error

TOY = '''
import numpy as np
from harness import Claim, Control, PowerLaw, Tier


def measure(setting, backend):
    rng = np.random.default_rng(setting.seed)
    p = setting.premise
    EDIT
    return {"value": float(setting.scale ** p["slope"] * np.exp(p["noise"] * rng.standard_normal()))}


TOY = Claim(
    id="toy-reverify", title="toy", paper="none", statement="value ~ scale^-1/2",
    premise=dict(slope=-0.5, noise=0.01), scale_name="n", measure=measure,
    laws=(PowerLaw("rate", "value", (-0.6, -0.4)),),
    controls=(Control("flat", {"slope": 0.0}, "no decay"),),
    tiers={"ci": Tier(scales=(4, 16, 64), seeds=3, max_seeds=6)},
    scope={"noise": (0.01, 0.02)},
)
'''


def _design(f, cal):
    r = cli("design", "toy-reverify", "--path", f, "--from", cal, "--draws", "50")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_records_are_carried_only_when_the_new_code_gives_the_same_points(tmp_path):
    f, store, cal = tmp_path / "toy.py", tmp_path / "s.sqlite", tmp_path / "cal"
    f.write_text(TOY.replace("EDIT", "pass"))
    for extra, out in (([], cal / "cases"), (["--scope"], cal / "scope")):
        r = cli("calibrate", "toy-reverify", "--path", f, "--runs", "3", "--base-seed", "100", "--backend", "jax",
                "--workers", "1", "--no-progress", "--store", store, "--out", out, *extra)
        assert r.returncode in (0, 1), r.stderr
    assert "STALE" not in _design(f, cal)
    r = cli("reverify", "--path", f, "--from", cal, "--store", store)
    assert r.returncode == 0 and "nothing to reverify" in r.stdout, (r.stdout, r.stderr)

    # a change that keeps every number: the records go stale, then are carried with the evidence
    f.write_text(TOY.replace("EDIT", "unused = 2 * 1"))
    assert "STALE" in _design(f, cal)
    r = cli("reverify", "toy-reverify", "--path", f, "--from", cal, "--store", store, "--workers", "1",
            "--no-progress", "--write")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.count(": carried (") == 2 and "largest relative difference 0" in r.stdout, r.stdout
    assert "STALE" not in _design(f, cal)
    data = json.loads((cal / "cases" / "calibration.json").read_text())
    (note,) = data["meta"]["carried"]
    assert note["reproduced_base_seeds"] == [101, 102] and note["points"] > 0 and note["max_rel_diff"] == 0
    assert all(run["measured_by"] == note["from"] and run["code"] == note["to"] for run in data["runs"])

    # a change of one part in a million: the points differ, nothing is written, exit 1
    f.write_text(TOY.replace("EDIT", "p = {**p, 'slope': p['slope'] * (1 + 1e-6)}"))
    before = (cal / "cases" / "calibration.json").read_text()
    r = cli("reverify", "toy-reverify", "--path", f, "--from", cal, "--store", store, "--workers", "1",
            "--no-progress", "--write")
    assert r.returncode == 1 and r.stdout.count(": differs (") == 2, (r.stdout, r.stderr)
    assert (cal / "cases" / "calibration.json").read_text() == before and "STALE" in _design(f, cal)

    # a store without the old code's points cannot vouch for anything
    sqlite3.connect(tmp_path / "empty.sqlite").close()
    f.write_text(TOY.replace("EDIT", "unused = 3"))
    r = cli("reverify", "toy-reverify", "--path", f, "--from", cal, "--store", tmp_path / "empty.sqlite",
            "--workers", "1", "--no-progress")
    assert r.returncode == 1 and ": no points (" in r.stdout, (r.stdout, r.stderr)
    # records restamped by another hashing of the same source: no key matches, the setting does (--by-identity)
    data = json.loads((cal / "scope" / "calibration.json").read_text())
    for run in data["runs"]:
        run["code"] = "0123456789abcdef"
    (cal / "scope" / "calibration.json").write_text(json.dumps(data))
    f.write_text(TOY.replace("EDIT", "unused = 2 * 1"))
    args = ("reverify", "toy-reverify", "--path", f, "--from", cal / "scope", "--store", tmp_path / "empty.sqlite",
            "--store", store, "--workers", "1", "--no-progress")
    r = cli(*args)
    assert r.returncode == 1 and ": no points (" in r.stdout, (r.stdout, r.stderr)
    r = cli(*args, "--by-identity", "--write")
    assert r.returncode == 0 and ": carried (" in r.stdout, (r.stdout, r.stderr)
    note = json.loads((cal / "scope" / "calibration.json").read_text())["meta"]["carried"][-1]
    assert note["old_points"].startswith("by setting") and note["from"] == "0123456789abcdef"
    one_line_error(cli("reverify", "--path", f, "--from", cal, "--store", tmp_path / "nowhere.sqlite"), "--store")
    one_line_error(cli("reverify", "--path", f, "--from", cal, "--store", store, "--runs", "0"), "--runs")
