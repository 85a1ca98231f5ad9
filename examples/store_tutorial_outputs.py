"""Store the tutorial notebook's outputs, which the documentation site shows as they are
(it does not run the notebook: the site builds in seconds, and the notebook test runs it).

Run this after changing examples/tutorial.ipynb's code::

    python examples/store_tutorial_outputs.py

It runs the notebook top to bottom in a real kernel, in a fresh folder (the run folder the
notebook writes goes there, not into the repository), and writes it back with its outputs
and the fingerprint of the code that made them; tests/test_docs.py fails when the code no
longer matches the fingerprint, that is when the stored outputs are stale.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent / "tutorial.ipynb"


def code_fingerprint(notebook: nbformat.NotebookNode) -> str:
    """SHA-256 of the code cells' sources, in order: what the stored outputs were made from."""
    code = "\n\0\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    return hashlib.sha256(code.encode()).hexdigest()


def main() -> int:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with tempfile.TemporaryDirectory() as folder:
        NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            record_timing=False,  # no timestamps in the stored cells: a re-run changes only what it shows
            resources={"metadata": {"path": folder}},
        ).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        print(f"{NOTEBOOK}: a cell failed: {errors[0].get('ename')}: {errors[0].get('evalue')}", file=sys.stderr)
        return 1
    notebook.metadata["intermodal"] = {"code_sha256": code_fingerprint(notebook)}
    nbformat.write(notebook, NOTEBOOK)
    print(f"stored the outputs of {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
