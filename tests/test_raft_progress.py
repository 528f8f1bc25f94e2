"""raft/progress.py as a specification: the leader's view of one follower (§5.3 log
replication, §7 snapshots): the in-flight window and the chunked snapshot sender."""
from __future__ import annotations

from ddb_node.raft.progress import (SNAPSHOT_RETRY_HEARTBEATS, SNAPSHOT_WINDOW, Inflights,
                                    Progress, ProgressState, SnapshotSender)
from ddb_node.raft.types import ConfState, SnapshotMeta


class Source:
    """A SnapshotSource over bytes in memory."""

    def __init__(self, data: bytes, index: int = 10):
        self.meta = SnapshotMeta(index, 2, ConfState((1, 2, 3), ()))
        self.data = data
        self.size = len(data)

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]


def drain(sender: SnapshotSender, size: int) -> list:
    out = []
    while (c := sender.next_chunk(size)) is not None:
        out.append(c)
    return out


# ---------------------------------------------------------------- §5.3 the in-flight window
def test_inflights_frees_what_the_follower_acknowledged():
    w = Inflights(3)
    for i in (5, 9, 12):
        w.add(i)
    assert w.full()
    w.free_le(9)
    assert len(w) == 1 and not w.full()


def test_free_first_one_gives_up_the_oldest_slot():
    w = Inflights(2)
    w.add(5)
    w.add(9)
    w.free_first_one()
    assert len(w) == 1 and not w.full()
    w.free_first_one()
    w.free_first_one()          # an empty window stays empty
    assert len(w) == 0


def test_a_probe_sends_one_append_until_the_follower_answers():
    pr = Progress(next_index=5, max_inflight=4)
    assert not pr.is_paused()
    pr.sent_entries(7)
    assert pr.is_paused() and pr.next == 5           # a probe does not advance next
    assert pr.acknowledged(7)
    assert pr.state == ProgressState.REPLICATE and pr.match == 7 and pr.next == 8


def test_replication_pipelines_up_to_the_window():
    pr = Progress(next_index=1, max_inflight=2)
    pr.become_replicate()
    pr.sent_entries(3)
    pr.sent_entries(6)
    assert pr.next == 7 and pr.is_paused()
    assert pr.acknowledged(3) and not pr.is_paused()
    assert not pr.acknowledged(3)                    # a stale acknowledgement moves nothing


def test_a_heartbeat_answer_reopens_a_full_window_and_an_unanswered_probe():
    pr = Progress(next_index=1, max_inflight=1)
    pr.become_replicate()
    pr.sent_entries(4)
    assert pr.is_paused()
    pr.heartbeat_answered()
    assert not pr.is_paused()
    probe = Progress(next_index=1, max_inflight=1)
    probe.sent_entries(4)
    probe.heartbeat_answered()
    assert not probe.is_paused()


def test_a_follower_that_installed_the_snapshot_replicates_after_it():
    pr = Progress(next_index=1, max_inflight=4)
    pr.become_snapshot(Source(b"x" * 10, index=10))
    assert pr.state == ProgressState.SNAPSHOT and pr.is_paused() and pr.pending_snapshot == 10
    assert pr.acknowledged(10)
    assert pr.state == ProgressState.REPLICATE and pr.next == 11 and pr.snapshot is None


def test_an_aborted_transfer_probes_from_the_match_again():
    pr = Progress(next_index=1, max_inflight=4)
    pr.match = 3
    pr.become_snapshot(Source(b"x" * 10))
    pr.abort_snapshot()
    assert pr.state == ProgressState.PROBE and pr.next == 4 and pr.snapshot is None


# ---------------------------------------------------------------- §7 chunked snapshots
def test_sender_streams_chunks_within_the_window():
    s = SnapshotSender(Source(bytes(range(10)) * 10))            # 100 bytes
    chunks = drain(s, 10)
    assert [c.offset for c in chunks] == [0, 10, 20, 30][:SNAPSHOT_WINDOW]
    assert chunks[0].data == bytes(range(10)) and chunks[0].total == 100
    assert not any(c.done for c in chunks)
    assert s.on_response(20, 0)                                   # progress: send more
    assert [c.offset for c in drain(s, 10)] == [40, 50]


def test_the_last_chunk_says_done_and_an_empty_image_is_one_chunk():
    s = SnapshotSender(Source(b"abc"))
    (c,) = drain(s, 10)
    assert c.done and c.data == b"abc"
    empty = SnapshotSender(Source(b""))
    (c,) = drain(empty, 10)
    assert c.done and c.data == b"" and c.total == 0
    assert drain(empty, 10) == []


def test_a_duplicate_or_overtaken_acknowledgement_sends_nothing():
    s = SnapshotSender(Source(b"x" * 100))
    drain(s, 10)
    assert s.on_response(30, 0)
    assert not s.on_response(30, 0)            # duplicate: no progress
    assert not s.on_response(10, 0)            # overtaken: remembered as the low mark
    assert s.low == 10


def test_a_gap_resends_from_the_follower_prefix_once():
    s = SnapshotSender(Source(b"x" * 100))
    drain(s, 10)                               # 0..40 out; the chunk at 10 is lost
    assert s.on_response(10, 0)                # chunk 0 arrived
    drain(s, 10)
    assert s.on_response(10, 20)               # chunk at 20 arrived past the prefix: a gap
    assert s.sent == 10
    assert [c.offset for c in drain(s, 10)][0] == 10
    assert not s.on_response(10, 30)           # caused by the resend itself: no second resend


def test_a_stalled_transfer_retries_after_some_heartbeats():
    s = SnapshotSender(Source(b"x" * 100))
    drain(s, 10)
    s.on_response(20, 0)
    drain(s, 10)
    for _ in range(SNAPSHOT_RETRY_HEARTBEATS - 1):
        assert not s.on_heartbeat()
    assert s.on_heartbeat()
    s.retry()
    assert s.idle == 0 and [c.offset for c in drain(s, 10)][0] == 20


def test_a_retry_resends_from_less_when_the_follower_holds_less():
    # a follower that restarted may hold less than it acknowledged (staged bytes not on disk)
    s = SnapshotSender(Source(b"x" * 100))
    drain(s, 10)
    s.on_response(30, 0)
    s.on_response(10, 0)
    s.retry()
    assert s.sent == 10 and s.acked == 10
