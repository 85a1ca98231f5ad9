"""The package's shape, as docs and issues promise it: imports flow one way (no circle,
lazy imports included), intermodal.data imports nothing else of the package, one module
reads and writes parquet, the code cites docs/method.md (not a file outside the
repository), and no source file outgrows what a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "intermodal"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def package_imports(module: str) -> set[str]:
    """Modules of the package that ``module`` imports anywhere (top level or in a function)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("intermodal."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("intermodal."))
    return found & set(MODULES)


def test_no_import_circle():
    graph = {m: package_imports(m) for m in MODULES}
    visiting, done = set(), set()

    def visit(m, path):
        if m in done:
            return
        assert m not in visiting, "import circle: " + " -> ".join(path + [m])
        visiting.add(m)
        for n in graph[m]:
            visit(n, path + [m])
        visiting.discard(m)
        done.add(m)

    for m in MODULES:
        visit(m, [])


def test_data_imports_nothing_else_of_the_package():
    assert package_imports("data") == set()


def test_parquet_has_one_owner():
    owners = [
        m
        for m in MODULES
        if "parquet" in (PACKAGE / f"{m}.py").read_text().replace("parquet table", "")
        and ("read_parquet" in (PACKAGE / f"{m}.py").read_text() or "to_parquet" in (PACKAGE / f"{m}.py").read_text())
    ]
    assert owners == ["runfolder"]


def test_the_code_cites_docs_not_spec():
    for path in PACKAGE.rglob("*"):
        if path.suffix in (".py", ".j2", ".json"):
            assert "SPEC" not in path.read_text(), f"{path} cites SPEC, which is not in the repository"
    method = (PACKAGE.parents[1] / "docs" / "method.md").read_text()
    for section in range(1, 9):
        assert f"## {section}." in method


@pytest.mark.parametrize("module", MODULES)
def test_no_source_file_over_about_600_lines(module):
    assert len((PACKAGE / f"{module}.py").read_text().splitlines()) <= 650
