"""Multi-host: a 3-node cluster across three network namespaces, each node with its own
address on a veth pair behind a bridge (as on three machines), faults made in the kernel's
network: a link taken down, an iptables partition, random packet loss. Needs root."""
from __future__ import annotations

import subprocess
import time

import pytest

from ddb_node.chaos.checkers import check_convergence
from ddb_node.chaos.netns import NetnsCluster, available, iptables_unavailable, sh

pytestmark = [pytest.mark.timeout(300),
              pytest.mark.skipif(available() is not None, reason=f"network namespaces: {available()}")]


@pytest.fixture(scope="module")
def nc():
    with NetnsCluster(3) as cluster:
        with cluster.client(timeout=10.0) as c:
            c.execute("CREATE TABLE mh(id INTEGER PRIMARY KEY, v TEXT)")
        yield cluster


@pytest.fixture(autouse=True)
def _healed(nc):
    """Each test leaves the kernel's network as it found it, with a leader."""
    yield
    nc.net_heal()
    nc.wait_for_leader(30)


def test_nodes_live_in_their_own_namespaces(nc):
    with nc.client(timeout=10.0) as c:
        st = c.status()
        for i in nc.nodes:
            assert st[i]["addresses"]["peer"] == f"tcp://{nc.ip(i)}:7001"
            # the node's process is in its namespace: its ports are bound there, not here
            ns_ss = sh("ss", "-ltn", ns=nc.ns(i), check=False).stdout
            assert f"{nc.ip(i)}:8001" in ns_ss
            root_pid_ns = subprocess.run(["readlink", f"/proc/{nc.nodes[i].pid}/ns/net"],
                                         capture_output=True, text=True).stdout
            assert root_pid_ns.strip() != subprocess.run(["readlink", "/proc/self/ns/net"],
                                                         capture_output=True, text=True).stdout.strip()
        c.execute("INSERT INTO mh(v) VALUES('hello')")
        assert c.query("SELECT v FROM mh WHERE v = 'hello'", level="linearizable")[0].rows == [("hello",)]


def test_leader_link_down_then_heal(nc):
    with nc.client(timeout=15.0) as c:
        old = nc.wait_for_leader(20)
        nc.link_down(old)
        t0 = time.monotonic()
        new = nc.wait_for_leader(30, exclude=(old,))
        elected = time.monotonic() - t0
        assert new != old and elected < 15
        for k in range(20):
            c.execute("INSERT INTO mh(v) VALUES(?)", [f"during-{k}"])
        nc.net_heal()
        nc.wait_for_leader(20)
        conv = check_convergence(nc, c, ["mh"])
        assert conv["valid"], conv["anomalies"]
        assert c.query("SELECT count(*) FROM mh WHERE v LIKE 'during-%'",
                       level="linearizable")[0].rows[0][0] == 20


def test_iptables_partition_and_loss(nc):
    if iptables_unavailable():
        pytest.skip(iptables_unavailable())
    with nc.client(timeout=20.0) as c:
        lead = nc.wait_for_leader(20)
        others = [i for i in nc.nodes if i != lead]
        nc.net_partition([[lead], others])          # the leader in the minority
        new = nc.wait_for_leader(30, exclude=(lead,))
        assert new in others
        nc.net_heal()
        nc.net_loss(0.2)
        for k in range(20):
            c.execute("INSERT INTO mh(v) VALUES(?)", [f"lossy-{k}"])
        nc.net_delay(100)
        c.execute("INSERT INTO mh(v) VALUES('slow')")
        nc.net_heal()
        conv = check_convergence(nc, c, ["mh"])
        assert conv["valid"], conv["anomalies"]
        assert c.query("SELECT count(*) FROM mh WHERE v LIKE 'lossy-%'",
                       level="linearizable")[0].rows[0][0] == 20
