#!/usr/bin/env bash
# Refreshes the web panel's Japanese catalog (services/gateway/locale/ja) from its templates and code:
# a new text appears untranslated (tests/gateway/unit/test_catalog.py fails until it is translated in
# the .po file), a text no page uses any more goes.
set -euo pipefail
cd "$(dirname "$0")/.."
pot=$(mktemp)
trap 'rm -f "$pot"' EXIT
.venv/bin/pybabel --quiet extract -F services/gateway/babel.cfg -k N_ --no-location --sort-output \
  --project "mail-self-service gateway" -o "$pot" services/gateway
.venv/bin/pybabel --quiet update -i "$pot" -d services/gateway/locale -l ja -D messages \
  --no-fuzzy-matching --ignore-obsolete -w 120
