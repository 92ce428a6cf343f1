#!/usr/bin/env bash
# Runs every test against the real stack (installed and started here if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/stack.sh up
scripts/python.sh
eval "$(scripts/stack.sh env)"
exec .venv/bin/pytest "$@"
