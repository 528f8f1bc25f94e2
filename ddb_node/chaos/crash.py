"""Crash consistency: kill -9 at random points, and a power-loss simulation that drops the
data a node wrote but had not yet synced.

Power loss, simulated: the nodes run with a tiny LD_PRELOAD shim (built here with the C
compiler) that, after every successful fsync/fdatasync, appends "<size> <path>" to a log. At
a random moment the node is SIGSTOPped, its data directory copied, and the node killed (the
power is cut right there). In the copy every file is cut back to the size it had at its last
sync: whatever was appended since (SQLite WAL frames, log entries) never reached the disk.
Overwrites inside the synced size are kept (one legal outcome of a power cut: they happened to
reach the disk; SQLite orders its syncs so this is consistent). WAL index files (-shm) are
dropped, as after a reboot. The node is then restarted from that image. Nothing acknowledged
may be lost (the Raft log syncs before it acknowledges) and nothing may be corrupt.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile

import apsw

from ddb_node.cluster import LocalCluster

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void record(int fd) {
    const char *log = getenv("DDB_SYNC_LOG");
    if (!log) return;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return;
    path[n] = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char line[4200];
    int len = snprintf(line, sizeof line, "%lld %s\n", (long long)st.st_size, path);
    int lf = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (lf >= 0) { ssize_t w = write(lf, line, len); (void)w; close(lf); }
}

int fsync(int fd) {
    if (!real_fsync) real_fsync = dlsym(RTLD_NEXT, "fsync");
    int r = real_fsync(fd);
    if (r == 0) record(fd);
    return r;
}

int fdatasync(int fd) {
    if (!real_fdatasync) real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    int r = real_fdatasync(fd);
    if (r == 0) record(fd);
    return r;
}
"""


def build_sync_shim(dest_dir: str | None = None) -> str | None:
    """Compile the fsync-recording shim; None if there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    d = dest_dir or tempfile.mkdtemp(prefix="ddb-shim-")
    src, so = os.path.join(d, "syncshim.c"), os.path.join(d, "syncshim.so")
    with open(src, "w") as f:
        f.write(SHIM_C)
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl"], capture_output=True, text=True)
    return so if r.returncode == 0 else None


def synced_sizes(log_path: str) -> dict:
    """{path: size at its last successful sync}."""
    out = {}
    try:
        with open(log_path) as f:
            for line in f:
                size, _, path = line.rstrip("\n").partition(" ")
                if size.isdigit():
                    out[path] = int(size)
    except FileNotFoundError:
        pass
    return out


def drop_unsynced(image_dir: str, original_dir: str, synced: dict) -> dict:
    """Cut every file of the copied image back to its size at its last sync; return
    {file: bytes dropped}. Files never synced since tracking began: appended logs (WAL) are
    dropped entirely; other files (written with temp+fsync+rename) are kept."""
    dropped = {}
    for root, _, files in os.walk(image_dir):
        for name in files:
            p = os.path.join(root, name)
            rel = os.path.relpath(p, image_dir)
            orig = os.path.join(os.path.realpath(original_dir), rel)
            size = os.path.getsize(p)
            if name.endswith("-shm"):
                os.unlink(p)
                continue
            keep = synced.get(orig)
            if keep is None:
                keep = 0 if name.endswith("-wal") else size
            if keep < size:
                with open(p, "r+b") as f:
                    f.truncate(keep)
                dropped[rel] = size - keep
    return dropped


def integrity_check(path: str) -> str:
    """PRAGMA integrity_check of a SQLite file (on a private copy, so the WAL is replayed
    without touching the original). Returns 'ok' or the problems."""
    d = tempfile.mkdtemp(prefix="ddb-ic-")
    try:
        for suffix in ("", "-wal"):
            if os.path.exists(path + suffix):
                shutil.copy(path + suffix, os.path.join(d, "db" + suffix))
        con = apsw.Connection(os.path.join(d, "db"))
        rows = con.execute("PRAGMA integrity_check").fetchall()
        con.close()
        return "ok" if rows == [("ok",)] else "; ".join(r[0] for r in rows[:5])
    finally:
        shutil.rmtree(d, ignore_errors=True)


class PowerLossCluster(LocalCluster):
    """A LocalCluster whose nodes record their syncs, with a power_loss() fault."""

    def __init__(self, n: int = 3, data_dir: str | None = None, *, shim: str, **kw):
        self.shim = shim
        self.power_losses: list[dict] = []
        start = kw.pop("start", True)
        super().__init__(n, data_dir, start=False, **kw)
        if start:
            self.start(kw.get("timeout", 30.0))

    def _spawn(self, node) -> None:
        saved = {k: os.environ.get(k) for k in ("LD_PRELOAD", "DDB_SYNC_LOG")}
        os.environ["LD_PRELOAD"] = self.shim
        os.environ["DDB_SYNC_LOG"] = self.sync_log(node.id)
        try:
            super()._spawn(node)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def sync_log(self, i: int) -> str:
        return os.path.join(self.data_dir, f"sync-node{i}.log")

    def power_loss(self, ids) -> dict:
        """Cut the power of these nodes at one moment: stop them all, image their disks as
        synced, kill them, and restart each from its image."""
        ids = [i for i in ids if self.nodes[i].state == "running"]
        for i in ids:
            self.nodes[i].proc.send_signal(signal.SIGSTOP)
        images = {}
        for i in ids:
            n = self.nodes[i]
            images[i] = n.data_dir + ".power-loss"
            shutil.rmtree(images[i], ignore_errors=True)
            shutil.copytree(n.data_dir, images[i])
        synced = {i: synced_sizes(self.sync_log(i)) for i in ids}
        for i in ids:
            self.kill(i)
        report = {}
        for i in ids:
            n = self.nodes[i]
            report[i] = drop_unsynced(images[i], n.data_dir, synced[i])
            shutil.rmtree(n.data_dir)
            os.rename(images[i], n.data_dir)
            # the image is what is on disk now: its sync history starts over from it
            real = os.path.realpath(n.data_dir)
            with open(self.sync_log(i), "w") as f:
                for root, _, files in os.walk(real):
                    for name in files:
                        p = os.path.join(root, name)
                        if not name.startswith("sync-"):
                            f.write(f"{os.path.getsize(p)} {p}\n")
        for i in ids:
            self.restart(i)
        self.power_losses.append(report)
        return report
