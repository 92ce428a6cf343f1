#!/bin/bash
# Renders deploy/dovecot/dovecot.conf.in (the file named, to stdout) into the compose image's base.conf,
# at build (deploy/Dockerfile), as scripts/stack.sh renders it locally: the instance is /srv/dovecot,
# the ports are the live stack's, and Sieve's mail leaves by submission_host, which runtime.conf sets
# at start (the Postfix container's listener for it; this container has no Postfix sendmail).
set -euo pipefail
sed -e 's|@RUN@|/srv/dovecot|g' -e 's|@IMAP_PORT@|10143|g' -e 's|@INSTANCE@|mailss|g' \
  -e 's|@SIEVE_SUBMISSION@|# submission_host: in runtime.conf (deploy/dovecot/compose/entrypoint.sh)|g' "$1"
