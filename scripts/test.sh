#!/usr/bin/env bash
# Lints (ruff, mypy), then runs every test against a stack of its own: the `test` stack (.run/test,
# its own ports and instances of every component; scripts/stack.sh), installed and started here if
# needed and left running for the next run (scripts/stop.sh stops it). The system started by
# scripts/start.sh, if it runs, is never touched. One run at a time: a second one is refused.
set -euo pipefail
cd "$(dirname "$0")/.."
export MAILSS_STACK=test
RUN=.run/test
mkdir -p "$RUN"

# The pid of the run in progress is kept in $RUN/tests.pid (checked and written under a lock);
# pytest keeps this script's pid (exec), so the record stays true until the run ends.
another_run() {
  local pid
  pid=$(cat "$RUN/tests.pid" 2>/dev/null) || return 1
  [[ -n $pid && $pid != "$$" ]] && kill -0 "$pid" 2>/dev/null &&
    grep -qaE 'test\.sh|pytest' "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}
exec 8>"$RUN/tests.lock"
flock -w 10 8
if pid=$(another_run); then
  echo "scripts/test.sh: the tests are already running (pid $pid); one run at a time shares the test stack." >&2
  echo "scripts/test.sh: wait for it to end, or stop it: kill $pid" >&2
  exit 75
fi
echo $$ >"$RUN/tests.pid"
exec 8>&-

scripts/stack.sh up
# The browser tests drive Debian's Chromium (Selenium; Playwright's own download cannot work here),
# with Japanese fonts for the pages' screenshots.
BROWSER_PACKAGES=(chromium chromium-driver fonts-noto-cjk)
missing=()
for pkg in "${BROWSER_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
fi
scripts/python.sh
.venv/bin/ruff check --quiet .
.venv/bin/mypy --no-error-summary
eval "$(scripts/stack.sh env)"
exec .venv/bin/pytest "$@"
