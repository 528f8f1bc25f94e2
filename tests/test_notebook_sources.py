"""Each tutorial notebook has one reviewable source, `notebooks/src/NN-name.py`; a committed
notebook whose cells differ from its source (type, text, tags) fails here, naming the first
cell that differs. Fix: edit the source and run `.venv/bin/python notebooks/build.py NN`."""
from __future__ import annotations

import glob
import os
import sys

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = os.path.join(ROOT, "notebooks")
sys.path.insert(0, NOTEBOOKS)
import build  # noqa: E402  notebooks/build.py

COMMITTED = sorted(os.path.basename(p)[:-6] for p in glob.glob(os.path.join(NOTEBOOKS, "*.ipynb")))


def _shape(cells):
    return [(c.cell_type, c.source, list(c.get("metadata", {}).get("tags", []))) for c in cells]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert COMMITTED == list(build.sources())


@pytest.mark.parametrize("name", COMMITTED)
def test_the_committed_notebook_is_its_source(name):
    committed = _shape(nbformat.read(os.path.join(NOTEBOOKS, name + ".ipynb"), as_version=4).cells)
    source = _shape(build.cells_of(name))
    for k, (a, b) in enumerate(zip(committed, source)):
        assert a == b, (f"{name}.ipynb cell {k} differs from notebooks/src/{name}.py: rebuild "
                        f"with `.venv/bin/python notebooks/build.py {name[:2]}`\n"
                        f"notebook: {a!r}\nsource:   {b!r}")
    assert len(committed) == len(source), f"{name}: {len(committed)} cells, source has {len(source)}"


def test_a_notebook_that_disagrees_with_its_source_is_caught(tmp_path):
    name = COMMITTED[0]
    nb = nbformat.read(os.path.join(NOTEBOOKS, name + ".ipynb"), as_version=4)
    nb.cells[1].source += "\n# edited in Jupyter, not in the source"
    assert _shape(nb.cells) != _shape(build.cells_of(name))
