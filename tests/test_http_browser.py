"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright.

Loads /dashboard of a running 3-node cluster, sees three nodes and a leader, clicks
"isolate leader", sees a new leader; the screenshot goes to artifacts/."""
from __future__ import annotations

import json

from ddb_node.cluster import LocalCluster

from tests.browser_support import chromium, needs_chromium, screenshot
from tests.http_support import request, wait_until


@needs_chromium
def test_dashboard_isolate_leader():
    with LocalCluster(3, http=True, storage="memory") as c, chromium() as ctx:
        old = c.wait_for_leader()
        # serve the page from a node that is not the leader, so isolating the leader does
        # not isolate the page's own node (isolation cuts Raft traffic only, never HTTP)
        page_node = next(i for i in c.nodes if i != old)
        url = f"http://{c.nodes[page_node].http_addr}/dashboard"
        page = ctx.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        rows = page.locator("[data-testid=nodes] tbody tr")
        rows.first.wait_for()
        page.wait_for_function("document.querySelectorAll('#nodes tbody tr').length === 3")
        page.wait_for_function(f"document.getElementById('summary').dataset.leader === '{old}'")
        assert page.locator("#nodes tbody tr.leader").count() == 1
        term0 = int(page.locator("#summary").get_attribute("data-term"))
        page.click("[data-testid=isolate-leader]")
        page.wait_for_function(
            f"(() => {{ const s = document.getElementById('summary').dataset;"
            f" return s.leader && s.leader !== '{old}' && Number(s.term) > {term0}; }})()",
            timeout=20_000)
        new = int(page.locator("#summary").get_attribute("data-leader"))
        assert new != old
        assert c.wait_for_leader(exclude=(old,)) == new
        page.wait_for_selector("#timeline li.k-fault")
        screenshot(page, "dashboard-isolate-leader.png")
        assert not errors, errors
        page.click("[data-testid=heal]")
        wait_until(lambda: all(not v.get("faults", {}).get("isolated")
                               for v in request("GET", url.replace("/dashboard", "/ddb/cluster"))
                               .json()["nodes"]), 10, "heal")


def test_ws_stream_subset_and_cluster_relay():
    """The /ws stream without a browser: hello, then only the subscribed topics."""
    import asyncio

    from tornado.websocket import websocket_connect

    async def frames(url, n, pred=lambda f: True, timeout=10.0):
        conn = await websocket_connect(url)
        out = []
        try:
            async def read():
                while len(out) < n:
                    m = await conn.read_message()
                    if m is None:
                        break
                    f = json.loads(m)
                    if pred(f):
                        out.append(f)
            await asyncio.wait_for(read(), timeout)
        finally:
            conn.close()
        return out

    with LocalCluster(3, http=True, storage="memory") as c:
        lid = c.wait_for_leader()
        base = f"ws://{c.nodes[lid].http_addr}/ws"
        got = asyncio.run(frames(base + "?topics=messages", 2))
        assert got[0]["type"] == "hello" and got[0]["topics"] == ["messages"]
        m = got[1]
        assert m["type"] == "messages" and m["node"] == lid
        assert {l["type"] for l in m["links"]} >= {"HEARTBEAT"}
        s = m["samples"][0]
        assert set(s) >= {"type", "from", "to", "term", "index", "size"}
        # the cluster relay brings in the other members' frames through one socket
        other = asyncio.run(frames(base + "?topics=status&cluster=1", 1,
                                   pred=lambda f: f["type"] == "status" and f["node"] != lid))
        assert other[0]["role"] == "follower"
        # an event: a fault shows up as it happens
        ev = []

        async def fault_event():
            conn = await websocket_connect(base + "?topics=event")
            await conn.read_message()   # hello
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: request("POST", f"http://{c.nodes[lid].http_addr}/ddb/faults",
                                      {"cmd": {"action": "delay", "ms": 1}, "nodes": [lid]}))
            ev.append(json.loads(await asyncio.wait_for(conn.read_message(), 5)))
            conn.close()
        asyncio.run(fault_event())
        assert ev[0]["type"] == "event" and ev[0]["kind"] == "fault"
