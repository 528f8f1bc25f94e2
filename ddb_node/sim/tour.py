"""`ddb sim` / `ddb tour`: a told story on a simulated cluster, or one random run.

The story: an election, replicated writes, a partition that isolates the leader, a
new leader on the majority side, writes to the old leader that can never commit,
healing, the old leader stepping down, and a final check that nothing acknowledged
was lost. Every step of the simulation is checked against Raft's invariants while
the story runs; the exit code is non-zero on any violation.
"""
from __future__ import annotations

import sys

from ddb_node.raft.types import NotLeader, ProposalDropped, Role

from . import kv
from .history import FAIL, INFO, OK, History
from .invariants import InvariantViolation
from .linearizability import VIOLATION, check_kv
from .simulator import Simulator


class _Story:
    def __init__(self, sim: Simulator, quiet: bool):
        self.sim = sim
        self.quiet = quiet
        self.history = History()
        self.acked: dict[str, object] = {}  # key -> last acknowledged value
        self.ops = 0
        self.chapter_no = 0

    def say(self, text: str = "") -> None:
        if not self.quiet:
            print(text)

    def chapter(self, title: str) -> None:
        self.chapter_no += 1
        self.say(f"\n== {self.chapter_no}. {title}")

    def table(self) -> None:
        sim = self.sim
        lid = sim.leader()
        for node in sim.nodes.values():
            mark = "  <- leader" if node.id == lid else ""
            self.say("   " + node.describe() + mark)

    def write(self, node: int, key: str, value) -> object:
        sim = self.sim
        self.ops += 1
        op = self.history.invoke(0, "write", key, sim.now, value=value, node=node)

        def done(status, result, entry):
            if op.status is not None:
                return
            if status == "ok":
                self.history.complete(op, OK, sim.now, True)
                self.acked[key] = value
                self.say(f"   ack: {key}={value!r} committed at index {entry.index} "
                         f"(term {entry.term}), applied by n{node}")
            elif status == "fail":
                self.history.complete(op, FAIL, sim.now, note="overwritten")
                self.say(f"   n{node} reports: {key}={value!r} was overwritten at index "
                         f"{entry.index} by the new leader's log (never committed, client told 'failed')")
            else:
                self.history.complete(op, INFO, sim.now)
        try:
            idx = sim.submit(node, kv.put(key, value, f"tour.{self.ops}"), done)
        except (NotLeader, ProposalDropped) as e:
            self.history.complete(op, FAIL, sim.now, note=str(e))
            self.say(f"   n{node} refuses {key}={value!r}: {e}")
            return op
        self.say(f"   n{node} appended {key}={value!r} at index {idx} and replicates it")
        return op

    def read_all(self, node: int, keys) -> dict:
        sim, got = self.sim, {}
        for key in keys:
            op = self.history.invoke(0, "read", key, sim.now, node=node)

            def done(status, sm, idx, op=op, key=key):
                if status == "ok":
                    got[key] = sm.read(key)
                    self.history.complete(op, OK, sim.now, got[key])
                else:
                    self.history.complete(op, FAIL, sim.now)
            sim.read(node, done)
            sim.run_until(lambda s, op=op: op.status is not None, 20_000)
        return got


def tour(seed: int = 1, nodes: int = 3, quiet: bool = False) -> int:
    sim = Simulator(nodes, seed)
    st = _Story(sim, quiet)
    say = st.say
    say(f"ddb simulated tour — {nodes} Raft nodes in one process, seed {seed}.")
    say("Virtual time: every node ticks each 10 ms (election timeout 10-20 ticks, heartbeat "
        "every tick);\nmessages take 0.5-2 ms; a log write (fsync) 0.1-1 ms. Raft's safety "
        "invariants are checked after every single event.")

    st.chapter("Election")
    sim.run_until(lambda s: s.leader() is not None, 20_000)
    lead = sim.leader()
    say(f"   after {sim.now:.0f} ms, n{lead} won the election for term {sim.raft(lead).term}:")
    st.table()

    st.chapter("Replicated writes")
    for key, value in (("x", 1), ("y", 2), ("z", 3)):
        op = st.write(lead, key, value)
        sim.run_until(lambda s, op=op: op.status is not None, 20_000)
    sim.run_until(lambda s: s.converged(), 20_000)
    say("   every node now holds and has applied the same log:")
    st.table()

    st.chapter("A partition isolates the leader")
    old = lead
    rest = [i for i in sim.nodes if i != old]
    sim.partition([[old], rest])
    say(f"   network: n{old} | " + ",".join(f"n{i}" for i in rest))
    say(f"   a client still talking to n{old} sends two writes:")
    lost = [st.write(old, "x", "lost-1"), st.write(old, "y", "lost-2")]
    sim.run_for(50)
    say(f"   n{old} cannot reach a majority: its commit index stays at "
        f"{sim.raft(old).commit_index} while its log grows to {sim.raft(old).last_index}")

    st.chapter("The majority elects a new leader")
    sim.run_until(lambda s: any(s.raft(i).role == Role.LEADER for i in rest), 50_000)
    new = next(i for i in rest if sim.raft(i).role == Role.LEADER)
    say(f"   at {sim.now:.0f} ms n{new} became leader of term {sim.raft(new).term} "
        f"(the followers stopped hearing from n{old})")
    op = st.write(new, "x", 10)
    sim.run_until(lambda s: op.status is not None, 20_000)
    st.table()
    r = sim.raft(old)
    if r.role == Role.LEADER:
        say(f"   n{old} still believes it leads term {r.term}, but nothing it appends can commit")

    st.chapter("The old leader steps down")
    t0 = sim.now
    sim.run_until(lambda s: s.raft(old).role != Role.LEADER or s.now > t0 + 400, 50_000)
    r = sim.raft(old)
    if r.role != Role.LEADER:
        say(f"   at {sim.now:.0f} ms n{old} noticed it had not heard from a majority for an "
            f"election timeout (check-quorum)\n   and stepped down to {Role(r.role).name.lower()} "
            f"by itself, still in term {r.term}")
    else:
        say(f"   n{old} still leads its stale term {r.term}: without check-quorum it only "
            f"learns of term {sim.raft(new).term} when the partition heals")
    st.table()

    st.chapter("Heal")
    sim.heal()
    sim.run_until(lambda s: s.converged() and all(o.status is not None for o in lost), 50_000)
    say(f"   n{old} now follows n{sim.leader()} in term {sim.raft(new).term}; its "
        f"unreplicated entries were replaced by the leader's log:")
    st.table()
    for o in lost:
        say(f"   write {o.key}={o.value!r} sent to the old leader: {o.status}"
            f"{' (' + o.note + ')' if o.note else ''}")

    st.chapter("Was anything acknowledged lost?")
    bad = 0
    for i in sim.nodes:
        got = st.read_all(i, sorted(st.acked))
        ok = all(got.get(k) == v for k, v in st.acked.items())
        bad += not ok
        say(f"   linearizable read on n{i}: {got}  {'== acknowledged values' if ok else '!= ' + repr(st.acked)}")
    lin = check_kv(st.history.ops)
    say(f"   invariants checked after each of {sim.steps} steps: {len(sim.violations)} violations")
    say(f"   history of {len(st.history.ops)} operations: {lin.verdict}")
    if bad or sim.violations or lin.verdict == VIOLATION:
        print("TOUR FAILED: " + "; ".join(str(v) for v in sim.violations) + lin.summary(),
              file=sys.stderr)
        return 1
    say(f"\nNothing acknowledged was lost. Replay this exact run: ddb sim --seed {seed}"
        f"{' --nodes ' + str(nodes) if nodes != 3 else ''}")
    return 0


def random_run(seed: int, nodes: int | None, steps: int | None, quiet: bool) -> int:
    from .runner import run_random
    res = run_random(seed, nodes=nodes, steps=steps)
    print(res.report())
    return 0 if res.ok else 1


def requests_run(seed: int, steps: int | None) -> int:
    from .request_runner import run_requests
    res = run_requests(seed, steps=steps)
    print(res.report())
    return 0 if res.ok else 1


def main(args) -> int:
    seed = getattr(args, "seed", 1)
    nodes = getattr(args, "nodes", None)
    quiet = bool(getattr(args, "quiet", False))
    if getattr(args, "requests", False):
        return requests_run(seed, getattr(args, "steps", None))
    if getattr(args, "bank", False):
        from .bank import run_bank
        res = run_bank(seed, getattr(args, "steps", None))
        print(res.report())
        return 0 if res.ok else 1
    if getattr(args, "random", False):
        return random_run(seed, nodes, getattr(args, "steps", None), quiet)
    try:
        return tour(seed, nodes or 3, quiet)
    except InvariantViolation as v:
        print(f"INVARIANT VIOLATION: {v}", file=sys.stderr)
        return 1
