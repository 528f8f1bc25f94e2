"""Write the tutorial notebooks from their sources and execute them, so the stored outputs
are the reference nbval compares against.

Each tutorial has one reviewable source, `notebooks/src/NN-name.py`, a list of cells
(`CELLS`) written with `md(...)` and `code(..., tags)` from `notebooks/src/cells.py`.

    .venv/bin/python notebooks/build.py            # all notebooks
    .venv/bin/python notebooks/build.py 02         # the ones whose name starts with 02

`tests/test_notebook_sources.py` fails while a committed notebook's cells (their type,
source and tags) differ from its source: edit the source, then run this.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import sys

import nbformat
from nbformat.v4 import new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "src")


def sources() -> dict[str, str]:
    """{notebook name: path of its source}, in order."""
    return {os.path.basename(p)[:-3]: p for p in sorted(glob.glob(os.path.join(SRC, "[0-9]*.py")))}


def cells_of(name: str) -> list:
    if SRC not in sys.path:
        sys.path.insert(0, SRC)          # for `from cells import ...`
    spec = importlib.util.spec_from_file_location(f"tutorial_{name.replace('-', '_')}",
                                                  sources()[name])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CELLS


def notebook(name: str):
    nb = new_notebook(cells=cells_of(name))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def build(names=None, execute=True):
    from ddb_magic.quickstart import execute_notebook
    for name in sources():
        if names and not any(name.startswith(n) for n in names):
            continue
        nb = notebook(name)
        if execute:
            execute_notebook(nb, HERE, timeout=180)
        path = os.path.join(HERE, name + ".ipynb")
        nbformat.write(nb, path)
        print("wrote", path)


if __name__ == "__main__":
    build(sys.argv[1:] or None)
