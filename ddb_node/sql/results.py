"""Column-oriented results and their conversion to dicts and pandas DataFrames."""
from __future__ import annotations

from collections import Counter

from .affinity import EXPECTED, affinity_of

# storage_class(v), by type(v) (anything else, as there: "blob")
_CLASS_OF_TYPE = {type(None): "null", int: "integer", float: "real", str: "text", bytes: "blob"}


_new = object.__new__
_ANALYSIS = frozenset(("affinities", "types_seen", "violations"))
_LAZY = {"columns": list, "decltypes": list, "affinities": list, "types_seen": list, "values": list,
         "violations": list, "truncated": bool, "error": lambda: None}


class Result:
    """The result of one SQL statement, transposed: one list of values per column."""

    __slots__ = ("statement", "columns", "decltypes", "affinities", "types_seen", "values",
                 "rows_affected", "last_insert_id", "error", "time", "violations", "truncated")

    def __init__(self, statement=0, columns=(), decltypes=(), values=(), rows_affected=0,
                 last_insert_id=None, error=None, time=0.0, truncated=False,
                 affinities=None, types_seen=None, violations=None):
        self.statement = statement
        self.columns = list(columns)
        self.decltypes = list(decltypes)
        self.values = [list(v) for v in values] if values else [[] for _ in self.columns]
        self.rows_affected = rows_affected
        self.last_insert_id = last_insert_id
        self.error = error
        self.time = time
        self.truncated = truncated
        if affinities is None:
            self.affinities, self.types_seen, self.violations = analyse(self.columns, self.decltypes, self.values)
        else:
            self.affinities, self.types_seen, self.violations = affinities, types_seen, violations

    @classmethod
    def write(cls, statement, rows_affected, last_insert_id, time) -> "Result":
        """Fast constructor for a statement that returns no columns."""
        r = _new(cls)
        r.statement = statement
        r.rows_affected = rows_affected
        r.last_insert_id = last_insert_id
        r.error = None
        r.time = time
        return r      # the other fields come from __getattr__ on first use

    def __getattr__(self, name):
        # only reached for fields a fast constructor left unset
        if name in _ANALYSIS:
            self.affinities, self.types_seen, self.violations = analyse(
                self.columns, self.decltypes, self.values)
            return object.__getattribute__(self, name)
        if name in _LAZY:
            value = _LAZY[name]()
            object.__setattr__(self, name, value)
            return value
        raise AttributeError(name)

    @classmethod
    def failure(cls, statement, error, time=0.0) -> "Result":
        r = cls.write(statement, 0, None, time)
        r.error = error
        return r

    @classmethod
    def from_rows(cls, statement, description, rows, rows_affected=0, last_insert_id=None,
                  time=0.0, truncated=False) -> "Result":
        """A result from a cursor's description and rows, without __init__'s copies (every
        read's result is built here)."""
        r = _new(cls)
        r.statement = statement
        r.columns = columns = [d[0] for d in description]
        r.decltypes = decltypes = [d[1] for d in description]
        r.values = values = [list(col) for col in zip(*rows)] if rows else [[] for _ in columns]
        r.rows_affected = rows_affected
        r.last_insert_id = last_insert_id
        r.error = None
        r.time = time
        r.truncated = truncated
        return r      # affinities, types_seen, violations: analysed on first use

    @property
    def rows(self) -> list[tuple]:
        return list(zip(*self.values)) if self.values else []

    def to_dict(self, analysis: bool = True) -> dict:
        """The wire form. ``analysis=False`` leaves out affinities, types_seen and
        violations, which an rqlite answer never shows: an HTTP read worker's results skip
        the analysis (a Python look at every value)."""
        # the fields a fast constructor left unset are read through their slots (not
        # __getattr__, which would create and store each one): every write's answer and its
        # session record go through here
        lazy = _lazy
        columns = lazy(self, _COLUMNS)
        d = {"statement": self.statement, "columns": columns, "decltypes": lazy(self, _DECLTYPES)}
        if analysis:
            if columns:          # analysed now if it was not yet
                d["affinities"], d["types_seen"] = self.affinities, self.types_seen
            else:
                d["affinities"], d["types_seen"] = lazy(self, _AFFINITIES), lazy(self, _TYPES_SEEN)
        d["values"] = lazy(self, _VALUES)
        d["rows_affected"] = self.rows_affected
        d["last_insert_id"] = self.last_insert_id
        d["time"] = self.time
        if self.error is not None:
            d["error"] = self.error
        if analysis and (self.violations if columns else lazy(self, _VIOLATIONS)):
            d["violations"] = self.violations
        if lazy(self, _TRUNCATED, False):
            d["truncated"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Result":
        return cls(d.get("statement", 0), d.get("columns", ()), d.get("decltypes", ()),
                   d.get("values", ()), d.get("rows_affected", 0), d.get("last_insert_id"),
                   d.get("error"), d.get("time", 0.0), d.get("truncated", False),
                   d.get("affinities", []), d.get("types_seen", []), d.get("violations", []))

    def to_pandas(self):
        from .frames import to_pandas
        return to_pandas(self)

    def __eq__(self, other):
        return isinstance(other, Result) and self.to_dict() == other.to_dict()

    def __repr__(self):
        if self.error is not None:
            return f"Result(statement={self.statement}, error={self.error!r})"
        if self.columns:
            n = len(self.values[0]) if self.values else 0
            return f"Result(columns={self.columns}, rows={n}{', truncated' if self.truncated else ''})"
        return f"Result(rows_affected={self.rows_affected}, last_insert_id={self.last_insert_id})"


def analyse(columns, decltypes, values):
    """-> (affinities, types_seen, violations). A value whose storage class disagrees with its
    declared column's affinity is counted, never coerced."""
    affinities, types_seen, violations = [], [], []
    class_of = _CLASS_OF_TYPE
    for i, (name, decl, col) in enumerate(zip(columns, decltypes, values)):
        aff = affinity_of(decl)
        affinities.append(aff)
        seen = {}
        if len(col) > 32:        # a long column: its types counted in C, a few at most
            for t, n in Counter(map(type, col)).items():
                sc = class_of.get(t, "blob")
                seen[sc] = seen.get(sc, 0) + n
        else:
            for v in col:
                sc = class_of.get(type(v), "blob")
                seen[sc] = seen.get(sc, 0) + 1
        types_seen.append(sorted(seen))
        expected = EXPECTED[aff] if decl else None
        if expected is not None:
            for sc, n in sorted(seen.items()):
                if sc not in expected:
                    violations.append({"column": i, "name": name, "decltype": decl, "affinity": aff,
                                       "storage_class": sc, "count": n})
    return affinities, types_seen, violations


_COLUMNS, _DECLTYPES, _AFFINITIES, _TYPES_SEEN, _VALUES, _VIOLATIONS, _TRUNCATED = (
    Result.__dict__[n].__get__ for n in ("columns", "decltypes", "affinities", "types_seen",
                                        "values", "violations", "truncated"))


def _lazy(r: Result, get, default=None):
    """A slot's value, or a fresh empty list (or `default`) when it was never set."""
    try:
        return get(r)
    except AttributeError:
        return [] if default is None else default


class EntryResult:
    """What applying one log entry produced."""

    __slots__ = ("index", "results", "error", "session_duplicate")

    def __init__(self, index, results=None, error=None, session_duplicate=False):
        self.index = index
        self.results = results if results is not None else []
        self.error = error
        self.session_duplicate = session_duplicate

    def to_dict(self) -> dict:
        d = {"index": self.index, "results": [r.to_dict() for r in self.results]}
        if self.error is not None:
            d["error"] = self.error
        if self.session_duplicate:
            d["session_duplicate"] = True
        return d

    def __repr__(self):
        return (f"EntryResult(index={self.index}, results={self.results!r}, error={self.error!r}"
                f"{', duplicate' if self.session_duplicate else ''})")
