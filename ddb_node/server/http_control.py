"""Process control for the dashboard: a tiny HTTP server in the process that owns a
LocalCluster, so the page can restart, pause and resume nodes (a node cannot restart
itself). Loopback only by default; start it with ``serve_control(cluster)`` and open
``/dashboard?control=<url>`` on any node.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve_control(cluster, host: str = "127.0.0.1", port: int = 0):
    """-> (url, stop). POST /control {"action": kill|stop|restart|pause|resume, "node": id};
    GET /control/state -> {id: state}."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.rstrip("/") == "/control/state":
                self._send(200, {str(i): n.state for i, n in cluster.nodes.items()})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):
            try:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(min(n, 4096)) or b"{}")
                action, node = body["action"], int(body["node"])
                fn = {"kill": cluster.kill, "stop": cluster.stop, "restart": cluster.restart,
                      "pause": cluster.pause, "resume": cluster.resume}[action]
            except (ValueError, KeyError, TypeError):
                self._send(400, {"error": "body must be {action: kill|stop|restart|pause|resume, node: id}"})
                return
            try:
                fn(node)
            except Exception as e:
                self._send(409, {"error": str(e)})
                return
            self._send(200, {"node": node, "state": cluster.nodes[node].state})

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    t = threading.Thread(target=httpd.serve_forever, name="ddb-control", daemon=True)
    t.start()

    def stop():
        httpd.shutdown()
        httpd.server_close()

    return f"http://{host}:{httpd.server_address[1]}", stop
