"""Binder, rehearsed: a fresh venv built from binder/ the way repo2docker does it (install
binder/requirements.txt from the repository root, run binder/postBuild), then every tutorial
notebook under nbval inside it. Reuses pip's cache, so it takes about a minute when warm."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _copy_repo(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "*.egg-info", "build",
                                    ".ipynb_checkpoints", "artifacts")
    for name in ("pyproject.toml", "README.md", "ddb_node", "ddb_magic", "binder", "notebooks"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)


def _run(cmd, cwd, env, timeout):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout[-4000:]}\n{p.stderr[-4000:]}"
    return p


def test_binder_environment_runs_the_notebooks(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_repo(repo)
    runtime = (repo / "binder" / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3."), runtime
    assert os.access(repo / "binder" / "postBuild", os.X_OK), "postBuild must be executable"
    # ddb itself with the notebook and shell extras (a bare install has no Jupyter)
    assert ".[notebook,shell]" in [line.strip() for line in
                                   (repo / "binder" / "requirements.txt").read_text().splitlines()]

    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = dict(os.environ, PATH=f"{env_dir / 'bin'}:{os.environ.get('PATH', '')}",
               VIRTUAL_ENV=str(env_dir), JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    _run([str(py), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], repo, env, 900)
    _run([str(py), "-m", "pip", "install", "-q", "nbval", "pytest"], repo, env, 600)
    _run(["bash", "binder/postBuild"], repo, env, 120)
    assert (env_dir / "share" / "jupyter" / "kernels" / "ddb_sql" / "kernel.json").exists()
    shutil.rmtree(repo / "ddb_magic")            # the notebooks must run on the installed package
    shutil.rmtree(repo / "ddb_node")
    p = _run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
              "--nbval-sanitize-with", "notebooks/sanitize.cfg", "notebooks/"], repo, env, 900)
    assert " passed" in p.stdout and "failed" not in p.stdout, p.stdout[-2000:]
