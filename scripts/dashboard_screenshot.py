"""Make docs/dashboard.png, the README's picture of the dashboard.

A 3-node LocalCluster, the dashboard opened from its launcher's link in headless chromium
(Debian's binary, driven by Playwright), a small load of writes and reads for --seconds, one
leadership transfer halfway (an election on the charts' time axis), a query in the SQL
console, then a 1280x800 screenshot.

    .venv/bin/python scripts/dashboard_screenshot.py [--seconds 60] [--out docs/dashboard.png]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time

from playwright.sync_api import sync_playwright

from ddb_node.cluster import LocalCluster

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def load(cluster, stop: threading.Event) -> None:
    with cluster.client() as c:
        c.execute("CREATE TABLE IF NOT EXISTS city(name TEXT, population INTEGER, area_km2 REAL)")
        c.execute("INSERT INTO city VALUES ('Lyon', 522250, 47.87), ('Nice', 342669, 71.92), "
                  "('Nantes', 320732, 65.19)")
        c.execute("CREATE TABLE IF NOT EXISTS visit(city TEXT, at INTEGER)")
        for i in range(100_000):     # bounded: the run stops it long before
            if stop.is_set():
                break
            c.execute("INSERT INTO visit VALUES (?, ?)", ["Lyon", i])
            c.query("SELECT count(*) FROM visit", level="none")
            stop.wait(0.02)          # a small, steady load (the pace of the picture)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "docs", "dashboard.png"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    profile = tempfile.mkdtemp(prefix="ddb-chromium-")
    stop = threading.Event()
    with LocalCluster(3, http=True) as c, sync_playwright() as pw:
        leader = c.wait_for_leader()
        page_node = next(i for i in c.nodes if i != leader)
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=args.chromium,
                                                    headless=True, args=FLAGS,
                                                    viewport={"width": 1280, "height": 800})
        t = threading.Thread(target=load, args=(c, stop), daemon=True)
        try:
            page = ctx.new_page()
            page.goto(c.dashboard_url(page_node))
            page.wait_for_selector("#control-note.ok")
            t.start()
            deadline = time.monotonic() + args.seconds
            page.wait_for_timeout(args.seconds * 500)     # the picture's first half
            page.click("#btn-transfer")
            page.wait_for_timeout(max(0.0, deadline - time.monotonic()) * 1000)
            page.fill("[data-testid=sql]", "SELECT name, population, area_km2 FROM city ORDER BY population DESC")
            page.select_option("[data-testid=level]", "linearizable")
            page.press("[data-testid=sql]", "Enter")
            page.wait_for_selector("[data-testid=console-table]")
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            print(f"wrote {os.path.abspath(args.out)}")
        finally:
            stop.set()
            if t.is_alive():
                t.join(10)
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
