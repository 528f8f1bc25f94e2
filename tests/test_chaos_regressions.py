"""Regression tests for the bugs the chaos suite found (see docs/reliability.md).

1. Peer sends to an unreachable node (killed, link down) failed inside the future that a
   non-blocking send on an asyncio socket returns: they were counted as `sent`, and every one
   logged "Future exception was never retrieved" with a traceback (megabytes of node log per
   hour of faults).
2. A write proposal whose client wait had timed out, later replaced by another leader's entry:
   its future's exception was never retrieved and was logged the same way.
"""
from __future__ import annotations

import asyncio
import gc
import glob
import time

import zmq
import zmq.asyncio

from ddb_node.client import Client
from ddb_node.cluster import LocalCluster
from ddb_node.errors import DdbError
from ddb_node.net.transport import PeerTransport
from ddb_node.raft.types import Message, MsgType


def test_sends_to_an_unreachable_peer_are_dropped_quietly():
    async def main():
        loop = asyncio.get_running_loop()
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx.get("message")))
        ctx = zmq.asyncio.Context()
        t = PeerTransport(ctx, 1, "c", "tcp://127.0.0.1:0", lambda m: None)
        t.set_peer(2, "tcp://127.0.0.1:1")        # nobody listens there
        for _ in range(5):
            t.send(Message(MsgType.HEARTBEAT, 2, 1, 1))
        await asyncio.sleep(0.2)
        gc.collect()
        await asyncio.sleep(0.05)
        stats = dict(t.stats)
        t.close()
        ctx.term()
        return stats, errors

    stats, errors = asyncio.run(main())
    assert errors == []
    assert stats["sent"] == 0 and stats["dropped_full"] == 5


def test_abandoned_proposals_and_dead_peers_leave_no_tracebacks(tmp_path):
    with LocalCluster(3, str(tmp_path)) as lc:
        with lc.client(timeout=10.0) as c:
            c.execute("CREATE TABLE t(v)")
            old = lc.wait_for_leader(10)
            others = [i for i in lc.nodes if i != old]
            lc.kill(others[0])                     # the others now send to a dead peer
            time.sleep(1.0)
            lc.restart(others[0])
            lc.wait_for_leader(20)
            old = lc.wait_for_leader(10)
            others = [i for i in lc.nodes if i != old]
            lc.partition([[old], others])          # the old leader cannot commit any more
            # a write sent to the old leader only, whose wait times out there
            body = {"op": "request", "statements": [["INSERT INTO t VALUES(1)"]],
                    "level": "weak", "timeout": 0.3, "session": ["regression", 1]}
            with Client([lc.nodes[old].client_addr], timeout=2.0) as oc:
                try:
                    oc.call(lc.nodes[old].client_addr, body, 2.0)
                except DdbError:
                    pass
            lc.wait_for_leader(20, exclude=(old,))
            c.execute("INSERT INTO t VALUES(2)")      # the new leader's entries replace it
            lc.heal()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                st = c.status(old)
                if "error" not in st and st.get("role") != "leader" and \
                        st.get("applied", 0) >= c.status(others[0]).get("applied", 1):
                    break
                time.sleep(0.1)
            time.sleep(0.5)
    logs = "".join(open(p, errors="replace").read() for p in glob.glob(str(tmp_path / "node*.log")))
    assert "never retrieved" not in logs, logs[-3000:]


def test_node_restarted_from_a_short_lived_thread_keeps_running():
    """3. LocalCluster children carry PR_SET_PDEATHSIG, which fires when the *thread* that
    started them exits: a node restarted from asyncio.to_thread or an executor was SIGKILLed
    as soon as that thread ended (found by the AsyncClient chaos experiment)."""
    import threading
    with LocalCluster(3) as lc:
        t = threading.Thread(target=lambda: (lc.kill(2), lc.restart(2)))
        t.start()
        t.join()
        time.sleep(1.0)
        assert lc.crashed() == [], f"node 2 exited with {lc.nodes[2].proc.returncode}"
        lc.wait_for_leader(20)
