#!/usr/bin/env bash
# The main job: set up, then run notebooks/demo.ipynb end to end in a real Jupyter kernel,
# print what each cell (and each magic) showed, and keep the executed notebook in out/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
exec "$ROOT/.venv/bin/python" "$ROOT/scripts/run_notebook.py" "$ROOT/notebooks/demo.ipynb" \
  --output "$ROOT/out/demo.executed.ipynb"
