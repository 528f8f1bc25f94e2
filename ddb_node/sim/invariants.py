"""Raft's safety properties, checked incrementally while the simulation runs.

Every check is fed by what the simulator sees anyway (a message sent, a Ready saved,
an entry applied, a step finished), and costs O(what changed), not O(log length):

election safety     at most one leader per term (map term -> leader, per step)
log matching        every (index, term) ever seen, in a message or in a persisted log,
                    always carries the same entry and sits after the same previous
                    term; by induction two logs holding (i, t) agree on 1..i
leader completeness for a leader of term T, the highest index known committed by a
                    node whose term was < T when it learned it must be in T's log
                    with the committed term (O(1): log matching covers the prefix)
state machine safety every node applies index i with the same (term, data); each
                    node applies 1, 2, 3, ... with no gap and no repeat (a restart
                    restarts from its snapshot)
commit monotonicity a live incarnation's commit index never decreases; what is
                    persisted (term, vote, commit) never goes back, and a term's vote
                    never changes once cast, across crashes too; committed entries
                    never change (every node advancing its commit must agree with the
                    term recorded by whoever committed that index first)
acknowledged writes an acknowledged write's (index, term) is committed, and stays so

What is deliberately *not* checked: "a node's commit index after a restart is at
least what it acknowledged". The commit index is soft state: Raft persists it lazily
(it is in HardState only as an optimisation), so a restarted leader may come back
with a lower commit than it told clients. That is safe because the entry itself is
on a majority of persisted logs; the checks above (leader completeness, committed
entries never change, acknowledged writes stay committed) are what catch a real loss.
"""
from __future__ import annotations

from dataclasses import dataclass

from ddb_node.raft.types import MsgType, Role


class InvariantViolation(AssertionError):
    def __init__(self, name: str, detail: str, step: int = -1, time: float = 0.0):
        super().__init__(f"[{name}] {detail} (step {step}, t={time:.3f}ms)")
        self.name = name
        self.detail = detail
        self.step = step
        self.time = time


def term_at(raft, index: int):
    """Term of the entry at index in raft's log, or None when not known there
    (compacted, beyond the end, or index 0)."""
    if index <= 0:
        return None
    try:
        t = raft.log_term(index)
    except Exception:
        return None
    return t or None


@dataclass
class _Track:
    incarnation: int
    commit: int


class InvariantChecker:
    def __init__(self, sim):
        self.sim = sim
        self.leaders: dict[int, int] = {}          # term -> leader id
        self.entries: dict[tuple, tuple] = {}      # (index, term) -> (type, data, prev_term)
        self.committed: dict[int, int] = {}        # index -> term, as first seen committed
        self.max_committed = 0
        self.commit_known: dict[int, int] = {}     # term of the learner -> highest index
        self.applied: dict[int, tuple] = {}        # index -> (term, type, data)
        self.applied_by: dict[int, int] = {}       # node -> last applied index (this incarnation)
        self.track: dict[int, _Track] = {}         # node -> commit tracking per incarnation
        self.acked: list[tuple] = []               # (node, index, term, data) to verify
        self.acked_all: dict[int, tuple] = {}      # index -> (term, data)
        self.checks = 0

    # ---- helpers -------------------------------------------------------------
    def fail(self, name: str, detail: str):
        sim = self.sim
        v = InvariantViolation(name, detail, sim.steps, sim.now)
        sim.violations.append(v)
        raise v

    def _record_entry(self, index: int, term: int, etype: int, data: bytes, prev_term,
                      where: str) -> None:
        key = (index, term)
        old = self.entries.get(key)
        if old is None:
            self.entries[key] = (etype, data, prev_term)
            return
        otype, odata, oprev = old
        if otype != etype or odata != data:
            self.fail("log matching", f"two different entries at index {index} term {term} "
                      f"({where}): {odata[:60]!r} vs {data[:60]!r}")
        if prev_term is not None:
            if oprev is None:
                self.entries[key] = (otype, odata, prev_term)
            elif oprev != prev_term:
                self.fail("log matching", f"entry ({index}, {term}) follows term {oprev} in one "
                          f"log and term {prev_term} in another ({where})")

    # ---- fed by the simulator ------------------------------------------------
    def on_send(self, src: int, msg) -> None:
        if msg.type != MsgType.APP or not msg.entries:
            return
        prev = msg.log_term if msg.index > 0 else 0
        expect = msg.index + 1
        for e in msg.entries:
            if e.index != expect:
                self.fail("log matching", f"n{src} sent APP with non-contiguous entries "
                          f"(index {e.index}, expected {expect})")
            if e.term < prev:
                self.fail("log matching", f"n{src} sent entry ({e.index}, {e.term}) after term {prev}")
            self._record_entry(e.index, e.term, e.type, e.data, prev, f"APP n{src}->n{msg.to}")
            prev = e.term
            expect += 1

    def before_save(self, node, hs, entries, snapshot) -> None:
        if hs is None:
            return
        old, _ = node.storage.initial_state()
        nid = node.id
        if hs.term < old.term:
            self.fail("durable state", f"n{nid} persisted term {hs.term} after {old.term}")
        if hs.term == old.term and old.vote and hs.vote != old.vote:
            self.fail("election safety", f"n{nid} voted for {hs.vote} after voting for "
                      f"{old.vote} in term {hs.term}")
        if hs.commit < old.commit:
            self.fail("commit monotonicity", f"n{nid} persisted commit {hs.commit} after {old.commit}")

    def after_save(self, node, hs, entries, snapshot) -> None:
        st = node.storage
        if snapshot is not None and not snapshot.is_empty():
            m = snapshot.meta
            self._check_committed(m.index, m.term, f"snapshot saved by n{node.id}")
        if entries:
            try:
                prev = st.term(entries[0].index - 1) if entries[0].index > 1 else 0
            except Exception:
                prev = None
            for e in entries:
                self._record_entry(e.index, e.term, e.type, e.data, prev, f"log of n{node.id}")
                prev = e.term
        if hs is not None and hs.commit > st.last_index():
            self.fail("durable state", f"n{node.id} persisted commit {hs.commit} beyond its "
                      f"persisted last index {st.last_index()}")

    def _check_committed(self, index: int, term: int, where: str) -> None:
        old = self.committed.get(index)
        if old is None:
            self.committed[index] = term
        elif old != term:
            self.fail("committed entries never change",
                      f"index {index} committed with term {old}, now term {term} ({where})")

    def on_restore(self, node, snapshot) -> None:
        self.applied_by[node.id] = snapshot.meta.index

    def on_restart(self, node) -> None:
        self.applied_by[node.id] = node.sm.applied_index
        self.track.pop(node.id, None)
        raft = node.raft
        hs, _ = node.storage.initial_state()
        if raft.commit_index < hs.commit:
            self.fail("commit monotonicity", f"n{node.id} restarted with commit "
                      f"{raft.commit_index} below its persisted commit {hs.commit}")

    def on_apply(self, node, entry) -> None:
        nid, idx = node.id, entry.index
        last = self.applied_by.get(nid, 0)
        if idx != last + 1:
            self.fail("state machine safety", f"n{nid} applied index {idx} right after {last}")
        self.applied_by[nid] = idx
        rec = (entry.term, entry.type, entry.data)
        old = self.applied.get(idx)
        if old is None:
            self.applied[idx] = rec
        elif old != rec:
            self.fail("state machine safety", f"n{nid} applied ({idx}, {entry.term}, "
                      f"{entry.data[:60]!r}) where another node applied ({idx}, {old[0]}, {old[2][:60]!r})")
        self._check_committed(idx, entry.term, f"applied by n{nid}")
        if node.raft is not None and idx > node.raft.commit_index:
            self.fail("state machine safety", f"n{nid} applied {idx} beyond its commit "
                      f"{node.raft.commit_index}")

    def on_ack(self, node, entry) -> None:
        """A client was told its write (this entry) succeeded."""
        self.acked.append((node.id, entry.index, entry.term, entry.data))
        self.acked_all[entry.index] = (entry.term, entry.data)

    # ---- after every step ----------------------------------------------------
    def after_step(self) -> None:
        self.checks += 1
        sim = self.sim
        leaders_now = []
        for node in sim.nodes.values():
            raft = node.raft
            if raft is None:
                continue
            nid = node.id
            term = raft.term
            if raft.role == Role.LEADER:
                other = self.leaders.setdefault(term, nid)
                if other != nid:
                    self.fail("election safety", f"two leaders in term {term}: n{other} and n{nid}")
                leaders_now.append(raft)
            commit = raft.commit_index
            tr = self.track.get(nid)
            if tr is None or tr.incarnation != node.incarnation:
                self.track[nid] = _Track(node.incarnation, commit)
                self._learn_commit(raft, 0, commit, term)
            elif commit != tr.commit:
                if commit < tr.commit:
                    self.fail("commit monotonicity", f"n{nid} commit index went back "
                              f"from {tr.commit} to {commit}")
                self._learn_commit(raft, tr.commit, commit, term)
                tr.commit = commit
        if self.acked:
            for nid, idx, term, data in self.acked:
                if self.committed.get(idx) != term:
                    self.fail("acknowledged write lost", f"write acknowledged by n{nid} at "
                              f"({idx}, {term}) but index {idx} is committed with term "
                              f"{self.committed.get(idx)}")
            self.acked.clear()
        for raft in leaders_now:
            self._leader_complete(raft)

    def _learn_commit(self, raft, old: int, new: int, term: int) -> None:
        if new <= old:
            return
        last = raft.last_index
        if new > last:
            self.fail("commit monotonicity", f"n{raft.id} commit {new} beyond its last index {last}")
        # only check the span the node still holds; compacted entries were checked
        # (or came in a snapshot whose (index, term) was checked) when committed
        lo = max(old + 1, new - 4096)
        for i in range(lo, new + 1):
            t = term_at(raft, i)
            if t is not None:
                self._check_committed(i, t, f"commit of n{raft.id}")
        if new > self.max_committed:
            self.max_committed = new
        if self.commit_known.get(term, 0) < new:
            self.commit_known[term] = new

    def _leader_complete(self, raft) -> None:
        T = raft.term
        bound = 0
        for t, idx in self.commit_known.items():
            if t < T and idx > bound:
                bound = idx
        if bound == 0:
            return
        if raft.last_index < bound:
            self.fail("leader completeness", f"leader n{raft.id} of term {T} has last index "
                      f"{raft.last_index} but {bound} was committed in an earlier term")
        t = term_at(raft, bound)
        want = self.committed.get(bound)
        if t is not None and want is not None and t != want:
            self.fail("leader completeness", f"leader n{raft.id} of term {T} holds term {t} at "
                      f"committed index {bound} (committed with term {want})")
