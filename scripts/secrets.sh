#!/usr/bin/env bash
# Generates the local secrets once (.run/secrets/services.env, mode 600); never overwrites them,
# only adds those a newer version needs.
set -euo pipefail
cd "$(dirname "$0")/.."
file=.run/secrets/services.env
mkdir -p .run/secrets && chmod 700 .run/secrets
umask 077
if [ ! -s "$file" ]; then
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
fi
# The copy job seals source passwords with it (Fernet).
grep -q '^COPY_SECRET_KEY=' "$file" ||
  .venv/bin/python -c 'from cryptography.fernet import Fernet; print("COPY_SECRET_KEY=" + Fernet.generate_key().decode())' >>"$file"
# The web panel signs its forms' tokens with it (services/gateway/domain/forms.py).
grep -q '^GATEWAY_FORM_SECRET=' "$file" ||
  .venv/bin/python -c 'import secrets; print("GATEWAY_FORM_SECRET=" + secrets.token_urlsafe(32))' >>"$file"
