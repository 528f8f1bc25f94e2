#!/usr/bin/env bash
# Creates .venv and installs ddb (add EXTRAS=test for the test tools). Idempotent.
# pip's own output (progress, build-backend notices) goes to .venv/setup.log, shown only
# when a step fails: a first run prints nothing but what its caller means to say.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOG=.venv/setup.log
logged() {
  if ! "$@" >>"$LOG" 2>&1; then
    echo "setup: failed: $*" >&2
    echo "setup: the end of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
  fi
}
fresh=
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv and installing ddb into it (pip's output: $LOG)"
  "$PY" -m venv .venv
  fresh=1
fi
: >"$LOG"
if [ -n "$fresh" ]; then
  logged .venv/bin/python -m pip install -q --upgrade pip
fi
if [ -n "${EXTRAS:-}" ]; then
  logged .venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
else
  logged .venv/bin/python -m pip install -q -e .
fi
