"""The dashboard's control path: the launcher (a LocalCluster, or `ddb cluster up`'s control
process) pauses, resumes, restarts, stops and kills its node processes for the page, only for
a caller holding its token, and answers bad input with a clear error while it keeps serving."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from ddb_node.cli.cluster import _proc_stat

from tests.cluster_up import leave_nothing_behind
from tests.http_support import request, wait_until




@pytest.fixture(scope="module")
def control(cluster):
    cs = cluster.serve_control()
    return cs.url, {"Authorization": f"Bearer {cs.token}"}


def _act(control, action, node):
    url, auth = control
    return request("POST", url + "/control", {"action": action, "node": node}, headers=auth)


def test_the_control_path_refuses_a_caller_without_the_token(control):
    url, auth = control
    r = request("GET", url + "/control/state")
    assert r.status == 401 and "bearer token is required" in r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert request("GET", url + "/control/state", headers={"Authorization": "Basic YTpi"}).status == 401
    r = request("GET", url + "/control/state", headers={"Authorization": "Bearer not-the-token"})
    assert r.status == 403 and r.json() == {"error": "wrong control token"}
    r = request("POST", url + "/control", {"action": "pause", "node": 2},
                headers={"Authorization": "Bearer not-the-token"})
    assert r.status == 403
    assert request("GET", url + "/control/state", headers=auth).status == 200


def test_a_preflight_needs_no_token_and_allows_the_bearer_header(control):
    url, _ = control
    r = request("OPTIONS", url + "/control", headers={"Origin": "http://127.0.0.1:4001",
                                                      "Access-Control-Request-Method": "POST"})
    assert r.status == 204
    assert "Authorization" in r.headers["access-control-allow-headers"]
    assert r.headers["access-control-allow-origin"] == "http://127.0.0.1:4001"


@pytest.mark.parametrize("body, status, says", [
    (b"not json", 400, "not JSON"),
    (b"[1, 2]", 400, "body must be JSON"),
    (json.dumps({"action": "explode", "node": 1}).encode(), 400, "unknown action 'explode'"),
    (json.dumps({"action": "pause", "node": "two"}).encode(), 400, "node must be a node id"),
    (json.dumps({"action": "pause", "node": None}).encode(), 400, "node must be a node id"),
    (json.dumps({"action": "pause", "node": 9}).encode(), 404, "no node 9"),
    (b"x" * 5000, 413, "at most 4096 bytes"),
])
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(control, body, status, says):
    url, auth = control
    r = request("POST", url + "/control", body, headers=auth)
    assert r.status == status and says in r.json()["error"], r
    assert request("GET", url + "/control/state", headers=auth).status == 200


def test_unknown_paths_and_methods_are_refused(control):
    url, auth = control
    assert request("GET", url + "/control/nothing", headers=auth).status == 404
    assert request("PUT", url + "/control", b"{}", headers=auth).status == 405


def test_pause_resume_and_restart_change_the_process_state(cluster, control):
    url, auth = control
    leader = cluster.wait_for_leader()
    nid = next(i for i in cluster.nodes if i != leader)
    before = request("GET", url + "/control/state", headers=auth).json()["nodes"][str(nid)]
    assert before["state"] == "running"

    r = _act(control, "pause", nid)
    assert r.status == 200 and r.json()["state"] == "paused" and r.json()["pid"] == before["pid"]
    assert _proc_stat(before["pid"]) in ("T", "t")
    r = _act(control, "pause", nid)
    assert r.status == 409 and "not running" in r.json()["error"]
    r = _act(control, "resume", nid)
    assert r.status == 200 and r.json()["state"] == "running"

    r = _act(control, "restart", nid)
    assert r.status == 200 and r.json()["state"] == "running"
    assert r.json()["pid"] != before["pid"]
    # the restarted process serves again and follows the leader
    wait_until(lambda: cluster.status()[nid].get("role") == "follower", 20, "restarted node follows")
    after = request("GET", url + "/control/state", headers=auth).json()["nodes"][str(nid)]
    assert after == {"state": "running", "pid": r.json()["pid"]}


def _state(control, nid) -> dict:
    url, auth = control
    return request("GET", url + "/control/state", headers=auth).json()["nodes"][str(nid)]


def _follows_again(cluster, nid) -> None:
    wait_until(lambda: cluster.status()[nid].get("role") == "follower", 20, f"node {nid} follows again")


def test_kill_works_on_a_paused_node_and_restart_brings_it_back(cluster, control):
    leader = cluster.wait_for_leader()
    nid = next(i for i in cluster.nodes if i != leader)
    assert _act(control, "pause", nid).status == 200
    pid = _state(control, nid)["pid"]

    r = _act(control, "kill", nid)
    assert r.status == 200 and r.json() == {"node": nid, "action": "kill", "state": "killed", "pid": None}
    assert _proc_stat(pid) in (None, "Z")
    r = _act(control, "pause", nid)
    assert r.status == 409 and "killed" in r.json()["error"]

    r = _act(control, "restart", nid)
    assert r.status == 200 and r.json()["state"] == "running" and r.json()["pid"] != pid
    _follows_again(cluster, nid)


def test_stop_is_a_clean_shutdown_and_restart_starts_the_node_again(cluster, control):
    leader = cluster.wait_for_leader()
    nid = next(i for i in cluster.nodes if i != leader)
    pid = _state(control, nid)["pid"]
    r = _act(control, "stop", nid)
    assert r.status == 200 and r.json()["state"] == "stopped" and r.json()["pid"] is None
    assert cluster.nodes[nid].proc.returncode == 0          # SIGTERM: it shut down cleanly
    r = _act(control, "restart", nid)
    assert r.status == 200 and r.json()["state"] == "running" and r.json()["pid"] != pid
    _follows_again(cluster, nid)


def test_a_node_that_crashes_itself_shows_as_exited_and_is_still_counted_as_crashed(cluster, control):
    leader = cluster.wait_for_leader()
    nid = next(i for i in cluster.nodes if i != leader)
    served_by = "http://" + cluster.nodes[leader].http_addr
    # the page's crash without a launcher: the node exits at once (asked through another node)
    r = request("POST", served_by + "/ddb/control", {"action": "crash", "node": nid})
    assert r.status == 200 and r.json() == {"node": nid, "action": "crash"}
    wait_until(lambda: _state(control, nid)["state"] == "exited", 10, f"node {nid} shows as exited")
    assert _state(control, nid) == {"state": "exited", "pid": None}
    cluster.status()                                 # looking at the cluster hides nothing
    assert cluster.crashed() == [nid]
    r = _act(control, "pause", nid)
    assert r.status == 409 and "exited" in r.json()["error"]

    r = _act(control, "restart", nid)
    assert r.status == 200 and r.json()["state"] == "running"
    _follows_again(cluster, nid)
    assert cluster.crashed() == []


def test_the_dashboard_link_carries_the_control_url_and_token(cluster):
    link = cluster.dashboard_url()
    u = urlsplit(link)
    assert u.path == "/dashboard"
    frag = parse_qs(u.fragment)
    cs = cluster.serve_control()
    assert frag == {"control": [cs.url], "token": [cs.token]}
    assert request("GET", link.split("#")[0]).status == 200


def _ddb(*args, timeout=90):
    p = subprocess.run([sys.executable, "-m", "ddb_node.cli", *map(str, args)],
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p


def test_cluster_up_serves_the_control_path_until_down(tmp_path):
    from ddb_node.cluster import free_ports
    d = tmp_path / "c"
    http = ",".join(f"127.0.0.1:{p}" for p in free_ports(3))
    try:
        out = _ddb("cluster", "up", "-n", "3", "--http", http, "--dir", d).stdout
        link = re.search(r"^dashboard: (\S+)$", out, re.M).group(1)
        frag = parse_qs(urlsplit(link).fragment)
        url, token = frag["control"][0], frag["token"][0]
        ctl = json.loads((d / "control.json").read_text())
        assert ctl["url"] == url and ctl["token"] == token
        assert (d / "control.json").stat().st_mode & 0o077 == 0      # only the owner reads it
        assert token not in open(f"/proc/{ctl['pid']}/cmdline").read()
        auth = {"Authorization": f"Bearer {token}"}
        assert request("GET", url + "/control/state").status == 401

        nodes = request("GET", url + "/control/state", headers=auth).json()["nodes"]
        assert {k: v["state"] for k, v in nodes.items()} == {"1": "running", "2": "running", "3": "running"}
        pid = nodes["2"]["pid"]
        r = request("POST", url + "/control", {"action": "pause", "node": 2}, headers=auth)
        assert r.status == 200 and r.json()["state"] == "paused" and _proc_stat(pid) in ("T", "t")
        r = request("POST", url + "/control", {"action": "resume", "node": 2}, headers=auth)
        assert r.status == 200 and r.json()["state"] == "running"
        # a restart while the page keeps looking (as the dashboard does): the new pid sticks
        looking = threading.Event()

        def look():
            while not looking.is_set():
                request("GET", url + "/control/state", headers=auth)
        t = threading.Thread(target=look, daemon=True)
        t.start()
        try:
            r = request("POST", url + "/control", {"action": "restart", "node": 2}, headers=auth)
        finally:
            looking.set()
            t.join(10)
        assert r.status == 200 and r.json()["state"] == "running" and r.json()["pid"] != pid
        state = json.loads((d / "cluster.json").read_text())
        assert state["nodes"][1]["pid"] == r.json()["pid"]         # the CLI sees it too
        nodes = request("GET", url + "/control/state", headers=auth).json()["nodes"]
        assert nodes["2"] == {"state": "running", "pid": r.json()["pid"]}
        assert "dashboard: http://" in _ddb("cluster", "status", "--dir", d).stdout

        _ddb("cluster", "down", "--dir", d)
        assert not (d / "control.json").exists()
        assert _proc_stat(ctl["pid"]) in (None, "Z")
    finally:
        leave_nothing_behind(d)            # never leave processes behind, even on failure
