"""Users file (basic auth, scrypt/plain passwords, permissions, `*`), TLS on the HTTP port."""
from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess

import pytest

from ddb_node.cluster import LocalCluster
from ddb_node.server.http.auth import CredentialStore, hash_password, parse_basic

from tests.http_support import leader_url, request


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("auth")
    path = d / "users.json"
    path.write_text(json.dumps([
        {"username": "admin", "password": hash_password("s3cret!"), "perms": ["all"]},
        {"username": "reader", "password": "plain-pw", "perms": ["query"]},
        {"username": "*", "perms": ["status", "ready"]},
    ]))
    return str(path)


@pytest.fixture(scope="module")
def cluster(users_file):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDB_HTTP_AUTH", users_file)        # the nodes (children) inherit it
        with LocalCluster(3, http=True, storage="memory") as c:
            yield c


def test_permissions(cluster):
    L = leader_url(cluster)
    admin, reader = ("admin", "s3cret!"), ("reader", "plain-pw")
    r = request("POST", L + "/db/execute", ["CREATE TABLE a (x)"], auth=admin)
    assert r.status == 200 and r.json() == {"results": [{}]}
    # missing credentials, wrong password, unknown user, missing permission: 401, nothing leaks
    for auth in (None, ("admin", "wrong"), ("nobody", "x"), reader):
        r = request("POST", L + "/db/execute", ["INSERT INTO a VALUES(1)"], auth=auth)
        assert r.status == 401, (auth, r)
        assert r.headers["www-authenticate"] == 'Basic realm="ddb"'
        assert r.text == "Unauthorized\n"
    r = request("GET", L + "/db/query", params={"q": "SELECT count(*) FROM a"}, auth=reader)
    assert r.json()["results"][0]["values"] == [[0]]
    assert request("GET", L + "/db/query", params={"q": "SELECT 1"}).status == 401
    # /db/request needs both query and execute
    assert request("POST", L + "/db/request", ["SELECT 1"], auth=reader).status == 401
    assert request("POST", L + "/db/request", ["SELECT 1"], auth=admin).status == 200
    # `*` grants status and ready to everyone, even with wrong credentials
    assert request("GET", L + "/status").status == 200
    assert request("GET", L + "/readyz").status == 200
    assert request("GET", L + "/nodes", auth=("admin", "wrong")).status == 401
    assert request("GET", L + "/db/backup").status == 401
    assert request("GET", L + "/db/backup", auth=reader).status == 401
    assert request("GET", L + "/db/backup", auth=admin).status == 200
    assert request("POST", L + "/ddb/faults", {"cmd": {"action": "heal"}}, auth=reader).status == 401
    assert request("POST", L + "/leader", auth=reader).status == 401
    assert request("GET", L + "/dashboard").status == 401
    assert request("GET", L + "/dashboard", auth=admin).status == 200
    # garbage in the Authorization header is just "no credentials"
    r = request("GET", L + "/db/query", params={"q": "SELECT 1"}, headers={"Authorization": "Basic !!!"})
    assert r.status == 401


def test_credential_store_units():
    import asyncio
    store = CredentialStore([{"username": "u", "password": hash_password("pw", n=1 << 10), "perms": ["query"]}])
    assert asyncio.run(store.check("u", "pw", ("query",)))
    assert not asyncio.run(store.check("u", "pw", ("execute",)))
    assert not asyncio.run(store.check("u", "nope", ("query",)))
    assert not asyncio.run(store.check(None, None, ("query",)))
    assert parse_basic("Basic dTpwdw==") == ("u", "pw")
    assert parse_basic("Bearer x") == (None, None)
    with pytest.raises(ValueError):
        CredentialStore([{"username": "x", "password": "y", "perms": ["fly"]}])


def test_tls(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (apt-get install -y openssl)")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    env = {"DDB_HTTP_CERT": str(cert), "DDB_HTTP_KEY": str(key), "DDB_HTTP_AUTH": ""}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with LocalCluster(1, http=True, storage="memory") as c:
            addr = c.nodes[1].http_addr
            ctx = ssl.create_default_context(cafile=str(cert))
            r = request("POST", f"https://{addr}/db/execute", ["CREATE TABLE t (x)"], context=ctx)
            assert r.status == 200, r
            assert r.json() == {"results": [{}]}
            assert request("GET", f"https://{addr}/status", context=ctx).json()["http"]["tls"]["enabled"] == "true"
            with pytest.raises(Exception):
                request("GET", f"http://{addr}/status", timeout=3)    # plain HTTP is refused
            with pytest.raises(ssl.SSLError):
                request("GET", f"https://{addr}/status", context=ssl.create_default_context())
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
