#!/usr/bin/env bash
# Generates the local secrets once (.run/secrets/services.env, mode 600); never overwrites them.
set -euo pipefail
cd "$(dirname "$0")/.."
file=.run/secrets/services.env
[ -s "$file" ] && exit 0
mkdir -p .run/secrets && chmod 700 .run/secrets
umask 077
.venv/bin/python - >"$file" <<'PY'
import secrets
from shared.auth import generate_keypair
private, public = generate_keypair()
print(f"SESSION_PRIVATE_KEY={private}")
print(f"SESSION_PUBLIC_KEY={public}")
print("BOOTSTRAP_ADMIN_LOGIN=admin")
print(f"BOOTSTRAP_ADMIN_PASSWORD={secrets.token_urlsafe(18)}")
print("BOOTSTRAP_ADMIN_DOMAINS='[\"example.jp\"]'")
PY
