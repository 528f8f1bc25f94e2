"""Helpers for the ddb_magic tests: an IPython shell whose display output is captured."""
from __future__ import annotations

import contextlib
import io

from IPython.core.interactiveshell import InteractiveShell


def shell() -> InteractiveShell:
    sh = InteractiveShell.instance()
    sh.run_cell("%load_ext ddb_magic", silent=True)
    return sh


class Run:
    def __init__(self, result, out: str):
        self.result = result
        self.out = out
        self.value = result.result
        self.error = result.error_in_exec or result.error_before_exec


def run(sh: InteractiveShell, code: str) -> Run:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        res = sh.run_cell(code, store_history=True)
    out = buf.getvalue()
    if res.result is not None:
        out += repr(res.result)
    return Run(res, out)
