"""What the magics drive: a real cluster (LocalCluster or attached) or a simulated one.

Both backends offer the same calls (execute, view, faults, membership, close) so every
magic works on both.
"""
from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ddb_node.client import Client, Response
from ddb_node.errors import ConnectionFailed, DdbError, Timeout, from_reply
from ddb_node.protocol import ClientRequest, statement

from .parsing import UsageProblem
from .view import ClusterView, LinkView, NodeView, Timeline, norm_role


@dataclass
class Reply:
    results: list
    node: int | None = None
    level: str | None = None
    index: int | None = None
    time: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_response(cls, r: Response) -> "Reply":
        return cls(list(r.results), r.node, r.level, r.index, r.time)


class Backend(ABC):
    kind = "?"
    name = "default"
    timeline: Timeline

    # SQL
    @abstractmethod
    def execute(self, statements, *, level, transaction=False, node=None, timeout=10.0,
                no_wait=False) -> Reply:
        """Run the statements; a Reply with every result."""

    def map_reduce(self, map_sql, reduce_sql, params, timeout):
        raise UsageProblem(f"--map-reduce is not available on a {self.kind} cluster")

    # looking
    @abstractmethod
    def view(self) -> ClusterView:
        """The cluster as it is now (nodes, links, faults)."""

    def observe(self) -> ClusterView:
        v = self.view()
        self.timeline.observe(v)
        v.events = list(self.timeline.events)
        return v

    def leader(self) -> int | None:
        return self.view().leader

    @abstractmethod
    def wait(self, what: str, timeout: float, exclude=()) -> str:
        """Wait until `what` (leader, commit, quiet) holds; say what happened."""

    # faults
    def _need_process_control(self, what):
        raise UsageProblem(f"{what} needs process control: this cluster was attached, "
                           "not launched here (run it on the machine that hosts the node)")

    def close(self) -> None:
        """Release what this backend holds (a launched cluster closes its processes)."""

    def describe(self) -> str:
        return f"{self.name}: {self.kind}"


def _require(ids, node: int):
    if node not in ids:
        raise UsageProblem(f"no node {node} (nodes: {', '.join(map(str, ids))})")


def complete_partition(ids, groups) -> list[list[int]]:
    """`%ddb_partition 1,2` means "1,2 / everyone else": check the ids, add the rest."""
    for g in groups:
        for n in g:
            _require(ids, n)
    named = {n for g in groups for n in g}
    rest = [n for n in ids if n not in named]
    return [*groups, rest] if rest else list(groups)


def describe_partition(groups) -> str:
    return "partition " + " | ".join(",".join(map(str, g)) for g in groups)


# how to *fetch* (a cursor for a long SELECT), never what may run: the node classifies
_LOOKS_LIKE_A_READ = re.compile(r"^\s*(SELECT|VALUES)\b", re.I)


class LiveBackend(Backend):
    """A cluster of real node processes: launched here (LocalCluster) or attached."""

    def __init__(self, name: str, cluster, kind: str, timeout: float = 10.0):
        self.name = name
        self.cluster = cluster
        self.kind = kind
        self.timeline = Timeline()
        self.client = Client(cluster.client_addresses(), timeout=timeout, raise_on_error=False)
        if kind == "local":
            self.timeline.add(f"launched {len(cluster.nodes)} nodes")
        else:
            self.timeline.add("attached")

    # ------------------------------------------------------------------ SQL
    def _first_rows(self, sql, params, level, timeout, fetch_rows) -> Reply:
        """A long read shows its first `fetch_rows` rows and its row count; --all fetches it all."""
        t0 = time.perf_counter()
        with self.client.query_iter(sql, params or None, level=level, chunk_rows=fetch_rows,
                                    timeout=timeout) as chunks:
            first = next(chunks)
            more = next(chunks, None) is not None
        note, extra = "", {}
        if more:
            total = self.client.query(f"SELECT count(*) FROM ({sql})", params or None, level=level,
                                      timeout=timeout).results[0].values[0][0]
            note = (f"fetched the first {len(first.values[0]):,} of {total:,} rows "
                    f"(%%ddb --all fetches them all; %config DdbMagic.fetchlimit = N)")
            extra = {"total_rows": total}
        return Reply([first], chunks.node, chunks.level or level, chunks.index,
                     time.perf_counter() - t0, note=note, extra=extra)

    def execute(self, statements, *, level, transaction=False, node=None, timeout=10.0,
                no_wait=False, fetch_rows=None) -> Reply:
        if no_wait:
            raise UsageProblem("--no-wait is only for simulated clusters (%ddb launch --sim)")
        stmts = [(s, p) if p else s for s, p in statements]
        if node is None and fetch_rows and len(statements) == 1 and not transaction \
                and level != "strong" and _LOOKS_LIKE_A_READ.match(statements[0][0]):
            return self._first_rows(statements[0][0], statements[0][1], level, timeout, fetch_rows)
        if node is None:
            r = self.client.request(stmts, transaction=transaction, level=level, timeout=timeout)
            return Reply.from_response(r)
        _require(self.cluster.node_ids(), node)
        if node not in self.client.members:
            try:
                self.client.refresh()
            except ConnectionFailed:
                pass
        addr = self.client.members.get(node)
        if addr is None:
            raise DdbError(f"node {node} is not a member of the cluster")
        body = ClientRequest([statement(s, p or None) for s, p in statements], level=level,
                             transaction=transaction, timeout=timeout).to_wire()
        try:
            reply = self.client.call(addr, body, timeout + 0.5)
        except ConnectionFailed:
            raise Timeout(f"node {node} did not answer within {timeout:g}s "
                          "(is it down, paused or cut off from a majority?)") from None
        if not reply.get("ok"):
            raise from_reply(reply.get("error") or {})
        return Reply.from_response(Response(reply))

    def map_reduce(self, map_sql, reduce_sql, params, timeout):
        t0 = time.perf_counter()
        res = self.client.map_reduce(map_sql, reduce_sql, params, timeout=timeout)
        return Reply([res], None, "map/reduce", None, time.perf_counter() - t0)

    # ------------------------------------------------------------------ looking
    def view(self) -> ClusterView:
        st = self.cluster.status()
        nodes, faults = [], {}
        for nid in sorted(st):
            s = st[nid]
            state = s.get("state") or "up"
            if state == "running":
                state = "up"
            if "error" in s and state == "up":
                state = "unreachable"
            nv = NodeView(nid, state)
            if state == "up":
                nv.role = norm_role(s.get("role"))
                nv.term, nv.commit, nv.applied = s.get("term"), s.get("commit"), s.get("applied")
                nv.last_index, nv.leader = s.get("last_index"), s.get("leader") or None
                nv.learner = nid in (s.get("learners") or [])
                faults[nid] = s.get("faults") or {}
            elif "error" in s:
                nv.note = str((s.get("error") or {}).get("type", ""))
            nodes.append(nv)
        links = _links_from_faults([n.id for n in nodes], faults)
        desc = _faults_text(faults)
        return ClusterView(self.name, self.kind, nodes, links, faults=desc)

    def leader(self) -> int | None:
        return self.cluster.leader()

    def wait(self, what: str, timeout: float, exclude=()) -> str:
        if what == "leader":
            lid = self.cluster.wait_for_leader(timeout, exclude=exclude)
            return f"n{lid} leads"
        if what in ("commit", "quiet"):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                v = self.view()
                up = [n for n in v.nodes if n.alive]
                starting = any(n.state == "unreachable" for n in v.nodes)   # e.g. just restarted
                if v.leader and up and not starting and \
                        len({(n.commit, n.applied, n.last_index) for n in up}) == 1:
                    return f"all {len(up)} live nodes hold the same log (index {up[0].applied})"
                time.sleep(0.05)
            raise Timeout(f"the live nodes did not converge within {timeout:g}s")
        raise UsageProblem("usage: %ddb wait leader|commit|quiet [--timeout S]")

    # ------------------------------------------------------------------ faults
    def partition(self, groups):
        groups = complete_partition(self.cluster.node_ids(), groups)
        self.cluster.partition(groups)
        return describe_partition(groups)

    def isolate(self, node):
        _require(self.cluster.node_ids(), node)
        self.cluster.isolate(node)
        return f"isolate n{node}"

    def heal(self):
        self.cluster.heal()
        return "heal"

    def drop(self, rate, link=None):
        self.cluster.drop(rate, link=link)
        return f"drop {rate:.0%}" + (f" on {link[0]}-{link[1]}" if link else "")

    def delay(self, ms, jitter=0.0):
        self.cluster.delay(ms, jitter)
        return f"delay {ms:g}ms" + (f" ±{jitter:g}ms" if jitter else "")

    def _proc(self, what, node):
        if self.kind != "local":
            self._need_process_control(what)
        _require(list(self.cluster.nodes), node)

    def kill(self, node):
        self._proc("%ddb_kill", node)
        self.cluster.kill(node)
        return f"kill n{node}"

    def restart(self, node):
        self._proc("%ddb_restart", node)
        self.cluster.restart(node)
        return f"restart n{node}"

    def pause(self, node):
        self._proc("%ddb_pause", node)
        self.cluster.pause(node)
        return f"pause n{node}"

    def resume(self, node):
        self._proc("%ddb_resume", node)
        self.cluster.resume(node)
        return f"resume n{node}"

    def elect(self, node, timeout=10.0):
        _require(self.cluster.node_ids(), node)
        lid = self.cluster.transfer_leader(node, timeout=timeout)
        return f"leadership to n{node}" + (f" (n{lid} leads)" if lid and lid != node else "")

    def add_node(self):
        if self.kind != "local":
            self._need_process_control("add-node")
        nid = self.cluster.add_node()
        self.client.refresh()
        return nid

    def remove_node(self, node):
        if self.kind != "local":
            self._need_process_control("remove-node")
        _require(self.cluster.node_ids(), node)
        self.cluster.remove_node(node)
        try:
            self.client.refresh()
        except ConnectionFailed:
            pass
        return f"remove n{node}"

    def nodes_table(self):
        import pandas as pd
        st = self.cluster.status()
        rows = []
        for nid in sorted(st):
            s = st[nid]
            addr = (s.get("addresses") or {})
            np_ = getattr(self.cluster, "nodes", {}).get(nid)
            rows.append({"node": nid, "state": s.get("state"), "role": norm_role(s.get("role")),
                         "term": s.get("term"), "commit": s.get("commit"),
                         "applied": s.get("applied"), "snapshot": s.get("snapshot_index"),
                         "log_first": s.get("first_index"), "log_last": s.get("last_index"),
                         "client": addr.get("client") or getattr(np_, "client_addr", None),
                         "peer": addr.get("peer") or getattr(np_, "peer_addr", None),
                         "pid": s.get("pid") or getattr(np_, "pid", None)})
        df = pd.DataFrame(rows)
        for c in ("term", "commit", "applied", "snapshot", "log_first", "log_last", "pid"):
            if c in df:
                df[c] = df[c].astype("Int64")
        return df

    def _each_node(self, body: dict, timeout: float = 2.0) -> dict[int, dict | None]:
        """Ask every node the same operation: {node: answer, or None if it did not answer}."""
        try:
            self.client.refresh()
        except ConnectionFailed:
            pass
        out: dict[int, dict | None] = {}
        for nid in sorted(set(self.cluster.node_ids()) | set(self.client.members)):
            addr = self.client.members.get(nid)
            try:
                reply = self.client.call(addr, body, timeout) if addr else None
            except ConnectionFailed:
                reply = None
            out[nid] = reply if reply and reply.get("ok") else None
        return out

    def logs(self, last: int = 20) -> dict[int, dict | None]:
        """Each node's recent log (`log` operation), None for a node that did not answer."""
        return {n: (a or {}).get("log") for n, a in self._each_node({"op": "log", "last": last}).items()}

    def sequence(self, last: int = 200):
        """The nodes' recent peer messages as one sequence (`trace` operation)."""
        from .sequence import from_traces
        traces = {n: a for n, a in self._each_node({"op": "trace", "last": last}).items() if a}
        return from_traces(traces)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.kind == "local":
                self.cluster.close()
            else:
                self.cluster.close()

    def describe(self) -> str:
        if self.kind == "local":
            return (f"{self.name}: {len(self.cluster.node_ids())} local nodes "
                    f"(data in {self.cluster.data_dir})")
        return f"{self.name}: attached to {', '.join(self.cluster.client_addresses())}"


def _links_from_faults(ids, faults: dict) -> list[LinkView]:
    def blocked(a, b):
        for f in faults.values():
            bl = {tuple(x) for x in f.get("blocked") or []}
            if (a, b) in bl or (a, "*") in bl or ("*", b) in bl:
                return True
        return False

    links = []
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            lk = LinkView(a, b)
            ab, ba = blocked(a, b), blocked(b, a)
            lk.state = "cut" if ab and ba else ("one-way" if ab or ba else "ok")
            rates = []
            for n in (a, b):
                f = faults.get(n) or {}
                ld = f.get("link_drop") or {}
                rates.append(ld.get(f"{a}-{b}", ld.get(f"{b}-{a}", f.get("drop_rate") or 0.0)))
                lk.delay_ms = max(lk.delay_ms, f.get("delay_ms") or 0.0)
                lk.jitter_ms = max(lk.jitter_ms, f.get("jitter_ms") or 0.0)
            lk.lossy = max(rates) if rates else 0.0
            links.append(lk)
    return links


def _faults_text(faults: dict) -> str:
    parts = set()
    for f in faults.values():
        if f.get("isolated"):
            parts.add(f"n{f['isolated']} isolated")
        if f.get("drop_every"):
            parts.add(f"drop every {f['drop_every']}th")
        if f.get("reorder_rate"):
            parts.add(f"reorder {f['reorder_rate']:.0%}")
        if f.get("duplicate_rate"):
            parts.add(f"duplicate {f['duplicate_rate']:.0%}")
    return ", ".join(sorted(parts))


# ---------------------------------------------------------------- launching from a kernel
def notebook_cluster_class():
    """The LocalCluster class the magics launch. Its nodes run in their own process group,
    so interrupting the kernel (SIGINT to the kernel's whole group) never kills them."""
    import ddb_node.cluster as dc

    return dc.LocalCluster
