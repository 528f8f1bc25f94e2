"""The dashboard as a console, in a real browser (Debian's chromium, headless, driven by
Playwright with the system binary).

Opened from its launcher's link (a LocalCluster's, and the one `ddb cluster up --http`
prints): pausing and restarting a node changes its state on the page, the SQL console answers with a typed table, the node, index and level,
errors in one line and a history on the arrow keys, and the charts move while a small load
runs and mark an election. Node labels fit their circles whatever the role; the page has no
horizontal overflow at 1280x800 or in a narrow window; opened without the link, the page says
which buttons need the launcher. Screenshots go to artifacts/."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest

from ddb_node.cli.cluster import _proc_stat
from ddb_node.cluster import free_ports

from tests.browser_support import (needs_chromium, no_horizontal_overflow, open_dashboard, row,
                                   screenshot, wait_row)
from tests.cluster_up import leave_nothing_behind

pytestmark = [pytest.mark.slow, needs_chromium]


def test_pause_and_restart_a_node_from_the_page(browser, cluster):
    leader = cluster.wait_for_leader()
    page_node, victim = [i for i in cluster.nodes if i != leader]
    page, errors = open_dashboard(browser, cluster.dashboard_url(page_node))
    try:
        assert "token=" not in page.url                   # the token leaves the address bar
        page.wait_for_selector("#control-note.ok")
        page.select_option("[data-testid=node-select]", str(victim))
        wait_row(page, victim, "r.dataset.state === 'running' && r.dataset.pid !== ''")
        pid = int(row(page, victim, "pid"))

        page.click("[data-testid=pause]")
        wait_row(page, victim, "r.dataset.state === 'paused'")
        assert cluster.nodes[victim].state == "paused"
        assert page.locator("[data-testid=pause]").is_disabled()
        page.click("[data-testid=resume]")
        wait_row(page, victim, "r.dataset.state === 'running'")

        page.click("[data-testid=restart]")    # a new process, and it answers the page itself
        wait_row(page, victim, f"r.dataset.pid !== '' && r.dataset.pid !== '{pid}'"
                                f" && r.dataset.state === 'running' && r.dataset.nodePid === r.dataset.pid",
                  timeout=30_000)
        assert int(row(page, victim, "pid")) == cluster.nodes[victim].pid != pid
        assert page.locator("#timeline li", has_text=f"restart node {victim}: running").count() == 1
        assert not errors, errors
    finally:
        page.close()


def test_the_console_runs_statements_at_a_level_and_keeps_a_history(browser, cluster):
    leader = cluster.wait_for_leader()
    page_node = next(i for i in cluster.nodes if i != leader)
    page, errors = open_dashboard(browser, cluster.dashboard_url(page_node))
    try:
        sql = page.locator("[data-testid=sql]")
        sql.fill("CREATE TABLE IF NOT EXISTS city(name TEXT, pop INTEGER, area REAL)")
        sql.press("Enter")
        page.wait_for_selector("#console-out .console-ok")
        # the leader ran the write (the one of then, or a newer one on a loaded host)
        assert page.locator("[data-testid=console-meta]").get_attribute("data-node") in (
            str(leader), str(cluster.wait_for_leader()))
        sql.fill("INSERT INTO city VALUES ('Lyon', 522250, 47.87), ('Nice', 342669, NULL)")
        page.click("[data-testid=run]")
        page.wait_for_selector("#console-out .console-ok:has-text('2 row(s) affected')")

        page.select_option("[data-testid=level]", "linearizable")
        sql.fill("SELECT name, pop, area FROM city ORDER BY pop DESC")
        sql.press("Enter")
        table = page.wait_for_selector("[data-testid=console-table]")
        heads = [h.inner_text().split("\n") for h in table.query_selector_all("th")]
        assert heads == [["name", "text"], ["pop", "integer"], ["area", "real"]]
        rows = [[td.inner_text() for td in tr.query_selector_all("td")]
                for tr in table.query_selector_all("tbody tr")]
        assert rows == [["Lyon", "522250", "47.87"], ["Nice", "342669", "NULL"]]
        meta = page.locator("[data-testid=console-meta]")
        assert "linearizable" in meta.inner_text() and meta.get_attribute("data-node")
        assert int(meta.get_attribute("data-index")) >= 3
        page.locator("[data-testid=console-out]").scroll_into_view_if_needed()
        screenshot(page, "dashboard-console.png")

        sql.fill("SELECT * FROM no_such_table")
        sql.press("Enter")
        err = page.wait_for_selector("[data-testid=console-error]")
        assert "no such table" in err.inner_text() and "\n" not in err.inner_text()
        assert err.bounding_box()["height"] < 30                 # one line

        sql.fill("")
        sql.press("ArrowUp")
        assert sql.input_value() == "SELECT * FROM no_such_table"
        sql.press("ArrowUp")
        assert sql.input_value() == "SELECT name, pop, area FROM city ORDER BY pop DESC"
        sql.press("ArrowDown")
        sql.press("ArrowDown")
        assert sql.input_value() == ""
        assert not errors, errors
    finally:
        page.close()


def test_the_charts_move_under_load_and_mark_an_election(browser, cluster):
    leader = cluster.wait_for_leader()
    page_node = next(i for i in cluster.nodes if i != leader)
    page, errors = open_dashboard(browser, cluster.dashboard_url(page_node))
    stop = threading.Event()

    def load():      # a small load: one client, writes and reads, at most 20,000 or 90 s
        deadline = time.monotonic() + 90
        with cluster.client() as c:
            c.execute("CREATE TABLE IF NOT EXISTS load(i INTEGER)")
            for i in range(20_000):
                if stop.is_set() or time.monotonic() > deadline:
                    break
                c.execute("INSERT INTO load VALUES (?)", [i])
                c.query("SELECT count(*) FROM load", level="none")

    t = threading.Thread(target=load, daemon=True)
    try:
        page.wait_for_function("Number(document.getElementById('chart-index').dataset.points) > 0")
        start = json.loads(page.locator("#chart-index").get_attribute("data-last"))
        start_commit = max(v["commit"] for v in start.values())
        t.start()
        page.wait_for_function(
            f"(() => {{ const d = JSON.parse(document.getElementById('chart-index').dataset.last || '{{}}');"
            f" return Object.values(d).some((v) => v.commit > {start_commit} + 20); }})()", timeout=30_000)
        page.wait_for_function("Number(document.getElementById('chart-rate').dataset.maxWrites) > 1",
                               timeout=30_000)
        page.wait_for_function(
            "(() => { const d = JSON.parse(document.getElementById('chart-rate').dataset.last || '{}');"
            " return d.reads > 0 && d.writes > 0; })()", timeout=30_000)
        page.wait_for_function(
            "(() => { const d = JSON.parse(document.getElementById('chart-latency').dataset.last || '{}');"
            " return d.p50 > 0 && d.p99 >= d.p50; })()", timeout=30_000)
        # an election shows on the time axis
        term0 = int(page.locator("#summary").get_attribute("data-term"))
        elections0 = int(page.locator("#charts").get_attribute("data-elections") or 0)
        page.click("#btn-transfer")
        page.wait_for_function(f"Number(document.getElementById('summary').dataset.term) > {term0}",
                               timeout=20_000)
        page.wait_for_function(
            f"Number(document.getElementById('charts').dataset.elections) > {elections0}", timeout=10_000)
        page.wait_for_function("Number(document.getElementById('chart-latency').dataset.points) >= 3",
                               timeout=20_000)
        assert no_horizontal_overflow(page)
        screenshot(page, "dashboard.png")
        page.set_viewport_size({"width": 420, "height": 800})
        page.wait_for_function("document.getElementById('chart-rate').clientWidth < 420")
        assert no_horizontal_overflow(page)
        screenshot(page, "dashboard-narrow.png")
        assert not errors, errors
    finally:
        stop.set()
        if t.is_alive():
            t.join(20)
        page.close()


def test_node_labels_fit_their_circles_whatever_the_role(browser, cluster):
    page, errors = open_dashboard(browser, f"http://{cluster.nodes[1].http_addr}/dashboard")
    try:
        roles = ["leader", "follower", "pre_candidate", "candidate", "learner",
                 "a-role-name-nobody-has-yet-thought-of"]
        misfits = page.evaluate("""(roles) => {
            const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
            svg.style.width = "600px";
            document.body.appendChild(svg);
            const nodes = roles.map((role, i) => ({id: i + 1, role: role, term: 123456, reachable: true}));
            window.ddbDashboard.drawGraph(svg, nodes, {});
            const out = [];
            for (const g of svg.querySelectorAll("g.node")) {
                const c = g.querySelector("circle");
                const cx = +c.getAttribute("cx"), cy = +c.getAttribute("cy"), r = +c.getAttribute("r");
                for (const t of g.querySelectorAll("text")) {
                    const b = t.getBBox();
                    for (const [x, y] of [[b.x, b.y], [b.x + b.width, b.y], [b.x, b.y + b.height],
                                          [b.x + b.width, b.y + b.height]])
                        if (Math.hypot(x - cx, y - cy) > r + 0.5) out.push(t.textContent);
                }
            }
            const circles = [...svg.querySelectorAll("circle")].map((c) => [+c.getAttribute("cx"), +c.getAttribute("cy"), +c.getAttribute("r")]);
            for (let i = 0; i < circles.length; i++) for (let j = i + 1; j < circles.length; j++) {
                const [a, b] = [circles[i], circles[j]];
                if (Math.hypot(a[0] - b[0], a[1] - b[1]) < a[2] + b[2]) out.push(`overlap ${i + 1}/${j + 1}`);
            }
            svg.remove();
            return out;
        }""", roles)
        assert misfits == []
        assert not errors, errors
    finally:
        page.close()


def test_without_the_launcher_the_page_says_which_buttons_need_it(browser, cluster):
    page, errors = open_dashboard(browser, f"http://{cluster.nodes[1].http_addr}/dashboard")
    try:
        note = page.locator("[data-testid=control-note]")
        page.wait_for_function("document.getElementById('control-note').textContent.includes('launcher')")
        text = note.inner_text()
        assert "pause, resume, restart and stop need the launcher" in text
        assert "ddb cluster up --http" in text and "dashboard_url()" in text
        for b in ("pause", "resume", "restart"):
            assert page.locator(f"[data-testid={b}]").is_disabled()
        assert page.locator("#btn-crash").is_enabled() and page.locator("[data-testid=heal]").is_enabled()
        assert not errors, errors
    finally:
        page.close()


def test_every_control_is_reachable_from_the_keyboard(browser, cluster):
    page, errors = open_dashboard(browser, cluster.dashboard_url(1))
    try:
        page.wait_for_selector("#control-note.ok")
        # Tab walks through the controls in order; every button, field and node is on the way
        wanted = set(page.evaluate("""[...document.querySelectorAll(
            'button:not([disabled]), select, textarea, input, svg g.node')].map((e) => e.id || e.dataset.node)"""))
        seen = set()
        for _ in range(80):
            page.keyboard.press("Tab")
            seen.add(page.evaluate("document.activeElement.id || (document.activeElement.dataset || {}).node || ''"))
        assert wanted <= seen, sorted(wanted - seen)
        # a node chosen with Enter on its circle is the one the buttons act on
        page.focus("svg g.node[data-node='3']")
        page.keyboard.press("Enter")
        assert page.locator("[data-testid=node-select]").input_value() == "3"
        page.focus("[data-testid=sql]")
        page.keyboard.type("SELECT 7 AS seven")
        page.keyboard.press("Enter")
        page.wait_for_selector("[data-testid=console-table] td:has-text('7')")
        assert not errors, errors
    finally:
        page.close()


def test_the_link_of_ddb_cluster_up_makes_pause_and_restart_work(browser, tmp_path):
    d = tmp_path / "c"
    http = ",".join(f"127.0.0.1:{p}" for p in free_ports(3))

    def ddb(*args):
        p = subprocess.run([sys.executable, "-m", "ddb_node.cli", *map(str, args)],
                           capture_output=True, text=True, timeout=90)
        assert p.returncode == 0, p.stderr
        return p.stdout

    try:
        out = ddb("cluster", "up", "-n", "3", "--http", http, "--dir", d)
        link = re.search(r"^dashboard: (\S+)$", out, re.M).group(1)
        page, errors = open_dashboard(browser, link)
        try:
            page.wait_for_selector("#control-note.ok")
            page.wait_for_function("document.getElementById('summary').dataset.leader")
            leader = int(page.locator("#summary").get_attribute("data-leader"))
            victim = next(i for i in (3, 2) if i != leader)      # node 1 serves the page
            page.select_option("[data-testid=node-select]", str(victim))
            wait_row(page, victim, "r.dataset.state === 'running' && r.dataset.pid !== ''")
            pid = row(page, victim, "pid")
            page.click("[data-testid=pause]")
            wait_row(page, victim, "r.dataset.state === 'paused'")
            page.click("[data-testid=resume]")
            wait_row(page, victim, "r.dataset.state === 'running'")
            page.click("[data-testid=restart]")
            wait_row(page, victim, f"r.dataset.pid !== '' && r.dataset.pid !== '{pid}'"
                                    f" && r.dataset.state === 'running' && r.dataset.nodePid === r.dataset.pid",
                      timeout=30_000)
            state = json.loads((d / "cluster.json").read_text())
            assert str(state["nodes"][victim - 1]["pid"]) == row(page, victim, "pid")
            # crash is the launcher's SIGKILL; stop a clean shutdown; restart after either
            for button, down in (("#btn-crash", "killed"), ("#btn-stop", "stopped")):
                pid = row(page, victim, "pid")
                page.click(button)
                wait_row(page, victim, f"r.dataset.state === '{down}' && r.dataset.role === 'down'")
                assert _proc_stat(int(pid)) in (None, "Z", "X")         # that process is gone
                page.click("[data-testid=restart]")
                wait_row(page, victim, f"r.dataset.pid !== '' && r.dataset.pid !== '{pid}'"
                                       f" && r.dataset.state === 'running' && r.dataset.nodePid === r.dataset.pid",
                         timeout=30_000)
            assert not errors, errors
        finally:
            page.close()
        ddb("cluster", "down", "--dir", d)
    finally:
        leave_nothing_behind(d)            # never leave processes behind, even on failure
