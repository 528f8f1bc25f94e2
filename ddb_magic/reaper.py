"""`python -m ddb_magic.reaper PID`: clean up after a kernel that died without closing.

Reads lines from stdin: `+DIR` (a cluster's temporary data directory to watch) and `-DIR`
(closed cleanly, forget it). When stdin reaches end of file (the kernel exited, however it
exited) every directory still watched is removed, after killing any ddb node process
whose command line names it. A clean shutdown sends `-DIR` first, so nothing is left to do.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import time


def _node_pids(d: str) -> list[int]:
    pids = []
    needle = (d.rstrip("/") + "/").encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"ddb_node.server" in cmd and needle in cmd:
            pids.append(int(name))
    return pids


def main() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    watched: set[str] = set()
    for raw in sys.stdin.buffer:
        line = raw.decode(errors="replace").rstrip("\n")
        if line.startswith("+"):
            watched.add(line[1:])
        elif line.startswith("-"):
            watched.discard(line[1:])
    for d in sorted(watched):
        for pid in _node_pids(d):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        while _node_pids(d) and time.monotonic() < deadline:
            time.sleep(0.05)
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
