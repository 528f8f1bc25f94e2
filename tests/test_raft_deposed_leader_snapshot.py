"""The PySyncObj scenario (issue 2): a deposed leader still holding uncommitted
entries receives a snapshot from the new leader while messages are delayed,
duplicated and reordered.

PySyncObj advanced a follower's commit index to the leader's without checking
that the follower's log matched up to there, so a deposed leader applied its own
uncommitted entries and acknowledged writes were lost. Raft forbids it: a
follower may only commit up to the last entry it knows matches the leader's log
(paper 5.3, Figure 2 "AppendEntries receiver" rule 5 with "index of last new
entry"), and an InstallSnapshot replaces a log that does not contain the
snapshot's last entry (paper 7).
"""
from __future__ import annotations

import copy
import random

import pytest

from ddb_node.raft import MsgType, Role
from tests.raft_harness import Net, msg_is

N = 5


def acked(net: Net, writes: list[bytes]) -> list[bytes]:
    """Writes committed and applied on a majority: what clients were told succeeded."""
    return [w for w in writes if sum(w in net.data(i) for i in net.nodes) > N // 2]


def check_commit_matches(net: Net, lead: int) -> None:
    """No node's committed prefix disagrees with the leader's log."""
    L = net.nodes[lead]
    for nid, n in net.nodes.items():
        lo = max(n.log.first_index(), L.log.first_index())
        for i in range(lo, n.commit_index + 1):
            t, lt = n.log_term(i), L.log_term(i)
            assert t is None or lt is None or t == lt, (
                f"node {nid} committed index {i} of term {t}; leader {lead} has term {lt}")
    net.check_state_machine_safety()


def chaotic_rounds(net: Net, rng: random.Random, lead: int, rounds: int,
                   fifo_links: bool = True) -> None:
    """Deliver with random delays, duplicates and reordering; the leader ticks now and
    then. With fifo_links each (sender, receiver) link keeps its order, as the
    TCP/ZeroMQ transport does, while different links interleave arbitrarily;
    without it every message may overtake any other."""
    schedule: list[tuple[int, int, object]] = []
    last_due: dict[tuple[int, int], int] = {}
    seq = 0
    for r in range(rounds):
        if r % 3 == 0:
            net.tick(lead)
        net.process_all()
        for m in net.take():
            due = r + (rng.randrange(1, 6) if rng.random() < 0.25 else 0)
            link = (m.frm, m.to)
            if fifo_links:
                due = max(due, last_due.get(link, 0))
                last_due[link] = due
            copies = 2 if rng.random() < 0.1 else 1
            for _ in range(copies):
                seq += 1
                schedule.append((due, seq, m if copies == 1 else copy.deepcopy(m)))
        now = sorted(x for x in schedule if x[0] <= r)
        schedule = [x for x in schedule if x[0] > r]
        if fifo_links:
            lanes: dict[tuple[int, int], list] = {}
            for _, _, m in now:
                lanes.setdefault((m.frm, m.to), []).append(m)
            batch = []
            while lanes:
                k = rng.choice(sorted(lanes))
                batch.append(lanes[k].pop(0))
                if not lanes[k]:
                    del lanes[k]
        else:
            batch = [m for _, _, m in now]
            rng.shuffle(batch)
        if len(batch) > 5000:
            raise AssertionError(f"message storm: {len(batch)} messages in one round")
        net.inject(batch)
        net.deliver()
        check_commit_matches(net, lead)
    net.inject(m for _, _, m in sorted(schedule))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("compact_at", ["all", "divergence"])
def test_deposed_leader_with_uncommitted_entries_receives_snapshot(seed, compact_at):
    """Deposed leader + snapshot + delayed/reordered messages: every acknowledged
    write survives on all nodes, the deposed leader's uncommitted entries are gone,
    and no commit index ever covers entries that differ from the leader's."""
    rng = random.Random(seed)
    net = Net(N, seed=seed, check_quorum=seed % 2 == 0, max_snapshot_chunk=48,
              max_entries_per_msg=8)
    net.elect(1)
    writes = [b"w%d" % i for i in range(5)]
    for w in writes:
        net.propose(1, w)
    net.stabilize()                                   # 1..6 committed everywhere
    assert acked(net, writes) == writes

    # "p" reaches node 2 only, then node 1 is cut off with uncommitted entries
    p_index = net.propose(1, b"p")
    net.deliver(msg_is(MsgType.APP, frm=1, to=2))
    net.drop()
    net.isolate(1)
    uncommitted = [b"u%d" % i for i in range(10)]
    for u in uncommitted:
        net.propose(1, u)
    stale = net.take()                                # the deposed leader's appends: held back

    # the majority elects a new leader, which commits many more writes and compacts
    for _ in range(100):
        net.tick_all()
        net.stabilize()
        lead = net.leader()
        if lead is not None and lead != 1:
            break
    assert lead in (2, 3, 4, 5)
    more = [b"a%d" % i for i in range(30)]
    for a in more:
        net.propose(lead, a)
        if rng.random() < 0.3:
            net.stabilize()
    net.stabilize()
    writes += [b"p"] + more
    ok = acked(net, writes)
    assert ok[:5] == writes[:5] and ok[-30:] == more, "the majority applied all of them"
    # "divergence": the snapshot ends just past the last index node 1 agrees on
    cut = net.nodes[lead].applied if compact_at == "all" else p_index + 1
    for nid in (2, 3, 4, 5):
        net.compact(nid, min(cut, net.nodes[nid].applied))
    assert net.storage[lead].first_index() > 6, "node 1 can only be repaired by a snapshot"

    # heal; the old leader's stale appends arrive late, mixed with everything else
    net.heal()
    net.inject(stale)
    snap_while_divergent = []

    def watch(m):
        if m.type == MsgType.SNAP and m.to == 1:
            snap_while_divergent.append(any(e.data in uncommitted for e in net.log(1)))
        return m
    net.hook = watch
    chaotic_rounds(net, rng, lead, rounds=120)
    net.run(20)
    check_commit_matches(net, lead)
    assert snap_while_divergent and snap_while_divergent[0], \
        "the snapshot must reach node 1 while it still holds its uncommitted entries"

    assert net.leader() == lead
    n1 = net.nodes[1]
    assert n1.role == Role.FOLLOWER and n1.term == net.nodes[lead].term
    for nid in net.nodes:
        data = net.data(nid)
        assert data == ok, f"node {nid} lost or reordered acknowledged writes"
        assert not set(uncommitted) & set(data)
    assert not [e for e in net.log(1) if e.data in uncommitted], "uncommitted suffix survived"
    assert n1.commit_index == net.nodes[lead].commit_index
    assert n1.commit_index <= n1.last_index


def test_deposed_leader_heartbeat_commit_does_not_cover_its_divergent_suffix():
    """The narrow PySyncObj bug: a heartbeat (or append) carrying the new leader's
    commit index reaches the deposed leader before its log is repaired; its commit
    index must not move over its own uncommitted entries."""
    net = Net(3, check_quorum=False, pre_vote=False)
    net.elect(1)
    net.isolate(1)
    for i in range(5):
        net.propose(1, b"u%d" % i)             # 1/2..1/6 only on node 1
    net.drop()
    net.elect(2)
    for i in range(5):
        net.propose(2, b"a%d" % i)             # 2/2 no-op, 2/3..2/7
    net.stabilize()
    net.heal()
    net.tick(2)
    hb = [m for m in net.take(msg_is(MsgType.HEARTBEAT, to=1))]
    assert hb
    net.step(hb[0])                             # no response processed yet
    assert net.nodes[1].commit_index == 1
    # an append whose prev entry does not match carries the commit too
    net.take()
    n1 = net.nodes[1]
    from ddb_node.raft import Message
    n1.step(Message(MsgType.APP, 1, 2, net.nodes[2].term, log_term=2, index=7, entries=[],
                    commit=7))
    net.process(1)
    assert n1.commit_index == 1 and net.data(1) == []
    net.stabilize()
    net.run(3)
    assert net.data(1) == [b"a%d" % i for i in range(5)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_snapshot_install_with_arbitrary_reordering_stays_bounded(seed):
    """Same scenario, but messages may overtake each other on a link (the simulator's
    `reorder` fault). Each out-of-order chunk makes the follower reject with its
    buffer length; each reject makes the leader rewind to that offset and resend a
    whole window, which is reordered again: the number of SNAP/SNAP_RESP messages
    grows geometrically (millions within ~30 rounds) instead of the install
    completing."""
    rng = random.Random(seed)
    net = Net(N, seed=seed, max_snapshot_chunk=48)
    net.elect(1)
    net.crash(5)
    for i in range(40):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    for nid in (1, 2, 3, 4):
        net.compact(nid)
    net.restart(5)
    chaotic_rounds(net, rng, 1, rounds=120, fifo_links=False)
    net.run(10)
    assert net.sm[5] == net.sm[1]
