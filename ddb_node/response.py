"""A client's answers: `Response` (a result per statement, where and when it was served) and
`ResultChunks` (the iterator `Client.query_iter` returns over one SELECT's chunks)."""
from __future__ import annotations

from ddb_node.errors import StatementError


class Response:
    """One answer: a result per statement, plus where and when it was served."""

    def __init__(self, body: dict):
        from ddb_node.sql import Result
        self.results = [Result.from_dict(r) for r in body.get("results") or []]
        self.index = body.get("index")
        self.node = body.get("node")
        self.term = body.get("term")
        self.level = body.get("level")
        self.time = body.get("time")
        self.duplicate = bool(body.get("duplicate"))
        self.raw = body

    def __getitem__(self, i):
        return self.results[i]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self):
        return iter(self.results)

    @property
    def rows_affected(self) -> int:
        return sum(r.rows_affected or 0 for r in self.results)

    @property
    def last_insert_id(self):
        return self.results[-1].last_insert_id if self.results else None

    def to_pandas(self):
        """DataFrame of the last result that has columns (a read), typed by affinity."""
        for r in reversed(self.results):
            if r.columns:
                return r.to_pandas()
        return self.results[-1].to_pandas() if self.results else None

    def __repr__(self) -> str:
        return (f"<Response node={self.node} index={self.index} level={self.level} "
                f"results={len(self.results)}>")


def raise_statement_errors(resp: Response) -> Response:
    for i, r in enumerate(resp.results):
        if r.error:
            raise StatementError(f"statement {i}: {r.error}", i, resp)
    return resp


class ResultChunks:
    """What `Client.query_iter` returns: an iterator of Results (chunks of one SELECT's rows,
    all from one consistent state on one node), closable, usable in a `with` block."""

    def __init__(self, client, reply: dict, timeout: float | None):
        resp = Response(reply)
        raise_statement_errors(resp)
        self.node, self.index, self.level, self.term = resp.node, resp.index, resp.level, resp.term
        self._client, self._reply = client, reply
        self._first = resp.results[0]
        self._more = client._rest(reply, timeout)
        self._finished = not reply.get("more")

    def __iter__(self) -> "ResultChunks":
        return self

    def __next__(self):
        if self._first is not None:
            first, self._first = self._first, None
            return first
        try:
            return next(self._more)
        except StopIteration:
            self._finished = True
            raise

    def close(self) -> None:
        if not self._finished:
            self._finished = True
            self._more.close()
            self._client._close_cursor(self._reply)

    def __enter__(self) -> "ResultChunks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown, client closed)
            pass
