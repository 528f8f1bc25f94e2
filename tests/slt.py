"""A sqllogictest runner driving ddb's SQL state machine.

Every ``statement`` record becomes a request, is classified (as the leader would), encoded
with ``encode_entry`` and applied with ``apply_batch``; every ``query`` record goes through
``StateMachine.query``. Results are formatted the way SQLite's own runner does (``I`` as %d,
``R`` as %.3f, ``T`` text with "(empty)", "NULL"), sorted per the sort mode and compared
value by value, or by MD5 hash when the expected answer is hashed.

Counts: every record is either run (passed or failed) or skipped with a reason; nothing is
skipped silently. ``python -m tests.slt [files...]`` prints the counts.
"""
from __future__ import annotations

import hashlib
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import apsw

from ddb_node.sql import BadRequest, Request, StateMachine, Statement, classify, encode_entry

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "sqllogictest"
if not CORPUS.exists():
    CORPUS = Path("/work/shared/sqllogictest")
DB_NAME = "sqlite"

# ddb refuses TEMP objects (connection state, not replicated). The corpus creates two TEMP
# views and later drops them: those records are skipped with this reason, never silently.
POLICY_TEMP = "ddb policy: TEMP objects are refused (not replicated)"
_TEMP_CREATE = re.compile(r"^\s*CREATE\s+TEMP(?:ORARY)?\s+(?:VIEW|TABLE|INDEX|TRIGGER)\s+(\w+)", re.I)


@dataclass
class Record:
    kind: str                   # "statement", "query", "hash-threshold", "halt"
    line: int
    sql: str = ""
    expect_ok: bool = True
    types: str = ""
    sort: str = "nosort"
    label: str | None = None
    expected: list[str] = field(default_factory=list)
    expected_hash: tuple[int, str] | None = None
    conditions: list[tuple[str, str]] = field(default_factory=list)
    arg: int = 0


def parse(path: Path) -> list[Record]:
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n")
    out: list[Record] = []
    i, n = 0, len(lines)
    conditions: list[tuple[str, str]] = []
    while i < n:
        raw = lines[i]
        line = raw.split("#", 1)[0].strip() if not raw.startswith("#") else ""
        if not line:
            if not raw.strip():
                conditions = []      # a blank line ends a record (and any dangling conditions)
            i += 1
            continue
        words = line.split()
        start = i + 1
        if words[0] in ("skipif", "onlyif"):
            conditions.append((words[0], words[1]))
            i += 1
            continue
        if words[0] == "halt":
            out.append(Record("halt", start, conditions=conditions))
            conditions = []
            i += 1
            continue
        if words[0] == "hash-threshold":
            out.append(Record("hash-threshold", start, arg=int(words[1]), conditions=conditions))
            conditions = []
            i += 1
            continue
        if words[0] == "statement":
            i += 1
            sql = []
            while i < n and lines[i].strip():
                sql.append(lines[i])
                i += 1
            out.append(Record("statement", start, "\n".join(sql), expect_ok=words[1] == "ok",
                              conditions=conditions))
            conditions = []
            continue
        if words[0] == "query":
            rec = Record("query", start, types=words[1], sort=words[2] if len(words) > 2 else "nosort",
                         label=words[3] if len(words) > 3 else None, conditions=conditions)
            conditions = []
            i += 1
            sql = []
            while i < n and lines[i].strip() and lines[i].strip() != "----":
                sql.append(lines[i])
                i += 1
            rec.sql = "\n".join(sql)
            if i < n and lines[i].strip() == "----":
                i += 1
                exp = []
                while i < n and lines[i].strip():
                    exp.append(lines[i].strip())
                    i += 1
                m = re.fullmatch(r"(\d+) values hashing to ([0-9a-f]{32})", exp[0]) if len(exp) == 1 else None
                if m:
                    rec.expected_hash = (int(m.group(1)), m.group(2))
                else:
                    rec.expected = exp
            out.append(rec)
            continue
        raise ValueError(f"{path}:{start}: cannot parse {raw!r}")
    return out


def skip_reason(rec: Record) -> str | None:
    for cond, db in rec.conditions:
        if cond == "onlyif" and db != DB_NAME:
            return f"onlyif {db}"
        if cond == "skipif" and db == DB_NAME:
            return f"skipif {db}"
    return None


_conv = apsw.Connection(":memory:")


def _sqlite_cast(v, to: str):
    return _conv.execute(f"SELECT CAST(? AS {to})", (v,)).fetchall()[0][0]


def fmt(v, t: str) -> str:
    if v is None:
        return "NULL"
    if t == "I":
        if type(v) is int:
            return str(v)
        if type(v) is float:
            return str(_sqlite_cast(v, "INTEGER"))
        return str(_sqlite_cast(v, "INTEGER") or 0)
    if t == "R":
        if type(v) is not int and type(v) is not float:
            v = _sqlite_cast(v, "REAL") or 0.0
        if abs(v) < 1e15:
            return "%.3f" % v
        # SQLite's printf keeps 16 significant digits, as the reference runner prints them
        return _conv.execute("SELECT printf('%.3f', ?)", (v,)).fetchall()[0][0]
    # T
    if type(v) is float:
        v = _sqlite_cast(v, "TEXT")
    elif type(v) is bytes:
        v = v.decode("utf-8", "replace")
    s = str(v)
    if s == "":
        return "(empty)"
    return "".join(c if " " <= c <= "~" else "@" for c in s)


@dataclass
class Counts:
    run: int = 0
    passed: int = 0
    failed: int = 0
    skipped: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def add(self, other: "Counts"):
        self.run += other.run
        self.passed += other.passed
        self.failed += other.failed
        self.skipped.update(other.skipped)
        self.failures.extend(other.failures)

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items())) or "none"
        return (f"run={self.run} passed={self.passed} failed={self.failed} "
                f"skipped={self.skipped_total} ({reasons})")


class Runner:
    """Runs one .test file against a fresh in-memory StateMachine."""

    def __init__(self, path: Path):
        self.path = path
        self.sm = StateMachine(":memory:")
        self.index = 0
        self.threshold = 0
        self.counts = Counts()
        self.temp_refused: set[str] = set()

    def _apply(self, sql: str) -> str | None:
        """The write path: classify, encode, apply. -> error message or None."""
        req = Request([Statement(sql)])
        try:
            classify(req, self.sm.connection)
        except BadRequest as e:
            return f"refused: {e}"
        self.index += 1
        payload = encode_entry(req, timestamp_ms=1_700_000_000_000 + self.index, seed=self.index)
        (er,) = self.sm.apply_batch([(self.index, 1, payload)])
        if er.error:
            return er.error
        for r in er.results:
            if r.error:
                return r.error
        return None

    def _fail(self, rec: Record, why: str):
        self.counts.failed += 1
        self.counts.failures.append(f"{self.path.name}:{rec.line}: {why}\n    {rec.sql[:200]}")

    def run(self) -> Counts:
        for rec in parse(self.path):
            reason = skip_reason(rec)
            if rec.kind == "halt":
                if reason:
                    continue        # a halt meant for another database: not a record
                break
            if rec.kind == "hash-threshold":
                self.threshold = rec.arg
                continue
            if reason:
                self.counts.skipped[reason] += 1
                continue
            if rec.kind == "statement":
                self.run_statement(rec)
            else:
                self.run_query(rec)
        self.sm.close()
        return self.counts

    def run_statement(self, rec: Record):
        m = _TEMP_CREATE.match(rec.sql)
        err = self._apply(rec.sql)
        if rec.expect_ok and err is not None:
            if m and "TEMP" in err:
                self.temp_refused.add(m.group(1).lower())
                self.counts.skipped[POLICY_TEMP] += 1
                return
            if any(re.search(rf"\b{re.escape(name)}\b", rec.sql, re.I) for name in self.temp_refused):
                self.counts.skipped[POLICY_TEMP] += 1
                return
        self.counts.run += 1
        if rec.expect_ok == (err is None):
            self.counts.passed += 1
        else:
            self._fail(rec, f"statement {'ok' if rec.expect_ok else 'error'} expected, got "
                            f"{err or 'success'}")

    def run_query(self, rec: Record):
        self.counts.run += 1
        (res, *more) = self.sm.query(Request([Statement(rec.sql)]))
        if more:
            return self._fail(rec, "several results for one query")
        if res.error:
            # SQLite's reference runner stops reading rows at a runtime error (it does not
            # check the step's error): an error passes only where no values are expected.
            if not rec.expected and rec.expected_hash is None and "no such" not in res.error \
                    and "syntax" not in res.error:
                self.counts.passed += 1
                return
            return self._fail(rec, f"query failed: {res.error}")
        ncols = len(res.columns)
        if ncols != len(rec.types):
            return self._fail(rec, f"expected {len(rec.types)} columns, got {ncols}")
        rows = [[fmt(v, t) for v, t in zip(row, rec.types)] for row in zip(*res.values)] if ncols else []
        if rec.sort == "rowsort":
            rows.sort()
        values = [v for row in rows for v in row]
        if rec.sort == "valuesort":
            values.sort()
        if rec.expected_hash is not None:
            n, h = rec.expected_hash
            got = hashlib.md5("".join(v + "\n" for v in values).encode()).hexdigest()
            ok = len(values) == n and got == h
            why = f"expected {n} values hashing to {h}, got {len(values)} hashing to {got}"
        else:
            ok = values == rec.expected
            why = f"expected {rec.expected[:10]}, got {values[:10]}"
        if ok:
            self.counts.passed += 1
        else:
            self._fail(rec, why)


def run_files(paths) -> Counts:
    total = Counts()
    for p in paths:
        total.add(Runner(Path(p)).run())
    return total


def corpus_files(subset: str = "full") -> list[Path]:
    files = sorted(CORPUS.glob("select*.test")) + sorted((CORPUS / "evidence").glob("*.test"))
    return files


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    files = [Path(a) for a in argv] or corpus_files()
    total = Counts()
    for p in files:
        t0 = time.perf_counter()
        c = Runner(p).run()
        total.add(c)
        print(f"{p.name:32} {c.summary()}  [{time.perf_counter() - t0:.1f}s]")
    print(f"{'TOTAL':32} {total.summary()}")
    for f in total.failures[:20]:
        print(f)
    return 0 if total.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
