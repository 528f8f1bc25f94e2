"""`ddb tour`: the README's main job. A real 3-node cluster on loopback, told step by step:
create, insert, query, kill the leader, watch a new one, partition, heal, restart, and a
final check on every replica that nothing acknowledged was lost."""
from __future__ import annotations

import hashlib
import sys
import time

from ddb_node.cluster import LocalCluster
from ddb_node.errors import DdbError


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _table(result, limit: int = 10) -> str:
    cols = result.columns
    rows = list(zip(*result.values))[:limit] if result.values else []
    cells = [[str(c) for c in cols]] + [["NULL" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(c.ljust(w) for c, w in zip(cells[0], widths)) + " |", line]
    out += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells[1:]]
    out.append(line)
    return "\n".join(out)


def _picture(lc: LocalCluster) -> str:
    parts = []
    for nid, s in sorted(lc.status().items()):
        if "role" in s:
            parts.append(f"node {nid}: {s['role']:<9} term {s['term']:<3} commit {s['commit']:<5} "
                         f"applied {s['applied']}")
        else:
            parts.append(f"node {nid}: {s.get('state', 'unreachable')}")
    return "\n".join("    " + p for p in parts)


def _replica_digest(client, nid: int) -> tuple[int, str]:
    r = client.query_on(nid, "SELECT id, city, temp FROM readings ORDER BY id", level="none")[0]
    h = hashlib.sha256(repr(r.values).encode()).hexdigest()[:16]
    return len(r.values[0]) if r.values else 0, h


def _wait_converged(lc: LocalCluster, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = [s for s in lc.status().values() if "applied" in s]
        if len(st) == len(lc.node_ids()) and len({s["applied"] for s in st}) == 1 \
                and len({s["commit"] for s in st}) == 1:
            return st[0]["applied"]
        time.sleep(0.05)
    raise DdbError("replicas did not converge within %gs:\n%s" % (timeout, _picture(lc)))


def run_tour(n: int = 3) -> int:
    acked: list[int] = []
    _say("ddb tour: a distributed SQLite replicated with Raft\n")
    t0 = time.monotonic()
    with LocalCluster(n) as lc:
        _say(f"1. Started {n} node processes on loopback in {time.monotonic() - t0:.1f}s "
             f"(data in {lc.data_dir}).")
        leader = lc.wait_for_leader()
        _say(f"   Node {leader} won the first election.\n" + _picture(lc) + "\n")
        with lc.client() as c:
            c.execute("CREATE TABLE readings(id INTEGER PRIMARY KEY, city TEXT NOT NULL, "
                      "temp REAL, at TEXT DEFAULT CURRENT_TIMESTAMP)")
            cities = ["Oslo", "Lima", "Kyiv", "Pune", "Faro", "Nuuk"]
            for i, city in enumerate(cities, 1):
                c.execute("INSERT INTO readings(id, city, temp) VALUES(?, ?, ?)", [i, city, 10.5 + i])
                acked.append(i)
            _say("2. Created a table and inserted 6 rows; each write was committed by a majority "
                 "before it was acknowledged.")
            r = c.query("SELECT id, city, temp FROM readings ORDER BY id", level="linearizable")
            _say("   A linearizable read (the leader confirms it still leads before answering):")
            _say(_table(r[0]) + "\n")

            _say(f"3. kill -9 the leader, node {leader}.")
            lc.kill(leader)
            t1 = time.monotonic()
            new_leader = lc.wait_for_leader(exclude=(leader,))
            _say(f"   Node {new_leader} was elected after {time.monotonic() - t1:.2f}s.\n" + _picture(lc))
            for i in range(7, 17):
                c.execute("INSERT INTO readings(id, city, temp) VALUES(?, ?, ?)", [i, f"City{i}", i / 2])
                acked.append(i)
            _say("   10 more writes went to the new leader while node %d was down.\n" % leader)

            follower = next(i for i in lc.node_ids() if i not in (leader, new_leader))
            _say(f"4. Partition node {follower} away from the others (with node {leader} still down, "
                 f"the leader has no majority left).")
            lc.isolate(follower)
            try:
                c.execute("INSERT INTO readings(id, city, temp) VALUES(99, 'Nowhere', 0)", timeout=2.0)
                _say("   unexpected: a write committed without a majority")
                return 1
            except DdbError as e:
                _say(f"   A write is refused, as it must be: {type(e).__name__}: {e}")
            stale = c.query_on(follower, "SELECT count(*) FROM readings", level="none")[0].values[0][0]
            _say(f"   Node {follower} still answers a level=none read from its local copy: {stale} rows.")
            lc.heal()
            _say("   Healed the partition.\n")

            _say(f"5. Restart node {leader} from its data directory; it catches up from the leader.")
            lc.restart(leader)
            applied = _wait_converged(lc)
            _say(f"   All replicas agree at applied index {applied}.\n" + _picture(lc) + "\n")

            c.execute("DELETE FROM readings WHERE id = 99")  # in case the refused write committed later
            acked_set = set(acked)
            _say("6. Check every replica: nothing acknowledged was lost, all copies identical.")
            _wait_converged(lc)
            digests = {}
            for nid in lc.node_ids():
                r = c.query_on(nid, "SELECT id FROM readings ORDER BY id", level="none")[0]
                ids = set(r.values[0]) if r.values else set()
                missing = acked_set - ids
                digests[nid] = _replica_digest(c, nid)
                _say(f"   node {nid}: {len(ids)} rows, digest {digests[nid][1]}"
                     + (f", MISSING {sorted(missing)}" if missing else ""))
                if missing:
                    return 1
            if len({d for d in digests.values()}) != 1:
                _say("   replicas differ!")
                return 1
            _say(f"\nDone in {time.monotonic() - t0:.1f}s: {len(acked)} acknowledged writes, "
                 "all present on every replica.")
    return 0


def main(args=None) -> int:
    try:
        return run_tour(getattr(args, "nodes", 3) or 3)
    except DdbError as e:
        print(f"ddb tour: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
