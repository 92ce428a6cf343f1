#!/usr/bin/env bash
# Syncs the locked Python environment into .venv with uv, installing uv first if needed:
# into a tools venv (Debian's own python3 refuses system-wide pip installs, PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.run/tools

find_uv() {
  if command -v uv >/dev/null 2>&1; then command -v uv; return; fi
  [ -x "$TOOLS/bin/uv" ] && { echo "$TOOLS/bin/uv"; return; }
  if ! python3 -m venv --help >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
  fi
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet uv
  echo "$TOOLS/bin/uv"
}

"$(find_uv)" sync --frozen --quiet
