"""The log entry codec: msgpack with a version marker, strict decoding, limits."""
import msgpack
import pytest

from ddb_node.sql import BadRequest, Limits, Request, Statement, decode_entry, encode_entry
from ddb_node.sql.codec import EntryDecodeError


def test_roundtrip_keeps_every_field_and_value_type():
    r = Request([Statement("INSERT INTO t VALUES(?, ?, ?, ?, ?)", [None, 2 ** 63 - 1, 1.5, "é", b"\x00\xff"]),
                 Statement("SELECT :a", {"a": -(2 ** 63)})], transaction=True, level="strong", timeout=2.5)
    payload = encode_entry(r, timestamp_ms=123, seed=2 ** 64 - 1, session=("client-1", 7))
    req, ts, seed, session = decode_entry(payload)
    assert (ts, seed, session) == (123, 2 ** 64 - 1, ("client-1", 7))
    assert req == r


def test_payload_carries_a_version_marker():
    obj = msgpack.unpackb(encode_entry(Request(["SELECT 1"]), timestamp_ms=0, seed=0))
    assert obj[:2] == ["ddb-sql", 1]


@pytest.mark.parametrize("payload", [b"", b"\xc1", msgpack.packb([1, 2, 3]), msgpack.packb(["ddb-sql", 99] + [0] * 7),
                                     msgpack.packb(["ddb-sql", 1, "ts", 0, None, False, "weak", None, []]),
                                     msgpack.packb(["ddb-sql", 1, 0, 0, None, False, "weak", None, [[1]]]),
                                     msgpack.packb(["ddb-sql", 1, 0, 0, None, False, "weak", None, [[]]])])
def test_malformed_payloads_are_refused_with_a_decode_error(payload):
    with pytest.raises(EntryDecodeError):
        decode_entry(payload)


def test_rqlite_style_statements_are_accepted():
    r = Request(["SELECT 1", ["SELECT ?, ?", 1, "x"], ["SELECT :a", {"a": 1}]])
    assert r.statements == [Statement("SELECT 1"), Statement("SELECT ?, ?", [1, "x"]),
                            Statement("SELECT :a", {"a": 1})]


@pytest.mark.parametrize("request_, message", [
    (Request([]), "at least one statement"),
    (Request(["SELECT 1"] * 3), "too many statements"),
    (Request(["SELECT 1 -- " + "x" * 100]), "exceeds the limit"),
    (Request([Statement("SELECT ?", [b"x" * 101])]), "blob parameter longer"),
    (Request([Statement("SELECT ?", ["x" * 101])]), "text parameter longer"),
    (Request([Statement("SELECT ?", [1] * 11)]), "11 parameters exceed"),
    (Request([Statement("SELECT ?", [2 ** 64])]), "does not fit in 64 bits"),
    (Request([Statement("SELECT ?", [object()])]), "unsupported parameter type"),
    (Request(["SELECT 1"], level="eventual"), "unknown consistency level"),
])
def test_limits_and_types_give_clear_errors(request_, message):
    limits = Limits(max_statements=2, max_sql_length=50, max_params=10, max_param_bytes=100)
    with pytest.raises(BadRequest, match=message):
        encode_entry(request_, timestamp_ms=0, seed=0, limits=limits)


def test_encoded_size_limit():
    with pytest.raises(BadRequest, match="encoded request"):
        encode_entry(Request([Statement("SELECT ?", [b"x" * 1000])]), timestamp_ms=0, seed=0,
                     limits=Limits(max_entry_bytes=500))
