"""The power-loss model of ddb_node.chaos.crash, pinned on plain files: a child process writes
and syncs through the LD_PRELOAD shim, then the image is cut as a power loss would leave it.
Appends after the last sync are cut, overwrites inside the synced size are zeroed (a reset
SQLite WAL loses its header), synced data stays, and files the log never saw are kept
(WAL files excepted)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys


from ddb_node.chaos.crash import drop_unsynced, sync_histories

CHILD = r"""
import os, sys
d = sys.argv[1]
fd = os.open(os.path.join(d, "log.db-wal"), os.O_RDWR | os.O_CREAT)
os.write(fd, b"A" * 100)
os.fsync(fd)                       # 100 bytes durable
os.pwrite(fd, b"B" * 10, 20)       # an overwrite inside the synced size, never synced
os.write(fd, b"C" * 50)            # an append, never synced (write() at the current offset)
os.close(fd)
with open(os.path.join(d, "kept.json"), "wb") as f:
    f.write(b"x" * 7)              # the shim sees it, nothing syncs it: lost
fd = os.open(os.path.join(d, "durable"), os.O_RDWR | os.O_CREAT)
os.write(fd, b"D" * 30)
os.fdatasync(fd)                   # everything synced: nothing to undo
os.close(fd)
"""


def _run_child(shim, d, log):
    env = dict(os.environ, LD_PRELOAD=shim, DDB_SYNC_LOG=log)
    subprocess.run([sys.executable, "-c", CHILD, d], env=env, check=True, timeout=60)


def test_the_shim_records_writes_and_syncs_of_regular_files(tmp_path, shim):
    d, log = tmp_path / "data", str(tmp_path / "sync.log")
    d.mkdir()
    _run_child(shim, str(d), log)
    h = sync_histories(log)
    wal = h[str(d / "log.db-wal")]
    assert wal.synced == 100
    assert wal.unsynced == [(20, 10), (100, 50)]
    assert h[str(d / "durable")].synced == 30 and h[str(d / "durable")].unsynced == []
    assert h[str(d / "kept.json")].synced is None


def test_power_loss_cuts_appends_and_zeroes_unsynced_overwrites(tmp_path, shim):
    d, log = tmp_path / "data", str(tmp_path / "sync.log")
    d.mkdir()
    _run_child(shim, str(d), log)
    (d / "untracked.db-wal").write_bytes(b"w" * 9)  # written outside the log's knowledge
    (d / "untracked.txt").write_bytes(b"t" * 9)
    (d / "x.db-shm").write_bytes(b"s" * 9)
    image = tmp_path / "image"
    shutil.copytree(d, image)
    # the histories name the original files; the copy is what drop_unsynced cuts
    dropped = drop_unsynced(str(image), str(d), sync_histories(log))
    assert (image / "log.db-wal").read_bytes() == b"A" * 20 + b"\0" * 10 + b"A" * 70
    assert (image / "durable").read_bytes() == b"D" * 30
    assert (image / "kept.json").read_bytes() == b""
    assert (image / "untracked.txt").read_bytes() == b"t" * 9
    assert (image / "untracked.db-wal").read_bytes() == b""
    assert not (image / "x.db-shm").exists()
    assert dropped == {"log.db-wal": 60, "kept.json": 7, "untracked.db-wal": 9}


def test_a_torn_last_log_line_is_ignored(tmp_path):
    log = tmp_path / "sync.log"
    log.write_text("S 10 /a\nW 0 4 /a\nW 4 4")
    h = sync_histories(str(log))
    assert h["/a"].synced == 10 and h["/a"].unsynced == [(0, 4)]


def test_overlapping_unsynced_writes_are_zeroed_and_counted_once(tmp_path):
    """A reset WAL rewrites its header: the same range twice is one loss."""
    d, image = tmp_path / "data", tmp_path / "image"
    d.mkdir()
    image.mkdir()
    (image / "x.db-wal").write_bytes(b"A" * 100)
    log = tmp_path / "sync.log"
    log.write_text(f"S 100 {d / 'x.db-wal'}\nW 0 32 {d / 'x.db-wal'}\nW 0 32 {d / 'x.db-wal'}\n"
                   f"W 20 30 {d / 'x.db-wal'}\n")
    dropped = drop_unsynced(str(image), str(d), sync_histories(str(log)))
    assert (image / "x.db-wal").read_bytes() == b"\0" * 50 + b"A" * 50
    assert dropped == {"x.db-wal": 50}
