"""Clusters launched from a kernel stop when the kernel stops.

Three layers, each covering what the one before cannot:
1. kernel shutdown or restart: the kernel's `do_shutdown` is wrapped so every cluster is
   closed (processes stopped, temporary directories removed) before ipykernel replies;
2. interpreter exit (`exit`, end of a script, the shell closing): an `atexit` handler;
3. the kernel killed outright (SIGKILL, OOM): the node processes die with it
   (LocalCluster's PR_SET_PDEATHSIG), and a tiny reaper process, which waits for the
   kernel's end of a pipe to close, removes the temporary directories and any node process
   still holding one.

Node processes are also put in their own process group, so interrupting the kernel
(which signals the kernel's whole process group) does not kill the cluster.
"""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import weakref

_backends: "weakref.WeakSet" = weakref.WeakSet()
_lock = threading.Lock()
_reaper: subprocess.Popen | None = None
_registered = False
_patched_kernels: "weakref.WeakSet" = weakref.WeakSet()


def track(backend) -> None:
    global _registered
    with _lock:
        _backends.add(backend)
        if not _registered:
            atexit.register(close_all)
            _registered = True
    d = _temp_dir_of(backend)
    if d:
        _reaper_send(f"+{d}")


def untrack(backend) -> None:
    with _lock:
        _backends.discard(backend)
    d = _temp_dir_of(backend)
    if d:
        _reaper_send(f"-{d}")


def close_all() -> None:
    """Close every cluster launched in this process; then let the reaper go."""
    with _lock:
        backends = list(_backends)
        _backends.clear()
    for b in backends:
        try:
            b.close()
        except Exception:  # noqa: BLE001 - shutting down: do the rest regardless
            pass
    stop_reaper()


def hook_kernel(shell) -> None:
    """Wrap the running ipykernel's do_shutdown (shutdown and restart both go through it)."""
    kernel = getattr(shell, "kernel", None)
    if kernel is None or kernel in _patched_kernels or not hasattr(kernel, "do_shutdown"):
        return
    original = kernel.do_shutdown

    def do_shutdown(restart, _original=original):
        close_all()
        return _original(restart)

    kernel.do_shutdown = do_shutdown
    _patched_kernels.add(kernel)


def _temp_dir_of(backend) -> str | None:
    c = getattr(backend, "cluster", None)
    if c is not None and getattr(c, "tmp", False):
        return getattr(c, "data_dir", None)
    return None


# ---------------------------------------------------------------- the reaper
def _reaper_send(line: str) -> None:
    global _reaper
    if not sys.platform.startswith("linux"):
        return
    with _lock:
        if _reaper is None or _reaper.poll() is not None:
            try:
                _reaper = subprocess.Popen(
                    [sys.executable, "-m", "ddb_magic.reaper", str(os.getpid())],
                    stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    close_fds=True, start_new_session=True)
            except OSError:
                _reaper = None
                return
        try:
            _reaper.stdin.write((line + "\n").encode())
            _reaper.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass


def stop_reaper() -> None:
    global _reaper
    with _lock:
        r, _reaper = _reaper, None
    if r is None:
        return
    try:
        r.stdin.close()
    except OSError:
        pass
    try:
        r.wait(5)
    except subprocess.TimeoutExpired:
        r.kill()
        r.wait(2)
