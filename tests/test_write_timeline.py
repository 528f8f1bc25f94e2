"""benchmarks/write_timeline.py places each write's stages on the nodes' trace records:
the leader's first append with entries sent while the write was in flight, that follower's
receipt and acknowledgement of it, the leader's first acknowledgement covering it, the
first commit record at or past it, and the client's answer. Pinned on hand-made traces."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "write_timeline.py"


def timeline():
    spec = importlib.util.spec_from_file_location("ddb_bench_write_timeline", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rec(kind, t, type_=None, **kw):
    return dict(kind=kind, t=t, **({"type": type_} if type_ else {}), **kw)


def test_each_stage_is_the_first_record_that_covers_the_write():
    leader = [
        rec("send", 10.0000, "APP", to=2, index=4, n=0),      # a heartbeat-like append: no entry
        rec("send", 10.0002, "APP", to=2, index=4, n=1),      # the write's entry (index 5)
        rec("send", 10.0003, "APP", to=3, index=4, n=1),
        rec("recv", 10.0007, "APP_RESP", index=4),            # an older acknowledgement
        rec("recv", 10.0008, "APP_RESP", index=5),
        rec("commit", 10.0009, index=5),
    ]
    follower = [
        rec("recv", 10.0003, "APP", index=4, n=1),
        rec("send", 10.0004, "APP_RESP", index=4),            # not yet the entry
        rec("send", 10.0006, "APP_RESP", index=5),
    ]
    rows = timeline().place([(10.0, 10.0012)], {1: leader, 2: follower, 3: []}, 1)
    assert rows == [pytest.approx({"append_sent": 0.0002, "follower_recv": 0.0003,
                                   "follower_ack": 0.0006, "leader_ack": 0.0008,
                                   "commit": 0.0009, "reply": 0.0012})]


def test_a_write_whose_append_is_not_in_the_ring_is_left_out():
    assert timeline().place([(5.0, 5.001)], {1: [], 2: []}, 1) == []
