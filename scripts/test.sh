#!/usr/bin/env bash
# Sets up (if needed) and runs the whole default test suite. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/system-deps.sh
EXTRAS=test ./scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
