#!/usr/bin/env bash
# Installs uv if missing and syncs the locked Python environment into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --root-user-action=ignore uv
fi
uv sync --frozen --quiet
