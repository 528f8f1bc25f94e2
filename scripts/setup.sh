#!/usr/bin/env bash
# Creates .venv and installs ddb (add EXTRAS=test for the test tools). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
fi
if [ -n "${EXTRAS:-}" ]; then
  .venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
else
  .venv/bin/python -m pip install -q -e .
fi
