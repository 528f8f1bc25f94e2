"""Stopping the processes ddb starts (nodes, a launcher's control process, test servers):
SIGTERM to all at once, a bounded wait, SIGKILL for whoever is still there.

One definition so that every place that shuts processes down gives them the same chance
to exit cleanly and never leaves one behind."""
from __future__ import annotations

import signal
import subprocess
from typing import Iterable


def stop_processes(procs: Iterable[subprocess.Popen], timeout: float = 10.0,
                   *, resume: Iterable[subprocess.Popen] = ()) -> None:
    """Terminate every live process (a stopped one in `resume` is continued first, or it
    could not act on SIGTERM), wait up to `timeout` seconds for each, kill the rest."""
    procs = [p for p in procs if p is not None]
    for p in resume:
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGCONT)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    """`stop_processes` for one; its exit status (None if there was no process)."""
    if proc is None:
        return None
    stop_processes([proc], timeout)
    return proc.returncode
