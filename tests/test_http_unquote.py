"""The HTTP server's query-string decoding (server.unquote) is urllib's, byte for byte: rqlite
clients put SQL in URLs, so every escape, broken escape and backslash must come out as
tornado (urllib) would give it."""
import random
from urllib.parse import unquote_to_bytes

import pytest

from ddb_node.server.http.server import parse_query, unquote


@pytest.mark.parametrize("raw", [
    b"", b"plain", b"SELECT%20v%20FROM%20kv%20WHERE%20k%3D%27s-1%27", b"%", b"%2", b"%zz",
    b"%4G", b"ab%4", b"%%41", b"a\\b%41", b"\\x41", b"\\", b"%5C%5Cx41", b"%E2%82%AC",
    b"%e2%82%ac", b"%00", b"100%", b"%\r\n", b"\\\\%41\\",
])
def test_unquote_matches_urllib_on_edge_cases(raw):
    assert unquote(raw) == unquote_to_bytes(raw)


def test_unquote_matches_urllib_on_random_escapes():
    rng = random.Random(12)
    alphabet = b"%%%0123456789abcdefABCDEFgxz\\ +=&'\"\x00\x7f\xff"
    for _ in range(5000):
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        assert unquote(raw) == unquote_to_bytes(raw), raw


def test_parse_query_decodes_plus_and_escapes_like_tornado():
    assert parse_query("q=SELECT+1%2B1&level=none&q=x%zz&flag") == {
        "q": [b"SELECT 1+1", b"x%zz"], "level": [b"none"], "flag": [b""]}
