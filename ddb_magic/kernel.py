"""The "DDB SQL" kernel: every cell is SQL for `%%ddb`; line magics still work.

    python -m ddb_magic.kernel install [--user | --sys-prefix | --prefix PATH]

A cell is translated before IPython sees it:
- a cell whose first line starts with `%%` is passed through unchanged (`%%ddb --node 2 …`
  or any other cell magic);
- leading lines that start with `%` or `!` run as they are (`%ddb launch`, `%ddb_kill 2`);
- the rest of the cell, if any, runs as `%%ddb`.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

from ipykernel.ipkernel import IPythonKernel

KERNEL_NAME = "ddb_sql"
DISPLAY_NAME = "DDB SQL"


def translate(code: str) -> str:
    lines = code.split("\n")
    k = 0
    while k < len(lines) and not lines[k].strip():
        k += 1
    if k < len(lines) and lines[k].lstrip().startswith("%%"):
        return code
    head = []
    while k < len(lines) and (lines[k].lstrip().startswith(("%", "!")) or not lines[k].strip()):
        head.append(lines[k].strip())
        k += 1
    sql = "\n".join(lines[k:]).strip()
    out = [h for h in head if h]
    if sql:
        out.append(f"get_ipython().run_cell_magic('ddb', '', {sql!r})")
    return "\n".join(out)


class DdbSqlKernel(IPythonKernel):
    implementation = "ddb_sql"
    implementation_version = "0.1"
    language_info = {
        "name": "sql",
        "mimetype": "text/x-sql",
        "file_extension": ".sql",
        "codemirror_mode": "sql",
        "pygments_lexer": "sql",
    }
    banner = "DDB SQL: every cell is SQL for %%ddb (start with %ddb launch)"

    def __init__(self, **kw):
        super().__init__(**kw)
        import ddb_magic
        ddb_magic.load_ipython_extension(self.shell)

    def do_execute(self, code, silent, store_history=True, user_expressions=None,
                   allow_stdin=False, **kw):
        return super().do_execute(translate(code), silent, store_history, user_expressions,
                                  allow_stdin, **kw)

    def do_complete(self, code, cursor_pos):
        # complete magics as usual; in SQL, offer the words of the notebook namespace
        return super().do_complete(code, cursor_pos)

    def do_is_complete(self, code):
        return {"status": "complete"}


def kernel_spec() -> dict:
    return {
        "argv": [sys.executable, "-m", "ddb_magic.kernel", "-f", "{connection_file}"],
        "display_name": DISPLAY_NAME,
        "language": "sql",
        "metadata": {"debugger": False},
    }


def install(user: bool = False, prefix: str | None = None) -> str:
    from jupyter_client.kernelspec import KernelSpecManager
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "kernel.json"), "w") as f:
            json.dump(kernel_spec(), f, indent=1)
        return KernelSpecManager().install_kernel_spec(d, KERNEL_NAME, user=user, prefix=prefix)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["install"]:
        import argparse
        p = argparse.ArgumentParser(prog="python -m ddb_magic.kernel install")
        g = p.add_mutually_exclusive_group()
        g.add_argument("--user", action="store_true", help="install for this user")
        g.add_argument("--sys-prefix", action="store_true", help="install into sys.prefix (a venv)")
        g.add_argument("--prefix", default=None, help="install under this prefix")
        a = p.parse_args(argv[1:])
        prefix = sys.prefix if a.sys_prefix else a.prefix
        path = install(user=a.user, prefix=prefix)
        print(f"installed the {DISPLAY_NAME!r} kernel in {path}")
        return 0
    from ipykernel.kernelapp import IPKernelApp
    IPKernelApp.launch_instance(argv=argv, kernel_class=DdbSqlKernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
