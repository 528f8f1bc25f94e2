"""The README's first command ends by running 01-quickstart headless: it must show a
DataFrame (the cities table), print no warning, and leave no cluster behind."""
import subprocess
import sys

from tests.nodehelpers import pids_matching


def test_quickstart_notebook_shows_a_dataframe(tmp_path):
    out = tmp_path / "executed.ipynb"
    p = subprocess.run([sys.executable, "-m", "ddb_magic.quickstart",
                        "notebooks/01-quickstart.ipynb", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "first DataFrame" in p.stdout and "Lyon" in p.stdout
    assert p.stderr == ""                     # no kernel warning in the middle of the story
    assert "warning" not in p.stdout.lower(), p.stdout
    assert out.exists()
    assert pids_matching(f"ddb-cluster-.*{out.parent.name}") == []
