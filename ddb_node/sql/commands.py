"""Commands: a statement is SQL plus parameters; a request is statements plus flags.

Parameters are positional (list) or named (dict); values are None, 64-bit int, float,
str or bytes. ``validate`` checks a request against the limits and raises BadRequest with
a message that names the statement and the limit.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ddb_node.protocol import LEVELS   # the one definition of the level names

from .errors import BadRequest
from .limits import DEFAULT_LIMITS, Limits

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1


@dataclass(slots=True)
class Statement:
    sql: str
    params: list | dict | None = None

    def __post_init__(self):
        if isinstance(self.params, tuple):
            self.params = list(self.params)


@dataclass(slots=True)
class Request:
    statements: list[Statement] = field(default_factory=list)
    transaction: bool = False
    level: str = "weak"
    timeout: float | None = None

    def __post_init__(self):
        out = []
        for i, s in enumerate(self.statements):
            try:
                out.append(s if isinstance(s, Statement) else _coerce_statement(s))
            except BadRequest as e:
                e.statement = i
                raise
        self.statements = out


def _coerce_statement(s) -> Statement:
    if isinstance(s, str):
        return Statement(s)
    if isinstance(s, (list, tuple)) and s and isinstance(s[0], str):
        # rqlite's form: ["INSERT ... VALUES(?, ?)", 1, "x"] or [sql, {named}]
        if len(s) == 2 and isinstance(s[1], dict):
            return Statement(s[0], s[1])
        return Statement(s[0], list(s[1:]) or None)
    raise BadRequest(f"a statement must be a Statement, a SQL string or [sql, params...], not {s!r}")


def _check_value(v, where: str, limits: Limits):
    if v is None or type(v) is float:
        return v
    if type(v) is int:
        if not INT64_MIN <= v <= INT64_MAX:
            raise BadRequest(f"{where}: integer {v} does not fit in 64 bits")
        return v
    if type(v) is bool:
        return int(v)
    if isinstance(v, str):
        if len(v) > limits.max_param_bytes and len(v.encode("utf-8", "surrogatepass")) > limits.max_param_bytes:
            raise BadRequest(f"{where}: text parameter longer than {limits.max_param_bytes} bytes")
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v)
        if len(v) > limits.max_param_bytes:
            raise BadRequest(f"{where}: blob parameter longer than {limits.max_param_bytes} bytes")
        return v
    if isinstance(v, int):          # int subclasses (numpy ints converted by caller, IntEnum …)
        return _check_value(int(v), where, limits)
    if isinstance(v, float):
        return float(v)
    raise BadRequest(f"{where}: unsupported parameter type {type(v).__name__} "
                     "(allowed: None, int, float, str, bytes)")


def validate(request: Request, limits: Limits = DEFAULT_LIMITS) -> Request:
    """Check types and limits; normalise parameter values in place. Raises BadRequest."""
    if not isinstance(request, Request):
        raise BadRequest(f"expected a Request, got {type(request).__name__}")
    if request.level not in LEVELS:
        raise BadRequest(f"unknown consistency level {request.level!r}; use one of {', '.join(LEVELS)}")
    if request.timeout is not None and not (isinstance(request.timeout, (int, float)) and request.timeout >= 0):
        raise BadRequest(f"timeout must be a non-negative number of seconds, not {request.timeout!r}")
    n = len(request.statements)
    if n == 0:
        raise BadRequest("a request needs at least one statement")
    if n > limits.max_statements:
        raise BadRequest(f"too many statements in one request: {n} > limit {limits.max_statements}")
    for i, st in enumerate(request.statements):
        try:
            _validate_statement(st, f"statement {i}", limits)
        except BadRequest as e:
            e.statement = i
            raise
    return request


def _fault(where: str, why: str) -> BadRequest:
    return BadRequest(f"{where}: {why}", detail=why)


def _validate_statement(st: Statement, where: str, limits: Limits) -> None:
    if not isinstance(st.sql, str):
        raise _fault(where, f"SQL must be a string, not {type(st.sql).__name__}")
    if len(st.sql) > limits.max_sql_length:
        raise _fault(where, f"SQL text of {len(st.sql)} characters exceeds the limit of {limits.max_sql_length}")
    p = st.params
    if p is None:
        return
    if isinstance(p, dict):
        if len(p) > limits.max_params:
            raise _fault(where, f"{len(p)} parameters exceed the limit of {limits.max_params}")
        out = {}
        for k, v in p.items():
            if not isinstance(k, str):
                raise _fault(where, f"parameter names must be strings, not {k!r}")
            out[k] = _check_value(v, f"{where}, parameter {k!r}", limits)
        st.params = out
    elif isinstance(p, (list, tuple)):
        if len(p) > limits.max_params:
            raise _fault(where, f"{len(p)} parameters exceed the limit of {limits.max_params}")
        st.params = [_check_value(v, f"{where}, parameter {j + 1}", limits) for j, v in enumerate(p)]
    else:
        raise _fault(where, f"parameters must be a list, a dict or None, not {type(p).__name__}")

