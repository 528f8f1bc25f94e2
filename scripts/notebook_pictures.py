"""Draw the README's notebook pictures from a simulated session (same seed, same pictures):
docs/notebook-sequence.png, docs/notebook-log-grid.png, docs/notebook-check.png,
docs/notebook-plot.png. Uses Debian's chromium (headless) to render the HTML views.

    .venv/bin/python scripts/notebook_pictures.py
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
DOCS = os.path.join(ROOT, "docs")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def shot(html: str, out: str, size: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        page = os.path.join(d, "page.html")
        with open(page, "w") as f:
            f.write(f"<html><body style='margin:8px;background:#fff'>{html}</body></html>")
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--hide-scrollbars",
                        f"--screenshot={out}", f"--window-size={size}", f"file://{page}"],
                       check=True, capture_output=True, timeout=120)
    print("wrote", out)


def main() -> None:
    import matplotlib
    matplotlib.use("Agg")
    from tests.magic_helpers import run, shell

    from ddb_magic import magics_of
    sh = shell()
    for cell in ["%ddb launch --sim -n 3 --seed 7 --name pics",
                 "%%ddb\nCREATE TABLE reg(k TEXT PRIMARY KEY, v TEXT)",
                 "%%ddb\nINSERT OR REPLACE INTO reg(k, v) VALUES ('x', 'before')"]:
        run(sh, cell)
    b = magics_of(sh).clusters["pics"]
    old = b.leader()
    run(sh, f"%ddb_partition --isolate {old}")
    run(sh, f"%%ddb --node {old} --timeout 1\nINSERT OR REPLACE INTO reg(k, v) VALUES ('x', 'lost')")
    run(sh, f"%ddb wait leader --not {old}")
    run(sh, "%%ddb\nINSERT OR REPLACE INTO reg(k, v) VALUES ('x', 'after')")
    run(sh, f"%%ddb --node {old} --level none\nSELECT v FROM reg WHERE k = 'x'")
    seq = run(sh, "%ddb_sequence --last 24 --no-heartbeats").value
    grid = run(sh, "%ddb log 5").value
    check = run(sh, "%ddb_check").value
    shot(seq._repr_html_(), os.path.join(DOCS, "notebook-sequence.png"), "560,620")
    shot(grid._repr_html_(), os.path.join(DOCS, "notebook-log-grid.png"), "1000,200")
    shot(check._repr_html_(), os.path.join(DOCS, "notebook-check.png"), "940,300")
    run(sh, "%ddb_heal")
    sh.user_ns["pd"] = __import__("pandas")
    run(sh, "readings = pd.DataFrame({'celsius': [round((i * 37 % 100 + i * 53 % 100) / 7 - 4, 1) "
            "for i in range(600)]})")
    run(sh, "%ddb --persist readings")
    ax = run(sh, "%ddb_plot hist celsius --table readings --bins 12").value
    out = os.path.join(DOCS, "notebook-plot.png")
    ax.figure.savefig(out, dpi=80)
    print("wrote", out)
    run(sh, "%ddb stop --name pics")


if __name__ == "__main__":
    main()
