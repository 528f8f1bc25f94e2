"""What the tutorial sources are written with: a markdown cell, a code cell, and the one tag.

`nbval-ignore-output` (IGNORE) marks a cell whose output depends on timing or on which node
wins an election (the cell still has to run without error); everything else is compared
strictly after notebooks/sanitize.cfg (see notebooks/README.md)."""
from __future__ import annotations

from nbformat.v4 import new_code_cell, new_markdown_cell

IGNORE = ["nbval-ignore-output"]


def md(text):
    return new_markdown_cell(text.strip("\n"))


def code(text, tags=None):
    c = new_code_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c
