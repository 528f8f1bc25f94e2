"""scripts/check_isolation.py (run by .ci/run on a sample of the suite) on a tiny project of
its own: it must flag the test that only passes after another one, name the seed, and pass a
project whose tests are independent."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_isolation.py"
# the tiny projects need none of the installed pytest plugins (nbval alone takes seconds to import)
ENV = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")

ORDER_DEPENDENT = '''
STATE = {}

def test_a_creates():
    STATE["table"] = "people"

def test_b_reads_what_a_created():
    assert STATE.get("table") == "people"
'''

INDEPENDENT = '''
import pytest

@pytest.fixture
def state():
    return {"table": "people"}

def test_c_reads_its_fixture(state):
    assert state["table"] == "people"

@pytest.mark.parametrize("n", [1, 2])
def test_d_param(n):
    assert n in (1, 2)
'''


def _project(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (tmp_path / f"{name}.py").write_text(text)
    return tmp_path


def _check(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--rootdir", str(root), "--python", sys.executable,
                           *args], capture_output=True, text=True, timeout=300, env=ENV)


def test_a_test_that_needs_another_one_fails_alone(tmp_path):
    root = _project(tmp_path, test_order=ORDER_DEPENDENT, test_free=INDEPENDENT)
    together = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=root,
                              capture_output=True, text=True, env=ENV)
    assert together.returncode == 0, together.stdout         # in file order, all pass
    p = _check(root, "--sample", "30", "--seed", "7")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "seed 7" in p.stdout.splitlines()[0]
    assert "5 of 5 test ids" in p.stdout
    assert "1 of 5 failed alone (seed 7)" in p.stdout
    assert p.stdout.rstrip().endswith("test_order.py::test_b_reads_what_a_created")


def test_independent_tests_pass_and_a_seed_picks_the_same_sample(tmp_path):
    root = _project(tmp_path, test_free=INDEPENDENT, test_more=INDEPENDENT)
    runs = [_check(root, "--sample", "3", "--seed", "12345") for _ in range(2)]
    for p in runs:
        assert p.returncode == 0, p.stdout + p.stderr
        assert "all 3 passed alone (seed 12345)" in p.stdout
    picked = [[line.split()[-1] for line in p.stdout.splitlines() if line.startswith("  [")] for p in runs]
    assert picked[0] == picked[1] and len(set(picked[0])) == 3
