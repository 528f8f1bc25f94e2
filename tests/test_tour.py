"""The README's main job: `ddb tour` on a real local cluster ends with every acknowledged
write present on every replica, and says so, with nothing on stderr and no warning."""
import os
import subprocess
import sys


def test_tour_runs_and_loses_nothing():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.run([sys.executable, "-m", "ddb_node.cli", "tour"], capture_output=True,
                       text=True, timeout=180, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stderr == ""
    out = p.stdout
    assert "warning" not in out.lower(), out
    for phrase in ("won the first election", "kill -9 the leader", "was elected after",
                   "A write is refused", "All replicas agree", "all present on every replica"):
        assert phrase in out, out
    digests = {line.split("digest ")[1] for line in out.splitlines() if "digest " in line}
    assert len(digests) == 1, out
