"""Fixtures every layer's tests share (one definition each; helpers are imported as
`from tests.X import ...`).

- `lc`: a 3-node durable `LocalCluster` for the whole module (real processes on loopback).
- `cluster`: the same with the rqlite-compatible HTTP API on every node.
- `browser`: a headless chromium context (tests/browser_support.py) for the whole module.

A module adjusts either one with a module-level dict, e.g. `CLUSTER_OPTIONS = {"storage":
"memory"}` (faster, for tests that never restart a node) or `LC_OPTIONS = {...}`; a module
that needs tables creates them in an autouse module fixture of its own (`schema`)."""
from __future__ import annotations

import pytest

from ddb_node.cluster import LocalCluster

from tests.browser_support import chromium


@pytest.fixture(scope="module")
def lc(request):
    with LocalCluster(3, **getattr(request.module, "LC_OPTIONS", {})) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def cluster(request):
    opts = {"http": True, **getattr(request.module, "CLUSTER_OPTIONS", {})}
    with LocalCluster(3, **opts) as c:
        yield c


@pytest.fixture(scope="module")
def browser():
    with chromium() as ctx:
        yield ctx


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    """The write- and fsync-recording LD_PRELOAD shim of ddb_node.chaos.crash."""
    from ddb_node.chaos.crash import build_sync_shim
    so = build_sync_shim(str(tmp_path_factory.mktemp("shim")))
    if so is None:
        pytest.skip("no C compiler for the fsync shim")
    return so
