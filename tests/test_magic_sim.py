"""%ddb launch --sim: the deterministic simulator with the SQL state machine in the kernel."""
from __future__ import annotations

import re

from ddb_magic import magics_of

from tests.magic_helpers import run, shell

STORY = ["%ddb launch --sim -n 3 --seed 7 --name s",
         "%ddb_tick 5",
         "%ddb_run_until campaign",
         "%ddb_step 6",
         "%ddb_run_until leader",
         "%%ddb\nCREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, r INTEGER DEFAULT (random()), "
         "at TEXT DEFAULT CURRENT_TIMESTAMP)",
         "%%ddb --no-wait\nINSERT INTO t(v) VALUES ('hello')",
         "%ddb_step 8",
         "%ddb_run_until commit",
         "%%ddb\nSELECT * FROM t"]


def _tell(sh):
    return [run(sh, c).out for c in STORY]


def test_same_seed_same_story():
    sh = shell()
    first = _tell(sh)
    second = _tell(sh)                         # launching again with the same name replaces it
    norm = [re.sub(r"Out\[\d+\]: ", "", o) for o in first]
    assert norm == [re.sub(r"Out\[\d+\]: ", "", o) for o in second]
    assert " ms" not in "".join(norm)          # no wall-clock times in a simulated story
    assert "n2 becomes leader" in "".join(first) or "became leader" in "".join(first)
    assert "proposed at index 3" in first[6]
    assert "hello" in first[-1] and "2026-01-01 00:00:00" in first[-1]
    run(sh, "%ddb stop --name s")


def test_replicas_agree_and_faults_work_on_the_simulator():
    sh = shell()
    run(sh, "%ddb launch --sim -n 3 --seed 1 --name s2")
    run(sh, "%%ddb\nCREATE TABLE t(x INTEGER DEFAULT (random()), y TEXT DEFAULT (datetime('now')))")
    run(sh, "%%ddb\nINSERT INTO t DEFAULT VALUES")
    run(sh, "%ddb_run_until quiet")
    outs = {i: run(sh, f"%%ddb --node {i} --level none\nSELECT x, y FROM t").out.split("\n", 1)[1]
            for i in (1, 2, 3)}
    assert len(set(outs.values())) == 1, outs
    b = magics_of(sh).clusters["s2"]
    old = b.leader()
    r = run(sh, f"%ddb_partition --isolate {old}")
    assert "cut" in r.out
    r = run(sh, f"%%ddb --node {old} --timeout 1\nINSERT INTO t DEFAULT VALUES")
    assert "no quorum" in r.out and "Traceback" not in r.out
    r = run(sh, f"%ddb wait leader --not {old}")
    assert "leads" in r.out
    r = run(sh, "%%ddb\nINSERT INTO t DEFAULT VALUES")
    assert "1 row affected" in r.out
    r = run(sh, "%ddb_heal")
    r = run(sh, "%ddb_run_until quiet")
    assert "quiet: reached" in r.out
    r = run(sh, f"%%ddb --node {old} --level none\nSELECT count(*) AS n FROM t")
    assert " 2" in r.out                     # the minority's write was replaced, nothing else lost
    r = run(sh, "%ddb status")
    assert "in flight" in repr(r.value) or "<svg" in r.value._repr_html_()
    for line in ("%ddb_kill 1", "%ddb_restart 1", "%ddb_pause 2", "%ddb_resume 2",
                 "%ddb_drop 10%", "%ddb_delay 5", "%ddb_heal", "%ddb_elect 3", "%ddb add-node",
                 "%ddb_run_until quiet"):
        r = run(sh, line)
        assert not r.error and "Traceback" not in r.out and "ddb error" not in r.out, (line, r.out)
    assert b.leader() == 3 and 4 in b.sim.nodes
    r = run(sh, "%%ddb --map-reduce\nSELECT count(*) AS n FROM t WHERE rowid % :ddb_parts = :ddb_part;\n"
                "SELECT sum(n) AS n FROM map")
    assert "map/reduce" in r.out
    run(sh, "%ddb stop --name s2")


def test_stepping_needs_a_simulated_cluster():
    sh = shell()
    run(sh, "%ddb launch -n 1 --name real1")
    r = run(sh, "%ddb_step")
    assert "launch --sim" in r.out and not r.error
    run(sh, "%ddb stop --name real1")
