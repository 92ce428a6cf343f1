#!/usr/bin/env bash
# Stops what scripts/start.sh and scripts/test.sh started: the services and both stacks (by pid;
# nothing else). `scripts/stop.sh live` or `scripts/stop.sh test` stops one stack only.
set -euo pipefail
cd "$(dirname "$0")/.."
stacks=("$@")
((${#stacks[@]})) || stacks=(live test)
for stack in "${stacks[@]}"; do
  case $stack in live | test) ;; *) echo "usage: $0 [live|test]..." >&2; exit 2 ;; esac
done
for stack in "${stacks[@]}"; do
  [[ $stack == test && ! -d .run/test ]] && continue  # the tests never ran here
  if [[ $stack == live ]]; then
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
  fi
  MAILSS_STACK=$stack scripts/stack.sh down
done
