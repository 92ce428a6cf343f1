#!/bin/bash
# Dovecot container start (deploy/compose.yaml): prepares /srv/dovecot the way
# scripts/stack.sh prepares .run/dovecot locally, then runs Dovecot in the foreground.
# Sourced, it only defines its functions (tests/deploy check the validation with them).
#
# Environment:
#   DOVECOT_MASTER_PASSWORD   the service master user's password (required; hashed here,
#                             never written in clear, removed from Dovecot's environment)
#   DOVECOT_MASTER_USER       its name (default mailsvc, as locally)
#   DOVECOT_SUBMISSION_HOST   host:port of the SMTP relay for Sieve redirect/vacation (required)
#   DOVECOT_TRUSTED_NETWORKS  the own addresses of a panel that logs its users in over IMAP and
#                             names their address in IMAP ID (x-originating-ip), a.b.c.d/32 or
#                             v6/128 each (optional; empty: nobody's is believed)
#   ACCOUNT_UID               uid of the account service, owner of passwd.d (set by the image)
#   MAIL_POLICY_URL           the account service's auth policy endpoint (the guessing limit)
#   MAIL_POLICY_API_KEY       the key Dovecot sends it, MAIL_POLICY_HASH_NONCE the fingerprints' nonce
set -euo pipefail

RUN=/srv/dovecot
CONF=/etc/dovecot/mailss/dovecot.conf

die() { printf 'mailss-dovecot: %s\n' "$*" >&2; exit 1; }

# Values end up in Dovecot's config and passwd-file: refuse anything but the expected shape.
check_environment() {
  : "${DOVECOT_MASTER_PASSWORD:?is required}"
  : "${DOVECOT_SUBMISSION_HOST:?is required (host:port)}"
  : "${ACCOUNT_UID:?is required}"
  : "${MAIL_POLICY_URL:?is required (the auth policy endpoint of the account service)}"
  : "${MAIL_POLICY_API_KEY:?is required}"
  : "${MAIL_POLICY_HASH_NONCE:?is required}"
  master_user=${DOVECOT_MASTER_USER:-mailsvc}
  [[ $DOVECOT_SUBMISSION_HOST =~ ^[A-Za-z0-9.-]+:[0-9]{1,5}$ ]] ||
    die "DOVECOT_SUBMISSION_HOST must be host:port"
  check_host_addresses "${DOVECOT_TRUSTED_NETWORKS:-}"
  [[ $MAIL_POLICY_URL =~ ^http://[A-Za-z0-9.-]+:[0-9]{1,5}/$ ]] || die "MAIL_POLICY_URL must be http://host:port/"
  [[ $MAIL_POLICY_API_KEY =~ ^[A-Za-z0-9_-]{16,}$ && $MAIL_POLICY_HASH_NONCE =~ ^[A-Za-z0-9_-]{16,}$ ]] ||
    die "MAIL_POLICY_API_KEY and MAIL_POLICY_HASH_NONCE must be 16 or more URL-safe characters"
  [[ $master_user =~ ^[a-z0-9][a-z0-9._-]*$ ]] || die "DOVECOT_MASTER_USER is not a plain name"
}

# A trusted client may name any source address, and the guessing limit counts per source: a network
# here would let every container on it (or that joins it later) spread guesses over made-up sources.
# Only single hosts, the panel's own.
check_host_addresses() {
  local entry octet
  for entry in $1; do
    if [[ $entry =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/32$ ]]; then
      for octet in "${BASH_REMATCH[@]:1}"; do
        ((10#$octet <= 255)) || die "DOVECOT_TRUSTED_NETWORKS: '$entry' is not an IPv4 address"
      done
    elif [[ ! $entry =~ ^[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}/128$ ]]; then
      die "DOVECOT_TRUSTED_NETWORKS: '$entry' is not a single address written a.b.c.d/32 or v6/128 (no networks: only the panel's own addresses)"
    fi
  done
}

# Ownership is what lets each process in, and no one else (see dovecot.conf.in): auth runs as
# `dovecot` and reads passwd.d through the group, which only the account service (ACCOUNT_UID, never
# the mail user) writes; setgid makes its new files inherit the dovecot group. Mail is delivered and
# read as vmail in homes of the group mailss-homes, which the account service makes and removes.
# services/ (a volume the copy job and rules containers mount) holds Dovecot's sockets for them, where
# alone the master user logs in: only the group mailss-mail, which compose gives those two, enters it.
prepare_instance() {
  mkdir -p "$RUN/base" "$RUN/state" "$RUN/passwd.d" "$RUN/mail" "$RUN/services" "$RUN/outbound"
  chown "$ACCOUNT_UID:dovecot" "$RUN/passwd.d"
  chmod 2750 "$RUN/passwd.d"
  chown root:mailss-mail "$RUN/services"
  chmod 750 "$RUN/services"
  # The outbound meters: the mail user writes them (Sieve's program), the rules service reads them.
  chown vmail:mailss-mail "$RUN/outbound"
  chmod 2750 "$RUN/outbound"
  migrate_mail_homes
  chown vmail:mailss-homes "$RUN/mail"
  chmod 2770 "$RUN/mail"
}

# Mail from before the homes' group (vmail had the account service's uid then, homes 0700) becomes
# vmail's with the group's access, setgid, as the account service makes homes now: once, behind a
# marker on the volume (homes number in the hundred thousands; a walk on every start costs minutes).
migrate_mail_homes() {
  local mail=$RUN/mail marker=$RUN/mail/.homes-group-v1
  [[ -e $marker ]] && return
  if [[ -n $(find "$mail" -mindepth 1 -maxdepth 1 -print -quit) ]]; then
    echo "mailss-dovecot: giving the existing mail to vmail and the group mailss-homes (once)" >&2
    chown -R vmail:mailss-homes "$mail"
    chmod -R g=u "$mail"
    find "$mail" -type d -exec chmod g+s {} +
  fi
  touch "$marker"
}

write_runtime_conf() {
  cat >"$RUN/runtime.conf" <<EOF
login_trusted_networks = ${DOVECOT_TRUSTED_NETWORKS:-}
submission_host = $DOVECOT_SUBMISSION_HOST
EOF
}

# The guessing limit: Dovecot asks the account service before each mail login (the
# template's !include_try @RUN@/policy.conf). Secrets: root-only file.
write_policy_conf() {
  (umask 077 && printf '%s\n' \
    "auth_policy_server_url = $MAIL_POLICY_URL" \
    "auth_policy_server_api_header = X-API-Key:$MAIL_POLICY_API_KEY" \
    "auth_policy_hash_nonce = $MAIL_POLICY_HASH_NONCE" >"$RUN/policy.conf")
  unset MAIL_POLICY_API_KEY MAIL_POLICY_HASH_NONCE
}

# doveadm pw reads the password twice from stdin: it stays out of `ps`. Our config, not
# the package's default one (which wants TLS certificates this image does not use).
# allow_nets=local (the line's extra fields, after the five empty passwd ones): the master user logs in
# only through the services' sockets (no IP), never over the compose network, where its login fails
# like a wrong password, the right one included.
write_master_users() {
  local hash
  hash=$(printf '%s\n%s\n' "$DOVECOT_MASTER_PASSWORD" "$DOVECOT_MASTER_PASSWORD" |
    doveadm -c "$CONF" pw -s SHA512-CRYPT)
  (umask 027 && printf '%s:%s::::::allow_nets=local\n' "$master_user" "$hash" >"$RUN/master-users.tmp")
  chown root:dovecot "$RUN/master-users.tmp"
  mv -f "$RUN/master-users.tmp" "$RUN/master-users"
  unset DOVECOT_MASTER_PASSWORD
}

# The template's SMTP AUTH passdb (Postfix's submission listener) reads submit-users; compose has no
# such login (the notifier relays by address), so the file is empty: the passdb opens, accepts no one.
write_submit_users() {
  (umask 027 && : >"$RUN/submit-users")
  chown root:dovecot "$RUN/submit-users"
}

main() {
  check_environment
  prepare_instance
  write_runtime_conf
  write_policy_conf
  write_submit_users
  doveconf -c "$CONF" -n >/dev/null || die "invalid $CONF"
  write_master_users
  exec dovecot -F -c "$CONF"
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
