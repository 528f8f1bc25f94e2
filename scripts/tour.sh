#!/usr/bin/env bash
# Sets up (if needed) and runs the main job: the guided tour.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/ddb tour "$@"
