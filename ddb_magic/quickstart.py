"""Run a tutorial notebook headless and show its first DataFrame (part of the README's
first command): proof, on a fresh machine, that the notebook path works end to end.

    python -m ddb_magic.quickstart [notebooks/01-quickstart.ipynb] [--out executed.ipynb]
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def first_dataframe(nb) -> str | None:
    """The text form of the first DataFrame a cell displayed."""
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            html = data.get("text/html", "")
            if "ddb-table" in html or "dataframe" in html:
                return data.get("text/plain") or html
    return None


def execute_notebook(nb, cwd: str, timeout: int = 300) -> None:
    """Run every cell of `nb` in a fresh python3 kernel started in `cwd`. The kernel talks
    over IPC (Unix sockets in a private temporary directory), not TCP: a headless run on
    this machine needs no ports, and ipykernel has no unencrypted TCP to warn about."""
    import shutil
    import tempfile

    from nbclient import NotebookClient
    from traitlets.config import Config

    sockets = tempfile.mkdtemp(prefix="ddb-kernel-")
    try:
        # an absolute socket path: the kernel runs in `cwd`, the client here
        config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "k")}})
        # "immediate": once every cell ran (the notebook's last cell stops its cluster), the
        # kernel is killed rather than asked to shut down. ipykernel 7.4's graceful shutdown
        # races its IOPub thread's close against a control-thread flush and, now and then on a
        # loaded machine, prints a ZMQError traceback (ENOTSOCK) after the story has ended.
        # Node processes a kernel leaves behind still die with it (PR_SET_PDEATHSIG, reaper).
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": cwd}},
                       shutdown_kernel="immediate", config=config).execute()
    finally:
        shutil.rmtree(sockets, ignore_errors=True)


def run(path: str, out: str | None, timeout: int = 300) -> int:
    import nbformat

    t0 = time.monotonic()
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    execute_notebook(nb, os.path.dirname(os.path.abspath(path)), timeout)
    df = first_dataframe(nb)
    elapsed = time.monotonic() - t0
    if out:
        nbformat.write(nb, out)
    if df is None:
        print(f"{path}: ran, but no DataFrame was displayed", file=sys.stderr)
        return 1
    print(f"{os.path.basename(path)} ran every cell in {elapsed:.1f}s; its first DataFrame:\n")
    print(df)
    if out:
        print(f"\nThe executed notebook is at {out}.")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebook", nargs="?", default="notebooks/01-quickstart.ipynb")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    try:
        return run(args.notebook, args.out)
    except Exception as e:  # one clear line: this is a demo step, not a debugger
        print(f"quickstart: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
