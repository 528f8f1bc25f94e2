"""The Replica: one node's deterministic request path (Raft core + storage + state machine +
proposals, waiters, sessions, levels, map steps). Driven by the node process, the simulator
and the notebook's simulated cluster alike."""
from .entries import FAIL, INFO, OK
from .members import AddressBook
from .replica import Replica

__all__ = ["AddressBook", "FAIL", "INFO", "OK", "Replica"]
