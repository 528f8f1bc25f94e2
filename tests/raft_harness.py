"""A tiny deterministic test network of RaftNodes over MemoryStorage.

Test-only and deliberately explicit (in the spirit of etcd-io/raft's test
`network` and its rafttest interaction env); the full fault-injecting simulator
lives in ddb_node/sim. Nothing happens unless a test asks for it:

- `tick(id, n)` ticks one node and processes its Readys; messages it emits wait
  in `net.queue` (one global FIFO) until delivered.
- `deliver(pred)` steps the queued messages matching `pred` into their
  recipients, then processes the recipients' Readys (their answers join the
  queue); `stabilize()` repeats process/deliver until nothing moves.
- `take(pred)` removes queued messages (to drop them, or to re-inject them later
  with `inject`, delayed or reordered); `hook` may alter or drop any message at
  delivery time.
- `partition(...)`, `isolate(id)`, `heal()` cut links: a message crossing a cut
  link is dropped when it would be delivered. `crash(id)` / `restart(id)` lose
  everything not in the node's MemoryStorage.

Each node's state machine is a dict index -> (term, type, data) of everything it
applied; snapshots carry that dict, so "identical state" is a dict comparison.
"""
from __future__ import annotations

import json
import random
from typing import Callable, Iterable

from ddb_node.raft import (Config, ConfChange, ConfChangeType, ConfState, Entry, EntryType,
                           Message, MsgType, RaftNode, Ready, Role)
from ddb_node.storage import MemoryStorage

_MSG_NAMES = {t: t.name for t in MsgType}
_CC_NAMES = {ConfChangeType.ADD_LEARNER: "add-learner", ConfChangeType.PROMOTE: "promote",
             ConfChangeType.REMOVE: "remove"}


# ------------------------------------------------------------------ formatting
def fmt_entry(e: Entry) -> str:
    s = f"{e.term}/{e.index}"
    if e.type == EntryType.CONF_CHANGE:
        cc = ConfChange.decode(e.data)
        return f"{s} conf:{_CC_NAMES[cc.type]}:{cc.node_id}"
    if e.data:
        return f"{s} {e.data.decode('utf-8', 'replace')}"
    return s


def fmt_msg(m: Message) -> str:
    t = m.type
    s = f"{m.frm}->{m.to} {_MSG_NAMES[t]} term={m.term}"
    if t == MsgType.APP:
        s += f" prev={m.log_term}/{m.index} commit={m.commit}"
        if m.entries:
            s += " [" + ", ".join(fmt_entry(e) for e in m.entries) + "]"
    elif t == MsgType.APP_RESP:
        if m.reject:
            s += f" REJECT index={m.index} hint={m.log_term}/{m.reject_hint}"
        else:
            s += f" index={m.index}"
    elif t in (MsgType.VOTE, MsgType.PRE_VOTE):
        s += f" last={m.log_term}/{m.index}"
        if m.context:
            s += f" ctx={m.context.decode()}"
    elif t in (MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
        s += " REJECT" if m.reject else " granted"
    elif t == MsgType.HEARTBEAT:
        s += f" commit={m.commit} round={m.index}"
    elif t == MsgType.HEARTBEAT_RESP:
        s += f" round={m.index}"
    elif t == MsgType.SNAP:
        c = m.snapshot
        s += (f" snap={c.meta.term}/{c.meta.index} off={c.offset} len={len(c.data)}"
              f" total={c.total}" + (" done" if c.done else ""))
    elif t == MsgType.SNAP_RESP:
        s += f" snap={m.index} acked={m.reject_hint}" + (" REJECT" if m.reject else "")
    elif t in (MsgType.READ_INDEX, MsgType.READ_INDEX_RESP):
        s += f" index={m.index} ctx={m.context.decode()}"
    elif t == MsgType.TRANSFER_LEADER:
        s += f" to={m.index}"
    return s


def encode_sm(sm: dict) -> bytes:
    return json.dumps([[i, t, ty, d.hex()] for i, (t, ty, d) in sorted(sm.items())]).encode()


def decode_sm(data: bytes) -> dict:
    if not data:
        return {}
    return {i: (t, ty, bytes.fromhex(d)) for i, t, ty, d in json.loads(data)}


# ------------------------------------------------------------------ network
class Net:
    def __init__(self, n: int = 3, *, seed: int = 0, learners: Iterable[int] = (), **cfg):
        self.seed = seed
        self.cfg = cfg
        self.nodes: dict[int, RaftNode] = {}
        self.storage: dict[int, MemoryStorage] = {}
        self.sm: dict[int, dict[int, tuple]] = {}
        self.read_states: dict[int, list] = {}
        self.queue: list[Message] = []
        self.trace: list[str] = []        # every message emitted, in order
        self.delivered: list[Message] = []
        self.dropped: list[Message] = []
        self.cut: set[frozenset] = set()
        self.down: set[int] = set()
        self.hook: Callable[[Message], Message | None] | None = None
        self.commit_seen: dict[int, int] = {}   # highest commit index each node reached
        learners = tuple(learners)
        voters = tuple(i for i in range(1, n + 1) if i not in learners)
        for i in range(1, n + 1):
            self.add_node(i, ConfState(voters=voters, learners=learners))

    # ---- membership of the harness -------------------------------------------
    def add_node(self, nid: int, conf_state: ConfState | None = None, **cfg) -> RaftNode:
        """Create a node on fresh storage (conf_state None: a joining node that
        learns its configuration from the leader)."""
        self.storage[nid] = MemoryStorage(conf_state=conf_state or ConfState())
        self.sm[nid] = {}
        self.read_states[nid] = []
        return self._start(nid, applied=0, **cfg)

    def _start(self, nid: int, applied: int, **cfg) -> RaftNode:
        kw = dict(self.cfg)
        kw.update(cfg)
        node = RaftNode(Config(id=nid, applied=applied, **kw), self.storage[nid],
                        random.Random(self.seed * 1000 + nid))
        self.nodes[nid] = node
        self.down.discard(nid)
        return node

    def crash(self, nid: int) -> None:
        """The node stops; only its storage survives. Messages to it are dropped."""
        self.down.add(nid)

    def restart(self, nid: int) -> RaftNode:
        st = self.storage[nid]
        snap = st.snapshot()
        self.sm[nid] = decode_sm(snap.data)
        return self._start(nid, applied=snap.meta.index)

    # ---- Ready processing -----------------------------------------------------
    def process(self, nid: int) -> int:
        """Handle every Ready of node nid exactly as the driver contract says."""
        node, st = self.nodes[nid], self.storage[nid]
        n = 0
        while nid not in self.down and node.has_ready():
            rd: Ready = node.ready()
            self._send(rd.messages)
            for c in rd.snapshot_chunks:
                st.stage_snapshot_chunk(c)
            st.save(rd.hard_state, rd.entries, rd.snapshot)
            self._send(rd.persisted_messages)
            sm = self.sm[nid]
            if rd.snapshot is not None:
                sm.clear()
                sm.update(decode_sm(st.snapshot().data))   # the staged chunks
            for e in rd.committed_entries:
                if e.index in sm:
                    raise AssertionError(f"node {nid} applied index {e.index} twice")
                sm[e.index] = (e.term, int(e.type), e.data)
            self.read_states[nid].extend(rd.read_states)
            node.advance(rd)
            n += 1
            c = node.commit_index
            if c < self.commit_seen.get(nid, 0) and rd.snapshot is None:
                raise AssertionError(f"node {nid} commit index went back to {c}")
            self.commit_seen[nid] = max(c, self.commit_seen.get(nid, 0))
        return n

    def process_all(self) -> int:
        return sum(self.process(i) for i in sorted(self.nodes))

    def _send(self, msgs: list[Message]) -> None:
        for m in msgs:
            self.trace.append(fmt_msg(m))
            self.queue.append(m)

    # ---- message control ------------------------------------------------------
    def blocked(self, m: Message) -> bool:
        return m.to in self.down or m.frm in self.down or frozenset((m.frm, m.to)) in self.cut \
            or m.to not in self.nodes

    def take(self, pred: Callable[[Message], bool] | None = None) -> list[Message]:
        """Remove and return the queued messages matching pred (all if None)."""
        keep, out = [], []
        for m in self.queue:
            (out if pred is None or pred(m) else keep).append(m)
        self.queue = keep
        return out

    def drop(self, pred: Callable[[Message], bool] | None = None) -> list[Message]:
        out = self.take(pred)
        self.dropped.extend(out)
        return out

    def inject(self, msgs: Iterable[Message]) -> None:
        """Put (delayed, reordered, duplicated...) messages back at the queue's end."""
        self.queue.extend(msgs)

    def step(self, m: Message) -> bool:
        """Deliver one message now (ignoring the queue); False if the link drops it."""
        if self.blocked(m):
            self.dropped.append(m)
            return False
        if self.hook is not None:
            m2 = self.hook(m)
            if m2 is None:
                self.dropped.append(m)
                return False
            m = m2
        self.delivered.append(m)
        self.nodes[m.to].step(m)
        return True

    def deliver(self, pred: Callable[[Message], bool] | None = None,
                limit: int | None = None) -> list[Message]:
        """Step the queued messages matching pred (in queue order, at most limit of
        them), then process the recipients' Readys. Returns the delivered ones."""
        msgs = self.take(pred)
        if limit is not None:
            self.queue = msgs[limit:] + self.queue
            msgs = msgs[:limit]
        out, touched = [], []
        for m in msgs:
            if self.step(m):
                out.append(m)
                if m.to not in touched:
                    touched.append(m.to)
        for nid in touched:
            self.process(nid)
        return out

    def deliver_to(self, nid: int) -> list[Message]:
        return self.deliver(lambda m: m.to == nid)

    def stabilize(self, max_rounds: int = 10_000) -> list[Message]:
        """Process Readys and deliver messages until nothing is left to do."""
        out = []
        for _ in range(max_rounds):
            self.process_all()
            if not self.queue:
                return out
            out += self.deliver()
        raise AssertionError("network did not stabilize")

    # ---- time -----------------------------------------------------------------
    def tick(self, nid: int, n: int = 1) -> None:
        node = self.nodes[nid]
        for _ in range(n):
            node.tick()
            self.process(nid)

    def tick_all(self, n: int = 1) -> None:
        for _ in range(n):
            for nid in sorted(self.nodes):
                if nid not in self.down:
                    self.nodes[nid].tick()
                    self.process(nid)

    def run(self, ticks: int) -> None:
        """Tick every live node `ticks` times, stabilizing after each round."""
        for _ in range(ticks):
            self.tick_all()
            self.stabilize()

    # ---- partitions -----------------------------------------------------------
    def partition(self, *groups: Iterable[int]) -> None:
        groups = [set(g) for g in groups]
        self.cut = set()
        ids = sorted(self.nodes)
        for a in ids:
            for b in ids:
                if a < b and not any(a in g and b in g for g in groups):
                    self.cut.add(frozenset((a, b)))

    def isolate(self, nid: int) -> None:
        for other in self.nodes:
            if other != nid:
                self.cut.add(frozenset((nid, other)))

    def cut_link(self, a: int, b: int) -> None:
        self.cut.add(frozenset((a, b)))

    def heal(self) -> None:
        self.cut = set()

    # ---- client helpers -------------------------------------------------------
    def campaign(self, nid: int) -> None:
        self.nodes[nid].campaign()
        self.process(nid)

    def elect(self, nid: int) -> RaftNode:
        """Campaign nid and stabilize; asserts it became leader."""
        self.campaign(nid)
        self.stabilize()
        node = self.nodes[nid]
        assert node.role == Role.LEADER, node.status()
        return node

    def propose(self, nid: int, data: bytes) -> int:
        idx = self.nodes[nid].propose(data)
        self.process(nid)
        return idx

    def conf_change(self, nid: int, kind: int, target: int) -> int:
        idx = self.nodes[nid].propose_conf_change(ConfChange(kind, target))
        self.process(nid)
        return idx

    def compact(self, nid: int, index: int | None = None) -> None:
        """Snapshot node nid's state machine at its applied index and compact."""
        node, st = self.nodes[nid], self.storage[nid]
        index = node.applied if index is None else index
        data = encode_sm({i: v for i, v in self.sm[nid].items() if i <= index})
        st.create_snapshot(index, node.conf_state, data)
        st.compact(index)

    # ---- inspection -----------------------------------------------------------
    def leaders(self) -> list[int]:
        return [i for i, n in sorted(self.nodes.items())
                if n.role == Role.LEADER and i not in self.down]

    def leader(self) -> int | None:
        """The live leader of the highest term, if any."""
        ls = self.leaders()
        if not ls:
            return None
        return max(ls, key=lambda i: self.nodes[i].term)

    def log(self, nid: int) -> list[Entry]:
        node = self.nodes[nid]
        return node.log.entries(node.log.first_index(), node.last_index + 1)

    def log_terms(self, nid: int) -> list[tuple[int, int]]:
        return [(e.index, e.term) for e in self.log(nid)]

    def data(self, nid: int) -> list[bytes]:
        """The non-empty normal entries node nid applied, in index order."""
        return [d for _, (_, ty, d) in sorted(self.sm[nid].items())
                if ty == EntryType.NORMAL and d]

    def check_state_machine_safety(self) -> None:
        """No two nodes applied different entries at the same index."""
        seen: dict[int, tuple] = {}
        for nid, sm in self.sm.items():
            for i, v in sm.items():
                if seen.setdefault(i, v) != v:
                    raise AssertionError(f"index {i}: node {nid} applied {v}, another {seen[i]}")


def msg_is(*types: int, frm: int | None = None, to: int | None = None) -> Callable[[Message], bool]:
    """Predicate for take/deliver/drop."""
    def pred(m: Message) -> bool:
        return ((not types or m.type in types) and (frm is None or m.frm == frm)
                and (to is None or m.to == to))
    return pred
