#!/usr/bin/env bash
# The main job: set up .venv (if needed), run the tour on a real local 3-node cluster,
# then run the 01-quickstart notebook headless and show its first DataFrame.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
EXTRAS=notebook,shell ./scripts/setup.sh
.venv/bin/ddb tour "$@"
echo
mkdir -p artifacts
.venv/bin/python -m ddb_magic.quickstart notebooks/01-quickstart.ipynb --out artifacts/01-quickstart.executed.ipynb
echo
echo "From the first command to the notebook's DataFrame: $(( $(date +%s) - start ))s."
echo "Open the tutorials yourself: .venv/bin/jupyter lab notebooks/"
