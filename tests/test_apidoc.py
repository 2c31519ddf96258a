"""The API reference, docs/api.md (issue 25): generated from the code by `claims docs`, so it cannot fall behind it.
The committed file is what the generator writes; every name it documents has a docstring of its own (or, for an
override, its base's); every op of every backend's ops class is in its table, found here by reading the backends'
source (not by the generator's own introspection); and generating it loads no framework."""
import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from harness.backends import BACKENDS
from harness.engine import apidoc
from harness.engine.docs import write_docs

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api.md"


def test_claims_docs_writes_the_committed_api_reference(tmp_path):
    """`claims docs` writes docs/api.md, and the committed file is what it writes (test_engine.py's
    test_committed_docs_are_what_claims_docs_writes checks all three pages against the calibration records; this
    one needs none, so a docstring edited without regenerating fails here in a second)."""
    written = {p.name: p for p in write_docs(tmp_path, tmp_path / "no-records")}
    assert "api.md" in written
    assert API.exists() and API.read_text() == written["api.md"].read_text() == apidoc.api_markdown(), \
        "docs/api.md is not what `claims docs` writes: run `claims docs` and commit it"


def test_every_documented_name_has_a_docstring():
    """Every module, class, function, method and property the reference lists says what it is: its own docstring
    (not the ``Name(field, ...)`` one dataclasses and NamedTuple make up), or an override's base's."""
    entries = apidoc.documented()
    assert len(entries) > 100
    gaps = [name for name, _, doc in entries if not doc.strip()]
    assert not gaps, f"no docstring (write one, then run `claims docs`): {', '.join(gaps)}"


def test_the_required_areas_are_documented():
    """The areas issue 25 names are in the reference, with the names a model's or claim's author uses."""
    text = API.read_text()
    for module in ("harness.models", "harness.parametrisation", "harness.backends", "harness.optim",
                   "harness.losses", "harness.analytic", "harness.engine.claim", "harness.engine.laws"):
        assert f"`{module}`" in text, module
    names = {q.rsplit(".", 1)[-1] for q, _, _ in apidoc.documented()}
    for name in ("Model", "MLP", "FunctionModel", "OutputScaled", "output_scaled", "Backend", "ntk", "train",
                 "Optimizer", "sgd", "adam", "mse", "mlp_kernels", "Claim", "Control", "Tier", "Setting", "Law",
                 "PowerLaw", "AtScale", "EveryScale", "Increasing", "Proportion"):
        assert name in names, name
    if importlib.util.find_spec("harness.montecarlo") is not None:
        assert "`harness.montecarlo`" in text


def _ops_in_source(module: str) -> set:
    """The ops a backend module's ops class defines, read from its source: its public methods, the names its
    ``__init__`` sets in a loop over a tuple of names, and the ``self.name = ...`` it assigns (not the framework
    modules it is given)."""
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Ops")]
    assert len(classes) == 1, f"{module}: {len(classes)} ops classes"
    ops = set()
    for node in classes[0].body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if not node.name.startswith("_"):
            ops.add(node.name)
        if node.name != "__init__":
            continue
        modules = {a.arg for a in node.args.args[1:]}
        for sub in ast.walk(node):
            if isinstance(sub, ast.For) and isinstance(sub.iter, ast.Tuple):
                ops |= {e.value for e in sub.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
            if isinstance(sub, ast.Assign) and not (isinstance(sub.value, ast.Name) and sub.value.id in modules):
                ops |= {t.attr for t in sub.targets if isinstance(t, ast.Attribute)
                        and isinstance(t.value, ast.Name) and t.value.id == "self" and not t.attr.startswith("_")}
    return ops


def test_every_op_of_every_backend_is_in_the_api_reference():
    """The ops table of docs/api.md has a row for every op any backend defines, and each backend's column says
    whether it has it (a framework function or "method" where it does, "-" where it does not)."""
    text = API.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| op |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[1:-1] == list(BACKENDS), columns
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `(\w+)` \|(.*)\|$", line)
        if m and line.count("|") == len(columns) + 1:
            rows[m.group(1)] = [c.strip() for c in m.group(2).split("|")]
    source = {b: _ops_in_source(module) for b, (module, _, _) in BACKENDS.items()}
    assert all(len(ops) > 20 for ops in source.values()), source
    every = set().union(*source.values())
    assert set(rows) == every, f"in the table but defined by no backend: {sorted(set(rows) - every)}; " \
                               f"defined but not in the table: {sorted(every - set(rows))}"
    for i, (b, ops) in enumerate(source.items()):
        for op in every:
            assert (rows[op][i] != "-") == (op in ops), (b, op, rows[op])
        for op in ops:
            assert rows[op][-1] == ("yes" if all(op in o for o in source.values()) else "no"), (op, rows[op])


def test_every_link_in_the_api_reference_resolves_and_no_address_leaks():
    text = API.read_text()
    ids = set(re.findall(r'<a id="([^"]+)"></a>', text))
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and not links - ids, sorted(links - ids)
    assert not re.search(r"0x[0-9a-fA-F]{6,}", text), "a default value's repr holds a memory address"


def test_generating_the_api_reference_loads_no_framework():
    """The page depends on the code only: built on stand-ins for the framework modules, never torch or jax."""
    code = ("import sys; from harness.engine.apidoc import api_markdown; api_markdown(); "
            "bad = [m for m in ('torch', 'jax', 'jaxlib') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
