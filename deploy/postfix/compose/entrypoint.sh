#!/bin/bash
# Postfix container start (deploy/compose.yaml): renders deploy/postfix/main.cf.in and master.cf
# as scripts/stack.sh does locally, with the other containers' addresses, then runs Postfix in
# the foreground (logs to stdout).
#
# Environment:
#   POSTFIX_RELAYHOST         where mail for the outside world goes, e.g. [smtp.example.jp]:25 (required)
#   POSTFIX_TRUSTED_NETWORKS  who may relay out: our own services' network (Dovecot's Sieve mail) (required)
set -euo pipefail
: "${POSTFIX_RELAYHOST:?is required}"
: "${POSTFIX_TRUSTED_NETWORKS:?is required (CIDR list)}"
[[ $POSTFIX_RELAYHOST =~ ^\[?[A-Za-z0-9.-]+\]?(:[0-9]{1,5})?$ ]] || { echo "POSTFIX_RELAYHOST must be [host]:port" >&2; exit 1; }
[[ $POSTFIX_TRUSTED_NETWORKS =~ ^[0-9A-Fa-f.:/\ ]+$ ]] || { echo "POSTFIX_TRUSTED_NETWORKS must be CIDRs" >&2; exit 1; }

RUN=/srv/postfix
CONF=$RUN/etc
mkdir -p "$CONF" "$RUN/data" "$RUN/queue"
chown postfix "$RUN/data"
render() {
  sed -e "s|@RUN@|$RUN|g" -e "s|@LOGS@/postfix.log|/dev/stdout|g" -e "s|@LOGS@|/dev|g" \
    -e "s|@MAP@|account:10181|g" -e "s|@MILTER@|spamassassin:10783|g" -e "s|@LMTP@|dovecot:10024|g" \
    -e "s|@RELAYHOST@|$POSTFIX_RELAYHOST|g" -e "s|@LISTEN@|all|g" -e "s|@SMTPD@|10587|g" \
    -e "s|@TRUSTED@|$POSTFIX_TRUSTED_NETWORKS|g" "$1"
}
render /etc/postfix/mailss/main.cf.in >"$CONF/main.cf"
render /etc/postfix/mailss/master.cf >"$CONF/master.cf"
cp /etc/postfix/mailss/header_checks "$CONF/header_checks"
grep -qsF "$CONF" /etc/postfix/main.cf || echo "alternate_config_directories = $CONF" >>/etc/postfix/main.cf
postfix -c "$CONF" set-permissions >/dev/null 2>&1 || true
exec postfix -c "$CONF" start-fg
