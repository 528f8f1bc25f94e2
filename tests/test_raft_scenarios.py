"""Readable text-file Raft scenarios (tests/testdata/*.txt), in the spirit of
etcd-io/raft's datadriven testdata.

A file is a sequence of directives. Each directive is one command line, a line
`----`, and the expected output up to the next blank line. Lines starting with
`#` between directives are comments. Run with DDB_REWRITE=1 to regenerate the
expected outputs (then review the diff!).

Commands (IDs are node ids):
  add-nodes N [pre-vote=B] [check-quorum=B] [seed=S] [learners=a,b] [k=v...]
  add-node ID [voters=a,b,c] [learners=d]   a joining node on empty storage
  campaign ID | tick ID [N] | run N (tick every node and stabilize, N times)
  propose ID DATA | conf-change ID add-learner|promote|remove NODE
  transfer-leader ID TO | read-index ID CTX
  stabilize | deliver-msgs ID | drop-msgs [from=X] [to=Y] | queue
  partition 1 2 / 3 | isolate ID | heal | crash ID | restart ID | compact ID [INDEX]
  status [ID...] | log ID | applied ID | read-states ID
A trailing word `quiet` hides the message lines of a command's output.

After every command, role/term/leader changes are printed as `~ ...` lines.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ddb_node.raft import ConfChangeType, ConfState, RaftError, Role
from tests.raft_harness import Net, fmt_entry, fmt_msg

TESTDATA = Path(__file__).parent / "testdata"
REWRITE = os.environ.get("DDB_REWRITE") == "1"

_CC = {"add-learner": ConfChangeType.ADD_LEARNER, "promote": ConfChangeType.PROMOTE,
       "remove": ConfChangeType.REMOVE}


def _ids(s: str) -> tuple[int, ...]:
    return tuple(int(x) for x in s.split(",") if x)


def _val(v: str):
    if v in ("true", "false"):
        return v == "true"
    return int(v)


class Interpreter:
    def __init__(self):
        self.net: Net | None = None

    # ---- helpers --------------------------------------------------------------
    def _soft(self) -> dict:
        if self.net is None:
            return {}
        return {i: (n.role, n.term, n.leader_id, i in self.net.down)
                for i, n in self.net.nodes.items()}

    def _changes(self, before: dict) -> list[str]:
        out = []
        for i, (role, term, lead, down) in sorted(self._soft().items()):
            old = before.get(i)
            if old is None or old == (role, term, lead, down):
                continue
            if down:
                if not old[3]:
                    out.append(f"~ {i} is down")
                continue
            s = f"~ {i} {role.name.lower()} term={term}"
            if role != Role.LEADER:
                s += f" leader={lead}"
            out.append(s)
        return out

    def _emitted(self, mark: int) -> list[str]:
        return self.net.trace[mark:]

    def _deliveries(self, d0: int, x0: int, fn) -> list[str]:
        """Run fn, report every message delivered or dropped, in order."""
        net = self.net
        log: list[str] = []
        orig_step = net.step

        def step(m):
            ok = orig_step(m)
            log.append(fmt_msg(m) + ("" if ok else "  (dropped)"))
            return ok
        net.step = step
        try:
            fn()
        finally:
            del net.step
        return log

    # ---- dispatch -------------------------------------------------------------
    def run(self, line: str) -> str:
        words = line.split()
        cmd, args = words[0], words[1:]
        kw = {k: v for k, v in (a.split("=", 1) for a in args if "=" in a)}
        pos = [a for a in args if "=" not in a and a != "quiet"]
        quiet = "quiet" in args
        before = self._soft() if cmd != "add-nodes" else {}
        mark = len(self.net.trace) if self.net else 0
        handler = getattr(self, "cmd_" + cmd.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {cmd!r}")
        try:
            out = handler(pos, kw, mark)
        except RaftError as e:
            out = [f"error: {type(e).__name__}: {e}"]
        except ValueError as e:
            out = [f"error: ValueError: {e}"]
        if quiet:
            out = [ln for ln in out if not ln[:1].isdigit() or "->" not in ln.split()[0]]
        out = list(out) + self._changes(before)
        return "\n".join(out) if out else "ok"

    def cmd_add_nodes(self, pos, kw, mark):
        n = int(pos[0])
        cfg = {k.replace("-", "_"): _val(v) for k, v in kw.items() if k not in ("seed", "learners")}
        self.net = Net(n, seed=int(kw.get("seed", 0)), learners=_ids(kw.get("learners", "")), **cfg)
        return [f"{i}: voters={n.conf_state.voters} learners={n.conf_state.learners} "
                f"timeout={n.randomized_timeout}" for i, n in sorted(self.net.nodes.items())]

    def cmd_add_node(self, pos, kw, mark):
        nid = int(pos[0])
        cs = None
        if "voters" in kw or "learners" in kw:
            cs = ConfState(_ids(kw.get("voters", "")), _ids(kw.get("learners", "")))
        self.net.add_node(nid, cs)
        return []

    def cmd_campaign(self, pos, kw, mark):
        self.net.campaign(int(pos[0]))
        return self._emitted(mark)

    def cmd_tick(self, pos, kw, mark):
        self.net.tick(int(pos[0]), int(pos[1]) if len(pos) > 1 else 1)
        return self._emitted(mark)

    def cmd_run(self, pos, kw, mark):
        self.net.run(int(pos[0]))
        return []

    def cmd_propose(self, pos, kw, mark):
        idx = self.net.propose(int(pos[0]), " ".join(pos[1:]).encode())
        return [f"index={idx}"] + self._emitted(mark)

    def cmd_conf_change(self, pos, kw, mark):
        idx = self.net.conf_change(int(pos[0]), _CC[pos[1]], int(pos[2]))
        return [f"index={idx}"] + self._emitted(mark)

    def cmd_transfer_leader(self, pos, kw, mark):
        nid = int(pos[0])
        self.net.nodes[nid].transfer_leader(int(pos[1]))
        self.net.process(nid)
        return self._emitted(mark)

    def cmd_read_index(self, pos, kw, mark):
        nid = int(pos[0])
        self.net.nodes[nid].read_index(pos[1].encode())
        self.net.process(nid)
        return self._emitted(mark)

    def cmd_stabilize(self, pos, kw, mark):
        return self._deliveries(0, 0, self.net.stabilize)

    def cmd_deliver_msgs(self, pos, kw, mark):
        nid = int(pos[0])
        return self._deliveries(0, 0, lambda: self.net.deliver_to(nid))

    def cmd_drop_msgs(self, pos, kw, mark):
        frm, to = kw.get("from"), kw.get("to")
        msgs = self.net.drop(lambda m: (frm is None or m.frm == int(frm))
                             and (to is None or m.to == int(to)))
        return [fmt_msg(m) + "  (dropped)" for m in msgs]

    def cmd_queue(self, pos, kw, mark):
        return [fmt_msg(m) for m in self.net.queue] or ["empty"]

    def cmd_partition(self, pos, kw, mark):
        groups, cur = [], []
        for w in pos:
            if w == "/":
                groups.append(cur)
                cur = []
            else:
                cur.append(int(w))
        groups.append(cur)
        self.net.partition(*groups)
        return []

    def cmd_isolate(self, pos, kw, mark):
        self.net.isolate(int(pos[0]))
        return []

    def cmd_heal(self, pos, kw, mark):
        self.net.heal()
        return []

    def cmd_crash(self, pos, kw, mark):
        self.net.crash(int(pos[0]))
        return []

    def cmd_restart(self, pos, kw, mark):
        self.net.restart(int(pos[0]))
        return []

    def cmd_compact(self, pos, kw, mark):
        nid = int(pos[0])
        self.net.compact(nid, int(pos[1]) if len(pos) > 1 else None)
        return [f"first_index={self.net.storage[nid].first_index()}"]

    def cmd_status(self, pos, kw, mark):
        ids = [int(p) for p in pos] or sorted(self.net.nodes)
        out = []
        for i in ids:
            n = self.net.nodes[i]
            if i in self.net.down:
                out.append(f"{i}: down")
                continue
            s = (f"{i}: {n.role.name.lower()} term={n.term} vote={n.vote} leader={n.leader_id}"
                 f" commit={n.commit_index} applied={n.applied} last={n.last_index}"
                 f" voters={n.conf_state.voters} learners={n.conf_state.learners}")
            out.append(s)
            if n.role == Role.LEADER:
                for pid, pr in sorted(n.prs.items()):
                    if pid != i:
                        out.append(f"   {pid}: {pr.state.name.lower()} match={pr.match} next={pr.next}")
        return out

    def cmd_log(self, pos, kw, mark):
        nid = int(pos[0])
        n = self.net.nodes[nid]
        head = f"first={n.log.first_index()} last={n.last_index} commit={n.commit_index}"
        return [head] + [fmt_entry(e) for e in self.net.log(nid)]

    def cmd_applied(self, pos, kw, mark):
        nid = int(pos[0])
        return [" ".join(d.decode() for d in self.net.data(nid)) or "nothing"]

    def cmd_read_states(self, pos, kw, mark):
        rs = self.net.read_states[int(pos[0])]
        return [f"index={r.index} ctx={r.ctx.decode()}" for r in rs] or ["none"]


# ------------------------------------------------------------------ file format
def parse(text: str) -> list[tuple[list[str], str, str]]:
    """[(leading comment/blank lines, command, expected output)]"""
    lines = text.split("\n")
    out, pre, i = [], [], 0
    while i < len(lines):
        ln = lines[i]
        if not ln.strip() or ln.startswith("#"):
            pre.append(ln)
            i += 1
            continue
        cmd = ln
        i += 1
        if i >= len(lines) or lines[i] != "----":
            raise ValueError(f"line {i}: expected ---- after {cmd!r}")
        i += 1
        exp = []
        while i < len(lines) and lines[i] != "":
            exp.append(lines[i])
            i += 1
        i += 1  # the blank line closing the output
        out.append((pre, cmd, "\n".join(exp)))
        pre = []
    return out


def render(directives: list[tuple[list[str], str, str]]) -> str:
    parts = []
    for pre, cmd, out in directives:
        parts.extend(pre)
        parts += [cmd, "----", out, ""]
    return "\n".join(parts).rstrip("\n") + "\n"


FILES = sorted(TESTDATA.glob("*.txt"))


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario(path: Path):
    directives = parse(path.read_text())
    it = Interpreter()
    actual = []
    for pre, cmd, expected in directives:
        got = it.run(cmd)
        actual.append((pre, cmd, got))
        if not REWRITE:
            assert got == expected, f"{path.name}: {cmd}\n--- expected\n{expected}\n--- got\n{got}"
    if REWRITE:
        path.write_text(render(actual))
    if it.net is not None:
        it.net.check_state_machine_safety()


def test_scenario_files_exist():
    names = {p.stem for p in FILES}
    assert {"election", "prevote", "replication_partition", "membership"} <= names
