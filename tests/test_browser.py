"""In a real browser: JupyterLab on loopback, Debian's chromium (headless, driven by
Playwright with the system binary; never `playwright install`), open a tutorial with its
outputs cleared, run all cells, and check what appears: in 01-quickstart a DataFrame table
and the cluster picture (artifacts/browser-01-quickstart*.png), in 00-raft-step-by-step the
sequence diagram and the log grid (artifacts/browser-00-sequence.png, -log-grid.png)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACT = ROOT / "artifacts" / "browser-01-quickstart.png"
ARTIFACT_PICTURE = ROOT / "artifacts" / "browser-01-quickstart-picture.png"

pytestmark = pytest.mark.slow

if not os.path.exists(CHROMIUM):
    pytest.skip("chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="the playwright Python package is not installed")
pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
import nbformat  # noqa: E402

from ddb_node.cluster import free_ports  # noqa: E402
from ddb_node.procs import stop_process  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-dev-shm-usage"]


def _api(base, token, path, method="GET"):
    req = urllib.request.Request(f"{base}{path}", method=method,
                                 headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
        return json.loads(body) if body else None


@pytest.fixture
def lab(tmp_path, request):
    """JupyterLab serving one tutorial (01-quickstart unless parametrized), outputs cleared."""
    name = getattr(request, "param", "01-quickstart")
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", 4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    nbformat.write(nb, work / f"{name}.ipynb")
    port, token = free_ports(1)[0], "ddb-browser-test"
    settings = tmp_path / "settings"
    for rel, value in {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
                           "windowingMode": "none", "autoStartDefaultKernel": True},
                       "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
                           "fetchNews": "false", "checkForUpdates": False}}.items():
        f = settings / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"),
               JUPYTERLAB_SETTINGS_DIR=str(settings))
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser",
                             "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
                             "--ServerApp.disable_check_xsrf=True", "--allow-root", "--LabApp.news_url=",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            _api(base, token, "/api/status")
            break
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
            time.sleep(0.2)
    try:
        for s in _api(base, token, "/api/sessions") or []:
            _api(base, token, f"/api/sessions/{s['id']}", "DELETE")
        yield base, token
    finally:
        try:
            for s in _api(base, token, "/api/sessions") or []:
                _api(base, token, f"/api/sessions/{s['id']}", "DELETE")   # stops the kernel (and its cluster)
        except Exception:  # noqa: BLE001
            pass
        stop_process(proc, 20)
        log.close()


def _run_all(page, base, token, name):
    """Open the notebook, wait for its kernel, Run All, wait for the last cell's output."""
    page.goto(f"{base}/lab/tree/{name}.ipynb?reset&token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    deadline = time.monotonic() + 120
    while not any((s.get("kernel") or {}).get("execution_state") == "idle"
                  for s in _api(base, token, "/api/sessions") or []):
        if time.monotonic() > deadline:
            page.screenshot(path=str(ARTIFACT.parent / "browser-failure.png"))
            pytest.fail("the notebook's kernel did not start within 120 s")
        page.wait_for_timeout(200)      # poll interval
    page.click(".lm-MenuBar-item:has-text('Run')")
    page.click(".lm-Menu-item:has-text('Run All Cells')")
    try:
        page.wait_for_selector(".jp-OutputArea-output:has-text(\"stopped 'default'\")",
                               state="attached", timeout=240_000)   # the last cell ran
    except Exception:
        ARTIFACT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACT.parent / "browser-failure.png"), full_page=True)
        (ARTIFACT.parent / "browser-failure.html").write_text(page.content())
        raise


@pytest.mark.parametrize("lab", ["00-raft-step-by-step"], indirect=True)
def test_sequence_diagram_and_log_grid_in_jupyterlab(lab):
    base, token = lab
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _run_all(page, base, token, "00-raft-step-by-step")
            ARTIFACT.parent.mkdir(exist_ok=True)
            diagrams = page.locator(".jp-OutputArea-output .ddb-sequence-view svg")
            assert diagrams.count() == 2
            first = diagrams.nth(0)
            first.scroll_into_view_if_needed()
            assert first.is_visible()
            assert first.locator("line.lifeline").count() == 3
            assert first.locator("g.msg.delivered").count() >= 10
            second = diagrams.nth(1)
            assert second.locator("g.msg.dropped path.cross").count() >= 1    # the partition
            second.scroll_into_view_if_needed()
            second.screenshot(path=str(ROOT / "artifacts" / "browser-00-sequence.png"))
            grids = page.locator(".jp-OutputArea-output .ddb-log-grid table")
            assert grids.count() == 3
            conflict = grids.nth(1)
            assert conflict.locator("th.node").count() == 3
            assert conflict.locator("td.conflict").count() == 1       # the cut-off leader's entry
            assert grids.nth(2).locator("td.conflict").count() == 0   # healed: one log again
            conflict.scroll_into_view_if_needed()
            assert conflict.is_visible()
            page.locator(".jp-OutputArea-output .ddb-log-grid").nth(1).screenshot(
                path=str(ROOT / "artifacts" / "browser-00-log-grid.png"))
            for f in ("browser-00-sequence.png", "browser-00-log-grid.png"):
                assert (ROOT / "artifacts" / f).stat().st_size > 5_000
        finally:
            browser.close()


def test_quickstart_in_jupyterlab(lab):
    base, token = lab
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            _run_all(page, base, token, "01-quickstart")
            table = page.wait_for_selector(".jp-OutputArea-output table.ddb-table", state="attached",
                                           timeout=90_000)
            assert "Lyon" in table.text_content()
            table.scroll_into_view_if_needed()
            assert table.is_visible()
            ARTIFACT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACT))
            assert ARTIFACT.stat().st_size > 10_000
            picture = page.wait_for_selector(".jp-OutputArea-output .ddb-picture svg", state="attached",
                                             timeout=90_000)
            picture.scroll_into_view_if_needed()
            assert picture.is_visible()
            assert page.locator(".ddb-picture .ddb-node").count() == 3
            page.screenshot(path=str(ARTIFACT_PICTURE))
        finally:
            browser.close()
