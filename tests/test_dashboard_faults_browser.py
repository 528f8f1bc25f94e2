"""Every fault button of the dashboard, clicked in a real browser (headless Debian chromium),
changes what it names, as the nodes themselves report it; and heal undoes it.

Network faults (drop, delay, isolate, partition, heal) work on any cluster: the node serving
the page sends them to every member. Process buttons (stop, restart, crash) go to the
launcher when the page was opened from its link; crash then is the launcher's SIGKILL and
works on a paused node too. Without the link, crash still works: the node exits itself."""
from __future__ import annotations

import pytest

from tests.browser_support import needs_chromium, open_dashboard, row, screenshot, wait_page, wait_row
from tests.http_support import request, wait_until

pytestmark = [pytest.mark.slow, needs_chromium]


def _faults(cluster, nid: int) -> dict:
    """The fault filters node `nid` itself reports."""
    return request("GET", f"http://{cluster.nodes[nid].http_addr}/ddb/faults").json()["faults"]


def _blocked(cluster, nid: int) -> set:
    return {tuple(p) for p in _faults(cluster, nid)["blocked"]}


def _healed(cluster) -> bool:
    return all(not f["blocked"] and not f["drop_rate"] and not f["delay_ms"] and not f["isolated"]
               for f in (_faults(cluster, n) for n in cluster.nodes))


def _every_row(page, cluster, cond: str) -> None:
    for nid in cluster.nodes:
        wait_row(page, nid, cond)


def _heal(page, cluster) -> None:
    page.click("[data-testid=heal]")
    _every_row(page, cluster, "r.dataset.faults === ''")
    assert _healed(cluster)


def _links_of(page, nid: int) -> list[str]:
    """The classes of the graph's lines that touch node `nid`."""
    return page.evaluate(f"""[...document.querySelectorAll('#graph line')]
        .filter((l) => l.dataset.link.split('-').includes('{nid}')).map((l) => l.getAttribute('class'))""")


def test_every_network_fault_button_takes_effect_on_every_node_and_heal_undoes_it(browser, cluster):
    leader = cluster.wait_for_leader()
    page_node, other = [i for i in cluster.nodes if i != leader]
    page, errors = open_dashboard(browser, cluster.dashboard_url(page_node))
    try:
        page.click("#btn-drop")
        _every_row(page, cluster, "r.dataset.faults === 'drop 0.2'")
        assert all(_faults(cluster, n)["drop_rate"] == 0.2 for n in cluster.nodes)
        assert set(_links_of(page, other)) == {"link lossy"}
        _heal(page, cluster)

        page.click("#btn-delay")
        _every_row(page, cluster, "r.dataset.faults === 'delay 100ms'")
        assert all(_faults(cluster, n)["delay_ms"] == 100 for n in cluster.nodes)
        _heal(page, cluster)

        page.select_option("[data-testid=node-select]", str(other))
        page.click("#btn-isolate-node")
        _every_row(page, cluster, f"r.dataset.faults === 'isolated {other}'")
        assert all(_faults(cluster, n)["isolated"] == other for n in cluster.nodes)
        assert set(_links_of(page, other)) == {"link cut"}
        screenshot(page, "dashboard-isolated.png")
        _heal(page, cluster)

        # partition without groups: the leader alone against the rest
        wait_page(page, "document.getElementById('summary').dataset.leader", "a leader on the page")
        alone = int(page.locator("#summary").get_attribute("data-leader"))
        page.click("#btn-partition")
        _every_row(page, cluster, "r.dataset.faults === '4 cut'")       # both ways, on every node
        rest = [n for n in cluster.nodes if n != alone]
        for n in cluster.nodes:
            assert _blocked(cluster, n) == {(alone, o) for o in rest} | {(o, alone) for o in rest}
        _heal(page, cluster)
        cluster.wait_for_leader()

        # partition with groups typed in
        page.fill("#groups", "1,2|3")
        page.click("#btn-partition")
        _every_row(page, cluster, "r.dataset.faults === '4 cut'")
        for n in cluster.nodes:
            assert _blocked(cluster, n) == {(1, 3), (3, 1), (2, 3), (3, 2)}
        page.fill("#groups", "")
        _heal(page, cluster)

        timeline = page.locator("#timeline").inner_text()
        for said in ("fault: drop 20%", "fault: delay 100 ms", f"fault: isolate {other}",
                     "fault: partition [[1,2],[3]]", "fault: heal"):
            assert said in timeline, said
        assert not errors, errors
    finally:
        page.close()
        request("POST", f"http://{cluster.nodes[page_node].http_addr}/ddb/faults",
                {"cmd": {"action": "heal"}, "nodes": "all"})
    cluster.wait_for_leader()


def test_stop_and_crash_take_the_node_down_and_restart_brings_it_back(browser, cluster):
    leader = cluster.wait_for_leader()
    page_node, victim = [i for i in cluster.nodes if i != leader]
    page, errors = open_dashboard(browser, cluster.dashboard_url(page_node))
    try:
        page.wait_for_selector("#control-note.ok")
        page.select_option("[data-testid=node-select]", str(victim))
        wait_row(page, victim, "r.dataset.state === 'running' && r.dataset.nodePid !== ''")

        page.click("#btn-stop")
        wait_row(page, victim, "r.dataset.state === 'stopped' && r.dataset.role === 'down'")
        assert cluster.nodes[victim].state == "stopped"
        assert page.locator("#btn-crash").is_disabled() and page.locator("#btn-pause").is_disabled()
        page.click("#btn-restart")
        wait_row(page, victim, "r.dataset.state === 'running' && r.dataset.nodePid === r.dataset.pid",
                 timeout=30_000)

        # crash a paused node: the launcher's SIGKILL (the node itself could not answer)
        page.click("#btn-pause")
        wait_row(page, victim, "r.dataset.state === 'paused'")
        pid = int(row(page, victim, "pid"))
        # a fault the paused node cannot take is named, not claimed done
        page.click("[data-testid=heal]")
        wait_page(page, f"document.getElementById('timeline').textContent.includes('not taken by node {victim}')",
                  "the timeline names the node that did not take heal", timeout=15_000)
        page.click("#btn-crash")
        wait_row(page, victim, "r.dataset.state === 'killed'")
        assert cluster.nodes[victim].state == "killed" and cluster.nodes[victim].proc.poll() is not None
        assert page.locator("#timeline li", has_text=f"kill node {victim}: killed").count() == 1
        page.click("#btn-restart")
        wait_row(page, victim, f"r.dataset.state === 'running' && r.dataset.nodePid === r.dataset.pid"
                               f" && r.dataset.pid !== '{pid}'", timeout=30_000)
        assert not errors, errors
    finally:
        page.close()
    _restore(cluster)


def test_the_launcher_resumes_the_node_that_serves_the_page(browser, cluster):
    leader = cluster.wait_for_leader()
    page_node = next(i for i in cluster.nodes if i != leader)
    page, errors = open_dashboard(browser, cluster.dashboard_url(page_node))
    try:
        page.wait_for_selector("#control-note.ok")
        page.select_option("[data-testid=node-select]", str(page_node))
        wait_row(page, page_node, "r.dataset.state === 'running' && r.dataset.nodePid !== ''")
        page.click("[data-testid=pause]")
        # the page's own node no longer answers; the launcher does, and the page says both
        wait_row(page, page_node, "r.dataset.state === 'paused'")
        wait_page(page, "document.getElementById('summary').textContent.includes('does not answer')",
                  "the summary says the page's node does not answer", timeout=15_000)
        page.click("[data-testid=resume]")
        wait_row(page, page_node, "r.dataset.state === 'running'")
        wait_page(page, "document.getElementById('summary').textContent.includes('3 reachable')",
                  "the page's node answers again", timeout=15_000)
        assert not errors, errors
    finally:
        page.close()
    _restore(cluster)


def test_without_the_launcher_crash_still_takes_a_node_down(browser, cluster):
    leader = cluster.wait_for_leader()
    page_node, victim = [i for i in cluster.nodes if i != leader]
    # no control link: a node of a cluster started elsewhere
    page, errors = open_dashboard(browser, f"http://{cluster.nodes[page_node].http_addr}/dashboard")
    try:
        page.wait_for_function("document.getElementById('control-note').textContent.includes('launcher')")
        page.select_option("[data-testid=node-select]", str(victim))
        pid = cluster.nodes[victim].pid
        page.click("#btn-crash")
        wait_row(page, victim, "r.dataset.state === 'unreachable' && r.dataset.role === 'down'")
        wait_until(lambda: cluster.nodes[victim].proc.poll() is not None, 10, "the node's process exits")
        assert cluster.nodes[victim].proc.returncode == 137 and cluster.crashed() == [victim]
        assert page.locator("#timeline li", has_text=f"crash node {victim}").count() == 1
        assert not errors, errors
    finally:
        page.close()
    _restore(cluster)
    assert cluster.nodes[victim].pid != pid


def _restore(cluster) -> None:
    """Every node running and following one leader again, whatever a failed test left."""
    for nid, node in cluster.nodes.items():
        if node.state == "paused":
            cluster.resume(nid)
        if node.state != "running" or node.proc.poll() is not None:
            cluster.restart(nid)
    wait_until(lambda: all(s.get("role") in ("leader", "follower") for s in cluster.status().values()),
               30, "every node back in the cluster")
