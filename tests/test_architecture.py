"""The shape of the code, checked: the import graph of ddb_node has no cycle, the layers
import only downwards, and the deterministic layers (raft/, replica/) reach for no clock,
socket, thread or event loop (ARCHITECTURE.md: `server -> replica -> {raft, storage, sql}`)."""
from __future__ import annotations

import ast
import os

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.join(TOP, "ddb_node")


def _modules(root: str = ROOT) -> dict[str, str]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = path
    return out


def _imports(name: str, path: str, *, top_level_only: bool) -> set[str]:
    tree = ast.parse(open(path).read())
    pkg = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.add(mod)
            found.update(f"{mod}.{a.name}" for a in node.names)
    return found


MODULES = _modules()
ALL_MODULES = {**MODULES, **_modules(os.path.join(TOP, "ddb_magic"))}


def _project_deps(name: str, top_level_only: bool = True, modules: dict = MODULES) -> set[str]:
    deps = set()
    for imp in _imports(name, modules[name], top_level_only=top_level_only):
        while imp and imp not in modules:
            imp = imp.rpartition(".")[0]
        if imp and imp != name:
            deps.add(imp)
    return deps


@pytest.mark.parametrize("top_level_only", [True, False], ids=["top-level", "with-function-local"])
def test_the_import_graph_has_no_cycle(top_level_only):
    """ddb_node and ddb_magic; a function-local import counts too (it only moves the cycle
    to run time)."""
    graph = {m: {d for d in _project_deps(m, top_level_only, ALL_MODULES)
                 if not m.startswith(d + ".") and d not in ("ddb_node", "ddb_magic")}
             for m in ALL_MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_server_has_no_function_local_project_import():
    """No function-local import inside server/ hides a cycle."""
    for m in MODULES:
        if not m.startswith("ddb_node.server"):
            continue
        inner = _project_deps(m, top_level_only=False) - _project_deps(m, top_level_only=True)
        assert not inner, f"{m} imports {sorted(inner)} inside a function"


# the client library: client.py (and client_shared.py by prefix) and the modules it is made of
CLIENT = ("ddb_node.client", "ddb_node.async_client", "ddb_node.response", "ddb_node.reduce",
          "ddb_node.routing")


@pytest.mark.parametrize("layer, forbidden", [
    ("ddb_node.raft", ("ddb_node.storage", "ddb_node.sql", "ddb_node.replica", "ddb_node.server",
                       "ddb_node.net", "ddb_node.sim") + CLIENT),
    ("ddb_node.sql", ("ddb_node.raft", "ddb_node.replica", "ddb_node.server", "ddb_node.net",
                      "ddb_node.sim") + CLIENT),
    ("ddb_node.replica", ("ddb_node.server", "ddb_node.net", "ddb_node.sim",
                          "ddb_node.cluster") + CLIENT),
    ("ddb_node.protocol", ("ddb_node.",)),
])
def test_layers_import_only_downwards(layer, forbidden):
    for m in MODULES:
        if m != layer and not m.startswith(layer + "."):
            continue
        for d in _project_deps(m, top_level_only=False):
            assert not d.startswith(forbidden), f"{m} imports {d}"


def test_the_error_vocabulary_is_a_leaf_every_layer_may_import():
    """errors.py imports nothing of ddb but protocol (the wire's list of error types)."""
    deps = {d for d in _project_deps("ddb_node.errors", top_level_only=False) if d in MODULES}
    assert deps <= {"ddb_node", "ddb_node.protocol"}, deps


@pytest.mark.parametrize("layer", ["ddb_node.raft", "ddb_node.replica"])
def test_deterministic_layers_use_no_clock_socket_thread_or_loop(layer):
    banned = {"asyncio", "socket", "threading", "time", "zmq", "select", "signal", "subprocess"}
    for m in MODULES:
        if m != layer and not m.startswith(layer + "."):
            continue
        used = {i.split(".")[0] for i in _imports(m, MODULES[m], top_level_only=False)}
        assert not used & banned, f"{m} imports {sorted(used & banned)}"
