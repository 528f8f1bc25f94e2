"""How LocalCluster.start behaves when a node does not come up: a port race is retried,
anything else fails at once with the end of the node's log (CI once lost a one-node start
to "no leader within 30s: 1:exited", with the log gone with the temporary directory)."""
from __future__ import annotations

import contextlib
import socket
import time

import pytest

from ddb_node.cluster import LocalCluster, _ephemeral_range, free_ports
from ddb_node.errors import DdbError


def _port(addr: str) -> int:
    return int(addr.rsplit(":", 1)[1])


@contextlib.contextmanager
def _squatting(addr: str):
    """Another process's listener on addr's port, for as long as the block runs."""
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", _port(addr)))
    squatter.listen()
    try:
        yield
    finally:
        squatter.close()


def test_a_port_taken_before_the_node_binds_it_is_retried_with_fresh_ports():
    with LocalCluster(1, start=False, http=True) as lc:
        taken = lc.nodes[1].client_addr
        with _squatting(taken):
            lc.start(timeout=30)
            assert lc.nodes[1].client_addr != taken
            with lc.client() as c:
                c.execute("CREATE TABLE t(v)")
                assert c.execute("INSERT INTO t VALUES (1)").results[0].rows_affected == 1


def test_a_taken_http_port_is_retried_too():
    """uvloop words the bind error in lower case ("address already in use"); CI lost two
    module clusters to a retry that matched only Python's capitalised message."""
    with LocalCluster(1, start=False, http=True) as lc:
        taken = lc.nodes[1].http_addr
        with _squatting(taken):
            lc.start(timeout=30)
            assert lc.nodes[1].http_addr != taken


def test_free_ports_are_distinct_and_outside_the_kernels_ephemeral_range():
    """An outgoing connection takes its local port from the ephemeral range; a port chosen
    there can be gone by the time the node listens on it."""
    lo, hi = _ephemeral_range()
    ports = free_ports(12)
    assert len(set(ports)) == 12
    assert all(not lo <= p <= hi for p in ports)


def test_a_node_that_exits_while_starting_fails_the_start_at_once_with_its_log():
    with LocalCluster(1, start=False, extra_args=("--no-such-flag",)) as lc:
        t = time.monotonic()
        with pytest.raises(DdbError) as err:
            lc.start(timeout=300)
        assert time.monotonic() - t < 120          # not the whole start timeout
        msg = str(err.value)
        assert "node 1 (exit 2)" in msg and "--no-such-flag" in msg
