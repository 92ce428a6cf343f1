#!/usr/bin/env bash
# Lints (ruff, mypy), then runs every test against the real stack (installed and started here if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/stack.sh up
scripts/python.sh
.venv/bin/ruff check --quiet .
.venv/bin/mypy --no-error-summary
eval "$(scripts/stack.sh env)"
exec .venv/bin/pytest "$@"
