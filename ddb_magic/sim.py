"""A simulated cluster inside the kernel: ddb's deterministic simulator with the SQL state
machine, driven by the same magics as a real cluster, plus stepping.

Time is virtual (milliseconds); nothing happens between cells unless a cell makes it
happen: `%ddb_step`, `%ddb_tick`, `%ddb_run_until`, or a `%%ddb` cell, which runs the
simulation until its statements are answered (or gives up after its timeout, in virtual
time). Same seed, same cells: same story, event for event.
"""
from __future__ import annotations

from html import escape

from ddb_node.reduce import reduce_results
from ddb_node.errors import DdbError, NoLeader, StatementError, Timeout, from_reply
from ddb_node.protocol import AUTO, ClientRequest, statement
from ddb_node.raft.types import Role
from ddb_node.sim.events import DELIVER, PERSIST, TICK
from ddb_node.sim.invariants import term_at
from ddb_node.sim.network import describe_message
from ddb_node.sim.simulator import Simulator
from ddb_node.sql import Result, StateMachine

from .backends import Backend, Reply, _require, complete_partition, describe_partition
from .parsing import UsageProblem
from .sequence import SimRecorder
from .view import ClusterView, LinkView, NodeView, Timeline, norm_role

ROLE = {Role.FOLLOWER: "follower", Role.PRE_CANDIDATE: "pre-candidate",
        Role.CANDIDATE: "candidate", Role.LEADER: "leader"}


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
        self.sim = Simulator(n, seed=seed, sm_factory=lambda: StateMachine(":memory:"), **kw)
        self.recorder = SimRecorder(self.sim)      # what %ddb_sequence draws
        self.timeline = Timeline(clock=lambda: self.sim.now)
        self.timeline.t0 = 0.0
        self.timeline.add(f"launched {n} simulated nodes (seed {seed})")
        self.session = f"magic-{name}"
        self.seq = 0
        self.waiting: dict[int, dict] = {}      # --no-wait writes: index -> {"reply": ...}

    # ================================================================ stepping
    def _fire(self, node: int | None = None) -> str | None:
        sim = self.sim
        before = _raft_state(sim)
        sent = sim.net.stats.sent
        stats = (sim.net.stats.delivered, sim.net.stats.dropped)
        ev = sim.step() if node is None else sim.step_node(node)
        if ev is None:
            return None
        if ev.kind == DELIVER and (sim.net.stats.delivered, sim.net.stats.dropped) != stats:
            self.recorder.delivered(ev.payload, sim.net.stats.delivered > stats[0])
        after = _raft_state(sim)
        text = f"t={sim.now:8.2f}ms  " + self._describe(ev)
        notes = []
        for i, (alive, role, term, commit, applied) in after.items():
            b = before.get(i)
            if b is None or not alive:
                continue
            if b[1] != role:
                notes.append(f"n{i} becomes {role} (term {term})")
                self.recorder.mark(i, f"{role} (term {term})", "role", role)
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
                self.recorder.mark(i, f"commit {commit}", "commit")
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
                    all("reply" in w for w in self.waiting.values())
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

    def _ask(self, node: int, body: dict, timeout: float, box: dict | None = None) -> dict:
        """Send a request frame to `node` through the simulated network and run the
        simulation until it answers (the node's own deadline answers Timeout in time)."""
        box = {} if box is None else box
        self.sim.request(node, body, lambda reply: box.update(reply=reply))
        if not self._run_for(lambda: "reply" in box, timeout + 0.1):
            raise Timeout(f"node {node} did not answer within {timeout:g}s of simulated time "
                          "(it is down or paused)")
        return box["reply"]

    def execute(self, statements, *, level, transaction=False, node=None, timeout=10.0,
                no_wait=False, fetch_rows=None) -> Reply:
        sim = self.sim
        if node is not None:
            _require(list(sim.nodes), node)
            if not sim.nodes[node].alive or sim.nodes[node].paused:
                raise Timeout(f"node {node} did not answer within {timeout:g}s "
                              "(it is down or paused)")
            target = node
        else:
            target = self._need_leader(timeout)
        self.seq += 1
        req = ClientRequest([statement(s, p) for s, p in statements], level=level,
                            transaction=transaction, session=(self.session, self.seq),
                            timeout=timeout)
        box: dict = {}
        if no_wait:
            leader = sim.leader()
            last = sim.nodes[leader].raft.last_index if leader else 0
            sim.request(target, req.to_wire(), lambda reply: box.update(reply=reply))
            self._run_for(lambda: "reply" in box or (sim.leader() is not None and
                          sim.nodes[sim.leader()].raft.last_index > last), timeout)
            lid = sim.leader()
            if "reply" not in box and lid is not None and sim.nodes[lid].raft.last_index > last:
                idx = sim.nodes[lid].raft.last_index
                self.waiting[idx] = box
                return Reply([], target, level, idx, None,
                             note=f"proposed at index {idx} on n{lid} (term {sim.nodes[lid].raft.term}); "
                                  "%ddb_step to watch it replicate, %ddb_run_until commit to finish")
            self._run_for(lambda: "reply" in box, timeout)
            if "reply" not in box:
                raise Timeout(f"node {target} did not answer within {timeout:g}s of simulated time")
            reply = box["reply"]
        else:
            reply = self._ask(target, req.to_wire(), timeout, box)
        return self._reply(reply, level)

    @staticmethod
    def _reply(reply: dict, level: str) -> Reply:
        if not reply.get("ok"):
            err = reply.get("error") or {}
            exc = from_reply(err)
            if err.get("type") == "BadRequest" and err.get("results"):
                raise StatementError(str(exc), err.get("statement") or 0, reply)
            raise exc
        results = _untimed([Result.from_dict(d) for d in reply.get("results") or []])
        return Reply(results, reply.get("forwarded_by") and reply.get("node") or reply.get("node"),
                     reply.get("level") or (level if level != AUTO else "weak"), reply.get("index"), None)

    def map_reduce(self, map_sql, reduce_sql, params, timeout):
        """Through the log, as on a live cluster: the map step is an entry every member
        computes its share of when it applies it."""
        lid = self._need_leader(timeout)
        step = self._ask(lid, {"op": "map", "sql": map_sql, "params": params or {},
                               "timeout": timeout}, timeout)
        if not step.get("ok"):
            raise from_reply(step.get("error") or {})
        parts = []
        for nid in sorted(int(k) for k in step["parts"]):
            share = self._ask(nid, {"op": "map_result", "index": step["index"],
                                    "timeout": timeout}, timeout)
            if not share.get("ok"):
                raise from_reply(share.get("error") or {})
            res = Result.from_dict(share["results"][0])
            if res.error:
                raise StatementError(f"map query on n{nid}: {res.error}", 0)
            parts.append(res)
        return Reply([reduce_results(parts, reduce_sql)], lid, "map/reduce", step["index"], None)

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

    def _conf_change_possible(self) -> bool:
        """A leader that has applied every configuration change in its log (Raft allows one
        change at a time; a new leader first applies what its log may hold)."""
        lid = self._leader_ready()
        if lid is None:
            return False
        lr = self.sim.nodes[lid].raft
        return lr.pending_conf_index <= lr.applied

    def _await_conf_change_possible(self, timeout: float) -> None:
        if not self._run_for(self._conf_change_possible, timeout):
            raise Timeout(f"the leader could not take a configuration change within {timeout:g}s "
                          "of simulated time")

    def add_node(self, timeout=10.0):
        self._need_leader(timeout)
        nid = max(self.sim.nodes) + 1
        self._await_conf_change_possible(timeout)
        self.sim.add_node(nid)
        if not self._run_for(lambda: self.sim.caught_up(nid) and self._conf_change_possible(),
                             timeout):
            raise Timeout(f"n{nid} did not catch up within {timeout:g}s of simulated time")
        self.sim.promote(nid)
        self._run_for(lambda: nid in self.sim.members().voters, timeout)
        return nid

    def remove_node(self, node, timeout=10.0):
        _require(list(self.sim.nodes), node)
        self._need_leader(timeout)
        self._await_conf_change_possible(timeout)
        self.sim.remove_node(node)
        self._run_for(lambda: self.sim.members() is not None and
                      node not in self.sim.members().voters, timeout)
        self.sim.retire(node)
        return f"remove n{node}"

    def logs(self, last: int = 20) -> dict[int, dict | None]:
        """Each node's recent log, read from its replica (no simulated time passes)."""
        from ddb_node.replica.log_view import log_view
        return {i: (log_view(n.replica, last) if n.alive and n.replica is not None else None)
                for i, n in self.sim.nodes.items() if not n.retired}

    def sequence(self, last: int = 200):
        return self.recorder.sequence()

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
                n.sm.close()
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
