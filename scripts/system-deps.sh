#!/usr/bin/env bash
# Best-effort system packages for the full test suite: chromium (browser tests),
# iproute2 (network-namespace tests). Tests that need a missing one skip with a reason.
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v tc >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: not root or no apt-get; skipping ${need[*]} (their tests will skip)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null 2>&1 \
  || echo "system-deps: could not install ${need[*]} (their tests will skip)" >&2
exit 0
