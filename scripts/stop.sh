#!/usr/bin/env bash
# Stops the services and the stack that scripts/start.sh started (by pid; nothing else).
set -euo pipefail
cd "$(dirname "$0")/.."
for pidfile in .run/pids/svc-*.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
done
scripts/stack.sh down
