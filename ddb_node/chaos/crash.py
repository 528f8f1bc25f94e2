"""Crash consistency: kill -9 at random points, and a power-loss simulation that undoes the
data a node wrote but had not yet synced.

Power loss, simulated: the nodes run with a tiny LD_PRELOAD shim (built here with the C
compiler) that appends to a log, for regular files, "S <size> <path>" after every successful
fsync/fdatasync and "W <offset> <length> <path>" after every write. At a random moment the
node is SIGSTOPped, its data directory copied, and the node killed (the power is cut right
there). In the copy every write since the file's last sync is undone: the file is cut back to
its synced size (appended WAL frames and log entries never reached the disk) and every range
overwritten inside that size is zeroed (the sectors hold neither the old nor the new data; a
reset SQLite WAL loses its header this way, and SQLite must fall back to what its last
checkpoint synced). WAL index files (-shm) are dropped, as after a reboot. The node is then
restarted from that image. Nothing acknowledged may be lost (the Raft log syncs before it
acknowledges) and nothing may be corrupt.

Files the log knows nothing about (written before tracking began, or through a call the shim
does not see, such as sendfile) are kept, except WAL files, which are dropped entirely.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field

import apsw

from ddb_node.cluster import LocalCluster

SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off64_t);
static int log_fd = -1;

static void *next(const char *name) { return dlsym(RTLD_NEXT, name); }

static int open_log(void) {
    int fd = __atomic_load_n(&log_fd, __ATOMIC_ACQUIRE);
    if (fd >= 0) return fd;
    const char *log = getenv("DDB_SYNC_LOG");
    if (!log) return -1;
    fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    int none = -1;
    if (!__atomic_compare_exchange_n(&log_fd, &none, fd, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        close(fd);
        fd = none;
    }
    return fd;
}

/* one line per event, written with a single write() to an O_APPEND file */
static void record(int fd, char kind, long long off, long long len) {
    int lf = open_log();
    if (lf < 0 || fd == lf) return;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return;
    path[n] = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    char line[4200];
    int len_ = kind == 'S'
        ? snprintf(line, sizeof line, "S %lld %s\n", (long long)st.st_size, path)
        : snprintf(line, sizeof line, "W %lld %lld %s\n", off, len, path);
    if (!real_write) real_write = next("write");
    ssize_t w = real_write(lf, line, len_);
    (void)w;
}

int fsync(int fd) {
    if (!real_fsync) real_fsync = next("fsync");
    int r = real_fsync(fd);
    if (r == 0) record(fd, 'S', 0, 0);
    return r;
}

int fdatasync(int fd) {
    if (!real_fdatasync) real_fdatasync = next("fdatasync");
    int r = real_fdatasync(fd);
    if (r == 0) record(fd, 'S', 0, 0);
    return r;
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (!real_write) real_write = next("write");
    ssize_t r = real_write(fd, buf, count);
    if (r > 0 && fd > 2) {
        off_t end = lseek(fd, 0, SEEK_CUR);      /* after the write, append or not */
        if (end >= 0) record(fd, 'W', (long long)end - r, r);
    }
    return r;
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) {
    if (!real_pwrite) real_pwrite = next("pwrite");
    ssize_t r = real_pwrite(fd, buf, count, offset);
    if (r > 0) record(fd, 'W', offset, r);
    return r;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset) {
    if (!real_pwrite64) real_pwrite64 = next("pwrite64");
    ssize_t r = real_pwrite64(fd, buf, count, offset);
    if (r > 0) record(fd, 'W', offset, r);
    return r;
}
"""


def build_sync_shim(dest_dir: str | None = None) -> str | None:
    """Compile the write- and sync-recording shim; None if there is no C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None
    d = dest_dir or tempfile.mkdtemp(prefix="ddb-shim-")
    src, so = os.path.join(d, "syncshim.c"), os.path.join(d, "syncshim.so")
    with open(src, "w") as f:
        f.write(SHIM_C)
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl"], capture_output=True, text=True)
    return so if r.returncode == 0 else None


@dataclass
class FileHistory:
    """What the disk is known to hold of one file: its size at its last sync (None: never
    synced since tracking began) and the ranges written since then."""
    synced: int | None = None
    unsynced: list = field(default_factory=list)


def sync_histories(log_path: str) -> dict:
    """{path: FileHistory} from a shim log (a torn last line is ignored)."""
    out: dict = {}
    try:
        with open(log_path) as f:
            for line in f:
                if not line.endswith("\n"):
                    break
                kind, _, rest = line[:-1].partition(" ")
                if kind == "S":
                    size, _, path = rest.partition(" ")
                    if size.isdigit():
                        out[path] = FileHistory(int(size))
                elif kind == "W":
                    off, _, rest = rest.partition(" ")
                    n, _, path = rest.partition(" ")
                    if off.isdigit() and n.isdigit():
                        out.setdefault(path, FileHistory()).unsynced.append((int(off), int(n)))
    except FileNotFoundError:
        pass
    return out


def _zero_ranges(f, ranges, size: int) -> int:
    """Zero the written ranges inside `size` (merged first: a WAL header is rewritten at
    every reset); returns the bytes zeroed."""
    merged: list = []
    for off, n in sorted(ranges):
        end = min(off + n, size)
        if end <= off:
            continue
        if merged and off <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([off, end])
    for off, end in merged:
        f.seek(off)
        f.write(b"\0" * (end - off))
    return sum(end - off for off, end in merged)


def drop_unsynced(image_dir: str, original_dir: str, histories: dict) -> dict:
    """Undo, in the copied image, every write made since each file's last sync; return
    {file: bytes cut or zeroed}."""
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
            h = histories.get(orig)
            if h is None:
                keep, ranges = (0 if name.endswith("-wal") else size), []
            else:
                keep = h.synced if h.synced is not None else 0
                ranges = h.unsynced
            if keep >= size and not ranges:
                continue
            lost = 0
            with open(p, "r+b") as f:
                if keep < size:
                    f.truncate(keep)
                    lost += size - keep
                lost += _zero_ranges(f, ranges, min(keep, size))
            if lost:
                dropped[rel] = lost
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
    """A LocalCluster whose nodes record their writes and syncs, with a power_loss() fault."""

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
        histories = {i: sync_histories(self.sync_log(i)) for i in ids}
        for i in ids:
            self.kill(i)
        report = {}
        for i in ids:
            n = self.nodes[i]
            report[i] = drop_unsynced(images[i], n.data_dir, histories[i])
            shutil.rmtree(n.data_dir)
            os.rename(images[i], n.data_dir)
            # the image is what is on disk now: its sync history starts over from it
            real = os.path.realpath(n.data_dir)
            with open(self.sync_log(i), "w") as f:
                for root, _, files in os.walk(real):
                    for name in files:
                        p = os.path.join(root, name)
                        if not name.startswith("sync-"):
                            f.write(f"S {os.path.getsize(p)} {p}\n")
        for i in ids:
            self.restart(i)
        self.power_losses.append(report)
        return report
