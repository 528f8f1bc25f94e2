"""A simulated cluster inside the kernel: ddb's deterministic simulator with the SQL state
machine, driven by the same magics as a real cluster, plus stepping.

Time is virtual (milliseconds); nothing happens between cells unless a cell makes it
happen: `%ddb_step`, `%ddb_tick`, `%ddb_run_until`, or a `%%ddb` cell, which runs the
simulation until its statements are answered (or gives up after its timeout, in virtual
time). Same seed, same cells: same story, event for event.
"""
from __future__ import annotations

import io
import random
from html import escape

from ddb_node.errors import BadRequest, DdbError, NoLeader, Timeout
from ddb_node.raft.types import NotLeader as RaftNotLeader
from ddb_node.raft.types import ProposalDropped, Role
from ddb_node.sim.events import DELIVER, PERSIST, TICK
from ddb_node.sim.invariants import term_at
from ddb_node.sim.network import describe_message
from ddb_node.sim.simulator import Simulator
from ddb_node.sql import Request, Statement, StateMachine, encode_entry
from ddb_node.sql.errors import SqlError

from .backends import Backend, Reply, _require, complete_partition, describe_partition
from .parsing import UsageProblem
from .view import ClusterView, LinkView, NodeView, Timeline, norm_role

EPOCH_MS = 1_767_225_600_000      # 2026-01-01T00:00:00Z: virtual time 0 on the SQL clock
ROLE = {Role.FOLLOWER: "follower", Role.PRE_CANDIDATE: "pre-candidate",
        Role.CANDIDATE: "candidate", Role.LEADER: "leader"}


class SqlStateMachine:
    """The simulator's state-machine interface over ddb's SQL state machine (in memory)."""

    durable = False

    def __init__(self):
        self.sm = StateMachine(":memory:")

    @property
    def applied_index(self) -> int:
        return self.sm.applied_index

    @applied_index.setter
    def applied_index(self, value: int) -> None:
        if value != self.sm.applied_index:   # only a snapshot restore would do this
            raise AssertionError(f"SQL state machine is at {self.sm.applied_index}, not {value}")

    def apply(self, index: int, term: int, data: bytes):
        return self.sm.apply_batch([(index, term, data)])[0]

    def apply_noop(self, index: int, term: int) -> None:
        self.sm.apply_batch([(index, term, b"")])

    def snapshot(self) -> bytes:
        buf = io.BytesIO()
        self.sm.snapshot_to(buf)
        return buf.getvalue()

    def restore(self, data: bytes) -> None:
        self.sm.restore(io.BytesIO(data))


class StepLog:
    """What a stepping magic shows: the events it fired, then the picture."""

    def __init__(self, lines: list[str], picture):
        self.lines = lines
        self.picture = picture

    def __repr__(self) -> str:
        return "\n".join(self.lines + [repr(self.picture)])

    def _repr_html_(self) -> str:
        log = "".join(f"<div>{escape(x)}</div>" for x in self.lines)
        return (f'<div class="ddb-steps" style="font-family:monospace;font-size:12px;'
                f'white-space:pre">{log}</div>{self.picture._repr_html_()}')


def _raft_state(sim):
    out = {}
    for n in sim.nodes.values():
        r = n.raft
        if r is None:
            out[n.id] = (n.alive, None, None, None, None)
        else:
            out[n.id] = (n.alive, ROLE.get(r.role, str(r.role)), r.term, r.commit_index,
                         n.sm.applied_index)
    return out


class SimBackend(Backend):
    kind = "sim"

    def __init__(self, name: str, n: int = 3, seed: int = 0, **kw):
        self.name = name
        self.seed = seed
        self.sim = Simulator(n, seed=seed, sm_factory=SqlStateMachine, **kw)
        self.timeline = Timeline(clock=lambda: self.sim.now)
        self.timeline.t0 = 0.0
        self.timeline.add(f"launched {n} simulated nodes (seed {seed})")
        self._rng = random.Random(f"ddb-magic/{seed}/entries")
        self.waiting: dict[int, dict] = {}      # --no-wait proposals: index -> outcome

    # ================================================================ stepping
    def _fire(self, node: int | None = None) -> str | None:
        sim = self.sim
        before = _raft_state(sim)
        sent = sim.net.stats.sent
        ev = sim.step() if node is None else sim.step_node(node)
        if ev is None:
            return None
        after = _raft_state(sim)
        text = f"t={sim.now:8.2f}ms  " + self._describe(ev)
        notes = []
        for i, (alive, role, term, commit, applied) in after.items():
            b = before.get(i)
            if b is None or not alive:
                continue
            if b[1] != role:
                notes.append(f"n{i} becomes {role} (term {term})")
                if role == "leader":
                    self.timeline.add(f"term {term}: n{i} became leader")
                elif b[1] == "leader":
                    self.timeline.add(f"term {term}: n{i} stepped down")
                elif role == "candidate":
                    self.timeline.add(f"term {term}: n{i} campaigns")
            elif b[2] != term:
                notes.append(f"n{i} moves to term {term}")
            if b[3] is not None and commit is not None and commit > b[3]:
                notes.append(f"n{i} commits up to {commit}")
            if b[4] is not None and applied is not None and applied > b[4]:
                notes.append(f"n{i} applies up to {applied}")
        k = sim.net.stats.sent - sent
        if k:
            notes.append(f"{k} message{'s' if k != 1 else ''} sent")
        if notes:
            text += "  \u2192 " + "; ".join(notes)
        return text

    def _describe(self, ev) -> str:
        if ev.kind == DELIVER:
            env = ev.payload
            return "deliver " + describe_message(env.msg)
        if ev.kind == TICK:
            return f"n{ev.node} tick"
        if ev.kind == PERSIST:
            rd = ev.payload
            what = []
            if getattr(rd, "entries", None):
                what.append(f"{len(rd.entries)} entr{'y' if len(rd.entries) == 1 else 'ies'}")
            if getattr(rd, "hard_state", None) is not None:
                what.append("term/vote")
            return f"n{ev.node} persisted " + (" + ".join(what) or "its state")
        return f"{ev.kind} n{ev.node}"

    def step(self, n: int = 1, node: int | None = None) -> list[str]:
        if n < 1:
            raise UsageProblem("usage: %ddb_step [N] (N >= 1)")
        if node is not None:
            _require(list(self.sim.nodes), node)
        lines = []
        for _ in range(n):
            line = self._fire(node)
            if line is None:
                lines.append("(nothing scheduled)")
                break
            lines.append(line)
        return _trim(lines)

    def tick(self, n: int = 1) -> list[str]:
        if n < 1:
            raise UsageProblem("usage: %ddb_tick [N] (N >= 1)")
        sim = self.sim
        end = sim.now + n * sim.tick_ms
        lines = []
        while True:
            ev = sim.queue.peek()
            if ev is None or ev.time > end:
                break
            line = self._fire()
            if line and "\u2192" in line:
                lines.append(line)
        sim.now = max(sim.now, end)
        return [f"{n} tick{'s' if n != 1 else ''} of {sim.tick_ms:g}ms later: t={sim.now:.2f}ms"] + _trim(lines)

    def _predicate(self, what: str):
        sim = self.sim
        if what == "leader":
            return self._leader_ready
        if what == "commit":
            def committed(_s=None):
                lid = self._leader_ready()
                if lid is None:
                    return False
                lr = sim.nodes[lid].raft
                return lr.commit_index == lr.last_index and \
                    sim.nodes[lid].sm.applied_index == lr.commit_index and \
                    all(w.get("status") for w in self.waiting.values())
            return committed
        if what == "quiet":
            return lambda _s=None: sim.converged()
        if what == "campaign":
            return lambda _s=None: any(n.raft is not None and n.raft.role in
                                       (Role.CANDIDATE, Role.PRE_CANDIDATE) for n in sim.nodes.values())
        raise UsageProblem("usage: %ddb_run_until leader|commit|quiet|campaign")

    def _leader_ready(self, _s=None) -> int | None:
        """A leader that has committed an entry of its own term (so it can serve)."""
        lid = self.sim.leader()
        if lid is None:
            return None
        lr = self.sim.nodes[lid].raft
        return lid if term_at(lr, lr.commit_index) == lr.term else None

    def run_until(self, what: str, max_steps: int = 100_000) -> list[str]:
        pred = self._predicate(what)
        start, fired = self.sim.now, 0
        notable = []
        while not pred():
            if fired >= max_steps:
                raise Timeout(f"{what!r} not reached within {max_steps} events "
                              f"(t={self.sim.now:.1f}ms)")
            line = self._fire()
            if line is None:
                raise DdbError(f"{what!r} cannot be reached: nothing left to happen")
            fired += 1
            if "becomes" in line or "commits" in line:
                notable.append(line)
        return [f"{what}: reached after {fired} events, {self.sim.now - start:.2f}ms of virtual time "
                f"(t={self.sim.now:.2f}ms)"] + _trim(notable, 12)

    def _run_for(self, pred, timeout_s: float) -> bool:
        deadline = self.sim.now + timeout_s * 1000.0
        while not pred():
            ev = self.sim.queue.peek()
            if ev is None or ev.time > deadline:
                self.sim.now = max(self.sim.now, min(deadline, ev.time if ev else deadline))
                return pred()
            self._fire()
        return True

    def observe(self) -> ClusterView:
        v = self.view()           # role changes were recorded event by event in _fire
        v.events = list(self.timeline.events)
        return v

    # ================================================================ SQL
    def _need_leader(self, timeout: float) -> int:
        if not self._run_for(lambda: self._leader_ready() is not None, timeout):
            raise NoLeader(f"no leader emerged within {timeout:g}s of simulated time "
                           "(is a majority of the nodes up and connected?)")
        return self._leader_ready()

    def execute(self, statements, *, level, transaction=False, node=None, timeout=10.0,
                no_wait=False) -> Reply:
        sim = self.sim
        req = Request([Statement(s, p) for s, p in statements], transaction=transaction,
                      level=level if level != "auto" else "weak")
        if node is not None:
            _require(list(sim.nodes), node)
            if not sim.nodes[node].alive or sim.nodes[node].paused:
                raise Timeout(f"node {node} did not answer within {timeout:g}s "
                              "(it is down or paused)")
        target = node
        if target is None or level != "none":
            if target is None or sim.nodes[target].raft.role != Role.LEADER:
                lid = self._need_leader(timeout)
                if target is not None and not (sim.net.reachable(target, lid) and
                                               sim.net.reachable(lid, target)):
                    raise Timeout(f"n{target} would forward this to the leader n{lid} but cannot "
                                  f"reach it (no answer within {timeout:g}s)")
                target = lid
        sm = sim.nodes[target].sm.sm
        try:
            cls = sm.classify(req)
        except SqlError as e:
            raise BadRequest(str(e)) from None
        if cls.kind == "read" and req.level != "strong":
            if req.level == "linearizable":
                box = {}
                try:
                    sim.read(target, lambda status, _sm, idx: box.update(status=status, index=idx))
                except (RaftNotLeader, ProposalDropped) as e:
                    raise NoLeader(str(e)) from None
                if not self._run_for(lambda: "status" in box, timeout) or box["status"] != "ok":
                    raise Timeout(f"linearizable read: n{target} could not confirm its leadership "
                                  f"within {timeout:g}s of simulated time")
            results = _untimed(sm.query(req))
            return Reply(results, target, req.level, sm.applied_index, None)
        payload = encode_entry(req, timestamp_ms=EPOCH_MS + int(sim.now),
                               seed=self._rng.getrandbits(63))
        box: dict = {}

        def done(status, result, entry):
            box.update(status=status, result=result, entry=entry)

        try:
            idx = sim.submit(target, payload, done)
        except (RaftNotLeader, ProposalDropped) as e:
            raise NoLeader(f"n{target} cannot take the write: {e}") from None
        if no_wait:
            self.waiting[idx] = box
            return Reply([], target, req.level, idx, None,
                         note=f"proposed at index {idx} on n{target} (term {sim.nodes[target].raft.term}); "
                              "%ddb_step to watch it replicate, %ddb_run_until commit to finish")
        if not self._run_for(lambda: "status" in box, timeout):
            self.waiting[idx] = box
            raise Timeout(f"write not committed within {timeout:g}s of simulated time: n{target} "
                          f"appended it at index {idx} but cannot reach a majority")
        if box["status"] != "ok":
            raise DdbError(f"the write at index {idx} was not committed: the entry there is "
                           "another leader's (it was overwritten)" if box["status"] == "fail" else
                           f"n{target} crashed or was replaced before the write committed")
        er = box["result"]
        if er is not None and er.error:
            raise BadRequest(er.error)
        return Reply(_untimed(er.results if er is not None else []), target, req.level, idx, None)

    def map_reduce(self, map_sql, reduce_sql, params, timeout):
        lid = self._need_leader(timeout)
        self._run_for(lambda: self.sim.converged(), timeout)
        members = [n for n in self.sim.nodes.values() if n.alive and not n.retired]
        parts = []
        for k, n in enumerate(members):
            p = dict(params or {}, ddb_part=k, ddb_parts=len(members))
            res = n.sm.sm.query(Request([Statement(map_sql, p)]))[0]
            if res.error:
                raise BadRequest(f"map query on n{n.id}: {res.error}")
            parts.append(res)
        return Reply([_reduce(parts, reduce_sql)], lid, "map/reduce",
                     self.sim.nodes[lid].sm.applied_index, None)

    # ================================================================ looking
    def view(self) -> ClusterView:
        sim = self.sim
        nodes = []
        lid = sim.leader()
        learners = set()
        if lid is not None:
            learners = set(sim.nodes[lid].raft.conf_state.learners)
        for n in sim.nodes.values():
            if n.retired:
                nodes.append(NodeView(n.id, "removed"))
                continue
            if not n.alive:
                nodes.append(NodeView(n.id, "killed", note="crashed"))
                continue
            r = n.raft
            nv = NodeView(n.id, "paused" if n.paused else "up", ROLE.get(r.role, norm_role(r.role)),
                          r.term, r.commit_index, n.sm.applied_index, r.last_index,
                          r.leader_id or None, n.id in learners)
            nodes.append(nv)
        ids = [n.id for n in nodes]
        inflight = {}
        for ev in sim.queue:
            if ev.kind == DELIVER:
                env = ev.payload
                span = max(1e-9, env.deliver_at - env.sent_at)
                frac = (sim.now - env.sent_at) / span
                key = tuple(sorted((env.src, env.dst)))
                inflight.setdefault(key, []).append(
                    (env.src, env.dst, describe_message(env.msg), frac))
        links = []
        net = sim.net
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                ab, ba = net.reachable(a, b), net.reachable(b, a)
                lk = LinkView(a, b, "ok" if ab and ba else ("cut" if not ab and not ba else "one-way"))
                for rule in net.drops:
                    if rule.count is not None and rule.count <= 0:
                        continue
                    if rule.link is None or set(rule.link) == {a, b}:
                        lk.lossy = max(lk.lossy, rule.rate or (1.0 / rule.every if rule.every else 0))
                for d in net.delays:
                    if d.link is None or set(d.link) == {a, b}:
                        lk.delay_ms += d.ms
                        lk.jitter_ms += d.jitter
                lk.inflight = inflight.get((a, b), [])
                links.append(lk)
        return ClusterView(self.name, "sim", nodes, links, clock=f"t={sim.now:.2f}ms",
                           faults="" if net.describe() == "healthy" else net.describe())

    def leader(self):
        return self.sim.leader()

    def wait(self, what: str, timeout: float, exclude=()) -> str:
        if what == "leader":
            ok = self._run_for(lambda: self._leader_ready() is not None and
                               self._leader_ready() not in exclude, timeout)
            if not ok:
                raise NoLeader(f"no leader within {timeout:g}s of simulated time")
            return f"n{self._leader_ready()} leads (t={self.sim.now:.2f}ms)"
        lines = self.run_until(what)
        return lines[0]

    # ================================================================ faults
    def partition(self, groups):
        groups = complete_partition([i for i, n in self.sim.nodes.items() if not n.retired], groups)
        self.sim.partition([set(g) for g in groups])
        return describe_partition(groups)

    def isolate(self, node):
        _require(list(self.sim.nodes), node)
        self.sim.isolate(node)
        return f"isolate n{node}"

    def heal(self):
        self.sim.heal()
        self.sim.clear_faults()
        return "heal"

    def drop(self, rate, link=None):
        if link:
            for x in list(link):
                _require(list(self.sim.nodes), x)
            self.sim.drop(rate=rate, link=(link[0], link[1]))
            self.sim.drop(rate=rate, link=(link[1], link[0]))
        else:
            self.sim.drop(rate=rate)
        return f"drop {rate:.0%}" + (f" on {link[0]}-{link[1]}" if link else "")

    def delay(self, ms, jitter=0.0):
        self.sim.delay(ms=ms, jitter=jitter)
        return f"delay {ms:g}ms" + (f" ±{jitter:g}ms" if jitter else "")

    def kill(self, node):
        _require(list(self.sim.nodes), node)
        self.sim.crash(node)
        return f"kill n{node}"

    def restart(self, node):
        _require(list(self.sim.nodes), node)
        n = self.sim.nodes[node]
        if n.alive:
            self.sim.crash(node)
        self.sim.restart(node)
        return f"restart n{node}"

    def pause(self, node):
        _require(list(self.sim.nodes), node)
        self.sim.pause(node)
        return f"pause n{node}"

    def resume(self, node):
        _require(list(self.sim.nodes), node)
        self.sim.resume(node)
        return f"resume n{node}"

    def elect(self, node, timeout=10.0):
        _require(list(self.sim.nodes), node)
        self._need_leader(timeout)
        if self.sim.leader() != node:
            self.sim.transfer_leader(node)
            if not self._run_for(lambda: self._leader_ready() == node, timeout):
                raise Timeout(f"n{node} did not take over within {timeout:g}s of simulated time")
        return f"leadership to n{node}"

    def add_node(self, timeout=10.0):
        self._need_leader(timeout)
        nid = max(self.sim.nodes) + 1
        self.sim.add_node(nid)
        if not self._run_for(lambda: self.sim.caught_up(nid), timeout):
            raise Timeout(f"n{nid} did not catch up within {timeout:g}s of simulated time")
        self.sim.promote(nid)
        self._run_for(lambda: nid in self.sim.members().voters, timeout)
        return nid

    def remove_node(self, node, timeout=10.0):
        _require(list(self.sim.nodes), node)
        self._need_leader(timeout)
        self.sim.remove_node(node)
        self._run_for(lambda: self.sim.members() is not None and
                      node not in self.sim.members().voters, timeout)
        self.sim.retire(node)
        return f"remove n{node}"

    def nodes_table(self):
        import pandas as pd
        rows = []
        for nv in self.view().nodes:
            rows.append({"node": nv.id, "state": nv.state, "role": nv.role, "term": nv.term,
                         "commit": nv.commit, "applied": nv.applied, "log": nv.last_index})
        df = pd.DataFrame(rows)
        for c in ("term", "commit", "applied", "log"):
            df[c] = df[c].astype("Int64")
        return df

    def close(self) -> None:
        for n in self.sim.nodes.values():
            try:
                n.sm.sm.close()
            except Exception:  # noqa: BLE001
                pass

    def describe(self) -> str:
        return f"{self.name}: {len(self.sim.nodes)} simulated nodes, seed {self.seed}, " \
               f"t={self.sim.now:.2f}ms"


def _untimed(results):
    """Wall-clock statement times would make the same story print differently each run."""
    for r in results:
        r.time = None
    return results


def _trim(lines: list[str], keep: int = 40) -> list[str]:
    if len(lines) <= keep:
        return lines
    return [f"\u2026 {len(lines) - keep} earlier events"] + lines[-keep:]


def _reduce(parts, reduce_sql):
    from ddb_node.sql import Result
    cols = parts[0].columns
    if reduce_sql is None:
        values = [[] for _ in cols]
        for r in parts:
            for i, col in enumerate(r.values):
                values[i].extend(col)
        return Result(columns=cols, decltypes=parts[0].decltypes, values=values)
    import apsw
    db = apsw.Connection(":memory:")
    qcols = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
    db.execute(f"CREATE TABLE map({qcols})")
    with db:
        for r in parts:
            db.executemany(f"INSERT INTO map VALUES({', '.join('?' for _ in cols)})", list(zip(*r.values)))
    cur = db.execute(reduce_sql)
    desc = cur.getdescription()
    rows = cur.fetchall()
    values = [list(c) for c in zip(*rows)] if rows else [[] for _ in desc]
    return Result(columns=[d[0] for d in desc], decltypes=[d[1] or "" for d in desc], values=values)
