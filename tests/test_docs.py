"""The documentation site's sources (mkdocs.yml; CI builds it with ``mkdocs build --strict``):
every public name has its entry in the API reference, and the tutorial the site shows with
its stored outputs is the tutorial as it is, running every command through its own
interpreter."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

import intermodal as im

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"


def _documented() -> dict[str, object]:
    """Each ``::: dotted.path`` directive of the API pages, and the object it names."""
    found = {}
    for page in sorted(API.glob("*.md")):
        for path in re.findall(r"^::: *(\S+)", page.read_text(), re.M):
            module, _, name = path.rpartition(".")
            found[path] = getattr(importlib.import_module(module), name)
    return found


def _public() -> dict[str, object]:
    """Every public name, as a user reaches it: ``im.NAME`` and ``im.adapters.NAME``."""
    names = {f"im.{n}": getattr(im, n) for n in im.__all__ if n not in ("__version__", "adapters")}
    names |= {f"im.adapters.{n}": getattr(im.adapters, n) for n in im.adapters.__all__}
    return names


def test_every_public_name_has_an_entry_in_the_api_reference():
    documented = _documented()
    objects = [id(o) for o in documented.values()]
    missing = [name for name, obj in _public().items() if id(obj) not in objects]
    assert not missing, f"not in docs/api/*.md (add a '::: module.path.name' entry): {missing}"


def test_each_entry_is_headed_by_its_public_name():
    """An entry's heading is how a user reaches the name (``im.preset``, not the module's
    ``preset_config``)."""
    names: dict[int, set[str]] = {}
    for name, obj in _public().items():
        names.setdefault(id(obj), set()).add(name)
    documented = _documented()
    entry = re.compile(r"^::: *(\S+)\n    options:\n(?:      .*\n)*?      heading: (\S+)", re.M)
    for page in sorted(API.glob("*.md")):
        for path, heading in entry.findall(page.read_text()):
            public = names.get(id(documented[path]))
            assert public is None or heading in public, f"{page.name}: {path} is headed {heading}, not {public}"


def test_the_api_index_lists_every_public_name():
    index = (API / "index.md").read_text()
    missing = [name for name in _public() if f"`{name.removeprefix('im.')}`" not in index]
    assert not missing, f"docs/api/index.md does not list {missing}"


def _fingerprint(notebook) -> str:
    spec = importlib.util.spec_from_file_location(
        "store_tutorial_outputs", ROOT / "examples" / "store_tutorial_outputs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.code_fingerprint(notebook)


def test_the_tutorials_stored_outputs_come_from_its_code():
    """The site shows the outputs stored in the notebook; after a change to its code, run
    ``python examples/store_tutorial_outputs.py``."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    stored = notebook.metadata.get("intermodal", {}).get("code_sha256")
    assert stored == _fingerprint(notebook), "stale outputs: run python examples/store_tutorial_outputs.py"
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    outputs = [o for cell in code for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.get("data", {}).get("image/png") for o in outputs), "the stored figure is missing"


def test_the_tutorial_runs_commands_through_its_own_interpreter():
    """``sys.executable -m intermodal``, never ``intermodal`` by name: a kernel's PATH may
    lack the environment's bin folder."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    calls = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        assert not [line for line in lines if line.lstrip().startswith("!")], "a shell escape runs a command by name"
        tree = ast.parse("\n".join(line for line in lines if not line.lstrip().startswith("%")))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("subprocess."):
                calls += 1
                command = node.args[0]
                assert isinstance(command, ast.List), ast.unparse(node)
                assert [ast.unparse(e) for e in command.elts[:3]] == ["sys.executable", "'-m'", "'intermodal'"]
    assert calls, "the tutorial no longer runs a command: drop this test's expectation"


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_every_page_is_in_the_sites_navigation(page):
    assert f" {page}" in (ROOT / "mkdocs.yml").read_text(), f"docs/{page} is not in mkdocs.yml's nav"
