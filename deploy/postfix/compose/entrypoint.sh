#!/bin/bash
# Postfix container start (deploy/compose.yaml): renders deploy/postfix/main.cf.in and master.cf
# as scripts/stack.sh does locally, with the other containers' addresses, then runs Postfix in
# the foreground (logs to stdout). Sourced, it only defines its functions (tests/deploy render with them).
#
# Environment:
#   POSTFIX_RELAYHOST         where mail for the outside world goes, e.g. [smtp.example.jp]:25 (required)
#   POSTFIX_TRUSTED_NETWORKS  who may relay out: the Dovecot container (Sieve's mail) and the notifier's,
#                             each a single address, a.b.c.d/32 (required; never a network)
#   POSTFIX_SRS_DOMAIN        forwarded copies leave with SRS senders at this domain; its MX must
#                             lead here, so bounces find their way back (required)
#   POSTFIX_SRS_SECRET        signs the SRS addresses; keep it across restarts (required, secret)
set -euo pipefail

RUN=/srv/postfix
CONF=$RUN/etc
FORWARD_DOMAIN=forward.mailss.invalid
SPF_DIR=/run/mailss-spf
SPF_SOCKET=$SPF_DIR/milter.sock

die() { printf 'mailss-postfix: %s\n' "$*" >&2; exit 1; }

check_environment() {
  : "${POSTFIX_RELAYHOST:?is required}"
  : "${POSTFIX_TRUSTED_NETWORKS:?is required (the Dovecot and notifier containers, a.b.c.d/32 each)}"
  : "${POSTFIX_SRS_DOMAIN:?is required}"
  : "${POSTFIX_SRS_SECRET:?is required}"
  [[ $POSTFIX_SRS_DOMAIN =~ ^[a-z0-9.-]+$ ]] || die "POSTFIX_SRS_DOMAIN must be a domain name"
  [[ $POSTFIX_RELAYHOST =~ ^\[?[A-Za-z0-9.-]+\]?(:[0-9]{1,5})?$ ]] || die "POSTFIX_RELAYHOST must be [host]:port"
  check_host_addresses "$POSTFIX_TRUSTED_NETWORKS"
}

# mynetworks relays anywhere and reaches the forwarding addresses: a network there would let every
# container on it (or that joins it later) do so. Only single hosts, IPv4 (inet_protocols = ipv4).
check_host_addresses() {
  local entry octet
  for entry in $1; do
    [[ $entry =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/32$ ]] ||
      die "POSTFIX_TRUSTED_NETWORKS: '$entry' is not a single IPv4 address written a.b.c.d/32 (no networks: each container is named alone)"
    for octet in "${BASH_REMATCH[@]:1}"; do
      ((10#$octet <= 255)) || die "POSTFIX_TRUSTED_NETWORKS: '$entry' is not an IPv4 address"
    done
  done
}

render() {
  sed -e "s|@RUN@|$RUN|g" -e "s|@LOGS@/postfix.log|/dev/stdout|g" -e "s|@LOGS@|/dev|g" \
    -e "s|@MAP@|account:10181|g" -e "s|@MILTER@|spamassassin:10783|g" -e "s|@SPF_MILTER@|$SPF_SOCKET|g" -e "s|@LMTP@|inet:dovecot:10024|g" \
    -e "s|@RELAYHOST@|$POSTFIX_RELAYHOST|g" -e "s|@LISTEN@|all|g" -e "s|@SMTPD@|10587|g" \
    -e "s|@TRUSTED@|$POSTFIX_TRUSTED_NETWORKS|g" -e "s|@SUBMITTERS@||g" \
    -e "s|@SRS_FORWARD@|127.0.0.1:10785|g" -e "s|@SRS_REVERSE@|127.0.0.1:10786|g" -e "s|@SRS_DOMAIN@|$POSTFIX_SRS_DOMAIN|g" \
    -e "s|@SRS_DOMAIN_RE@|${POSTFIX_SRS_DOMAIN//./\\\\.}|g" -e "s|@FORWARD_DOMAIN_RE@|${FORWARD_DOMAIN//./\\\\.}|g" -e "s|@FORWARD_DOMAIN@|$FORWARD_DOMAIN|g" "$1"
}

# The services' SMTP AUTH listener (@SUBMIT_SMTPD@, @SASL_PATH@) asks Dovecot's auth socket, which is
# in another container here: compose leaves it out, and the notifier relays on 10587 by its own
# address (mynetworks). Deleted: the listener's line and its `  -o` lines, up to the next entry.
without_submit_listener() {
  sed -e '/^@SUBMIT_SMTPD@ /,/^[^ ]/{/^@SUBMIT_SMTPD@ \|^  /d}'
}

# Sieve's mail comes from the Dovecot container over SMTP (its submission_host, postfix:10588): that
# container has no sendmail of ours, so this is compose's way in for it (locally: sendmail and pickup,
# by the mail user). Same cleanup as pickup's (SRS sender), no milter (checked where it came in), and
# the only way to the forwarding addresses: for mynetworks alone.
sieve_listener() {
  cat <<'EOF'
# compose only (deploy/postfix/compose/entrypoint.sh): Dovecot's Sieve mail, from its container.
10588     inet  n       -       n       -       -       smtpd
  -o cleanup_service_name=cleanup-sieve
  -o smtpd_milters=
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
  -o smtpd_relay_restrictions=permit_mynetworks,reject
EOF
}

# render_config TEMPLATES CONF: deploy/postfix/ (the image's copy) rendered into CONF.
render_config() {
  local from=$1 to=$2 table
  mkdir -p "$to"
  render "$from/main.cf.in" >"$to/main.cf"
  { render "$from/master.cf" | without_submit_listener; sieve_listener; } >"$to/master.cf"
  for table in header_checks smtp_header_checks forward_domain srs_senders; do
    render "$from/$table" >"$to/$table"
  done
}

# The forwarding map: empty at first, then written by the rules service (MAP_OWNER_UID) only.
prepare_forward_map() {
  mkdir -p "$RUN/maps"
  if [[ ! -f $RUN/maps/forwards.lmdb ]]; then
    : >"$RUN/maps/forwards"
    postmap -c "$CONF" "lmdb:$RUN/maps/forwards"
    rm -f "$RUN/maps/forwards"
  fi
  chown -R "$MAP_OWNER_UID" "$RUN/maps"
}

# SRS for forwarded copies (the Sieve listener's cleanup asks it), on the container's loopback.
start_postsrsd() {
  (umask 077 && printf '%s\n' "$POSTFIX_SRS_SECRET" >/run/postsrsd.secret)
  postsrsd -s/run/postsrsd.secret -d"$POSTFIX_SRS_DOMAIN" -f10785 -r10786 -l127.0.0.1 -4 -unobody -D
}

# The SPF milter (deploy/spf/pyspf-milter.conf.in), as scripts/stack.sh starts it locally: its socket
# in a folder of the group postfix, which alone may connect; the container's resolver answers it.
start_spf_milter() {
  mkdir -p "$SPF_DIR"
  chown pyspf-milter:postfix "$SPF_DIR"
  chmod 2750 "$SPF_DIR"
  rm -f "$SPF_SOCKET" "$SPF_DIR/pyspf-milter.pid"
  sed -e "s|@SOCKET@|$SPF_SOCKET|g" -e "s|@PIDFILE@|$SPF_DIR/pyspf-milter.pid|g" -e "s|@USER@|pyspf-milter:postfix|g" \
    /etc/postfix/mailss/pyspf-milter.conf.in >"$SPF_DIR/pyspf-milter.conf"
  (umask 007 && exec setsid pyspf-milter "$SPF_DIR/pyspf-milter.conf") </dev/null &
  for _ in $(seq 50); do
    [[ -S $SPF_SOCKET ]] && return
    sleep 0.2
  done
  die "the SPF milter did not start"
}

main() {
  check_environment
  mkdir -p "$RUN/data" "$RUN/queue"
  chown postfix "$RUN/data"
  render_config /etc/postfix/mailss "$CONF"
  prepare_forward_map
  start_postsrsd
  start_spf_milter
  grep -qsF "$CONF" /etc/postfix/main.cf || echo "alternate_config_directories = $CONF" >>/etc/postfix/main.cf
  postfix -c "$CONF" set-permissions >/dev/null 2>&1 || true
  exec postfix -c "$CONF" start-fg
}

[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
