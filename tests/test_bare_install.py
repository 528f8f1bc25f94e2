"""A bare `pip install ddb` is a node, the client and the `ddb` command (issue 15, item 6):
Jupyter (pandas, IPython, ipykernel, nbclient) and the interactive shell (prompt_toolkit,
pygments) are extras, and what needs one says which.

The packages are present in the test venv, so a child process hides them with an import
hook that fails exactly as a missing package would (ModuleNotFoundError), then runs a real
3-node cluster.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXTRA_ONLY = ("pandas", "IPython", "ipykernel", "nbclient", "nbformat", "prompt_toolkit", "pygments",
              "matplotlib")

HIDE = textwrap.dedent(f"""
    import importlib.abc, sys
    HIDDEN = {EXTRA_ONLY!r}
    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None
    sys.meta_path.insert(0, Hide())
""")


def run_bare(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HIDE + textwrap.dedent(code)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_the_core_dependencies_leave_jupyter_and_the_shell_to_extras():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    core = " ".join(project["dependencies"]).lower()
    for name in ("pandas", "ipython", "ipykernel", "nbclient", "prompt_toolkit", "pygments"):
        assert name not in core, f"{name} is a core dependency"
    extras = project["optional-dependencies"]
    assert {"pandas>=2.0", "ipython>=8", "ipykernel>=6", "nbclient>=0.7"} <= set(extras["notebook"])
    assert {"prompt_toolkit>=3", "pygments>=2"} <= set(extras["shell"])
    assert "ddb[notebook,shell]" in extras["test"]


def test_a_bare_install_runs_a_three_node_cluster_and_names_the_extra_to_pandas_needs():
    proc = run_bare("""
        from ddb_node.cluster import LocalCluster
        with LocalCluster(3) as lc, lc.client(timeout=30.0) as c:
            c.execute("CREATE TABLE t(a INTEGER)")
            c.execute("INSERT INTO t VALUES (1), (2)")
            r = c.query("SELECT sum(a) FROM t", level="linearizable")
            assert [tuple(x) for x in r[0].rows] == [(3,)], r[0].rows
            try:
                r.to_pandas()
            except ImportError as e:
                print("to_pandas:", e)
        import sys
        assert not any(m.split(".")[0] in HIDDEN for m in sys.modules), \\
            sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
        print("ok")
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "to_pandas: to_pandas() needs pandas" in proc.stdout and "ddb[notebook]" in proc.stdout
    assert proc.stdout.rstrip().endswith("ok")


def test_the_ddb_command_works_bare_and_the_interactive_shell_names_its_extra():
    proc = run_bare("""
        import sys
        from ddb_node.cli import main
        sys.argv = ["ddb", "--help"]
        try:
            main()
        except SystemExit as e:
            assert e.code in (0, None), e.code
        from ddb_node.cli.shell import Shell
        import io
        err = io.StringIO()
        sh = Shell(["127.0.0.1:1"], err=err)
        code = sh.run_interactive()
        sh.close()
        print("shell:", code, err.getvalue())
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: ddb" in proc.stdout
    assert "shell: 2" in proc.stdout and "pip install 'ddb[shell]'" in proc.stdout
