"""Child process for test_sql_crash: applies the crash workload, reporting each commit.

    python -m tests.sql_crash_child DB_PATH MODE      (MODE: "self-kill" or "run")
With "self-kill" the entry that calls crash_here() kills the process with SIGKILL from inside
the batch's SQLite transaction; with "run" it applies until killed from outside.
"""
import os
import signal
import sys

from ddb_node.sql import StateMachine
from tests.sqlhelpers import Log

ENTRIES = 3000
CRASH_AT = 1234
BATCH = 50


def crash_log() -> Log:
    log = Log()
    log.add("CREATE TABLE t(idx INTEGER, at TEXT DEFAULT CURRENT_TIMESTAMP, r INTEGER DEFAULT (random()))")
    while len(log.entries) < ENTRIES:
        i = len(log.entries) + 1
        if i == CRASH_AT:
            log.add(("INSERT INTO t(idx) VALUES (?)", [i]), "SELECT crash_here()", transaction=True)
        else:
            log.add(("INSERT INTO t(idx) VALUES (?)", [i]))
    return log


def main():
    path, mode = sys.argv[1], sys.argv[2]
    sm = StateMachine(path, sync="normal")
    kill = (lambda: os.kill(os.getpid(), signal.SIGKILL)) if mode == "self-kill" else (lambda: 0)
    sm.connection.create_scalar_function("crash_here", kill, 0)
    entries = crash_log().entries
    for s in range(sm.applied_index, len(entries), BATCH):
        sm.apply_batch(entries[s:s + BATCH])
        print(sm.applied_index, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
