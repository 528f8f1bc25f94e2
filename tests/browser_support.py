"""What the dashboard's browser tests share: Debian's chromium (headless, driven by Playwright
with the system binary), opening the page, waiting on a node's row, screenshots in artifacts/.

The `browser` fixture (tests/conftest.py) is one persistent chromium context per module at
1280x800; a module that uses it marks itself with `needs_chromium`."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "artifacts")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium not installed")


@contextmanager
def chromium(viewport=(1280, 800)):
    """A headless chromium context on a throwaway profile."""
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="ddb-chromium-")
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": viewport[0], "height": viewport[1]})
        try:
            yield ctx
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


def open_dashboard(browser, url, nodes: int = 3):
    """-> (page, the page's uncaught errors), once the node table shows `nodes` rows."""
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function(f"document.querySelectorAll('#nodes tbody tr').length === {nodes}")
    return page, errors


def row(page, nid: int, attr: str) -> str:
    """A data-* attribute of node `nid`'s row in the node table."""
    return page.locator(f"#nodes tbody tr[data-node='{nid}']").get_attribute(f"data-{attr}")


def wait_row(page, nid: int, cond: str, timeout=20_000) -> None:
    """Wait until node `nid`'s row `r` satisfies the JavaScript condition `cond`; on a timeout,
    fail with what the page showed instead (rows, summary, timeline, a screenshot)."""
    wait_page(page, f"(() => {{ const r = document.querySelector(\"#nodes tbody tr[data-node='{nid}']\");"
                    f" return r && ({cond}); }})()", f"node {nid}: {cond}", timeout)


def wait_page(page, expr: str, what: str, timeout=20_000) -> None:
    """Wait until the JavaScript expression `expr` holds; on a timeout, say what the page showed."""
    try:
        page.wait_for_function(expr, timeout=timeout)
    except Exception as e:
        rows = page.evaluate("[...document.querySelectorAll('#nodes tbody tr')].map((r) => "
                             "JSON.stringify(Object.assign({}, r.dataset)))")
        timeline = page.locator("#timeline").inner_text()[:1500]
        screenshot(page, "dashboard-failure.png")
        raise AssertionError(f"{what} not reached ({e}); rows {rows}; "
                             f"summary {page.locator('#summary').inner_text()!r}; "
                             f"timeline:\n{timeline}") from None


def screenshot(page, name: str) -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    page.screenshot(path=path, full_page=True)
    assert os.path.getsize(path) > 10_000
    return path


def no_horizontal_overflow(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
