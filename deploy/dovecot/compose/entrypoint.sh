#!/bin/bash
# Dovecot container start (deploy/compose.yaml): prepares /srv/dovecot the way
# scripts/stack.sh prepares .run/dovecot locally, then runs Dovecot in the foreground.
#
# Environment:
#   DOVECOT_MASTER_PASSWORD   the service master user's password (required; hashed here,
#                             never written in clear, removed from Dovecot's environment)
#   DOVECOT_MASTER_USER       its name (default mailsvc, as locally)
#   DOVECOT_SUBMISSION_HOST   host:port of the SMTP relay for Sieve redirect/vacation (required)
#   DOVECOT_TRUSTED_NETWORKS  CIDRs of our own services (required): login_trusted_networks
#   ACCOUNT_UID               uid of the account service, owner of passwd.d (set by the image)
#   MAIL_POLICY_URL           the account service's auth policy endpoint (the guessing limit)
#   MAIL_POLICY_API_KEY       the key Dovecot sends it, MAIL_POLICY_HASH_NONCE the fingerprints' nonce
set -euo pipefail

RUN=/srv/dovecot
CONF=/etc/dovecot/mailss/dovecot.conf

die() { printf 'mailss-dovecot: %s\n' "$*" >&2; exit 1; }

: "${DOVECOT_MASTER_PASSWORD:?is required}"
: "${DOVECOT_SUBMISSION_HOST:?is required (host:port)}"
: "${DOVECOT_TRUSTED_NETWORKS:?is required (CIDR list)}"
: "${ACCOUNT_UID:?is required}"
: "${MAIL_POLICY_URL:?is required (the auth policy endpoint of the account service)}"
: "${MAIL_POLICY_API_KEY:?is required}"
: "${MAIL_POLICY_HASH_NONCE:?is required}"
master_user=${DOVECOT_MASTER_USER:-mailsvc}

# Values end up in Dovecot's config and passwd-file: refuse anything but the expected shape.
[[ $DOVECOT_SUBMISSION_HOST =~ ^[A-Za-z0-9.-]+:[0-9]{1,5}$ ]] ||
  die "DOVECOT_SUBMISSION_HOST must be host:port"
[[ $DOVECOT_TRUSTED_NETWORKS =~ ^[0-9A-Fa-f.:/\ ]+$ ]] ||
  die "DOVECOT_TRUSTED_NETWORKS must be a space-separated list of CIDRs"
[[ $MAIL_POLICY_URL =~ ^http://[A-Za-z0-9.-]+:[0-9]{1,5}/$ ]] || die "MAIL_POLICY_URL must be http://host:port/"
[[ $MAIL_POLICY_API_KEY =~ ^[A-Za-z0-9_-]{16,}$ && $MAIL_POLICY_HASH_NONCE =~ ^[A-Za-z0-9_-]{16,}$ ]] ||
  die "MAIL_POLICY_API_KEY and MAIL_POLICY_HASH_NONCE must be 16 or more URL-safe characters"
[[ $master_user =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "DOVECOT_MASTER_USER is not a plain name"

# Ownership is what lets Dovecot's processes in (see dovecot.conf.in): auth runs as
# `dovecot` and reads passwd.d through the group; the account service (ACCOUNT_UID)
# writes there; mail is delivered and read as vmail. setgid on passwd.d makes the
# account service's new domain folders and files inherit the dovecot group.
mkdir -p "$RUN/base" "$RUN/state" "$RUN/passwd.d" "$RUN/mail"
chown "$ACCOUNT_UID:dovecot" "$RUN/passwd.d"
chmod 2750 "$RUN/passwd.d"
chown vmail:vmail "$RUN/mail"
chmod 700 "$RUN/mail"

cat >"$RUN/runtime.conf" <<EOF
login_trusted_networks = $DOVECOT_TRUSTED_NETWORKS
submission_host = $DOVECOT_SUBMISSION_HOST
EOF

# The guessing limit: Dovecot asks the account service before each mail login (the
# template's !include_try @RUN@/policy.conf). Secrets: root-only file.
(umask 077 && printf '%s\n' \
  "auth_policy_server_url = $MAIL_POLICY_URL" \
  "auth_policy_server_api_header = X-API-Key:$MAIL_POLICY_API_KEY" \
  "auth_policy_hash_nonce = $MAIL_POLICY_HASH_NONCE" >"$RUN/policy.conf")
unset MAIL_POLICY_API_KEY MAIL_POLICY_HASH_NONCE
doveconf -c "$CONF" -n >/dev/null || die "invalid $CONF"

# doveadm pw reads the password twice from stdin: it stays out of `ps`. Our config, not
# the package's default one (which wants TLS certificates this image does not use).
hash=$(printf '%s\n%s\n' "$DOVECOT_MASTER_PASSWORD" "$DOVECOT_MASTER_PASSWORD" |
  doveadm -c "$CONF" pw -s SHA512-CRYPT)
(umask 027 && printf '%s:%s\n' "$master_user" "$hash" >"$RUN/master-users.tmp")
chown root:dovecot "$RUN/master-users.tmp"
mv -f "$RUN/master-users.tmp" "$RUN/master-users"
unset DOVECOT_MASTER_PASSWORD hash

exec dovecot -F -c "$CONF"
