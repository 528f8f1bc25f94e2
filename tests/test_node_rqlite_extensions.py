"""SQLite loadable extensions (issue 14, item 8), on a real 3-node cluster.

rqlite docs, "SQLite Extensions" (rqlite.io/docs/guides/extensions/): `-extensions-path`
takes an extension file, a directory of them or a zip archive, loads them on every node at
start, and /status lists them (also from a gzipped tarball). ddb adds a determinism check: a function an extension does
not declare SQLITE_DETERMINISTIC is refused in writes (every replica would compute its own
value), and allowed in reads."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import zipfile

import pytest

from ddb_node.cluster import LocalCluster

from tests.http_support import request
from tests.nodehelpers import wait_until

SOURCE = r"""
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

static void triple(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    sqlite3_result_int64(ctx, 3 * sqlite3_value_int64(argv[0]));
}

static sqlite3_int64 counter = 0;
static void ticket(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
    sqlite3_result_int64(ctx, ++counter);       /* a different value at every call */
}

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_ddbtest_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
    SQLITE_EXTENSION_INIT2(api);
    int rc = sqlite3_create_function(db, "triple", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, 0,
                                     triple, 0, 0);
    if (rc == SQLITE_OK)
        rc = sqlite3_create_function(db, "ticket", 0, SQLITE_UTF8, 0, ticket, 0, 0);
    return rc;
}
"""


@pytest.fixture(scope="module")
def ext_dir(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler (gcc): scripts/system-deps.sh installs it")
    d = tmp_path_factory.mktemp("ext")
    src = d / "ddbtest.c"
    src.write_text(SOURCE)
    out = d / "lib" / "ddbtest.so"
    out.parent.mkdir()
    r = subprocess.run([cc, "-g", "-fPIC", "-shared", str(src), "-o", str(out)],
                       capture_output=True, text=True)
    if r.returncode != 0 and "sqlite3ext.h" in r.stderr:
        pytest.skip("sqlite3ext.h is missing (libsqlite3-dev): scripts/system-deps.sh installs it")
    assert r.returncode == 0, r.stderr
    return str(out.parent)


@pytest.fixture(scope="module")
def cluster(ext_dir):
    with LocalCluster(3, http=True, extra_args=("--extensions-path", ext_dir)) as lc:
        yield lc


def _post(lc, path, body, i=None):
    i = i or lc.wait_for_leader()
    return request("POST", f"http://{lc.nodes[i].http_addr}{path}", body)


def test_status_lists_the_loaded_extensions_on_every_node(cluster):
    for n in cluster.nodes.values():
        st = request("GET", f"http://{n.http_addr}/status").json()
        assert st["store"]["extensions"] == ["ddbtest.so"]


def test_a_deterministic_extension_function_is_replicated_in_writes(cluster):
    r = _post(cluster, "/db/execute", ["CREATE TABLE t(x)", "INSERT INTO t VALUES (triple(14))"])
    assert r.status == 200 and all("error" not in x for x in r.json()["results"]), r
    for i, n in cluster.nodes.items():
        wait_until(lambda n=n: request("GET", f"http://{n.http_addr}/db/query",
                                       params={"q": "SELECT x FROM t", "level": "none"}
                                       ).json()["results"][0].get("values") == [[42]],
                   20, what=f"node {i} to apply triple(14)")


def test_a_non_deterministic_extension_function_is_refused_in_writes_allowed_in_reads(cluster):
    _post(cluster, "/db/execute", ["CREATE TABLE IF NOT EXISTS u(x)"])
    r = _post(cluster, "/db/execute", ["INSERT INTO u VALUES (ticket())"])
    assert r.status == 200, r
    err = r.json()["results"][0]["error"]
    assert "ticket() comes from an extension that does not declare it deterministic" in err
    r = request("GET", f"http://{cluster.nodes[1].http_addr}/db/query",
                params={"q": "SELECT count(*) FROM u", "level": "none"})
    assert r.json()["results"][0]["values"] == [[0]]
    r = request("GET", f"http://{cluster.nodes[1].http_addr}/db/query",
                params={"q": "SELECT ticket() > 0", "level": "none"})
    assert r.json()["results"][0]["values"] == [[1]], r


def test_a_strong_read_refuses_a_non_deterministic_extension_function(cluster):
    """"Read Consistency" > "Strong": a strong read goes through the Raft log and is run by
    every replica as it applies the entry, so like a write it may not call an extension
    function that is not declared deterministic; a deterministic one is served."""
    for i in cluster.nodes:          # from any node: a follower sends it to the leader
        r = request("GET", f"http://{cluster.nodes[i].http_addr}/db/query",
                    params={"q": "SELECT ticket()", "level": "strong"})
        assert r.status == 200, r
        [res] = r.json()["results"]
        assert "values" not in res, res
        assert "ticket() comes from an extension that does not declare it deterministic" \
            in res["error"], res
        r = request("GET", f"http://{cluster.nodes[i].http_addr}/db/query",
                    params={"q": "SELECT triple(5)", "level": "strong"})
        assert r.status == 200 and r.json()["results"][0]["values"] == [[15]], r


def test_extensions_load_from_a_zip_a_tarball_and_a_single_file(ext_dir, tmp_path):
    so = os.path.join(ext_dir, "ddbtest.so")
    z = tmp_path / "ext.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.write(so, "ddbtest.so")
    tgz = tmp_path / "ext.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(so, "ddbtest.so")
    for path in (str(z), str(tgz), so):
        with LocalCluster(1, http=True, extra_args=("--extensions-path", path)) as lc:
            st = request("GET", f"http://{lc.nodes[1].http_addr}/status").json()
            assert st["store"]["extensions"] == ["ddbtest.so"]
            r = request("GET", f"http://{lc.nodes[1].http_addr}/db/query",
                        params={"q": "SELECT triple(2)"})
            assert r.json()["results"][0]["values"] == [[6]]


def test_a_file_that_is_no_extension_stops_the_node_with_a_clear_error(tmp_path):
    bad = tmp_path / "notanext.so"
    bad.write_text("plain text")
    with LocalCluster(1, start=False, extra_args=("--extensions-path", str(bad))) as lc:
        lc._spawn(lc.nodes[1])
        assert lc.nodes[1].proc.wait(30) == 2
        with open(lc.nodes[1].log_path) as f:
            assert "cannot load extension" in f.read()
