"""Deterministic in-process cluster simulation: simulated network and disks, crashes,
invariant checks after every step, client histories and a linearizability checker.
See DESIGN.md."""
from .history import FAIL, INFO, OK, History, Op
from .invariants import InvariantChecker, InvariantViolation
from .kv import KVStateMachine
from .linearizability import check_kv, check_register
from .network import Envelope, Network
from .simulator import STAGES, SimNode, Simulator

__all__ = ["Simulator", "SimNode", "STAGES", "Network", "Envelope", "KVStateMachine",
           "History", "Op", "OK", "FAIL", "INFO", "InvariantChecker", "InvariantViolation",
           "check_kv", "check_register"]
