#!/bin/bash
# Postfix container start (deploy/compose.yaml): renders deploy/postfix/main.cf.in and master.cf
# as scripts/stack.sh does locally, with the other containers' addresses, then runs Postfix in
# the foreground (logs to stdout).
#
# Environment:
#   POSTFIX_RELAYHOST         where mail for the outside world goes, e.g. [smtp.example.jp]:25 (required)
#   POSTFIX_TRUSTED_NETWORKS  who may relay out: our own services' network (Dovecot's Sieve mail) (required)
#   POSTFIX_SRS_DOMAIN        forwarded copies leave with SRS senders at this domain; its MX must
#                             lead here, so bounces find their way back (required)
#   POSTFIX_SRS_SECRET        signs the SRS addresses; keep it across restarts (required, secret)
set -euo pipefail
: "${POSTFIX_RELAYHOST:?is required}"
: "${POSTFIX_TRUSTED_NETWORKS:?is required (CIDR list)}"
: "${POSTFIX_SRS_DOMAIN:?is required}"
: "${POSTFIX_SRS_SECRET:?is required}"
[[ $POSTFIX_SRS_DOMAIN =~ ^[a-z0-9.-]+$ ]] || { echo "POSTFIX_SRS_DOMAIN must be a domain name" >&2; exit 1; }
[[ $POSTFIX_RELAYHOST =~ ^\[?[A-Za-z0-9.-]+\]?(:[0-9]{1,5})?$ ]] || { echo "POSTFIX_RELAYHOST must be [host]:port" >&2; exit 1; }
[[ $POSTFIX_TRUSTED_NETWORKS =~ ^[0-9A-Fa-f.:/\ ]+$ ]] || { echo "POSTFIX_TRUSTED_NETWORKS must be CIDRs" >&2; exit 1; }

RUN=/srv/postfix
CONF=$RUN/etc
mkdir -p "$CONF" "$RUN/data" "$RUN/queue"
chown postfix "$RUN/data"
FORWARD_DOMAIN=forward.mailss.invalid
render() {
  sed -e "s|@RUN@|$RUN|g" -e "s|@LOGS@/postfix.log|/dev/stdout|g" -e "s|@LOGS@|/dev|g" \
    -e "s|@MAP@|account:10181|g" -e "s|@MILTER@|spamassassin:10783|g" -e "s|@LMTP@|dovecot:10024|g" \
    -e "s|@RELAYHOST@|$POSTFIX_RELAYHOST|g" -e "s|@LISTEN@|all|g" -e "s|@SMTPD@|10587|g" \
    -e "s|@TRUSTED@|$POSTFIX_TRUSTED_NETWORKS|g" -e "s|@SIEVE_SMTPD@|10588|g" \
    -e "s|@SRS_FORWARD@|127.0.0.1:10785|g" -e "s|@SRS_REVERSE@|127.0.0.1:10786|g" -e "s|@SRS_DOMAIN@|$POSTFIX_SRS_DOMAIN|g" \
    -e "s|@FORWARD_DOMAIN_RE@|${FORWARD_DOMAIN//./\\\\.}|g" -e "s|@FORWARD_DOMAIN@|$FORWARD_DOMAIN|g" "$1"
}
for file in main.cf.in:main.cf master.cf:master.cf header_checks:header_checks smtp_header_checks:smtp_header_checks \
            forward_domain:forward_domain; do
  render "/etc/postfix/mailss/${file%%:*}" >"$CONF/${file##*:}"
done

# The forwarding map: empty at first, then written by the rules service (MAP_OWNER_UID) only.
mkdir -p "$RUN/maps"
if [[ ! -f $RUN/maps/forwards.lmdb ]]; then
  : >"$RUN/maps/forwards"
  postmap -c "$CONF" "lmdb:$RUN/maps/forwards"
  rm -f "$RUN/maps/forwards"
fi
chown -R "$MAP_OWNER_UID" "$RUN/maps"

# SRS for forwarded copies (the Sieve listener's cleanup asks it), on the container's loopback.
(umask 077 && printf '%s\n' "$POSTFIX_SRS_SECRET" >/run/postsrsd.secret)
postsrsd -s/run/postsrsd.secret -d"$POSTFIX_SRS_DOMAIN" -f10785 -r10786 -l127.0.0.1 -4 -unobody -D
grep -qsF "$CONF" /etc/postfix/main.cf || echo "alternate_config_directories = $CONF" >>/etc/postfix/main.cf
postfix -c "$CONF" set-permissions >/dev/null 2>&1 || true
exec postfix -c "$CONF" start-fg
