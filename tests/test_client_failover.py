"""How the Python client gets past a leader that died, stopped or was cut off, pinned by what
it did (which node each attempt went to and how it ended), never by wall time: the attempt
timeout is set far above anything a fault needs, so waiting it out would show up as an
attempt that ended in ConnectionFailed."""
from __future__ import annotations

import asyncio
import threading

import pytest

from ddb_node.client import AsyncClient, Client
from ddb_node.net.tcp_link import TcpLink

from tests.nodehelpers import restore_health, wait_until

LONG = 30.0   # attempt timeout: a client that waits one out fails these tests' expectations


class RecordingClient(Client):
    """A Client that records every attempt: (node address, "ok" or the exception's name),
    and how many successor probes it sent."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.attempts: list[tuple[str, str]] = []
        self.probes = 0

    def _attempt(self, addr, body, timeout, *, watch_leader):
        try:
            reply = super()._attempt(addr, body, timeout, watch_leader=watch_leader)
        except Exception as e:
            self.attempts.append((addr, type(e).__name__))
            raise
        self.attempts.append((addr, "ok" if reply.get("ok") else reply["error"]["type"]))
        return reply

    def _probe(self, *a, **kw):
        self.probes += 1
        return super()._probe(*a, **kw)


class RecordingAsyncClient(AsyncClient):
    """The same record for the asyncio client (only the attempts that carry a request)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.attempts: list[tuple[str, str]] = []

    async def _attempt(self, addr, body, timeout, *, watch_leader):
        try:
            reply = await super()._attempt(addr, body, timeout, watch_leader=watch_leader)
        except Exception as e:
            if body.get("op") == "request":
                self.attempts.append((addr, type(e).__name__))
            raise
        if body.get("op") == "request":
            self.attempts.append((addr, "ok" if reply.get("ok") else reply["error"]["type"]))
        return reply


@pytest.fixture(scope="module", autouse=True)
def schema(lc):
    with lc.client() as c:
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")


@pytest.fixture
def c(lc):
    with RecordingClient(lc.client_addresses(), timeout=2 * LONG, attempt_timeout=LONG) as client:
        yield client


@pytest.fixture(autouse=True)
def _restore(lc):
    yield
    for nid, node in lc.nodes.items():
        if node.state == "paused":
            lc.resume(nid)
        elif node.state == "killed":
            lc.restart(nid)
    restore_health(lc)


def _addr_of(lc, nid: int) -> str:
    return lc.nodes[nid].client_addr


def _write_after_fault(lc, c, fault) -> tuple[int, list[tuple[str, str]], object]:
    old = c.execute("INSERT INTO t(v) VALUES('before')").node
    c.attempts.clear()
    fault(old)
    r = c.execute("INSERT INTO t(v) VALUES('after')")
    return old, list(c.attempts), r


def test_after_a_kill_the_next_write_goes_to_the_new_leader_at_once(lc, c):
    """The dead leader's closed connection is noticed (NodeDown), not waited out; the client
    then hears of the new leader from the others and writes there."""
    old, attempts, r = _write_after_fault(lc, c, lc.kill)
    assert r.node != old
    assert attempts[-1] == (_addr_of(lc, r.node), "ok")
    assert "ConnectionFailed" not in [kind for _, kind in attempts], attempts
    assert all(kind == "NodeDown" for addr, kind in attempts if addr == _addr_of(lc, old)), attempts


def test_a_stopped_leader_is_left_when_the_others_name_its_successor(lc, c):
    """SIGSTOP keeps the connection up and silent: the others' answer ends the attempt."""
    old, attempts, r = _write_after_fault(lc, c, lc.pause)
    assert r.node != old
    assert attempts[-1] == (_addr_of(lc, r.node), "ok")
    assert (_addr_of(lc, old), "LeaderMoved") in attempts, attempts
    assert "ConnectionFailed" not in [kind for _, kind in attempts], attempts


def test_an_isolated_leader_is_left_when_the_others_name_its_successor(lc, c):
    """Cut off from its peers the old leader still takes the request but cannot commit it."""
    old, attempts, r = _write_after_fault(lc, c, lc.isolate)
    assert r.node != old
    assert attempts[-1] == (_addr_of(lc, r.node), "ok")
    assert "ConnectionFailed" not in [kind for _, kind in attempts], attempts


def test_a_slow_leader_is_waited_for_not_abandoned(lc):
    """Slow is not dead: with every peer message delayed, writes are late enough for the
    client to ask the others, who know no newer leader, so the answer is awaited."""
    with RecordingClient(lc.client_addresses(), timeout=2 * LONG, attempt_timeout=LONG,
                         probe_after=0.01) as c:
        leader = c.execute("INSERT INTO t(v) VALUES('fast')").node
        lc.delay(60)   # a commit takes two delayed hops: far later than probe_after
        c.attempts.clear()
        r = c.execute("INSERT INTO t(v) VALUES('slow')")
        assert c.probes > 0, "the write was not late enough to probe: the test proves nothing"
        assert c.attempts == [(_addr_of(lc, leader), "ok")]
        assert r.node == leader


def test_nodes_after_term_answers_once_a_newer_leader_is_known(lc):
    """The long poll behind the successor probes: a follower asked about leaders newer than
    the current term answers after a leadership transfer, naming the new leader."""
    with Client(lc.client_addresses()) as c:
        c.refresh()
        leader, term = c._leader, c._term
        follower, target = [n for n in lc.node_ids() if n != leader][:2]
        box = {}

        def ask():
            box["reply"] = c.call(_addr_of(lc, follower),
                                  {"op": "nodes", "after_term": term, "timeout": LONG}, LONG + 5)

        t = threading.Thread(target=ask)
        t.start()
        lc.transfer_leader(target)
        t.join(LONG + 10)
        reply = box["reply"]
        assert reply["ok"] and reply["term"] > term and reply["leader"] == target
        # a term already passed is answered with what the node knows now
        now = c.call(_addr_of(lc, follower), {"op": "nodes", "after_term": term}, LONG)
        assert now["term"] > term and now["leader"]


def test_link_tells_a_closed_port_and_a_killed_node_from_a_live_one(lc):
    """The kernel's word, not a timeout: a refused connect and a dead node's closed connection
    say "down" at once; a restarted node's port is connected again."""
    from ddb_node.cluster import free_ports
    victim = next(n for n in lc.node_ids() if n != lc.wait_for_leader(10))
    links = [TcpLink(f"tcp://127.0.0.1:{free_ports(1)[0]}"), TcpLink(_addr_of(lc, victim))]
    try:
        nobody, node = links
        wait_until(lambda: nobody.down, 10, what="a refused connection to be reported")
        wait_until(lambda: node.poll_events() is True, 10, what="the connection to come up")
        drops = node.drops
        lc.kill(victim)
        wait_until(lambda: node.down, 10, what="the killed node's connection to be reported closed")
        assert node.drops > drops
        lc.restart(victim)
        wait_until(lambda: node.poll_events() is True, 30, what="the reconnection")
    finally:
        for link in links:
            link.close()


@pytest.mark.parametrize("fault", ["kill", "pause"])
def test_async_client_gets_past_a_dead_or_stopped_leader(lc, fault):
    async def main():
        async with RecordingAsyncClient(lc.client_addresses(), timeout=2 * LONG,
                                        attempt_timeout=LONG) as ac:
            old = (await ac.execute("INSERT INTO t(v) VALUES('async-before')")).node
            ac.attempts.clear()
            await asyncio.get_running_loop().run_in_executor(None, getattr(lc, fault), old)
            r = await ac.execute("INSERT INTO t(v) VALUES('async-after')")
            return old, r.node, list(ac.attempts)

    old, new, attempts = asyncio.run(main())
    assert new != old
    # the last attempt succeeded, and not at the old leader (a follower may have forwarded it)
    assert attempts[-1][1] == "ok" and attempts[-1][0] != _addr_of(lc, old), attempts
    assert "ConnectionFailed" not in [kind for _, kind in attempts], attempts
