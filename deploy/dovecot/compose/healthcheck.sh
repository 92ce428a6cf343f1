#!/bin/bash
# Healthy when every listener answers, as scripts/stack.sh's dovecot_ready checks
# locally: IMAP and LMTP greet, and the services' sockets (IMAP, ManageSieve) are there.
# Ports: IMAP's as render-base.sh renders deploy/dovecot/dovecot.conf.in, LMTP's in dovecot.conf
# (compose's TCP listener for Postfix). DOVECOT_HOST overrides the host.
set -uo pipefail

host=${DOVECOT_HOST:-127.0.0.1}

greets() {  # greets PORT PREFIX: the server's first line starts with PREFIX
  local line
  exec 3<>"/dev/tcp/$host/$1" || return 1
  read -r -t 3 line <&3 || line=
  exec 3<&-
  [[ $line == "$2"* ]] || { echo "port $1 said '${line%$'\r'}'" >&2; return 1; }
}

greets 10143 '* OK' && greets 10024 '220 ' && [[ -S /srv/dovecot/services/imap && -S /srv/dovecot/services/sieve ]]
