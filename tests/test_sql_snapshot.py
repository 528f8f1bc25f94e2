"""Snapshots: a consistent image of the live database at the applied index, read in place and
streamed in chunks with a trailer (index, term, size, checksum); restore replaces the database
atomically; corrupt or truncated streams are refused."""
import io

import pytest

from ddb_node.sql import SnapshotError, StateMachine

from ddb_node.sql.snapshot import read_stream

from tests.sqlhelpers import Log, apply_one, rows


def filled(path):
    sm = StateMachine(path)
    log = Log(term=2)
    log.add("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")
    for i in range(200):
        log.add(("INSERT INTO t(v) VALUES (randomblob(?))", [100 + i]))
    sm.apply_batch(log.entries)
    return sm


@pytest.mark.parametrize("kind", ["file", "memory"])
def test_roundtrip_resumes_from_the_snapshot_index(tmp_path, kind):
    src = filled(str(tmp_path / "src.db"))
    chunks = list(src.snapshot_chunks(chunk_size=4096))
    assert len(chunks) > 3
    dst = StateMachine(str(tmp_path / "dst.db") if kind == "file" else ":memory:")
    apply_one(dst, "CREATE TABLE other(x)")
    dst.restore(iter(chunks))
    assert (dst.applied_index, dst.applied_term) == (201, 2)
    assert dst.dump() == src.dump()
    er = apply_one(dst, "INSERT INTO t(v) VALUES ('next')")      # resumes at index + 1
    assert er.index == 202 and er.results[0].error is None


def test_snapshot_to_a_path_or_a_file_object_and_restore_from_either(tmp_path):
    src = filled(str(tmp_path / "src.db"))
    path = tmp_path / "snap.bin"
    assert src.snapshot_to(str(path)) == {"index": 201, "term": 2}
    buf = io.BytesIO()
    src.snapshot_to(buf)
    dst = StateMachine(str(tmp_path / "dst.db"))
    dst.restore(str(path))
    assert dst.dump() == src.dump()
    buf.seek(0)
    dst2 = StateMachine(":memory:")
    dst2.restore(buf)
    assert dst2.dump() == src.dump()


def snapshot_bytes(tmp_path):
    return b"".join(filled(str(tmp_path / "src.db")).snapshot_chunks())


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:10], "truncated"),
    (lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:], "checksum"),      # in the image
    (lambda b: b[:-20] + bytes([b[-20] ^ 1]) + b[-19:], "checksum"),      # in the digest
    (lambda b: b + b"extra", "bad magic"),
    (lambda b: b[:-1] + b"X", "bad magic"),
])
@pytest.mark.parametrize("kind", ["file", "memory"])
def test_corrupt_or_truncated_snapshots_are_refused_and_the_old_database_kept(tmp_path, damage, message, kind):
    bad = damage(snapshot_bytes(tmp_path))
    dst = StateMachine(str(tmp_path / "dst.db") if kind == "file" else ":memory:")
    apply_one(dst, "CREATE TABLE keep(x)")
    apply_one(dst, "INSERT INTO keep VALUES (42)")
    before = dst.dump()
    with pytest.raises(SnapshotError, match=message):
        dst.restore([bad[i:i + 1000] for i in range(0, len(bad), 1000)])
    assert dst.dump() == before and dst.applied_index == 2
    assert rows(dst, "SELECT x FROM keep") == [(42,)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ddb-")]   # temp files cleaned


def test_an_image_that_is_not_a_database_is_refused(tmp_path):
    from ddb_node.sql.snapshot import trailer
    import hashlib
    junk = b"x" * 8192
    stream = junk + trailer(5, 1, len(junk), hashlib.sha256(junk).digest())
    dst = StateMachine(str(tmp_path / "dst.db"))
    with pytest.raises(SnapshotError, match="not a usable database"):
        dst.restore([stream])
    assert dst.applied_index == 0


def test_restore_survives_reopen(tmp_path):
    src = filled(str(tmp_path / "src.db"))
    path = str(tmp_path / "dst.db")
    dst = StateMachine(path)
    dst.restore(src.snapshot_chunks())
    dst.close()
    again = StateMachine(path)
    assert again.applied_index == 201 and again.dump() == src.dump()


def test_the_image_is_consistent_while_writes_go_on(tmp_path):
    """The image is read in place from the live file while the database keeps applying (and
    trying to checkpoint): what is read is the database as of the index it was opened at."""
    src = filled(str(tmp_path / "src.db"))
    stream = src.snapshot_source()
    expected = src.dump()
    src.checkpoint_pages = 1                     # ask for a checkpoint after every batch
    for i in range(300):
        apply_one(src, ("UPDATE t SET v = randomblob(300) WHERE id % 7 = ?", [i % 7]))
    data = b"".join(read_stream(stream, 3000))   # odd chunk size: pieces cross pages
    stream.close()
    dst = StateMachine(str(tmp_path / "dst.db"))
    dst.restore([data])
    assert dst.applied_index == 201 and dst.dump() == expected
    assert src.applied_index == 501


def test_retransmitted_and_skipped_reads_give_the_same_stream(tmp_path):
    """Reads in any order (a retransmission rereads, a window may jump ahead) give the
    same bytes and the same trailer as one sequential read."""
    src = filled(str(tmp_path / "src.db"))
    a = src.snapshot_source()
    whole = b"".join(read_stream(a, 1 << 20))
    a.close()
    b = src.snapshot_source()
    size = b.size
    parts = {}
    for off in [0, 4096, 0, 8192, 4096, size - 100] + list(range(0, size, 4096)):
        parts[off] = b.read(off, 4096)
    b.close()
    assert all(whole[off:off + 4096] == piece for off, piece in parts.items())


def test_checkpoints_wait_for_an_open_image_then_resume(tmp_path):
    src = filled(str(tmp_path / "src.db"))
    src.checkpoint_pages = 1
    img = src.open_image()
    apply_one(src, "INSERT INTO t(v) VALUES ('while open')")
    assert src.sync() < src.applied_index           # held back, not an error
    with pytest.raises(SnapshotError, match="already open"):
        src.open_image()
    img.close()
    assert src.sync() == src.applied_index
