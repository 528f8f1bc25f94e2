"""The "DDB SQL" wrapper kernel: install the spec, start it, every cell is SQL."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("jupyter_client")
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

from tests.test_magic_lifecycle import _execute  # noqa: E402


def test_install_and_run(tmp_path):
    p = subprocess.run([sys.executable, "-m", "ddb_magic.kernel", "install", "--prefix", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    kdir = tmp_path / "share" / "jupyter" / "kernels" / "ddb_sql"
    spec = json.loads((kdir / "kernel.json").read_text())
    assert spec["display_name"] == "DDB SQL" and spec["language"] == "sql"
    km = KernelManager(kernel_name="ddb_sql",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kdir.parent)]))
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        info = kc.kernel_info(reply=True)["content"]
        assert info["language_info"]["name"] == "sql"
        assert info["language_info"]["codemirror_mode"] == "sql"
        out = _execute(kc, "%load_ext ddb_magic\n%ddb launch --sim -n 3 --seed 3")
        assert "simulated cluster" in out and "already loaded" not in out, out
        out = _execute(kc, "CREATE TABLE t(x INTEGER);\nINSERT INTO t VALUES (1), (2);\nSELECT sum(x) AS s FROM t")
        assert "2 rows affected" in out and " 3" in out, out
        out = _execute(kc, "%ddb_kill 1\nSELECT count(*) AS n FROM t")
        assert "kill n1" in out and "1 row" in out, out
        out = _execute(kc, "SELEC oops")
        assert "syntax error" in out and "Traceback" not in out, out
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
