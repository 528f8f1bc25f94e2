"""Crash safety with a real, killed process: after SIGKILL the database holds exactly the
entries up to its applied index, each once, and apply resumes at applied + 1."""
import signal
import subprocess
import sys
from pathlib import Path

from ddb_node.sql import StateMachine

from tests.sql_crash_child import BATCH, CRASH_AT, ENTRIES, crash_log
from tests.sqlhelpers import rows

ROOT = Path(__file__).resolve().parents[1]


def start(path, mode):
    return subprocess.Popen([sys.executable, "-m", "tests.sql_crash_child", str(path), mode], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)


def reopen_and_check(path) -> StateMachine:
    sm = StateMachine(str(path))
    sm.connection.create_scalar_function("crash_here", lambda: 0, 0)
    applied = sm.applied_index
    # entry 1 created the table; entries 2..applied each inserted their own index, once
    assert rows(sm, "SELECT idx FROM t ORDER BY idx") == [(i,) for i in range(2, applied + 1)]
    return sm


def resume_and_check(sm):
    entries = crash_log().entries
    applied = sm.applied_index
    out = sm.apply_batch(entries)          # the whole log again: only applied + 1 onwards runs
    assert all(r is None for r in out[:applied]) and out[applied].index == applied + 1
    assert rows(sm, "SELECT count(*), count(DISTINCT idx), min(idx), max(idx) FROM t") == [
        (ENTRIES - 1, ENTRIES - 1, 2, ENTRIES)]


def test_killed_inside_the_apply_transaction(tmp_path):
    path = tmp_path / "user.db"
    child = start(path, "self-kill")
    reported = [line.strip() for line in child.stdout]
    assert child.wait() == -signal.SIGKILL
    last_commit = int(reported[-1])
    assert last_commit == (CRASH_AT - 1) // BATCH * BATCH         # the batch holding CRASH_AT is gone
    sm = reopen_and_check(path)
    assert sm.applied_index == last_commit
    resume_and_check(sm)


def test_killed_from_outside_at_an_arbitrary_moment(tmp_path):
    path = tmp_path / "user.db"
    child = start(path, "run")
    seen = [child.stdout.readline().strip() for _ in range(5)]   # it is applying: kill it now
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    sm = reopen_and_check(path)
    assert sm.applied_index >= int(seen[-1])
    resume_and_check(sm)
