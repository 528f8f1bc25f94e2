"""Clusters launched from a kernel stop with it: no node process, no temporary directory
left behind after shutdown, restart, or even SIGKILL of the kernel. Interrupting the kernel
does not kill the cluster."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

jupyter_client = pytest.importorskip("jupyter_client")
from jupyter_client.manager import start_new_kernel  # noqa: E402

from tests.nodehelpers import pids_matching  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux process checks")

LAUNCH = """
%load_ext ddb_magic
%ddb launch -n 3
import json
from ddb_magic import magics_of
_c = magics_of(get_ipython()).clusters['default'].cluster
print('DDB-INFO ' + json.dumps({'dir': _c.data_dir, 'pids': [n.pid for n in _c.nodes.values()]}))
"""


def _execute(kc, code, timeout=90):
    out = []
    msg_id = kc.execute(code)
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        t, c = msg["msg_type"], msg["content"]
        if t == "stream":
            out.append(c["text"])
        elif t in ("display_data", "execute_result"):
            out.append(c["data"].get("text/plain", "") + "\n")
        elif t == "error":
            out.append("\n".join(c["traceback"]))
        elif t == "status" and c["execution_state"] == "idle":
            return "".join(out)


def _launch(kc):
    out = _execute(kc, LAUNCH)
    line = [x for x in out.splitlines() if x.startswith("DDB-INFO ")]
    assert line, out
    info = json.loads(line[0][9:])
    assert os.path.isdir(info["dir"]) and all(_alive(p) for p in info["pids"])
    return info


def _alive(pid) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _gone(info, within=15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not os.path.exists(info["dir"]) and not any(_alive(p) for p in info["pids"]):
            return True
        time.sleep(0.1)
    return False


def _no_reaper_left(kernel_pid):
    return pids_matching(f"ddb_magic.reaper {kernel_pid}") == []


def test_shutdown_leaves_nothing_behind():
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        info = _launch(kc)
        kpid = km.provisioner.pid
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
    assert _gone(info), info
    assert _no_reaper_left(kpid)


def test_restart_stops_the_cluster_and_interrupt_does_not():
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        info = _launch(kc)
        msg_id = kc.execute("%ddb status --watch 20")
        time.sleep(2.0)
        km.interrupt_kernel()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            msg = kc.get_iopub_msg(timeout=20)
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status" \
                    and msg["content"]["execution_state"] == "idle":
                break
        assert all(_alive(p) for p in info["pids"]), "an interrupt must not kill the nodes"
        out = _execute(kc, "%%ddb\nSELECT 41 + 1 AS answer")
        assert "42" in out, out
        km.restart_kernel(now=False)
        assert _gone(info), info
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_sigkill_of_the_kernel_leaves_nothing_behind():
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        info = _launch(kc)
        kpid = km.provisioner.pid
        os.kill(kpid, signal.SIGKILL)
        assert _gone(info, 20), info
        assert _no_reaper_left(kpid)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_plain_python_exit_leaves_nothing_behind(tmp_path):
    script = ("from IPython.core.interactiveshell import InteractiveShell\n"
              "sh = InteractiveShell.instance()\n" +
              "".join(f"sh.run_cell({line!r})\n" for line in LAUNCH.strip().splitlines()))
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    line = [x for x in p.stdout.splitlines() if x.startswith("DDB-INFO ")]
    assert line, p.stdout + p.stderr
    assert _gone(json.loads(line[0][9:]))
