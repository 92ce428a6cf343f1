#!/usr/bin/env bash
# Syncs the locked Python environment into .venv with uv, installing uv first if needed:
# into a tools venv (Debian's own python3 refuses system-wide pip installs, PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.run/tools

install_uv() {
  if ! python3 -c 'import ensurepip' 2>/dev/null; then  # Debian ships venv without ensurepip
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
  fi
  rm -rf "$TOOLS"
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install --quiet uv
}

if command -v uv >/dev/null 2>&1; then
  UV=$(command -v uv)
else
  [ -x "$TOOLS/bin/uv" ] || install_uv
  UV=$TOOLS/bin/uv
fi
# The system's Python (Debian's), never one under a user's home (pyenv in /root): the services run
# as users of their own, who must be able to run it, and every machine runs the same interpreter.
PYTHON=/usr/bin/python3.11
if [ ! -x "$PYTHON" ]; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11 >/dev/null
fi
# the system's CA store, not uv's bundled roots: a machine whose registry sits behind its own CA
# has it there, whether or not the caller's environment names it (SSL_CERT_FILE)
UV_NATIVE_TLS=1 "$UV" sync --frozen --quiet --python "$PYTHON"
