"""The launcher's control path: what the dashboard asks of the process that started the nodes.

A node can crash itself and cut its own links, but it cannot restart, pause or resume
itself: only its launcher can. ``ControlServer`` is a small HTTP server in the launcher's
hands (a thread of the process that owns a ``LocalCluster``; for ``ddb cluster up``, a
detached process of its own, ``ddb_node.cli.cluster_control``) that carries those actions out
on a ``ClusterControl`` with process control (``processes()`` and ``pause``/``resume``/
``restart``/``stop``/``kill``).

Authenticated: every request but a CORS preflight carries ``Authorization: Bearer <token>``,
the random token the launcher made and put in the dashboard link it prints (after ``#``, so
it never reaches a server log); it is compared in constant time. No token: 401; a wrong one:
403. Loopback only by default; bodies over 4 KiB: 413; a bad body: 400 that says what it
must be; an unknown node: 404; an action the node's state refuses: 409. Actions and looks
at the state run one at a time.

``GET /control/state`` -> {"nodes": {id: {"state", "pid"}}, "actions": [...]};
``POST /control {"action": "pause", "node": 2}`` -> {"node", "action", "state", "pid"}.
"""
from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("ddb.control")

ACTIONS = ("pause", "resume", "restart", "stop", "kill")
MAX_BODY = 4096
_USAGE = 'body must be JSON {"action": "pause|resume|restart|stop|kill", "node": <id>}'


class ControlServer:
    """Serve `cluster`'s process control on host:port (0: any free port) with `token`."""

    def __init__(self, cluster, token: str | None = None, host: str = "127.0.0.1", port: int = 0):
        self.cluster = cluster
        self.token = token or secrets.token_urlsafe(24)
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="ddb-control",
                                       daemon=True)
        self.thread.start()

    def authorized(self, header: str | None) -> int:
        """-> 200, or 401 (no bearer token) / 403 (another token)."""
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return 401
        ok = hmac.compare_digest(given.strip().encode(), self.token.encode())
        return 200 if ok else 403

    def states(self) -> dict:
        # under the lock too: an action and a look share the cluster object (StateCluster
        # reloads its state file on a look; mid-restart, that would drop the new pid)
        with self.lock:
            return {str(nid): p for nid, p in sorted(self.cluster.processes().items())}

    def act(self, action: str, node: int) -> tuple[int, dict]:
        """Carry out one action -> (HTTP status, answer)."""
        with self.lock:
            procs = self.cluster.processes()
            if node not in procs:
                return 404, {"error": f"no node {node} (nodes: {', '.join(map(str, sorted(procs)))})"}
            try:
                getattr(self.cluster, action)(node)
            except Exception as e:  # noqa: BLE001  the node's state refuses it: say why, keep serving
                return 409, {"error": f"{action} node {node}: {e}"}
            p = self.cluster.processes().get(node, {})
        return 200, {"node": node, "action": action, **p}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def parse_action(raw: bytes) -> tuple[str, int]:
    """-> (action, node id); ValueError with the reason for anything else."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"not JSON: {_USAGE}") from None
    if not isinstance(body, dict):
        raise ValueError(_USAGE)
    action, node = body.get("action"), body.get("node")
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: {_USAGE}")
    if isinstance(node, bool) or not isinstance(node, (int, str)):
        raise ValueError(f"node must be a node id: {_USAGE}")
    try:
        node = int(node)
    except ValueError:
        raise ValueError(f"node must be a node id, not {node!r}") from None
    return action, node


def _handler(server: ControlServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _send(self, code: int, obj: dict) -> None:
            data = json.dumps(obj).encode()
            self.send_response(code)
            self._cors()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            if code == 401:
                self.send_header("WWW-Authenticate", 'Bearer realm="ddb control"')
            self.end_headers()
            self.wfile.write(data)

        def _cors(self) -> None:
            # the dashboard is served by the nodes (other origins); the token is the secret,
            # never a cookie, so any origin may ask once it holds the token
            self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin") or "*")
            self.send_header("Vary", "Origin")

        def _auth(self) -> bool:
            code = server.authorized(self.headers.get("Authorization"))
            if code != 200:
                self._send(code, {"error": "a bearer token is required (the one in the dashboard "
                                           "link the launcher printed)" if code == 401
                                  else "wrong control token"})
                return False
            return True

        def _path(self) -> str:
            return self.path.split("?", 1)[0].rstrip("/")

        def do_OPTIONS(self):
            self.send_response(204)
            self._cors()
            self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.send_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
            self.send_header("Access-Control-Max-Age", "600")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            if self._path() != "/control/state":
                self._send(404, {"error": "not found (GET /control/state, POST /control)"})
                return
            if self._auth():
                self._send(200, {"nodes": server.states(), "actions": list(ACTIONS)})

        def do_POST(self):
            if self._path() != "/control":
                self._send(404, {"error": "not found (GET /control/state, POST /control)"})
                return
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                n = -1
            if n < 0 or n > MAX_BODY:
                self.close_connection = True
                self._send(413 if n > MAX_BODY else 400,
                           {"error": f"the body must be at most {MAX_BODY} bytes, with a Content-Length"})
                return
            raw = self.rfile.read(n)
            if not self._auth():
                return
            try:
                action, node = parse_action(raw)
            except ValueError as e:
                self._send(400, {"error": str(e)})
                return
            self._send(*server.act(action, node))

        def do_PUT(self):
            self._send(405, {"error": "GET /control/state or POST /control"})

        do_DELETE = do_PATCH = do_PUT

        def log_message(self, fmt, *args):
            log.debug("control: " + fmt, *args)

    return Handler

