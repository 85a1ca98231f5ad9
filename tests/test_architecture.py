"""The package's shape, as the docs and issues promise it: layers are packages whose imports
go one way (data → model → adapters → training → evaluation → outputs → study → cli, the root's
errors, files, options and streams beneath them all), no module imports in a circle (lazy
imports included), one module reads and writes parquet, one module spells a run folder's
names, the code cites docs/method.md (not a file outside the repository), the public face
is exactly ``__all__``, and no source file outgrows what a reader can hold."""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import intermodal

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "intermodal"
MODULES = sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts) for p in PACKAGE.rglob("*.py"))
# Layers, lowest first; a module may import its own layer and those below it.
LAYERS = ["root", "data", "model", "adapters", "training", "evaluation", "outputs", "study", "cli"]
ROOT_MODULES = {"__init__", "errors", "files", "options", "streams"}
# ``python -m intermodal`` is the command line's other door: it sits in the cli's layer.
CLI_MODULES = {"cli", "__main__"}


def layer_of(module: str) -> str:
    head = module.split(".")[0]
    if head in CLI_MODULES:
        return "cli"
    if head in ROOT_MODULES:
        return "root"
    if head.endswith("__init__"):
        return "root"
    return head


def imports_of(module: str) -> set[str]:
    """Modules of the package that ``module`` imports anywhere (top level or in a function)."""
    path = PACKAGE / (module.replace(".", "/") + ".py")
    package = module.split(".")[:-1] if not module.endswith("__init__") else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + (node.module.split(".") if node.module else [])
                names = [".".join(target + [a.name]) for a in node.names]
                candidates = [n for n in names if n in MODULES or f"{n}.__init__" in MODULES] or [".".join(target)]
            elif node.module and node.module.startswith("intermodal"):
                target = node.module.split(".")[1:]
                names = [".".join(target + [a.name]) for a in node.names]
                candidates = [n for n in names if n in MODULES or f"{n}.__init__" in MODULES] or [".".join(target)]
            else:
                continue
            for c in candidates:
                found.add(c if c in MODULES else f"{c}.__init__" if f"{c}.__init__" in MODULES else c)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("intermodal."):
                    found.add(".".join(a.name.split(".")[1:]))
    return {m for m in found if m in MODULES and m != module}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_no_import_circle():
    visiting, done = set(), set()

    def visit(m, path):
        if m in done:
            return
        assert m not in visiting, "import circle: " + " -> ".join(path + [m])
        visiting.add(m)
        for n in GRAPH[m]:
            visit(n, path + [m])
        visiting.discard(m)
        done.add(m)

    for m in MODULES:
        visit(m, [])


@pytest.mark.parametrize("module", [m for m in MODULES if m != "__init__"])
def test_imports_go_down_the_layers(module):
    mine = LAYERS.index(layer_of(module))
    for target in GRAPH[module]:
        assert LAYERS.index(layer_of(target)) <= mine, f"{module} ({layer_of(module)}) imports {target}"


def test_the_root_modules_import_only_each_other():
    for module in ROOT_MODULES - {"__init__"}:
        assert {layer_of(t) for t in GRAPH[module]} <= {"root"}, module


def test_the_layers_are_packages():
    for layer in LAYERS[1:-1]:
        assert (PACKAGE / layer / "__init__.py").is_file(), layer
    flat = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert flat == sorted(ROOT_MODULES | CLI_MODULES)


def test_parquet_has_one_owner():
    owners = [m for m in MODULES if any(w in _source(m) for w in ("read_parquet", "to_parquet"))]
    assert owners == ["training.runfolder.tables"]


def test_run_folder_names_have_one_owner():
    """No module but the run folder's joins its file and folder names onto a path, or opens
    a checkpoint's state.json (the checkpoint module's own file)."""
    names = [
        "config.json",
        "description.json",
        "history.parquet",
        "results.parquet",
        "diagnostics.parquet",
        "prediction_errors.parquet",
        "checkpoint",
        "baselines",
        "figures",
        "report.html",
        "units",
        "plan.json",
        ".driver-",
        ".lock",
    ]
    for module in MODULES:
        if module == "training.runfolder.folder":
            continue
        source = _source(module)
        for name in names:
            # A data set folder's description has the run folder's name and format; the data
            # layer names it and the run folder takes the name from there.
            if (module, name) == ("data.catalog", "description.json"):
                continue
            joined = re.search(r'/\s*f?"' + re.escape(name) + r'|\(\s*f?"' + re.escape(name) + r'"\s*\)', source)
            assert joined is None, f"{module} joins the run folder's {name!r} onto a path: {joined.group(0)!r}"
        if module != "training.checkpoint":
            assert '"state.json"' not in source, f"{module} reads a checkpoint's state.json itself"


def _validators(tree: ast.Module) -> set[str]:
    """Names of a module's pydantic validators (decorated, or passed to Before/AfterValidator)
    and of the functions they call: pydantic wants a ValueError raised there, and words it."""
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    found = {name for name, f in functions.items() if any("validator" in ast.unparse(d) for d in f.decorator_list)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("BeforeValidator", "AfterValidator"):
            found |= {a.id for a in node.args if isinstance(a, ast.Name)}
    for name in list(found):
        found |= {
            c.func.id
            for c in ast.walk(functions[name])
            if isinstance(c, ast.Call) and isinstance(c.func, ast.Name) and c.func.id in functions
        }
    return found


def test_one_error_family():
    """Every exception class the package defines lives in intermodal.errors, and nothing
    raises a bare ValueError for a user's input (pydantic's validators aside, whose
    ValueErrors pydantic turns into the typed errors)."""
    for module in MODULES:
        tree = ast.parse(_source(module))
        allowed = _validators(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id.endswith(("Error", "Exception")) for b in node.bases
            ):
                assert module == "errors", f"{module} defines its own exception {node.name}"
            if isinstance(node, ast.FunctionDef) and node.name not in allowed:
                for raised in ast.walk(node):
                    if isinstance(raised, ast.Raise) and isinstance(raised.exc, ast.Call):
                        func = raised.exc.func
                        assert not (isinstance(func, ast.Name) and func.id == "ValueError"), (
                            f"{module}.{node.name}: raise ValueError(...) at line {raised.lineno}; raise an "
                            "IntermodalError"
                        )


def test_the_code_cites_docs_not_spec():
    for path in PACKAGE.rglob("*"):
        if path.suffix in (".py", ".j2", ".json"):
            assert "SPEC" not in path.read_text(), f"{path} cites SPEC, which is not in the repository"
    method = (PACKAGE.parents[1] / "docs" / "method.md").read_text()
    for section in range(1, 9):
        assert f"## {section}." in method


@pytest.mark.parametrize("module", MODULES)
def test_no_source_file_over_about_600_lines(module):
    assert len(_source(module).splitlines()) <= 650


# --------------------------------------------------------------------------- the public face
def test_all_is_exactly_the_public_face():
    """Every name in ``intermodal.__all__`` resolves; nothing public is left out of it."""
    for name in intermodal.__all__:
        assert getattr(intermodal, name) is not None, name
    public = {n for n in dir(intermodal) if not n.startswith("_")}
    subpackages = {"data", "model", "adapters", "training", "evaluation", "outputs", "study", "cli", "errors"}
    subpackages |= {"files", "options", "streams", "logging", "importlib", "annotations"}
    assert public - subpackages - set(intermodal.__all__) == set()


def test_type_checkers_see_the_lazy_public_face():
    """``__init__.py``'s ``if TYPE_CHECKING:`` imports (what IDEs and mypy see), ``__all__``
    and the lazy loader's mapping name the same names from the same modules."""
    tree = ast.parse(_source("__init__"))
    values = {
        t.id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Dict, ast.Tuple))
        for t in node.targets
        if isinstance(t, ast.Name) and t.id in ("_EXPORTS", "_RENAMED", "_SUBPACKAGES")
    }
    lazy = {name: (module, values["_RENAMED"].get(name, name)) for name, module in values["_EXPORTS"].items()}
    lazy |= {name: ("", name) for name in values["_SUBPACKAGES"]}
    blocks = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    assert len(blocks) == 1, "one `if TYPE_CHECKING:` block of re-exports"
    imported, seen = {}, {}
    for node in blocks[0].body:
        if isinstance(node, ast.ImportFrom):
            assert node.level == 1, ast.unparse(node)
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module or "", alias.name, alias.asname)
        else:  # a renamed public name: `public = name_in_its_module`
            assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Name), ast.unparse(node)
            (target,) = node.targets
            assert isinstance(target, ast.Name) and target.id not in seen, ast.unparse(node)
            assert node.value.id in imported, f"{ast.unparse(node)}: import {node.value.id} once, above"
            seen[target.id] = imported.pop(node.value.id)[:2]
    for name, (module, original, asname) in imported.items():
        # `from .m import X as X`: the form type checkers take as a re-export
        assert asname == original == name, f"from .{module} import {original}: re-export it as `{name} as {name}`"
        assert name not in seen, name
        seen[name] = (module, original)
    assert seen == lazy
    assert set(intermodal.__all__) == set(seen) | {"__version__"}


def test_submodules_list_what_they_define():
    """Each module's ``__all__`` names only what it defines or re-exports on purpose."""
    for module in MODULES:
        if module.endswith("__init__") or module in CLI_MODULES:
            continue
        mod = importlib.import_module(f"intermodal.{module}")
        for name in getattr(mod, "__all__", []):
            assert hasattr(mod, name), f"intermodal.{module}.__all__ lists {name!r}, which it lacks"


def test_import_intermodal_is_light():
    """``import intermodal`` loads no heavy dependency: the names load when first used."""
    code = "import sys, intermodal; print(','.join(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def _source(module: str) -> str:
    return (PACKAGE / (module.replace(".", "/") + ".py")).read_text()


def test_each_package_docstring_names_its_modules():
    """A subpackage's docstring names every module in it (``:mod:`.name```), so that a
    reader of the package finds all of it."""
    for init in PACKAGE.rglob("__init__.py"):
        if init.parent == PACKAGE:
            continue
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        for module in init.parent.glob("*.py"):
            if module.stem != "__init__":
                assert f":mod:`.{module.stem}`" in doc, f"{init.relative_to(PACKAGE)} omits the module {module.stem}"
        for sub in init.parent.iterdir():
            if (sub / "__init__.py").is_file():
                assert f":mod:`.{sub.name}`" in doc, f"{init.relative_to(PACKAGE)} omits the package {sub.name}"
