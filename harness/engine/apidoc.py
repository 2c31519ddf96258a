"""The API reference, ``docs/api.md``, generated from the code: signatures, dataclass fields and docstrings of the
public names a user (a model's or a claim's author) calls, and the ``ops`` namespace read off each backend's ops
class. ``claims docs`` writes it (:func:`harness.engine.docs.write_docs`), and ``tests/test_engine.py`` and
``tests/test_apidoc.py`` check that the committed file is what it writes, that every name it lists has a
docstring and that every op of every backend is in it, so the reference cannot fall behind the code.

What is documented is :data:`SECTIONS`, one entry per area in the order of the page: a module and either the
names to take from it or (``names=None``) every public class and function it defines, in the order it defines them
(``keep`` narrows that, as for the laws: every :class:`~harness.engine.laws.Law` class). A module that is
``optional`` is left out while it does not exist. Adding an area is adding one line there.

Nothing here imports torch or jax: the backends' ops classes are built on stand-ins for the framework modules,
which record which framework function each op is bound to. The page depends on the code only, not on which
frameworks are installed; default values are written by name (a function) or ``repr`` (a value), never with a
memory address.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import typing
from dataclasses import dataclass
from typing import Callable

OPS = "ops"             # the render of the ops section


@dataclass(frozen=True)
class Section:
    """One area of the reference: ``module``'s ``names`` (``None``: every public class and function it defines,
    those ``keep`` accepts), under ``title``, opened by the module's docstring when ``intro``. ``optional``: left
    out while the module does not exist. ``render=OPS``: the ops namespace of every backend instead."""
    title: str
    module: str
    names: tuple | None = None
    keep: Callable | None = None
    optional: bool = False
    intro: bool = True
    render: str = ""


def _is_law(obj) -> bool:
    from .laws import Law
    return inspect.isclass(obj) and issubclass(obj, Law)


SECTIONS = (
    Section("Models", "harness.models", ("Model", "MLP", "FunctionModel", "OutputScaled", "output_scaled")),
    Section("Parametrisations", "harness.parametrisation"),
    Section("The ops namespace", "harness.backends", render=OPS),
    Section("Backends", "harness.backends", ("get_backend", "available_backends", "is_installed", "Backend",
                                             "TrainResult")),
    Section("Optimisers", "harness.optim"),
    Section("Training an ensemble", "harness.ensembles", ("train_ensemble",)),
    Section("Losses", "harness.losses"),
    Section("Analytic kernels", "harness.analytic"),
    Section("Convolutional networks", "harness.cnn", ("CNN", "conv")),
    Section("Analytic CNN kernels", "harness.cnn_kernels"),
    Section("Transformers", "harness.transformer", ("Transformer", "attention", "layer_norm")),
    Section("Residual networks", "harness.resnet", ("ResMLP",)),
    Section("Initialisations", "harness.inits", ("antisymmetric", "AntiSymmetric")),
    Section("Monte Carlo kernels", "harness.montecarlo"),
    Section("Curvature: Hessian, GGN, empirical Fisher", "harness.curvature", ("curvature", "Curvature")),
    Section("Your own model: adapters", "harness.adapters", ("from_torch", "from_flax", "from_nnx", "from_equinox",
                                                              "from_jax")),
    Section("Parametrising a model of your own", "harness.widths", ("infer_shapes", "ParamShape", "parametrise",
                                                                   "Parametrised")),
    Section("Data", "harness.data"),
    Section("Claims", "harness.engine.claim", ("Claim", "Control", "Tier", "Setting", "DeclarationError",
                                               "get_claim", "registry", "load_path", "register", "draw_premise",
                                               "derive_seed", "sequential_looks")),
    Section("Laws", "harness.engine.laws", keep=_is_law),
    Section("Running a claim from Python", "harness.engine.sweep", ("run_claim",), intro=False),
    Section("Piloting", "harness.engine.pilot", ("pilot", "PilotPoint")),
)


# -- what is documented ---------------------------------------------------------------------------------------------
def _module(section: Section):
    try:
        return importlib.import_module(section.module)
    except ModuleNotFoundError as e:
        if section.optional and e.name == section.module:
            return None
        raise


def members(section: Section, module) -> list[tuple[str, object]]:
    """The ``(name, object)`` pairs a section documents, in its order."""
    if section.names is not None:
        return [(n, getattr(module, n)) for n in section.names]
    return [(n, v) for n, v in vars(module).items()
            if not n.startswith("_") and (inspect.isclass(v) or inspect.isfunction(v))
            and getattr(v, "__module__", None) == module.__name__ and (section.keep is None or section.keep(v))]


def _fields(cls) -> set:
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    return set(getattr(cls, "_fields", ()))       # a NamedTuple's


def class_members(cls) -> list[tuple[str, object]]:
    """The public methods and properties ``cls`` defines itself (not inherited, not a field's default), in the
    order it defines them."""
    out = []
    fields = _fields(cls)
    for name, v in vars(cls).items():
        if name.startswith("_") or name in fields:
            continue
        if isinstance(v, (staticmethod, classmethod)):
            v = v.__func__
        if inspect.isfunction(v) or isinstance(v, property):
            out.append((name, v))
    return out


def own_doc(obj) -> str:
    """``obj``'s own docstring, cleaned; "" when it has none, or only the one dataclasses and NamedTuple make up
    (``Name(field, ...)``)."""
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    doc = inspect.cleandoc(doc) if isinstance(doc, str) else ""
    name = getattr(obj, "__name__", "")
    return "" if inspect.isclass(obj) and doc.startswith(f"{name}(") else doc


def method_doc(cls, name: str, obj) -> tuple[str, type | None]:
    """A method's docstring and, when it is inherited (an override that states none), the class it comes from."""
    doc = own_doc(obj.fget if isinstance(obj, property) else obj)
    if doc:
        return doc, None
    for base in cls.__mro__[1:]:
        v = base.__dict__.get(name)
        if isinstance(v, (staticmethod, classmethod)):
            v = v.__func__
        if inspect.isfunction(v) or isinstance(v, property):
            d = own_doc(v.fget if isinstance(v, property) else v)
            if d:
                return d, base
    return "", None


def documented() -> list[tuple[str, object, str]]:
    """Every documented name as ``(qualified name, object, docstring)``: modules, classes, functions, and the
    classes' own methods and properties (an override's docstring may be its base's). An empty docstring is a
    gap (``tests/test_apidoc.py`` fails on it)."""
    out = []
    for section in SECTIONS:
        module = _module(section)
        if module is None or section.render == OPS:
            continue
        out.append((module.__name__, module, inspect.getdoc(module) or ""))
        for name, obj in members(section, module):
            out.append((f"{module.__name__}.{name}", obj, own_doc(obj)))
            if inspect.isclass(obj):
                for mname, m in class_members(obj):
                    out.append((f"{module.__name__}.{name}.{mname}", m, method_doc(obj, mname, m)[0]))
    return out


# -- signatures --------------------------------------------------------------------------------------------------
class _Raw:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def render_value(value) -> str:
    """A default value as code: a function or class by its name, anything else by ``repr`` unless that holds a
    memory address (then ``<TypeName>``)."""
    if inspect.isfunction(value) or inspect.isclass(value) or inspect.isbuiltin(value):
        return value.__name__
    text = repr(value)
    return f"<{type(value).__name__}>" if re.search(r" at 0x[0-9a-fA-F]+", text) else text


def _annotation(a) -> _Raw:
    """An annotation as written in the source (``from __future__ import annotations`` keeps it as a string; a
    NamedTuple's fields hold it as a ForwardRef; a quoted forward reference loses its quotes)."""
    if isinstance(a, typing.ForwardRef):
        a = a.__forward_arg__
    if not isinstance(a, str):
        a = inspect.formatannotation(a)
    if len(a) >= 2 and a[0] == a[-1] and a[0] in "'\"":
        a = a[1:-1]
    return _Raw(a)


def signature(obj, drop_first: bool = False, width: int = 100) -> str:
    """``(a: int, b=1, *, c=None) -> T`` for a function or class; one parameter per line when longer than
    ``width``. A dataclass field's default factory is shown by the value it makes."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    factories = {}
    if inspect.isclass(obj) and dataclasses.is_dataclass(obj):
        factories = {f.name: f.default_factory() for f in dataclasses.fields(obj)
                     if f.default_factory is not dataclasses.MISSING}
    params = list(sig.parameters.values())[1 if drop_first else 0:]
    parts, star = [], False
    for i, p in enumerate(params):
        if p.kind == p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if p.kind == p.VAR_POSITIONAL:
            star = True
        q = p.replace(annotation=p.empty if p.annotation is p.empty else _annotation(p.annotation),
                      default=p.empty if p.default is p.empty else
                      _Raw(render_value(factories[p.name] if p.name in factories else p.default)))
        parts.append(str(q))
        if p.kind == p.POSITIONAL_ONLY and (i + 1 == len(params) or params[i + 1].kind != p.POSITIONAL_ONLY):
            parts.append("/")
    ret = ""
    if not inspect.isclass(obj) and sig.return_annotation is not sig.empty:
        ret = f" -> {_annotation(sig.return_annotation)!r}"
    one = f"({', '.join(parts)}){ret}"
    if len(one) <= width:
        return one
    return "(\n" + "".join(f"    {p},\n" for p in parts) + f"){ret}"


# -- docstrings as Markdown -----------------------------------------------------------------------------------------
_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj):`(~?)([^`]+)`")
_BORDER = re.compile(r"^=+( +=+)+$")


class _Page:
    """The anchors of every documented object, so that a cross-reference in a docstring (``:class:`MLP```) links
    to it: the name relative to the docstring's own object, class or module first (as Sphinx does), else the one
    documented name that ends with it; no link when none or several do."""

    def __init__(self):
        self.anchors: dict[str, str] = {}

    def add(self, anchor: str, *names: str):
        for n in names:
            self.anchors.setdefault(n, anchor)

    def link(self, m, context: str) -> str:
        short, target = m.group(1), m.group(2)
        titled = re.fullmatch(r"(.+?)\s*<([^>]+)>", target)          # :meth:`title <target>`
        target = (titled.group(2) if titled else target).rstrip("()")
        text = titled.group(1) if titled else target.rsplit(".", 1)[-1] if short else target
        parts = context.split(".") if context else []
        hits = next(([f"{p}.{target}"] for p in (".".join(parts[:i]) for i in range(len(parts), 0, -1))
                     if f"{p}.{target}" in self.anchors), None)
        if hits is None:
            hits = [q for q in self.anchors if q == target or q.endswith("." + target)]
            hits = sorted({self.anchors[q] for q in hits})
        else:
            hits = [self.anchors[hits[0]]]
        return f"[`{text}`](#{hits[0]})" if len(hits) == 1 else f"`{text}`"

    def inline(self, line: str, context: str = "") -> str:
        line = _ROLE.sub(lambda m: self.link(m, context), line).replace("``", "`")
        parts = re.split(r"(\[`[^`]*`\]\(#[^)]*\)|`[^`]*`)", line)
        return "".join(p if i % 2 else p.replace("<", "&lt;") for i, p in enumerate(parts))

    def markdown(self, doc: str, context: str = "") -> list[str]:
        """A docstring (of the object named ``context``) in Markdown: inline literals and roles as code (linked
        where documented here), reST simple tables as Markdown tables; the rest (paragraphs, ``-`` lists,
        indented blocks) as it is."""
        lines, out, i = doc.splitlines(), [], 0
        while i < len(lines):
            if _BORDER.match(lines[i].strip()):
                j = i + 1
                rows, borders = [], 1
                while j < len(lines) and borders < 3:
                    if _BORDER.match(lines[j].strip()):
                        borders += 1
                    else:
                        rows.append(lines[j])
                    j += 1
                starts = [m.start() for m in re.finditer(r"=+", lines[i])] + [None]
                cells = [[r[a:b].strip() for a, b in zip(starts, starts[1:])] for r in rows]
                out.append("| " + " | ".join(self.inline(c, context) for c in cells[0]) + " |")
                out.append("|" + "---|" * (len(starts) - 1))
                out += ["| " + " | ".join(self.inline(c, context) for c in row) + " |" for row in cells[1:]]
                i = j
                continue
            out.append(self.inline(lines[i], context))
            i += 1
        return out


def _anchor(qualname: str) -> str:
    return qualname.replace(".", "-").lower()


def _code(text: str) -> list[str]:
    return ["```python", text, "```"]


# -- the ops namespace ------------------------------------------------------------------------------------------
class _Framework:
    """Stands in for a framework module passed to an ops class: every attribute taken from it is another stand-in
    that remembers its path (``torch.special.erf``), so the ops class can be built without the framework."""

    def __init__(self, path: str):
        self._path = path

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Framework(f"{self._path}.{name}")

    def __call__(self, *args, **kwargs):
        return _Framework(f"{self._path}(...)")


def ops_classes() -> dict[str, type]:
    """Each backend's ops class (the class ``FooOps`` in the backend's module), by backend name, in the order of
    :data:`harness.backends.BACKENDS`."""
    from ..backends import BACKENDS
    out = {}
    for name, (module, _, _) in BACKENDS.items():
        mod = importlib.import_module(module)
        found = [v for k, v in vars(mod).items()
                 if inspect.isclass(v) and k.endswith("Ops") and v.__module__ == mod.__name__]
        if len(found) != 1:
            raise RuntimeError(f"{module} defines {len(found)} ops classes (classes named *Ops); expected one")
        out[name] = found[0]
    return out


def ops_table(cls) -> dict[str, object]:
    """The ops of one ops class: name -> the framework function it is bound to (``"torch.matmul"``, set in
    ``__init__``) or the method that defines it. Built on stand-ins for the framework modules."""
    stubs = [_Framework(p) for p in list(inspect.signature(cls.__init__).parameters)[1:]]
    inst = cls(*stubs)
    ops = {}
    for name, v in vars(inst).items():
        if name.startswith("_") or any(v is s for s in stubs):
            continue
        ops[name] = v._path if isinstance(v, _Framework) else v
    for name in dir(cls):
        v = getattr(cls, name)
        if not name.startswith("_") and callable(v) and name not in ops:
            ops[name] = v
    return ops


def ops_markdown(page: _Page) -> list[str]:
    classes = ops_classes()
    tables = {b: ops_table(c) for b, c in classes.items()}
    names = sorted(set().union(*tables.values()))
    where = "; ".join(f"{b}: `{c.__name__}` in `{c.__module__.replace('.', '/')}.py`" for b, c in classes.items())
    inits = "; ".join(f"{b}: `{', '.join(list(inspect.signature(c.__init__).parameters)[1:])}`"
                      for b, c in classes.items())
    lines = ["A model's `apply(params, x, ops)`, a loss and an optimiser compute with `ops`, the backend's array "
             "namespace (`backend.ops`), and with nothing else, so they run on every backend. These are its names, "
             f"read off each backend's ops class ({where}). An op set in the class's `__init__` is the framework's own "
             f"function, named in the table (the framework modules the class is given: {inits}; `jnp` is "
             "`jax.numpy`); an op the class defines as a method is described below the table. A model that calls "
             "an op one backend lacks runs only on the others (a model may test for it: `MLP` uses `ops.affine` "
             "where `hasattr(ops, \"affine\")`).", ""]
    for b, c in classes.items():
        lines += [f"`{c.__name__}`: " + " ".join(page.markdown(own_doc(c), f"{c.__module__}.{c.__name__}")), ""]
    lines += ["| op | " + " | ".join(classes) + " | in every backend |", "|---|" + "---|" * len(classes) + "---|"]
    for n in names:
        cells = []
        for b in classes:
            v = tables[b].get(n)
            cells.append("-" if v is None else f"`{v}`" if isinstance(v, str) else "method")
        lines.append(f"| `{n}` | " + " | ".join(cells) + f" | {'yes' if '-' not in cells else 'no'} |")
    lines.append("")
    for n in names:
        defs = [(b, tables[b][n]) for b in classes if callable(tables[b].get(n)) and not isinstance(tables[b][n], str)]
        if not defs:
            continue
        qual = f"ops.{n}"
        lines += [f'<a id="{_anchor(qual)}"></a>', "", f"#### `{qual}`", ""]
        sigs = {b: signature(f, drop_first=True) for b, f in defs}
        if len(set(sigs.values())) == 1:
            lines += _code(f"{n}{next(iter(sigs.values()))}")
        else:
            lines += _code("\n".join(f"{n}{s}  # {b}" for b, s in sigs.items()))
        doc = next((own_doc(f) for _, f in defs if own_doc(f)), "")
        lines += [""] + (page.markdown(doc, qual) + [""] if doc else [])
    return lines


# -- the page -------------------------------------------------------------------------------------------------------
def _object_lines(page: _Page, qual: str, name: str, obj) -> list[str]:
    lines = [f'<a id="{_anchor(qual)}"></a>', ""]
    if inspect.isclass(obj):
        bases = [b.__name__ for b in obj.__bases__ if b.__module__.startswith("harness")]
        kind = "dataclass" if dataclasses.is_dataclass(obj) else "class"
        lines += [f"### `{name}`" + (f" ({kind}, a {', '.join(f'`{b}`' for b in bases)})" if bases else
                                     f" ({kind})"), ""]
        lines += _code(f"{name}{signature(obj)}") + [""]
        lines += page.markdown(own_doc(obj), qual) + [""]
        inherited = []
        for mname, m in class_members(obj):
            doc, base = method_doc(obj, mname, m)
            if base is not None:
                inherited.append(f"`{mname}` (as `{base.__name__}.{mname}`)")
                continue
            lines += [f'<a id="{_anchor(qual + "." + mname)}"></a>', "", f"#### `{name}.{mname}`", ""]
            lines += _code(f"{mname}  # property" if isinstance(m, property) else
                           f"{mname}{signature(m, drop_first=not isinstance(vars(obj)[mname], staticmethod))}")
            lines += [""] + page.markdown(doc, f"{qual}.{mname}") + [""]
        if inherited:
            lines += ["Also defines " + ", ".join(inherited) + ".", ""]
    else:
        lines += [f"### `{name}`", ""] + _code(f"{name}{signature(obj)}") + [""]
        lines += page.markdown(own_doc(obj), qual) + [""]
    return lines


def api_markdown() -> str:
    """The text of ``docs/api.md``."""
    page = _Page()
    plan, inherited = [], []
    for section in SECTIONS:
        module = _module(section)
        if module is None:
            continue
        anchor = "api-" + re.sub(r"[^a-z0-9]+", "-", section.title.lower()).strip("-")
        page.add(anchor, module.__name__)
        items = [] if section.render == OPS else members(section, module)
        for name, obj in items:
            qual = f"{module.__name__}.{name}"
            home = f"{obj.__module__}.{obj.__qualname__}"       # where it is defined, if not where documented
            page.add(_anchor(qual), qual, home)
            if inspect.isclass(obj):
                for mname, m in class_members(obj):
                    if method_doc(obj, mname, m)[1] is None:
                        page.add(_anchor(f"{qual}.{mname}"), f"{qual}.{mname}", f"{home}.{mname}")
                    else:
                        inherited.append((qual, home, mname, method_doc(obj, mname, m)[1]))
        plan.append((section, module, anchor, items))
    for qual, home, mname, base in inherited:    # an override documented by its base links to the base's entry
        to = page.anchors.get(f"{base.__module__}.{base.__qualname__}.{mname}")
        if to:
            page.add(to, f"{qual}.{mname}", f"{home}.{mname}")
    lines = ["# API reference", "",
             "Generated by `claims docs` from the code's signatures and docstrings (`harness/engine/apidoc.py`); do "
             "not edit by hand: edit the docstring and rerun `claims docs`. `tests/test_apidoc.py` checks that "
             "this file is current, that every name in it has a docstring and that every op of every backend is in "
             "it. How the pieces fit together: the [README](../README.md), [harness.md](harness.md) (the numerics) "
             "and [engine.md](engine.md) (claims to verdicts).", ""]
    lines += [f"- [{s.title}](#{a})" + (f" (`{m.__name__}`)" if s.render != OPS else " (`backend.ops`)")
              for s, m, a, _ in plan]
    lines.append("")
    for section, module, anchor, items in plan:
        lines += [f'<a id="{anchor}"></a>', "", f"## {section.title}", ""]
        if section.render == OPS:
            lines += ops_markdown(page)
            continue
        lines += [f"`{module.__name__}`" + (":" if section.intro else ""), ""]
        if section.intro:
            lines += page.markdown(inspect.getdoc(module) or "", module.__name__) + [""]
        for name, obj in items:
            lines += _object_lines(page, f"{module.__name__}.{name}", name, obj)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"
