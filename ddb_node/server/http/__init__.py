"""The rqlite-compatible HTTP API of a node, one job per module:

- `service.py`: `HttpService`, what a node starts (`start_http`): options, auth, metrics, the
  server and the router together
- `server.py`: the HTTP/1.1 server itself (asyncio Protocol, httptools), limits, keep-alive,
  connections adopted from a read worker
- `routes.py`: the table of paths and the `Router` (body limits, 405, 401) over endpoints
- `endpoint.py`: what every endpoint shares (flags, JSON answers, redirects)
- `sql.py`: /db/execute, /db/query, /db/request (and the queued writes)
- `quick_write.py`: the node's short path for a plain `POST /db/execute` (same answer)
- `quick_read.py`: a read worker's short path for a plain `GET /db/query` (same answer)
- `cluster.py`: /status, /nodes, /readyz, /leader, /remove, /join
- `backup.py`: /db/backup
- `ops.py`: /db/load, /boot, /snapshot, /reap
- `dashboard.py`: the dashboard, its static files, /ddb/cluster (its picture), /ddb/faults,
  /ddb/control
- `control.py`: the control path behind the dashboard's fault and process buttons
- `ws.py`: the dashboard's WebSocket feed
- `workers.py`, `worker.py`, `worker_channel.py`: read worker processes (`--http-workers`):
  the node's side, the process, and the socket pair between them
- `auth.py`, `errors.py`, `format.py`, `metrics.py`, `status.py`: users and permissions,
  ddb's errors as rqlite's statuses, rqlite's answer shapes, /debug/vars, status details
"""
