#!/usr/bin/env bash
# One benchmark session: ddb and the peers (../shared/peers) one after the other on the
# same machine, JSON lines into benchmarks/results/<date>/, then a comparison table.
# Bounded: every measurement has an op count and a time cap. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=${PEERS:-../shared/peers}
OUT=benchmarks/results/$(date +%Y-%m-%d-%H%M)
mkdir -p "$OUT"
PY=.venv/bin/python
EXTRAS=${EXTRAS:-bench} ./scripts/setup.sh      # matplotlib for the scale chart
echo "results in $OUT" >&2
# wrk drives the HTTP comparison: installed here when missing (root with apt-get), as the
# test suite's scripts/system-deps.sh does for its tools
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null 2>&1 \
    || echo "wrk could not be installed: the HTTP comparison is skipped" >&2
fi
$PY benchmarks/core.py --entries 300000 --batch 1024 > "$OUT/core.json"
$PY benchmarks/sql_apply.py --rows 200000 --group 1000 --repeat 3 --json "$OUT/sql_apply.json" > /dev/null
$PY benchmarks/cluster.py --time-limit 30 --out "$OUT/ddb.jsonl" > /dev/null
python3 "$PEERS/etcd_bench.py" --runs 1 --no-wrk --quiet-wait 0 --time-limit 30 > "$OUT/etcd.jsonl"
python3 "$PEERS/dqlite_bench.py" --runs 1 --no-wrk --quiet-wait 0 --time-limit 30 > "$OUT/dqlite.jsonl"
python3 "$PEERS/sqlite_bench.py" --runs 1 --quiet-wait 0 > "$OUT/sqlite.jsonl"
# the HTTP path with wrk beside etcd's gateway, and failover (20 of each fault); SOAK=1 adds
# the 10-minute no-fault soak (term changes under 64 clients)
# HTTP_WORKERS (default 2): each node's --http-workers, read worker processes
$PY benchmarks/http_wrk.py --queued --http-workers "${HTTP_WORKERS:-2}" | tee "$OUT/http.txt" | grep '^{' > "$OUT/http.jsonl" || true
$PY benchmarks/failover.py --rounds 20 --quiet --out "$OUT/failover.jsonl" > /dev/null
if [ -n "${SOAK:-}" ]; then $PY benchmarks/soak.py --out "$OUT/soak.jsonl" > /dev/null; fi
# issue 13: 10^4..10^6 rows (10^7: SCALE_ARGS=--huge, ~10 more minutes)
$PY benchmarks/scale.py ${SCALE_ARGS:-} --out "$OUT/scale.jsonl" --chart "$OUT/scale.png" > /dev/null
$PY benchmarks/compare.py "$OUT" --chart "$OUT/compare.png" | tee "$OUT/table.md"
