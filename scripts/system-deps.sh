#!/usr/bin/env bash
# The system packages the default test suite shells out to, installed with apt-get when
# missing (root only), then one line saying what was installed:
#   iptables, iproute2 (ip, tc, ss)  network-namespace tests (partitions, loss, delay)
#   chromium                         browser tests (JupyterLab, the HTTP console)
#   sqlite3                          the SQL dump is compared with the sqlite3 shell's
#   openssl                          TLS test certificates
#   procps (pgrep)                   "no process left behind" checks
#   gcc, libc6-dev                   the fsync shim of the power-loss tests
#   libsqlite3-dev (sqlite3ext.h)    the SQLite extension compiled by the extension tests
#   python3-venv                     when python3 cannot create a venv with pip
# Never fails the caller: a test whose tool is still missing skips and says why.
set -uo pipefail
PY=${PYTHON:-python3}
need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want iptables iptables
want ip iproute2
want tc iproute2
want ss iproute2
want chromium chromium
want sqlite3 sqlite3
want openssl openssl
want pgrep procps
want cc gcc
[ -e /usr/include/dlfcn.h ] || need+=(libc6-dev)
[ -e /usr/include/sqlite3ext.h ] || need+=(libsqlite3-dev)
"$PY" -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -eq 0 ]; then
  echo "system-deps: nothing to install (all present)"
  exit 0
fi
pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
pkgs=${pkgs% }
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: not root or no apt-get; not installed: $pkgs (the tests needing them skip)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp -t ddb-system-deps.XXXXXX)
# shellcheck disable=SC2086
if apt-get update -qq -o DPkg::Lock::Timeout=300 >"$log" 2>&1 && apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends $pkgs >>"$log" 2>&1; then
  echo "system-deps: installed $pkgs"
  rm -f "$log"
else
  echo "system-deps: apt-get could not install $pkgs (the tests needing them skip); its output:"
  tail -n 20 "$log" | sed 's/^/  /'
  rm -f "$log"
fi
exit 0
