"""Typed errors a node answers with; the client maps each `type` to an exception class."""
from __future__ import annotations


class ErrorReply(Exception):
    def __init__(self, type_: str, message: str, *, leader: dict | None = None, retry: bool = False):
        super().__init__(message)
        self.type = type_
        self.message = message
        self.leader = leader
        self.retry = retry
        self.results: list | None = None   # per-statement results that come with the error

    def to_dict(self) -> dict:
        d = {"type": self.type, "message": self.message}
        if self.leader:
            d["leader"] = self.leader
        if self.retry:
            d["retry"] = True
        if self.results:
            d["results"] = self.results
        return d


def bad_request(message: str) -> ErrorReply:
    return ErrorReply("BadRequest", message)


def not_leader(leader: dict | None) -> ErrorReply:
    where = f"node {leader['id']} at {leader.get('client')}" if leader else "unknown"
    return ErrorReply("NotLeader", f"this node is not the leader (leader: {where})", leader=leader,
                      retry=True)


def no_leader() -> ErrorReply:
    return ErrorReply("NoLeader", "no leader is known: the cluster has no quorum or is electing",
                      retry=True)


def timeout_error(what: str, seconds: float) -> ErrorReply:
    return ErrorReply("Timeout", f"{what} did not complete within {seconds:g}s; "
                      "the outcome is unknown (no quorum?)")


def unavailable(message: str) -> ErrorReply:
    return ErrorReply("Unavailable", message, retry=True)
